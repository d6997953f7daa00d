/*
 * LuaBridge's C half. Everything that can raise a Lua error (allocation, luaL_check*,
 * luaL_error, metamethods) happens inside a lua_pcall started here, so no longjmp ever
 * crosses a Swift frame. Swift-implemented functions are reached through one C trampoline
 * (`bp_host_tramp`) that turns their error marker into a Lua error.
 *
 * Sandbox and limits follow Redis' script_lua.c (count hook that keeps firing once
 * tripped) and HAProxy's hlua_alloc (a lua_Alloc that refuses past a cap).
 */
#include "CLuaShim.h"
#include "budget.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <time.h>
#include <arpa/inet.h>

#define BP_HOOK_EVERY 1000          /* VM instructions between budget checks */
#define BP_MEM_RESERVE (256 * 1024) /* head-room for error handling once the cap tripped */
#define BP_WIRE_DEPTH 32
#define BP_MODULE_MAX (1024 * 1024)
/* A single VM instruction can copy megabytes (`s .. "x"` of a 16 MiB string took 6 ms, and
 * the hook looked again only after 1,000 instructions: 250 such copies, 1.8 s). So a
 * growth of at least BP_BIG_ALLOC bytes is charged BP_ALLOC_BYTES_PER_UNIT bytes a unit
 * (what allocating and filling them costs) and the hook is made to fire at the next
 * instruction to look at the budget. */
#define BP_BIG_ALLOC (64 * 1024)
#define BP_ALLOC_BYTES_PER_UNIT 32

typedef struct bp_ctx {
    size_t used, limit;
    int mem_tripped;
    int armed, budget_tripped, timing;
    long long instr_limit, instr_count;
    long long unclocked; /* units counted since the clocks were last read */
    /* Big allocations (see BP_BIG_ALLOC): units not yet counted, whether the hook was set to
     * fire at once for them, and bytes a library function already paid for (bp_prepay). */
    long long alloc_units;
    int hook_soon;
    size_t prepaid;
    lua_State *L; /* the main thread, the only one (no coroutines in the sandbox) */
    double cpu_ms, wall_ms, cpu_deadline, wall_deadline;
    void *host;
    /* The current request's options in the host's buffer, from bp_push_request until
     * bp_end_request (see push_request_k). */
    const uint8_t *opts;
    size_t opts_len;
} bp_ctx;

static bp_host_fn g_host_fn;

void bp_set_host_fn(bp_host_fn fn) { g_host_fn = fn; }

static bp_ctx *ctx_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (bp_ctx *)ud;
}

/* ---------------------------------------------------------------- memory cap */

static void bp_hook(lua_State *L, lua_Debug *ar);

static void *bp_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    bp_ctx *c = (bp_ctx *)ud;
    if (ptr == NULL) osize = 0; /* osize carries the object type then */
    if (nsize == 0) {
        free(ptr);
        c->used -= osize;
        return NULL;
    }
    if (nsize > osize) {
        size_t cap = c->limit + (c->mem_tripped ? BP_MEM_RESERVE : 0);
        if (c->used + (nsize - osize) > cap) {
            c->mem_tripped = 1;
            return NULL;
        }
    }
    void *np = realloc(ptr, nsize);
    if (np == NULL) {
        if (nsize > osize) c->mem_tripped = 1;
        return NULL;
    }
    c->used = c->used - osize + nsize;
    if (nsize > osize && nsize - osize >= BP_BIG_ALLOC && c->armed) {
        size_t bytes = nsize - osize;
        size_t covered = bytes < c->prepaid ? bytes : c->prepaid;
        c->prepaid -= covered;
        if (bytes - covered >= BP_ALLOC_BYTES_PER_UNIT) {
            c->alloc_units += (long long)((bytes - covered) / BP_ALLOC_BYTES_PER_UNIT);
            /* Raising here is not allowed (the allocator runs inside Lua's internals), but
             * setting a hook is, as from a signal handler. */
            if (!c->hook_soon) {
                c->hook_soon = 1;
                lua_sethook(c->L, bp_hook, LUA_MASKCOUNT, 1);
            }
        }
    }
    return np;
}

size_t bp_memory_used(lua_State *L) { return ctx_of(L)->used; }

/* ---------------------------------------------------------------- CPU budget */

static double now_ms(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int raise_at(lua_State *L, int level, const char *fmt, ...);

/* Counts `units` (VM instructions, or C work strlib.c and bp_alloc price as such) against the
 * call's budget; 1 when it is spent. The clocks are read once per BP_HOOK_EVERY units, so the
 * hook reads them at every firing as before, and small charges between firings add no
 * clock reads. Clocks start at the first read, so a short call never reads them. CPU time of
 * this thread is the budget (preemption on a busy host does not count); wall time is a
 * backstop. */
static int budget_spent(bp_ctx *c, long long units) {
    c->instr_count += units;
    if (c->instr_count > c->instr_limit) return 1;
    c->unclocked += units;
    if (c->unclocked < BP_HOOK_EVERY) return 0;
    c->unclocked = 0;
    if (!c->timing) {
        c->timing = 1;
        c->cpu_deadline = now_ms(CLOCK_THREAD_CPUTIME_ID) + c->cpu_ms;
        c->wall_deadline = now_ms(CLOCK_MONOTONIC) + c->wall_ms;
        return 0;
    }
    return now_ms(CLOCK_THREAD_CPUTIME_ID) >= c->cpu_deadline || now_ms(CLOCK_MONOTONIC) >= c->wall_deadline;
}

/* Marks the budget spent and raises its error, `level` frames up. */
static int budget_trip(lua_State *L, bp_ctx *c, int level) {
    if (!c->budget_tripped) {
        c->budget_tripped = 1;
        /* From now on fire on every instruction so `pcall` inside the policy cannot
         * swallow the error and keep running. */
        lua_sethook(L, bp_hook, LUA_MASKCOUNT, 1);
    }
    return raise_at(L, level, "policy exceeded its budget (%I instructions, %f ms CPU or %f ms wall clock)",
                    (lua_Integer)c->instr_limit, (lua_Number)c->cpu_ms, (lua_Number)c->wall_ms);
}

static void bp_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    bp_ctx *c = ctx_of(L);
    if (!c->armed) return;
    long long units = BP_HOOK_EVERY;
    if (c->hook_soon) {
        /* Early, for big allocations: their units (the few instructions since the last
         * regular firing go uncounted), with a clock read, then the usual cadence. */
        units = c->alloc_units;
        c->alloc_units = 0;
        c->hook_soon = 0;
        c->unclocked = BP_HOOK_EVERY;
        if (!c->budget_tripped) lua_sethook(L, bp_hook, LUA_MASKCOUNT, BP_HOOK_EVERY);
    }
    if (!c->budget_tripped && !budget_spent(c, units)) return;
    /* Level 0 inside a hook is the Lua function being run: its file:line leads. */
    budget_trip(L, c, 0);
}

