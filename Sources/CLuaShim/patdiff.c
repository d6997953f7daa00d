/*
 * Differential test of strlib.c's matcher against the stock Lua 5.4 string library: random
 * patterns from a grammar that covers every pattern feature (and malformed ones), random
 * subjects, every argument form of find, match, gmatch and gsub (and a few of rep); both
 * implementations run in one plain state and must agree on every result, capture, position
 * and error message.
 * Lives in the library so `swift test` can run it (LuaBridgeTests); policies cannot reach it.
 */
#include "CLuaShim.h"
#include "budget.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int below(rng *r, int n) { return (int)(next_u64(r) % (uint64_t)n); }
static int chance(rng *r, int percent) { return below(r, 100) < percent; }

typedef struct {
    char b[2048];
    size_t n;
} sbuf;

static void put(sbuf *o, char c) {
    if (o->n < sizeof o->b) o->b[o->n++] = c;
}
static void puts_(sbuf *o, const char *s) {
    while (*s) put(o, *s++);
}
static char pick(rng *r, const char *set, size_t n) { return set[below(r, (int)n)]; }
#define PICK(r, lit) pick(r, lit, sizeof lit - 1)

/* Subject bytes: mostly a few letters so patterns match, plus every character the pattern
 * syntax treats specially, a NUL, a high byte and white space. */
static char subject_char(rng *r) {
    if (chance(r, 60)) return PICK(r, "aab");
    return PICK(r, "abcxyzAZ019_ ()[]%-^$.*+?\0\xe9\n\t");
}

static void gen_set(rng *r, sbuf *o) {
    put(o, '[');
    if (chance(r, 30)) put(o, '^');
    if (chance(r, 10)) put(o, ']');
    int n = 1 + below(r, 4);
    for (int i = 0; i < n; i++) {
        switch (below(r, 6)) {
        case 0: put(o, '%'); put(o, PICK(r, "adlswxpucgADSW]%-^")); break;
        case 1: put(o, PICK(r, "ab")); put(o, '-'); put(o, PICK(r, "bcz")); break;
        case 2: put(o, '-'); break;
        default: put(o, PICK(r, "abcxA1 ()^$.")); break;
        }
    }
    put(o, ']');
}

static void gen_items(rng *r, sbuf *o, int depth, int *opened);

static void gen_item(rng *r, sbuf *o, int depth, int *opened) {
    int single = 1;
    switch (below(r, 20)) {
    case 0: case 1: case 2: case 3: case 4: case 5: put(o, PICK(r, "aabcxA1 $\0\xe9]")); break;
    case 6: case 7: put(o, '.'); break;
    case 8: case 9: case 10:
        put(o, '%');
        put(o, PICK(r, "acdglpsuwxzACDGLPSUWXZ.%()[]*+-?^$q"));
        break;
    case 11: case 12: gen_set(r, o); break;
    case 13:
        if (depth < 3) {
            put(o, '(');
            (*opened)++;
            gen_items(r, o, depth + 1, opened);
            put(o, ')');
        } else {
            put(o, 'a');
        }
        single = 0;
        break;
    case 14: puts_(o, "()"); (*opened)++; single = 0; break;
    case 15:
        put(o, '%');
        put(o, (char)('0' + (chance(r, 80) ? 1 + below(r, *opened > 0 ? *opened : 1) : below(r, 10))));
        single = 0;
        break;
    case 16:
        puts_(o, "%b");
        put(o, PICK(r, "(([ab"));
        put(o, PICK(r, "))]ba"));
        single = 0;
        break;
    case 17:
        puts_(o, "%f");
        gen_set(r, o);
        single = 0;
        break;
    default: put(o, PICK(r, "ab")); break;
    }
    if (single && chance(r, 40)) put(o, PICK(r, "*+-?"));
}

static void gen_items(rng *r, sbuf *o, int depth, int *opened) {
    int n = below(r, depth == 0 ? 7 : 3);
    for (int i = 0; i < n; i++) gen_item(r, o, depth, opened);
}

