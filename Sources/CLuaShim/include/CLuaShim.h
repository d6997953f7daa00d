#ifndef CLUASHIM_H
#define CLUASHIM_H
/*
 * The C side of LuaBridge. Every function declared here is safe to call from Swift: none of
 * them can longjmp. Anything that may raise a Lua error (allocation, metamethods, luaL_check*,
 * luaL_error) runs inside lua_pcall in shim.c. Swift talks to Lua only through these
 * functions plus the few plain accessors at the end (which never raise).
 *
 * Values cross the boundary in the "wire" encoding (see bp_wire_* in shim.c):
 *   'n'                      nil
 *   'b' u8                   boolean
 *   'i' i64 (little endian)  integer
 *   'd' f64 (little endian)  float
 *   's' u32 len, bytes       string
 *   't' u32 count, count x (key value)   table (keys are 's' or 'i')
 */
#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* Outcomes of bp_call_hook. */
enum {
    BP_PASS = 0,      /* hook returned nil/false: next policy */
    BP_DECIDED = 1,   /* wire-encoded, normalized decision (userdata) on top of the stack */
    BP_ERROR = 2,     /* runtime error; message string on top */
    BP_BUDGET = 3,    /* instruction/wall-clock budget tripped; message on top */
    BP_MEMORY = 4,    /* memory cap hit; message on top */
};

/* The one function pointer Lua uses to reach Swift. `op` selects the operation, `in` is a
 * wire-encoded array of arguments. Return 0 with `*out` (malloc'd, wire-encoded result value,
 * may be NULL for nil) or 1 with `*out` a malloc'd error message (raised as a Lua error by the
 * C trampoline). Swift code behind it never touches the lua_State. */
typedef int (*bp_host_fn)(void *host, int op, const uint8_t *in, size_t inlen,
                          uint8_t **out, size_t *outlen);
void bp_set_host_fn(bp_host_fn fn);

/* Creates a sandboxed state: base/string/table/math/utf8 only, memory cap `mem_limit`, the
 * LuaBridge prelude (Lua source) run once. On failure returns NULL and *err (malloc'd). */
lua_State *bp_open(void *host, size_t mem_limit, const char *prelude, size_t prelude_len,
                   char **err);
void bp_close(lua_State *L);
/* Per-call budget: `instructions` VM instructions, `cpu_ms` CPU milliseconds of the calling
 * thread, `wall_ms` wall-clock milliseconds (a backstop against a starved thread). */
void bp_set_budget(lua_State *L, long long instructions, double cpu_ms, double wall_ms);
/* Memory in use by the state, in bytes. */
size_t bp_memory_used(lua_State *L);

/* Loads a policy (text only) into its own sandboxed environment and runs it. On success
 * returns 0, refs[0..2] hold registry refs of dhcp/tftp/http hooks (LUA_NOREF when absent)
 * and the policy's `name` (or NULL) is copied to *name (malloc'd). On failure returns
 * BP_ERROR/BP_BUDGET/BP_MEMORY with the message on top of the stack. `test_api` != 0 loads a
 * test file instead: the environment gets the test API and any return value is accepted. */
int bp_load_policy(lua_State *L, const char *chunkname, const char *src, size_t len,
                   const char *dir, const char *policy_name, const uint8_t *config,
                   size_t config_len, int test_api, int *refs, char **name);

/* Gives every policy loaded from here on `data` (wire table name -> value, built read-only;
 * `keys`, wire name -> field, indexes those names' rows by that field too) and `server` (wire
 * table of facts the prelude wraps). Built outside the memory cap, which then grows by what
 * it took (*cost). Returns 0, or BP_ERROR with the message on top. */
int bp_set_data(lua_State *L, const uint8_t *data, size_t data_len, const uint8_t *keys, size_t keys_len,
                const uint8_t *server, size_t server_len, size_t *cost);

/* Gives freed heap memory back to the system (glibc's malloc_trim), after a large load. */
void bp_malloc_trim(void);

/* Builds the request table from a wire-encoded table plus a wire-encoded options table that
 * is only decoded when a hook reads `req.options`. Leaves the request on top; returns 0, or
 * BP_MEMORY/BP_ERROR with a message on top. */
int bp_push_request(lua_State *L, const uint8_t *req, size_t len, const uint8_t *opts,
                    size_t opts_len);
/* Ends the request bp_push_request began: its options bytes may change from here on. */
void bp_end_request(lua_State *L);
/* Keeps a string interned for the state's life (values most requests carry); 0 when done. */
int bp_anchor(lua_State *L, const char *s, size_t len);
/* Calls the hook in registry slot `ref` with the value at `reqidx`. See BP_* above. */
int bp_call_hook(lua_State *L, int ref, int reqidx);

/* Test support (patdiff.c): runs `cases` random pattern cases from `seed` through both the
 * stock string.find/match/gmatch/gsub and the budgeted ones policies get, in a state of its
 * own. Returns 0 when every case agreed, else 1 with the first mismatch described in
 * `report`; *ran is the number of cases run. */
int bp_pattern_diff(uint64_t seed, long cases, long *ran, char *report, size_t report_len);

/* Plain accessors (never raise). */
int bp_gettop(lua_State *L);
void bp_settop(lua_State *L, int idx);
/* Returns the string at idx (no conversion) or NULL when it is not a string. */
const char *bp_tostring(lua_State *L, int idx, size_t *len);
/* A string's or a full userdata's bytes (a normalized decision is the latter); NULL otherwise. */
const uint8_t *bp_tobytes(lua_State *L, int idx, size_t *len);
void bp_unref(lua_State *L, int ref);
int bp_noref(void);
int bp_lua_version_num(void);

#endif