void bp_charge(lua_State *L, long long units) {
    void *ud = NULL;
    if (lua_getallocf(L, &ud) != bp_alloc) return; /* not ours: nothing to charge (tests) */
    bp_ctx *c = (bp_ctx *)ud;
    if (!c->armed) return;
    if (!c->budget_tripped && !budget_spent(c, units)) return;
    /* Called from a C function (level 0): the error names the nearest Lua caller, which a
     * C function called through pcall is not. */
    int level = 1;
    lua_Debug d;
    for (int l = 1; lua_getstack(L, l, &d); l++) {
        lua_getinfo(L, "l", &d);
        if (d.currentline > 0) {
            level = l;
            break;
        }
    }
    budget_trip(L, c, level);
}

void bp_prepay(lua_State *L, size_t bytes) {
    void *ud = NULL;
    if (lua_getallocf(L, &ud) != bp_alloc) return;
    bp_ctx *c = (bp_ctx *)ud;
    if (c->armed) c->prepaid = bytes;
}

size_t bp_memory_room(lua_State *L) {
    void *ud = NULL;
    if (lua_getallocf(L, &ud) != bp_alloc) return SIZE_MAX;
    bp_ctx *c = (bp_ctx *)ud;
    return c->used < c->limit ? c->limit - c->used : 0;
}

static void arm(bp_ctx *c) {
    c->instr_count = 0;
    c->unclocked = 0;
    c->budget_tripped = 0;
    c->mem_tripped = 0;
    c->timing = 0;
    c->alloc_units = 0;
    c->prepaid = 0;
    c->armed = 1;
}

static void disarm(lua_State *L, bp_ctx *c) {
    c->armed = 0;
    if (c->budget_tripped || c->hook_soon) lua_sethook(L, bp_hook, LUA_MASKCOUNT, BP_HOOK_EVERY);
    c->hook_soon = 0;
}

void bp_set_budget(lua_State *L, long long instructions, double cpu_ms, double wall_ms) {
    bp_ctx *c = ctx_of(L);
    c->instr_limit = instructions;
    c->cpu_ms = cpu_ms;
    c->wall_ms = wall_ms;
}

/* Message handler for every pcall: the message plus a traceback. */
static int bp_msgh(lua_State *L) {
    const char *msg = NULL;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        msg = lua_tostring(L, 1);
    } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        msg = lua_tostring(L, -1);
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Raises `fmt` prefixed with the position of the Lua code `level` frames up. */
static int raise_at(lua_State *L, int level, const char *fmt, ...) {
    va_list ap;
    luaL_where(L, level);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* ---------------------------------------------------------------- wire format */

static const uint8_t *wire_push(lua_State *L, const uint8_t *p, const uint8_t *e, int depth);

#define NEED(n)                                                     \
    do {                                                            \
        if ((size_t)(e - p) < (size_t)(n)) luaL_error(L, "wire: truncated value"); \
    } while (0)

static const uint8_t *wire_push(lua_State *L, const uint8_t *p, const uint8_t *e, int depth);

/* A table's count and pairs (after its 't'), made with `spare` more hash slots than it
 * carries. */
static const uint8_t *wire_push_table(lua_State *L, const uint8_t *p, const uint8_t *e, int depth, int spare) {
    uint32_t n; NEED(4); memcpy(&n, p, 4); p += 4;
    int arr = (n > 0 && p < e && *p == 'i');
    lua_createtable(L, arr ? (int)n : 0, arr ? spare : (int)n + spare);
    for (uint32_t i = 0; i < n; i++) {
        p = wire_push(L, p, e, depth + 1);
        p = wire_push(L, p, e, depth + 1);
        if (lua_isnil(L, -2)) luaL_error(L, "wire: nil table key");
        lua_rawset(L, -3);
    }
    return p;
}

static const uint8_t *wire_push(lua_State *L, const uint8_t *p, const uint8_t *e, int depth) {
    if (depth > BP_WIRE_DEPTH) luaL_error(L, "wire: nested too deeply");
    NEED(1);
    luaL_checkstack(L, 4, "wire");
    switch (*p++) {
    case 'n': lua_pushnil(L); return p;
    case 'b': NEED(1); lua_pushboolean(L, *p != 0); return p + 1;
    case 'i': { int64_t v; NEED(8); memcpy(&v, p, 8); lua_pushinteger(L, (lua_Integer)v); return p + 8; }
    case 'd': { double v; NEED(8); memcpy(&v, p, 8); lua_pushnumber(L, (lua_Number)v); return p + 8; }
    case 's': {
        uint32_t n; NEED(4); memcpy(&n, p, 4); p += 4; NEED(n);
        lua_pushlstring(L, (const char *)p, n);
        return p + n;
    }
    case 't': return wire_push_table(L, p, e, depth, 0);
    default: luaL_error(L, "wire: bad tag"); return p;
    }
}

/* Two passes over the value at idx: measure (validating), then write. No allocation in
 * between, so a raised error leaks nothing. */
static size_t wire_size(lua_State *L, int idx, int depth, const char *what);
static uint8_t *wire_write(lua_State *L, int idx, uint8_t *p);

static size_t wire_size_key(lua_State *L, int idx, const char *what) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: { size_t n; lua_tolstring(L, idx, &n); return 5 + n; }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return 9;
        /* fallthrough */
    default:
        return (size_t)luaL_error(L, "%s: table keys must be strings or integers, got %s", what,
                                  luaL_typename(L, idx));
    }
}