/* Returns 1 when the pattern wants a long run of "a" to get deep. */
static int gen_pattern(rng *r, sbuf *o) {
    o->n = 0;
    int kind = below(r, 100);
    if (kind < 5) { /* soup of special characters */
        int n = below(r, 9);
        for (int i = 0; i < n; i++) put(o, PICK(r, "%[]()^$*+-?.ab1fb"));
        return 0;
    }
    if (kind < 7) { /* the limits: recursion depth, number of captures */
        int n = kind == 5 ? 150 + below(r, 120) : 25 + below(r, 15);
        const char *unit = kind == 5 ? (chance(r, 50) ? "a?" : "a-") : "(a";
        for (int i = 0; i < n; i++) puts_(o, unit);
        if (kind == 6) put(o, ')');
        return 1;
    }
    int opened = 0;
    if (chance(r, 20)) put(o, '^');
    gen_items(r, o, 0, &opened);
    if (chance(r, 15)) put(o, '$');
    if (chance(r, 12)) { /* break it somewhere */
        size_t at = o->n ? (size_t)below(r, (int)o->n + 1) : 0;
        switch (below(r, 4)) {
        case 0: o->n = at; break;
        case 1:
            if (o->n < sizeof o->b) {
                memmove(o->b + at + 1, o->b + at, o->n - at);
                o->b[at] = PICK(r, "%[]()");
                o->n++;
            }
            break;
        case 2: put(o, '%'); break;
        default: puts_(o, chance(r, 50) ? "%b" : "%f"); break;
        }
    }
    return 0;
}

static void gen_subject(rng *r, sbuf *o, int deep) {
    o->n = 0;
    if (deep) {
        int n = 100 + below(r, 200);
        for (int i = 0; i < n; i++) put(o, chance(r, 99) ? 'a' : 'b');
        return;
    }
    int n = chance(r, 90) ? below(r, 13) : below(r, 60);
    if (chance(r, 2)) n = 300; /* long enough for the depth limit */
    for (int i = 0; i < n; i++) put(o, subject_char(r));
}

/* Pushes an optional position argument (none: returns 0). */
static int push_init(lua_State *L, rng *r, size_t len) {
    if (chance(r, 55)) return 0;
    lua_Integer v;
    switch (below(r, 6)) {
    case 0: v = (lua_Integer)len + below(r, 3); break;
    case 1: v = -(lua_Integer)below(r, (int)len + 3); break;
    case 2: v = below(r, 2) ? LUA_MAXINTEGER : LUA_MININTEGER; break;
    default: v = below(r, 8); break;
    }
    lua_pushinteger(L, v);
    return 1;
}

/* Appends the values lo..top (or the error) to o, typed, so "1" and 1 differ. */
static void describe(lua_State *L, int st, int lo, sbuf *o) {
    char tmp[64];
    if (st != LUA_OK) {
        puts_(o, "error: ");
        const char *m = lua_tostring(L, -1);
        if (!m) m = "(non-string error)";
        /* Argument errors name the function as its library table does. */
        const char *fix = strstr(m, "bpmatch.");
        if (fix) {
            for (const char *c = m; c < fix; c++) put(o, *c);
            puts_(o, "string.");
            puts_(o, fix + 8);
        } else {
            puts_(o, m);
        }
        put(o, ';');
        return;
    }
    for (int i = lo; i <= lua_gettop(L); i++) {
        switch (lua_type(L, i)) {
        case LUA_TNIL: puts_(o, "nil"); break;
        case LUA_TBOOLEAN: puts_(o, lua_toboolean(L, i) ? "true" : "false"); break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, i)) snprintf(tmp, sizeof tmp, "i%lld", (long long)lua_tointeger(L, i));
            else snprintf(tmp, sizeof tmp, "f%.17g", (double)lua_tonumber(L, i));
            puts_(o, tmp);
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, i, &n);
            put(o, '"');
            for (size_t k = 0; k < n; k++) {
                unsigned char c = (unsigned char)s[k];
                if (c >= 32 && c < 127 && c != '\\' && c != '"') put(o, (char)c);
                else { snprintf(tmp, sizeof tmp, "\\%u", c); puts_(o, tmp); }
            }
            put(o, '"');
            break;
        }
        default: puts_(o, luaL_typename(L, i)); break;
        }
        put(o, ',');
    }
    put(o, ';');
}

