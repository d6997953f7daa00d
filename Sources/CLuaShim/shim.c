#include "CLuaShim.h"

int bp_lua_version_num(void) { return LUA_VERSION_NUM; }