static size_t wire_size(lua_State *L, int idx, int depth, const char *what) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return 2;
    case LUA_TNUMBER: return 9;
    case LUA_TSTRING: { size_t n; lua_tolstring(L, idx, &n); return 5 + n; }
    case LUA_TTABLE: {
        if (depth >= BP_WIRE_DEPTH) return (size_t)luaL_error(L, "%s: tables nested too deeply", what);
        luaL_checkstack(L, 4, "wire");
        size_t total = 5;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            total += wire_size_key(L, -2, what);
            total += wire_size(L, -1, depth + 1, what);
            lua_pop(L, 1);
        }
        return total;
    }
    default:
        return (size_t)luaL_error(L, "%s: cannot pass a %s value", what, luaL_typename(L, idx));
    }
}

static uint8_t *wire_write(lua_State *L, int idx, uint8_t *p) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: *p++ = 'b'; *p++ = (uint8_t)lua_toboolean(L, idx); return p;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int64_t v = (int64_t)lua_tointeger(L, idx);
            *p++ = 'i'; memcpy(p, &v, 8); return p + 8;
        } else {
            double v = (double)lua_tonumber(L, idx);
            *p++ = 'd'; memcpy(p, &v, 8); return p + 8;
        }
    case LUA_TSTRING: {
        size_t n; const char *s = lua_tolstring(L, idx, &n);
        uint32_t n32 = (uint32_t)n;
        *p++ = 's'; memcpy(p, &n32, 4); p += 4; memcpy(p, s, n); return p + n;
    }
    case LUA_TTABLE: {
        uint8_t *countp;
        uint32_t count = 0;
        *p++ = 't'; countp = p; p += 4;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            p = wire_write(L, -2, p);
            p = wire_write(L, -1, p);
            count++;
            lua_pop(L, 1);
        }
        memcpy(countp, &count, 4);
        return p;
    }
    default: *p++ = 'n'; return p;
    }
}

/* Encodes the value at idx into a new full userdata pushed on the stack. */
static uint8_t *wire_encode(lua_State *L, int idx, size_t *len, const char *what) {
    idx = lua_absindex(L, idx);
    size_t n = wire_size(L, idx, 0, what);
    uint8_t *buf = (uint8_t *)lua_newuserdatauv(L, n, 0);
    wire_write(L, idx, buf);
    *len = n;
    return buf;
}

/* ---------------------------------------------------------------- host calls */

#define BP_OP_LOG 1

/* _host(op, ...): calls Swift with the arguments as a wire array. */
static int bp_host_tramp(lua_State *L) {
    int op = (int)luaL_checkinteger(L, 1);
    int n = lua_gettop(L) - 1;
    lua_createtable(L, n, 1);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i);
    }
    if (op == BP_OP_LOG) {
        luaL_where(L, 2);
        lua_rawseti(L, -2, 0);
    }
    size_t len = 0;
    uint8_t *buf = wire_encode(L, -1, &len, "argument");
    uint8_t *out = NULL;
    size_t outlen = 0;
    int rc = g_host_fn ? g_host_fn(ctx_of(L)->host, op, buf, len, &out, &outlen) : 1;
    if (rc != 0) {
        luaL_where(L, 2);
        if (out) lua_pushlstring(L, (const char *)out, outlen);
        else lua_pushliteral(L, "host call failed");
        free(out);
        lua_concat(L, 2);
        return lua_error(L);
    }
    if (out == NULL) return 0;
    lua_pushlstring(L, (const char *)out, outlen);
    free(out);
    size_t sl;
    const uint8_t *s = (const uint8_t *)lua_tolstring(L, -1, &sl);
    wire_push(L, s, s + sl, 0);
    return 1;
}

/* read_module(dir, name) -> source, path | nil, message. Only `name.lua` inside `dir`. */
static int bp_read_module(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    size_t nlen;
    const char *name = luaL_checklstring(L, 2, &nlen);
    if (nlen == 0 || nlen > 64) goto bad;
    for (size_t i = 0; i < nlen; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            goto bad;
    }
    lua_pushfstring(L, "%s/%s.lua", dir, name);
    const char *path = lua_tostring(L, -1);
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushnil(L);
        lua_pushfstring(L, "module '%s' not found in the policy directory", name);
        return 2;
    }
    long size = (fseek(f, 0, SEEK_END) == 0) ? ftell(f) : -1;
    if (size < 0 || size > BP_MODULE_MAX || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        lua_pushnil(L);
        lua_pushfstring(L, "module '%s' is unreadable or larger than %d bytes", name, BP_MODULE_MAX);
        return 2;
    }
    char *data = (char *)lua_newuserdatauv(L, (size_t)size + 1, 0);
    size_t got = fread(data, 1, (size_t)size, f);
    int toolong = fgetc(f) != EOF;
    fclose(f);
    if (toolong) {
        lua_pushnil(L);
        lua_pushfstring(L, "module '%s' is larger than %d bytes", name, BP_MODULE_MAX);
        return 2;
    }
    lua_pushlstring(L, data, got);
    lua_pushvalue(L, -3);
    return 2;
bad:
    lua_pushnil(L);
    lua_pushfstring(L, "invalid module name '%s' (letters, digits, '_' and '-' only)", name);
    return 2;
}

/* ---------------------------------------------------------------- request */

static const char *const REQ_FIELDS[] = {
    "kind", "mac", "xid", "message_type", "arch", "arch_code", "firmware", "vendor_class",
    "user_class", "ipxe", "ipxe_features", "uuid", "hostname", "relay", "interface",
    "client_address", "server_address", "server_port", "options", "path", "query", "method", "scheme",
    "headers", "body", "family", "duid", NULL};

