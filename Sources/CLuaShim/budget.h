#ifndef BP_BUDGET_H
#define BP_BUDGET_H
/*
 * Between shim.c (which owns the per-call budget) and strlib.c (the library functions that
 * run long in C and so must pay into it). Not part of the Swift-facing header.
 */
#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>

/* Adds `units` of work, each about one VM instruction's worth, to the running hook's count
 * and checks the instruction limit and the CPU and wall-clock deadlines exactly as the
 * count hook does. Once over, it trips the budget like the hook (which then fires on every
 * instruction) and raises the budget error. Does nothing outside a budgeted call or in a
 * state bp_open did not make. May raise: call it only from a C function run by Lua. */
void bp_charge(lua_State *L, long long units);

/* Tells the allocator that the next `bytes` of big allocations (the result a function just
 * charged for) are paid: it charges big allocations itself (BP_BIG_ALLOC in shim.c), which
 * would count them twice. Replaces any credit left from before. */
void bp_prepay(lua_State *L, size_t bytes);

/* Bytes the state may still allocate under its memory cap (SIZE_MAX without a cap). An
 * operation that needs more fails at its first allocation, so it costs nothing to charge. */
size_t bp_memory_room(lua_State *L);

/* Replaces the string library's matching functions (find, match, gmatch, gsub) and rep in
 * the table at idx with budgeted ones, and wraps the others whose cost grows with their
 * input (upper, lower, reverse, format, byte, char, sub, pack, packsize, unpack) so they
 * charge for it. */
void bp_budget_string_lib(lua_State *L, int idx);
/* Same for the table library at idx (concat, move, insert, remove, sort, unpack), the utf8
 * library (len, codepoint, offset, char) and the base library (tonumber). */
void bp_budget_table_lib(lua_State *L, int idx);
void bp_budget_utf8_lib(lua_State *L, int idx);
void bp_budget_base_lib(lua_State *L, int idx);
/* Pushes a table with only the budgeted find, match, gmatch, gsub and rep (for the
 * differential test, which needs the stock ones beside them). */
void bp_push_matchers(lua_State *L);

#endif