/* A gsub replacement: string (with every % form), number, table or function. */
static void push_repl(lua_State *L, rng *r) {
    static const char *const bits[] = {"x", "%0", "%1", "%2", "%%", "%", "%a", "%9", "-", "%3"};
    sbuf s = {.n = 0};
    int n;
    switch (below(r, 10)) {
    case 0: lua_pushinteger(L, 7); return;
    case 1: lua_pushnumber(L, 1.5); return;
    case 2: case 3: lua_getfield(L, LUA_REGISTRYINDEX, "pd.table"); return;
    case 4: case 5: lua_getfield(L, LUA_REGISTRYINDEX, "pd.fn"); return;
    case 6: if (chance(r, 20)) { lua_pushboolean(L, 1); return; } /* fallthrough */
    default:
        n = below(r, 4);
        for (int i = 0; i < n; i++) puts_(&s, bits[below(r, 10)]);
        lua_pushlstring(L, s.b, s.n);
        return;
    }
}

/* Runs one case with the function `fname` of the table at `lib`, describing the outcome. */
static void run_case(lua_State *L, int lib, const char *fname, int nargs, int args, int kind, sbuf *o) {
    o->n = 0;
    int base = lua_gettop(L);
    lua_getfield(L, lib, fname);
    for (int i = 0; i < nargs; i++) lua_pushvalue(L, args + i);
    lua_getfield(L, LUA_REGISTRYINDEX, "pd.fnstate");
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n");
    lua_pop(L, 1);
    if (kind != 'g') {
        int st = lua_pcall(L, nargs, LUA_MULTRET, 0);
        describe(L, st, base + 1, o);
        lua_settop(L, base);
        return;
    }
    int st = lua_pcall(L, nargs, 1, 0);
    if (st != LUA_OK) {
        describe(L, st, base + 1, o);
        lua_settop(L, base);
        return;
    }
    int it = lua_gettop(L);
    for (int round = 0; round < 40; round++) {
        lua_pushvalue(L, it);
        st = lua_pcall(L, 0, LUA_MULTRET, 0);
        describe(L, st, it + 1, o);
        if (st != LUA_OK || lua_isnoneornil(L, it + 1)) break;
        lua_settop(L, it);
    }
    lua_settop(L, base);
}

static const char *const SETUP =
    "local st = {n = 0}\n"
    "local t = {a = 'A', b = false, ['('] = 1, x = 'X', [''] = 'E', [1] = 'one', [2] = {}, c = true}\n"
    "local function f(...)\n"
    "  st.n = st.n + 1\n"
    "  local a = ...\n"
    "  if a == 'b' then return nil end\n"
    "  if a == 'x' then return false end\n"
    "  if a == 'c' then return {} end\n"
    "  if a == 'A' then return true end\n"
    "  if a == '' then return select('#', ...) end\n"
    "  return tostring(a) .. '|' .. select('#', ...) .. '|' .. st.n\n"
    "end\n"
    "return t, f, st\n";