/* __index of request tables: `options` is decoded on first use, and so is an empty
 * `user_class`, `ipxe_features`, `query` or `headers` (the host leaves those out); other known but absent
 * fields are nil; anything else is a typo and an error. */
static int req_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "user_class") == 0 || strcmp(k, "ipxe_features") == 0 || strcmp(k, "query") == 0 ||
        strcmp(k, "headers") == 0) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, 1, k);
        return 1;
    }
    if (strcmp(k, "options") == 0) {
        lua_getfield(L, LUA_REGISTRYINDEX, "bp.cur_req");
        int current = lua_rawequal(L, 1, -1);
        lua_pop(L, 1);
        bp_ctx *c = ctx_of(L);
        if (current && c->opts && c->opts_len > 0) {
            wire_push(L, c->opts, c->opts + c->opts_len, 0);
        } else {
            lua_newtable(L);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, 1, "options");
        return 1;
    }
    for (int i = 0; REQ_FIELDS[i]; i++)
        if (strcmp(k, REQ_FIELDS[i]) == 0) return 0;
    return raise_at(L, 1, "request has no field '%s'", k);
}

typedef struct {
    const uint8_t *req, *opts;
    size_t len, opts_len;
} req_args;

static int push_request_k(lua_State *L) {
    req_args *a = (req_args *)lua_touserdata(L, 1);
    /* The request is a table of named fields, made with one slot more than it carries for
     * `options` once a hook reads it (filling that slot in a full table rehashed it: an
     * allocation per decision). */
    if (a->len < 1 || a->req[0] != 't') luaL_error(L, "wire: request is not a table");
    wire_push_table(L, a->req + 1, a->req + a->len, 0, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "bp.reqmt");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.cur_req");
    /* The options' wire bytes stay in the host's buffer, unchanged until the host pushes the
     * next request; only the current request reads them (req_index checks), so a pointer
     * does instead of a copy into a Lua string. */
    bp_ctx *c = ctx_of(L);
    c->opts = a->opts;
    c->opts_len = a->opts_len;
    return 1;
}

typedef struct {
    const char *s;
    size_t len;
} anchor_args;

static int anchor_k(lua_State *L) {
    anchor_args *a = (anchor_args *)lua_touserdata(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "bp.anchors");
    lua_pushlstring(L, a->s, a->len);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    return 0;
}

int bp_anchor(lua_State *L, const char *s, size_t len) {
    anchor_args a = {s, len};
    lua_pushcfunction(L, anchor_k);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 1, 0, 0);
    if (st != LUA_OK) lua_pop(L, 1);
    return st;
}

void bp_end_request(lua_State *L) {
    bp_ctx *c = ctx_of(L);
    c->opts = NULL;
    c->opts_len = 0;
}

int bp_push_request(lua_State *L, const uint8_t *req, size_t len, const uint8_t *opts,
                    size_t opts_len) {
    req_args a = {req, opts, len, opts_len};
    bp_ctx *c = ctx_of(L);
    c->mem_tripped = 0;
    lua_pushcfunction(L, push_request_k);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 1, 1, 0);
    if (st == LUA_OK) return 0;
    return (st == LUA_ERRMEM || c->mem_tripped) ? BP_MEMORY : BP_ERROR;
}

/* ---------------------------------------------------------------- decisions */

/* Pushes "src:line: " of the function at idx (where the hook was defined). */
static void push_fn_where(lua_State *L, int idx) {
    lua_Debug ar;
    lua_pushvalue(L, idx);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    } else if (lua_getinfo(L, ">S", &ar) && ar.linedefined >= 0) {
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.linedefined);
    } else {
        lua_pushliteral(L, "");
    }
}

/* An IPv6 address in any RFC 4291 text form (next_server for a DHCPv6 client). */
static int is_ipv6(const char *s) {
    unsigned char out[16];
    return s != NULL && strlen(s) < 64 && inet_pton(AF_INET6, s, out) == 1;
}

static int is_ipv4(const char *s) {
    int parts = 0, digits = 0, val = 0;
    for (;; s++) {
        if (*s >= '0' && *s <= '9') {
            val = val * 10 + (*s - '0');
            if (++digits > 3 || val > 255) return 0;
        } else if (*s == '.' || *s == '\0') {
            if (digits == 0) return 0;
            parts++;
            digits = 0;
            val = 0;
            if (*s == '\0') break;
        } else {
            return 0;
        }
    }
    return parts == 4;
}

enum { DF_IGNORE, DF_STR, DF_IPV4, DF_SCRIPT, DF_OPTIONS, DF_STATUS };
static const struct { const char *name; int kind; } DEC_FIELDS[] = {
    {"ignore", DF_IGNORE}, {"filename", DF_STR}, {"next_server", DF_IPV4},
    {"server_name", DF_STR}, {"ipxe_script", DF_SCRIPT}, {"options", DF_OPTIONS},
    {"content", DF_STR}, {"content_type", DF_STR}, {"path", DF_STR}, {"refuse", DF_STR},
    {"status", DF_STATUS}, {"note", DF_STR}, {"address", DF_IPV4}, {NULL, 0}};

#define DEC_ERR(...) do { lua_pushfstring(L, __VA_ARGS__); lua_concat(L, 2); return lua_error(L); } while (0)
#define WHERE() lua_pushvalue(L, 3)

