import CLuaShim

public enum LuaInfo {
    public static var versionNumber: Int { Int(bp_lua_version_num()) }
}
