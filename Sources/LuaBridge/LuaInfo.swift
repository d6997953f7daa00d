import CLuaShim

/// Facts about the linked Lua library.
public enum LuaInfo {
    public static var versionNumber: Int { Int(bp_lua_version_num()) }
}