/* Encodes one option value into a string on the stack. */
static int option_value(lua_State *L, lua_Integer code, int vidx) {
    vidx = lua_absindex(L, vidx);
    if (lua_type(L, vidx) == LUA_TSTRING) {
        lua_pushvalue(L, vidx);
        return 1;
    }
    if (lua_isinteger(L, vidx)) {
        lua_Integer v = lua_tointeger(L, vidx);
        if (v < 0 || v > 0xFFFFFFFFLL) { WHERE(); DEC_ERR("decision.options[%I]: integer %I does not fit 4 bytes", code, v); }
        char b[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};
        lua_pushlstring(L, b, 4);
        return 1;
    }
    if (lua_type(L, vidx) == LUA_TTABLE) {
        luaL_Buffer B;
        lua_Integer n = (lua_Integer)lua_rawlen(L, vidx);
        luaL_buffinit(L, &B);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, vidx, i) != LUA_TSTRING) {
                WHERE(); DEC_ERR("decision.options[%I][%I]: expected string, got %s", code, i, luaL_typename(L, -2));
            }
            luaL_addvalue(&B);
        }
        luaL_pushresult(&B);
        return 1;
    }
    WHERE();
    DEC_ERR("decision.options[%I]: expected string, integer or array of strings, got %s", code, luaL_typename(L, vidx));
}

/* True when field `name` of the table at 1 holds a table (read raw: no metamethods). */
static int raw_field_is_table(lua_State *L, const char *name) {
    lua_pushstring(L, name);
    int t = lua_rawget(L, 1);
    lua_pop(L, 1);
    return t == LUA_TTABLE;
}

/* normalize(decision, hook) -> wire encoding (userdata) of a checked, canonical decision. */
static int normalize_k(lua_State *L) {
    lua_settop(L, 2);
    push_fn_where(L, 2); /* 3 */
    if (lua_type(L, 1) != LUA_TTABLE) { WHERE(); DEC_ERR("hook must return a table or nil, got %s", luaL_typename(L, 1)); }
    /* 4: the normalized copy, or nil. Only options and an ipxe.script() builder need
     * converting; a decision of strings, booleans and a status (nearly all of them) is checked
     * field by field and then encoded as it stands, with no copy to allocate. */
    int copy = raw_field_is_table(L, "options") || raw_field_is_table(L, "ipxe_script");
    if (copy) lua_createtable(L, 0, 8);
    else lua_pushnil(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) { WHERE(); DEC_ERR("decision keys must be field names, got a %s key", luaL_typename(L, -3)); }
        const char *k = lua_tostring(L, -2);
        int kind = -1;
        for (int i = 0; DEC_FIELDS[i].name; i++)
            if (strcmp(k, DEC_FIELDS[i].name) == 0) { kind = DEC_FIELDS[i].kind; break; }
        int t = lua_type(L, -1);
        switch (kind) {
        case DF_IGNORE:
            if (t != LUA_TBOOLEAN) { WHERE(); DEC_ERR("decision.ignore: expected boolean, got %s", luaL_typename(L, -2)); }
            lua_pushvalue(L, -1);
            break;
        case DF_STR:
        case DF_IPV4:
            if (t != LUA_TSTRING) { WHERE(); DEC_ERR("decision.%s: expected string, got %s", k, luaL_typename(L, -2)); }
            if (kind == DF_IPV4 && !is_ipv4(lua_tostring(L, -1)) && !is_ipv6(lua_tostring(L, -1))) { WHERE(); DEC_ERR("decision.%s: expected an IPv4 or IPv6 address, got '%s'", k, lua_tostring(L, -2)); }
            /* Past 255 bytes no DHCP reply can carry the name whole (the BOOTP fields hold
             * 127 and 63, options 67 and 66 hold 255): refused, never cut. */
            if ((!strcmp(k, "filename") || !strcmp(k, "server_name")) && lua_rawlen(L, -1) > 255) {
                WHERE();
                DEC_ERR("decision.%s: %I bytes; a DHCP reply carries at most 255 (option %d; the BOOTP %s field holds %d)", k,
                        (lua_Integer)lua_rawlen(L, -2), k[0] == 'f' ? 67 : 66, k[0] == 'f' ? "file" : "sname", k[0] == 'f' ? 127 : 63);
            }
            lua_pushvalue(L, -1);
            break;
        case DF_SCRIPT:
            if (t == LUA_TSTRING) {
                lua_pushvalue(L, -1);
            } else if (t == LUA_TTABLE && luaL_getmetafield(L, -1, "__tostring") != LUA_TNIL) {
                lua_pop(L, 1);
                luaL_tolstring(L, -1, NULL);
            } else {
                WHERE(); DEC_ERR("decision.ipxe_script: expected string or ipxe.script() builder, got %s", luaL_typename(L, -2));
            }
            break;
        case DF_STATUS:
            if (!lua_isinteger(L, -1)) { WHERE(); DEC_ERR("decision.status: expected an integer HTTP status, got %s", luaL_typename(L, -2)); }
            if (lua_tointeger(L, -1) < 100 || lua_tointeger(L, -1) > 599) { WHERE(); DEC_ERR("decision.status: %I is not an HTTP status (100..599)", lua_tointeger(L, -2)); }
            lua_pushvalue(L, -1);
            break;
        case DF_OPTIONS: {
            if (t != LUA_TTABLE) { WHERE(); DEC_ERR("decision.options: expected table, got %s", luaL_typename(L, -2)); }
            int src = lua_gettop(L);
            lua_newtable(L);
            lua_pushnil(L);
            while (lua_next(L, src)) {
                if (!lua_isinteger(L, -2)) { WHERE(); DEC_ERR("decision.options: option codes must be integers 1..254, got a %s key", luaL_typename(L, -3)); }
                if (lua_tointeger(L, -2) < 1 || lua_tointeger(L, -2) > 254) { WHERE(); DEC_ERR("decision.options: option code %I is outside 1..254", lua_tointeger(L, -3)); }
                lua_Integer code = lua_tointeger(L, -2);
                option_value(L, code, -1);
                lua_pushvalue(L, -3);
                lua_insert(L, -2);
                lua_rawset(L, src + 1);
                lua_pop(L, 1);
            }
            break;
        }
        default:
            WHERE();
            DEC_ERR("unknown decision field '%s' (fields: ignore, filename, next_server, server_name, ipxe_script, options, content, content_type, path, refuse, status, note, address)", k);
        }
        /* stack: ... key value normalized_value */
        if (copy) lua_setfield(L, 4, k);
        else lua_pop(L, 1);
        lua_pop(L, 1);
    }
    /* The encoding's own userdata is the result (bp_tobytes reads it): copying it into a
     * string was one more allocation per decision. */
    size_t len;
    (void)wire_encode(L, copy ? 4 : 1, &len, "decision");
    return 1;
}

