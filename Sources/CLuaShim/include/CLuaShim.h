#ifndef CLUASHIM_H
#define CLUASHIM_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Placeholder until the LuaBridge work fills this in. */
int bp_lua_version_num(void);

#endif