int bp_pattern_diff(uint64_t seed, long cases, long *ran, char *report, size_t report_len) {
    *ran = 0;
    if (report_len) report[0] = '\0';
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(report, report_len, "cannot create a Lua state");
        return 1;
    }
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1); /* 2: the stock one */
    lua_settop(L, 0);
    lua_getglobal(L, "string");                           /* 1 */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    bp_push_matchers(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "bpmatch");                       /* so argument errors get a name */
    lua_replace(L, 2);                                    /* 2: ours */
    if (luaL_dostring(L, SETUP) != LUA_OK) {
        snprintf(report, report_len, "setup: %s", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "pd.fnstate");
    lua_setfield(L, LUA_REGISTRYINDEX, "pd.fn");
    lua_setfield(L, LUA_REGISTRYINDEX, "pd.table");
    lua_settop(L, 2);

    rng r = {seed};
    sbuf pat, subj, want, got;
    int failed = 0;
    for (long i = 0; i < cases && !failed; i++) {
        gen_subject(&r, &subj, gen_pattern(&r, &pat));
        static const char *const fns[] = {"find", "match", "gmatch", "gsub", "rep"};
        int which = below(&r, 50) == 0 ? 4 : below(&r, 4);
        if (which == 0 && chance(&r, 4)) { /* plain search in a long subject (memmem's path) */
            subj.n = 257 + (size_t)below(&r, 1500);
            for (size_t k = 0; k < subj.n; k++) subj.b[k] = chance(&r, 97) ? 'a' : 'b';
            size_t at = (size_t)below(&r, (int)subj.n), len = 1 + (size_t)below(&r, 40);
            if (at + len > subj.n) len = subj.n - at;
            memcpy(pat.b, subj.b + at, len);
            pat.n = len;
            if (chance(&r, 30)) pat.b[below(&r, (int)len)] ^= 3;
        }
        int args = lua_gettop(L) + 1;
        /* Now and then a wrong argument type, for the argument errors. */
        if (chance(&r, 1)) lua_pushboolean(L, 1); else lua_pushlstring(L, subj.b, subj.n);
        if (chance(&r, 1)) lua_newtable(L); else lua_pushlstring(L, pat.b, pat.n);
        int nargs = 2;
        if (which == 4) { /* rep(s, n [, sep]): the subject repeated, the pattern as separator */
            lua_pop(L, 1);
            int k = below(&r, 12);
            /* (the stock rep loops n times even for an empty string: only a non-empty one
             * gets the huge count, which both refuse as too large) */
            if (k == 11 && subj.n > 0) lua_pushinteger(L, (lua_Integer)1 << 40);
            else if (k == 10) lua_pushnumber(L, 2.5);
            else lua_pushinteger(L, k - 2);
            if (chance(&r, 50)) {
                lua_pushlstring(L, pat.b, pat.n < 4 ? pat.n : 4);
                nargs++;
            }
        } else if (which == 3) {
            push_repl(L, &r);
            nargs++;
            if (chance(&r, 40)) {
                lua_pushinteger(L, below(&r, 4) - 1);
                nargs++;
            }
        } else if (push_init(L, &r, subj.n)) {
            nargs++;
            if (which == 0 && chance(&r, 50)) {
                if (chance(&r, 70)) lua_pushboolean(L, below(&r, 2));
                else lua_pushinteger(L, 0);
                nargs++;
            }
        } else if (which == 0 && chance(&r, 20)) {
            lua_pushnil(L);
            lua_pushboolean(L, 1);
            nargs += 2;
        }
        run_case(L, 1, fns[which], nargs, args, which == 2 ? 'g' : 0, &want);
        run_case(L, 2, fns[which], nargs, args, which == 2 ? 'g' : 0, &got);
        if (want.n != got.n || memcmp(want.b, got.b, want.n) != 0) {
            failed = 1;
            sbuf d = {.n = 0};
            char tmp[64];
            snprintf(tmp, sizeof tmp, "case %ld (seed %llu): string.%s(", i, (unsigned long long)seed, fns[which]);
            puts_(&d, tmp);
            lua_settop(L, args + nargs - 1);
            describe(L, LUA_OK, args, &d);
            puts_(&d, ")\n  stock: ");
            for (size_t k = 0; k < want.n; k++) put(&d, want.b[k] ? want.b[k] : '0');
            puts_(&d, "\n  ours:  ");
            for (size_t k = 0; k < got.n; k++) put(&d, got.b[k] ? got.b[k] : '0');
            snprintf(report, report_len, "%.*s", (int)d.n, d.b);
        }
        lua_settop(L, 2);
        *ran = i + 1;
    }
    lua_close(L);
    return failed;
}