/* Makes the error message on top of the stack a string with a location. */
static int format_err_k(lua_State *L) {
    /* 1: kind, 2: error value, 3: hook (or nil) */
    int kind = (int)lua_tointeger(L, 1);
    push_fn_where(L, 3);
    if (kind == BP_MEMORY) {
        lua_pushfstring(L, "memory limit exceeded (%I bytes)", (lua_Integer)ctx_of(L)->limit);
        lua_concat(L, 2);
        return 1;
    }
    if (lua_type(L, 2) == LUA_TSTRING) {
        /* Raised inside the built-in library: lead with the policy's hook instead. */
        if (strncmp(lua_tostring(L, 2), "bootpolicy:", 11) == 0) {
            lua_pushvalue(L, 2);
            lua_concat(L, 2);
            return 1;
        }
        lua_pushvalue(L, 2);
        return 1;
    }
    lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 2));
    lua_concat(L, 2);
    return 1;
}

/* Leaves a message string at base+1, drops the rest. */
static int finish_error(lua_State *L, bp_ctx *c, int base, int fnidx, int st) {
    /* A refused allocation that Lua's emergency collection then satisfied is no error:
     * only a failed call with a refusal behind it counts as the memory cap. */
    int kind = st == LUA_ERRMEM ? BP_MEMORY
             : c->budget_tripped ? BP_BUDGET
             : (st != LUA_OK && c->mem_tripped) ? BP_MEMORY : BP_ERROR;
    int err = lua_gettop(L);
    if (kind == BP_MEMORY) {
        /* Still armed: any finalizer Lua code stays under the budget. */
        c->mem_tripped = 0;
        lua_gc(L, LUA_GCCOLLECT);
    }
    disarm(L, c);
    lua_pushcfunction(L, format_err_k);
    lua_pushinteger(L, kind);
    lua_pushvalue(L, err);
    if (fnidx > 0) lua_pushvalue(L, fnidx); else lua_pushnil(L);
    lua_pcall(L, 3, 1, 0); /* on failure the top is Lua's preallocated message */
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    c->mem_tripped = 0;
    return kind;
}

int bp_call_hook(lua_State *L, int ref, int reqidx) {
    bp_ctx *c = ctx_of(L);
    reqidx = lua_absindex(L, reqidx);
    int base = lua_gettop(L);
    lua_pushcfunction(L, bp_msgh);              /* base+1 */
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);      /* base+2: hook (kept for locations) */
    lua_pushvalue(L, base + 2);
    lua_pushvalue(L, reqidx);
    arm(c);
    int st = lua_pcall(L, 1, 1, base + 1);       /* base+3: result */
    if (st == LUA_OK && !c->budget_tripped) {
        if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
            disarm(L, c);
            lua_settop(L, base);
            return BP_PASS;
        }
        lua_pushcfunction(L, normalize_k);
        lua_pushvalue(L, base + 3);
        lua_pushvalue(L, base + 2);
        st = lua_pcall(L, 2, 1, base + 1);
        if (st == LUA_OK && !c->budget_tripped) {
            disarm(L, c);
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return BP_DECIDED;
        }
    }
    return finish_error(L, c, base, base + 2, st);
}

/* ---------------------------------------------------------------- data */

/* `data.<name>` is read-only: every table of it is seen through an empty proxy whose
 * metatable's __index is the table itself (so a lookup is a table index the VM does without
 * calling anything), __newindex refuses, __len and __pairs reach the table. The proxies are
 * made once per state at load, in C: no instructions, no budget. */
static int ro_newindex(lua_State *L) {
    /* Named at the nearest Lua line: the assignment, or the call of table.insert & co. */
    int level = 1;
    lua_Debug d;
    for (int l = 1; lua_getstack(L, l, &d); l++) {
        lua_getinfo(L, "l", &d);
        if (d.currentline > 0) { level = l; break; }
    }
    if (lua_type(L, 2) == LUA_TSTRING)
        return raise_at(L, level, "data is read-only (cannot set field '%s')", lua_tostring(L, 2));
    return raise_at(L, level, "data is read-only");
}

static int ro_raw(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx) || lua_getfield(L, -1, "__index") != LUA_TTABLE)
        return luaL_error(L, "data: not a data table");
    lua_remove(L, -2);
    return lua_gettop(L);
}

static int ro_len(lua_State *L) {
    ro_raw(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static int ro_next(lua_State *L) {
    lua_settop(L, 2);
    ro_raw(L, 1);
    lua_pushvalue(L, 2);
    if (lua_next(L, -2)) return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L) {
    lua_pushcfunction(L, ro_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table at `idx` by its proxy, the table's own table values first. */
static void ro_wrap(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    if (depth > BP_WIRE_DEPTH + 2) luaL_error(L, "data: nested too deeply");
    luaL_checkstack(L, 8, "data");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            ro_wrap(L, -1, depth + 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, idx); /* an existing field: allowed during the traversal */
        } else {
            lua_pop(L, 1);
        }
    }
    lua_createtable(L, 0, 0); /* proxy */
    lua_createtable(L, 0, 6);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "data");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "read-only data");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, idx);
}

typedef struct {
    const uint8_t *data, *keys, *server;
    size_t data_len, keys_len, server_len;
} data_args;

static int set_data_k(lua_State *L) {
    data_args *a = (data_args *)lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (a->data_len) wire_push(L, a->data, a->data + a->data_len, 0);
    else lua_newtable(L);
    ro_wrap(L, 1, 0);
    /* Rows indexed by a field: t[row[field]] = row, the same proxy as t[i], set in the list
     * proxy's table after wrapping (so a row reached both ways is one table). Stack: 1 data
     * proxy, 2 keys, 3 name, 4 field, 5 the name's list (raw), 6 a row proxy, 7 its raw
     * table, 8 its key. */
    if (a->keys_len) {
        wire_push(L, a->keys, a->keys + a->keys_len, 0);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pushvalue(L, 3);
            if (lua_gettable(L, 1) == LUA_TTABLE && lua_getmetatable(L, 5)) {
                lua_getfield(L, -1, "__index");
                lua_replace(L, 5);
                lua_settop(L, 5);
                lua_Integer n = (lua_Integer)lua_rawlen(L, 5);
                for (lua_Integer i = 1; i <= n; i++) {
                    if (lua_rawgeti(L, 5, i) == LUA_TTABLE && lua_getmetatable(L, 6)) {
                        lua_getfield(L, -1, "__index");
                        lua_replace(L, 7);
                        lua_pushvalue(L, 4);
                        if (lua_rawget(L, 7) == LUA_TSTRING) {
                            lua_pushvalue(L, 6);
                            lua_rawset(L, 5);
                        }
                    }
                    lua_settop(L, 5);
                }
            }
            lua_settop(L, 3);
        }
    }
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.data");
    if (a->server_len) wire_push(L, a->server, a->server + a->server_len, 0);
    else lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.server");
    return 0;
}

int bp_set_data(lua_State *L, const uint8_t *data, size_t data_len, const uint8_t *keys, size_t keys_len,
                const uint8_t *server, size_t server_len, size_t *cost) {
    bp_ctx *c = ctx_of(L);
    data_args a = {data, keys, server, data_len, keys_len, server_len};
    /* Data lives as long as the state and is not a request's to pay for: it is built outside
     * the cap, which then grows by what the data took. */
    size_t limit = c->limit;
    lua_gc(L, LUA_GCCOLLECT);
    size_t before = c->used;
    c->limit = SIZE_MAX - BP_MEM_RESERVE;
    int base = lua_gettop(L);
    lua_pushcfunction(L, bp_msgh);
    lua_pushcfunction(L, set_data_k);
    lua_pushlightuserdata(L, &a);
    /* Nothing built here is garbage until it is done: collections while the heap grows
     * would only walk it again and again (they were most of a 100,000-row load). */
    lua_gc(L, LUA_GCSTOP);
    int st = lua_pcall(L, 1, 0, base + 1);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCCOLLECT);
    size_t grown = c->used > before ? c->used - before : 0;
    c->limit = limit + grown;
    if (cost) *cost = grown;
    if (st != LUA_OK) {
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        return BP_ERROR;
    }
    lua_settop(L, base);
    return 0;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const char *chunk, *src, *dir, *pname;
    size_t len, cfg_len;
    const uint8_t *cfg;
    int test;
    int *refs;
    char **name;
} load_args;

static int load_k(lua_State *L) {
    load_args *a = (load_args *)lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (luaL_loadbufferx(L, a->src, a->len, a->chunk, "t") != LUA_OK) return lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "bp.prelude");
    lua_getfield(L, -1, a->test ? "make_test_env" : "make_env");
    lua_pushstring(L, a->pname);
    if (a->cfg && a->cfg_len) wire_push(L, a->cfg, a->cfg + a->cfg_len, 0);
    else lua_newtable(L);
    lua_pushstring(L, a->dir);
    lua_getfield(L, LUA_REGISTRYINDEX, "bp.data");
    lua_getfield(L, LUA_REGISTRYINDEX, "bp.server");
    lua_call(L, 5, 1);
    lua_setupvalue(L, 1, 1); /* the main chunk's only upvalue is _ENV */
    lua_settop(L, 1);
    lua_call(L, 0, 1);
    if (a->test) return 0;
    const char *file = a->chunk[0] == '@' || a->chunk[0] == '=' ? a->chunk + 1 : a->chunk;
    if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "%s: policy must return a table of hooks {name=, dhcp=, tftp=, http=}, got %s",
                          file, luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k && strcmp(k, "name") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "%s: policy field 'name' must be a string", file);
        } else if (k && (!strcmp(k, "dhcp") || !strcmp(k, "tftp") || !strcmp(k, "http"))) {
            if (lua_type(L, -1) != LUA_TFUNCTION) return luaL_error(L, "%s: policy hook '%s' must be a function, got %s", file, k, luaL_typename(L, -1));
        } else {
            return luaL_error(L, "%s: unknown policy field '%s' (expected name, dhcp, tftp, http)", file,
                              k ? k : luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
    static const char *const hooks[3] = {"dhcp", "tftp", "http"};
    for (int i = 0; i < 3; i++) {
        if (lua_getfield(L, t, hooks[i]) == LUA_TFUNCTION) a->refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        else lua_pop(L, 1);
    }
    if (lua_getfield(L, t, "name") == LUA_TSTRING) {
        *a->name = strdup(lua_tostring(L, -1));
    }
    return 0;
}

int bp_load_policy(lua_State *L, const char *chunkname, const char *src, size_t len,
                   const char *dir, const char *policy_name, const uint8_t *config,
                   size_t config_len, int test_api, int *refs, char **name) {
    bp_ctx *c = ctx_of(L);
    load_args a = {chunkname, src, dir, policy_name, len, config_len, config, test_api, refs, name};
    refs[0] = refs[1] = refs[2] = LUA_NOREF;
    *name = NULL;
    int base = lua_gettop(L);
    lua_pushcfunction(L, bp_msgh);
    lua_pushcfunction(L, load_k);
    lua_pushlightuserdata(L, &a);
    arm(c);
    int st = lua_pcall(L, 1, 0, base + 1);
    if (st == LUA_OK && !c->budget_tripped) {
        disarm(L, c);
        lua_settop(L, base);
        return 0;
    }
    free(*name);
    *name = NULL;
    return finish_error(L, c, base, 0, st);
}

/* ---------------------------------------------------------------- state */

typedef struct {
    const char *prelude;
    size_t len;
} open_args;

static int bp_gc_count(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0) return luaL_error(L, "collectgarbage: only \"count\" is allowed in policies");
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024.0);
    return 1;
}

/* "file:line: " of the innermost policy code on the stack (chunks named "@file"; the prelude
 * is "=bootpolicy"), for the library's errors: counting levels breaks at tail calls. */
static int bp_where(lua_State *L) {
    lua_Debug d;
    for (int l = 1; lua_getstack(L, l, &d); l++) {
        lua_getinfo(L, "Sl", &d);
        if (d.currentline > 0 && d.source[0] == '@') {
            lua_pushfstring(L, "%s:%d: ", d.short_src, d.currentline);
            return 1;
        }
    }
    lua_pushliteral(L, "");
    return 1;
}

static int open_k(lua_State *L) {
    open_args *a = (open_args *)lua_touserdata(L, 1);
    /* Each library's functions that can run long in C are replaced in its table (which is
     * what _G, the string metatable's __index and the prelude's copies for every policy's
     * environment all use): from here on they pay into the budget (strlib.c). */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    bp_budget_base_lib(L, -1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    bp_budget_string_lib(L, -1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    bp_budget_table_lib(L, -1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    bp_budget_utf8_lib(L, -1);
    lua_settop(L, 0);

    /* Internals handed to the prelude only. */
    lua_newtable(L); /* 1 */
    lua_pushcfunction(L, bp_host_tramp);
    lua_setfield(L, 1, "host");
    lua_pushcfunction(L, bp_read_module);
    lua_setfield(L, 1, "read_module");
    lua_getglobal(L, "load");
    lua_setfield(L, 1, "load");
    lua_pushcfunction(L, bp_gc_count);
    lua_setfield(L, 1, "collectgarbage");
    lua_pushcfunction(L, bp_where);
    lua_setfield(L, 1, "where");

    /* Nothing that reaches files, bytecode or the collector stays reachable. */
    static const char *const drop[] = {"dofile", "loadfile", "load", "collectgarbage", "print", "require", NULL};
    for (int i = 0; drop[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop[i]);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    /* Strings every request carries (its field names; the host adds common values with
     * bp_anchor) kept reachable for the state's life, so they stay in the collector's old
     * generation instead of depending on the last request (kept in the registry) to hold
     * them. Allocation counts did not change; the answer got 0.16-0.29 µs cheaper in four
     * alternating pairs, most likely because minor collections stop re-marking them. */
    lua_createtable(L, 0, 64);
    for (int i = 0; REQ_FIELDS[i]; i++) {
        lua_pushstring(L, REQ_FIELDS[i]);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.anchors");

    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, req_index);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "request");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "request");
    lua_setfield(L, -2, "__metatable");
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.reqmt");

    if (luaL_loadbufferx(L, a->prelude, a->len, "=bootpolicy", "t") != LUA_OK) return lua_error(L);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "bp.prelude");

    /* Hide the shared string metatable (and so the real string table) from policies. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_settop(L, 0);
    return 0;
}

static int bp_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "bootpolicy: unprotected Lua error: %s\n", msg ? msg : "?");
    return 0; /* Lua aborts */
}

lua_State *bp_open(void *host, size_t mem_limit, const char *prelude, size_t prelude_len,
                   char **err) {
    *err = NULL;
    bp_ctx *c = (bp_ctx *)calloc(1, sizeof *c);
    if (!c) { *err = strdup("out of memory"); return NULL; }
    c->limit = mem_limit;
    c->host = host;
    c->instr_limit = 10000000;
    c->cpu_ms = 1000;
    c->wall_ms = 5000;
    lua_State *L = lua_newstate(bp_alloc, c);
    if (!L) {
        free(c);
        *err = strdup("cannot create a Lua state within the memory limit");
        return NULL;
    }
    c->L = L;
    lua_atpanic(L, bp_panic);
    lua_sethook(L, bp_hook, LUA_MASKCOUNT, BP_HOOK_EVERY);
    open_args a = {prelude, prelude_len};
    lua_pushcfunction(L, bp_msgh);
    lua_pushcfunction(L, open_k);
    lua_pushlightuserdata(L, &a);
    arm(c);
    int st = lua_pcall(L, 1, 0, 1);
    disarm(L, c);
    if (st != LUA_OK) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "cannot open Lua state";
        *err = strdup(m);
        lua_close(L);
        free(c);
        return NULL;
    }
    lua_settop(L, 0);
    /* Generational: a decision's garbage (the request table, its strings, the decision) dies
     * young, and a minor collection looks only at young objects. In the default incremental
     * mode each cycle ended in an atomic step over the whole heap, which showed as one answer
     * in a hundred taking 100 us or more of CPU (Tests/HostTests/ProxyAnswerBenchTests, after
     * a sleep as at 10,000/s: p99 95-146 us incremental, 25-47 us generational; medians level). */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}

void bp_close(lua_State *L) {
    if (!L) return;
    bp_ctx *c = ctx_of(L);
    arm(c); /* finalizers (should any exist) run under the budget */
    lua_close(L);
    free(c);
}

/* ---------------------------------------------------------------- accessors */

int bp_gettop(lua_State *L) { return lua_gettop(L); }
void bp_settop(lua_State *L, int idx) { lua_settop(L, idx); }
const char *bp_tostring(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) != LUA_TSTRING) return NULL;
    return lua_tolstring(L, idx, len);
}
const uint8_t *bp_tobytes(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) == LUA_TUSERDATA) {
        *len = lua_rawlen(L, idx);
        return (const uint8_t *)lua_touserdata(L, idx);
    }
    return (const uint8_t *)bp_tostring(L, idx, len);
}
void bp_unref(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
int bp_noref(void) { return LUA_NOREF; }
int bp_lua_version_num(void) { return LUA_VERSION_NUM; }

void bp_malloc_trim(void) { malloc_trim(0); }
