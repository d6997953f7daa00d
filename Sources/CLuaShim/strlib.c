/*
 * The library functions policies use whose cost grows with their input, made to pay into the
 * hook's budget (bp_charge in shim.c). The count hook only sees VM instructions: one call of
 * a C function was invisible to it however long it ran (string.rep("(", 200000):find("%b()")
 * took 17 s inside one hook, a loop of s:upper() on 8 MB ran 3 s before the next check).
 *
 * find, match, gmatch and gsub are our own implementation of Lua 5.4's patterns, with the
 * same syntax, results, errors and recursion limit as the stock library (a differential test,
 * bp_pattern_diff in patdiff.c, holds us to that), plus a step count: every single-character
 * attempt and every byte a %b or a back-reference looks at is a step, and steps are charged
 * every PM_FUEL of them. The matcher keeps all its state in a fixed struct (on the C stack,
 * or in gmatch's userdata), so the budget error can longjmp out of it at any step.
 *
 * rep is ours as well (bp_str_rep: same results and errors, cost per byte instead of per
 * copy). The other functions (string, table, utf8, tonumber) keep the stock code: a wrapper
 * charges for the bytes or items involved, before the work when the arguments tell the size,
 * and then calls the original C function (its upvalue) on the same stack frame, so argument
 * errors read exactly as before.
 */
#define _GNU_SOURCE /* memmem */
#include "budget.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Lua 5.4's own limits (LUA_MAXCAPTURES, MAXCCALLS in lstrlib.c): the same patterns must fail
 * with "too many captures" and "pattern too complex" as with the stock library. */
#define PM_MAXCAPTURES 32
#define PM_MAXDEPTH 200
#define PM_ESC '%'
#define PM_OPEN (-1)     /* capture length while its ')' is still to come */
#define PM_POSITION (-2) /* capture length of a position capture, "()" */

/* Steps between charges: few enough that a charge is cheap next to them, many enough that a
 * hostile match is cut within microseconds of the budget running out. */
#define PM_FUEL 4096

/* Prices: how much of each kind of work costs about one VM instruction of a typical policy,
 * which on the development machine (2 shared cores, gcc -O2) ran 7-18 ns (10 ns is what the
 * default budget, 2,000,000 instructions or 20 ms, assumes). Measured there, per unit:
 * backtracking matcher steps 7.5-9 ns, %b 8.3 ns, back-references 3.3 ns, plain search
 * 9-16 ns, upper/lower 9.6-11.3 ns, reverse 8 ns, rep and sub 11-12 ns, byte 12.8 ns,
 * char 12.3 ns, format 1.7 ns (%s of one big string) to 20 ns (%q), concat 8.3-11.5 ns;
 * the table and utf8 prices below come from the same kind of loop over the stock functions. */
#define PM_STEPS_PER_UNIT 2        /* a step: one character tried against one item */
#define PM_BALANCE_BYTES_PER_STEP 4
#define PM_BACKREF_BYTES_PER_STEP 64 /* memcmp */
#define PM_SET_BYTES_PER_STEP 8    /* a set is scanned for every character tried against it */
#define PLAIN_BYTES_PER_UNIT 16    /* memmem, short needles; long ones count each byte 4 times */
#define PLAIN_WINDOW 65536         /* plain search charges per window of this many starts */
#define PLAIN_SHORT 256            /* below this a plain search is a memchr loop, not charged */
#define CASE_BYTES_PER_UNIT 16     /* upper, lower */
#define REVERSE_BYTES_PER_UNIT 16
#define COPY_BYTES_PER_UNIT 96     /* rep, sub: memcpy */
#define BYTE_VALUES_PER_UNIT 4     /* byte: one pushed integer each */
#define CHAR_VALUES_PER_UNIT 1     /* char: one checked argument each */
#define FORMAT_BYTES_PER_UNIT 8    /* of the output */
#define FORMAT_UNITS_PER_ARG 8     /* each conversion has its own overhead */
#define CONCAT_BYTES_PER_UNIT 32   /* of the output */
#define CONCAT_UNITS_PER_ITEM 2
#define MOVE_UNITS_PER_ITEM 2      /* table.move: a get and a set each */
#define SHIFT_UNITS_PER_ITEM 1     /* table.insert/remove in the middle */
#define SORT_UNITS_PER_STEP 3      /* per n log2 n: 15-21 ns for numbers, 59 ns for strings */
#define UNPACK_ITEMS_PER_UNIT 2
#define UTF8_BYTES_PER_UNIT 5      /* utf8.len: decoding */
#define UTF8_SCAN_BYTES_PER_UNIT 16 /* utf8.offset */
#define CODEPOINTS_PER_UNIT 2
#define PACK_FORMAT_BYTES_PER_UNIT 2
#define NUMBER_BYTES_PER_UNIT 100  /* tonumber's scan of a string */
#define STACK_MAX 1000000          /* LUAI_MAXSTACK: more results fail at once, uncharged */
#define UNITS_MAX ((size_t)1 << 60) /* a charge this big trips any budget; no overflow past it */

typedef struct pm_state {
    const char *src, *src_end; /* the whole subject, also when the match starts further in */
    const char *pat_end;
    lua_State *L;
    int depth;   /* recursion left before "pattern too complex" */
    int level;   /* captures opened so far */
    long fuel;   /* steps left before the next charge */
    struct {
        const char *at;
        ptrdiff_t len; /* or PM_OPEN, PM_POSITION */
    } cap[PM_MAXCAPTURES];
} pm_state;

/* ---------------------------------------------------------------- charging */

static void pm_refuel(pm_state *m) {
    long spent = PM_FUEL - m->fuel;
    m->fuel = PM_FUEL - spent % PM_STEPS_PER_UNIT;
    bp_charge(m->L, spent / PM_STEPS_PER_UNIT);
}

static inline void pm_burn(pm_state *m, long steps) {
    if ((m->fuel -= steps) <= 0) pm_refuel(m);
}

/* At the end of a call: what the last partial tank used. */
static void pm_settle(pm_state *m) {
    long spent = PM_FUEL - m->fuel;
    m->fuel = PM_FUEL;
    if (spent >= PM_STEPS_PER_UNIT) bp_charge(m->L, spent / PM_STEPS_PER_UNIT);
}

static void pm_init(pm_state *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->fuel = PM_FUEL;
}

/* Before each attempt at a start position. */
static void pm_reset(pm_state *m) {
    m->level = 0;
    m->depth = PM_MAXDEPTH;
}

/* Charges `bytes / per_unit` for an operation about to make a `bytes` result, unless the
 * memory cap will refuse that allocation anyway (then it fails at once and costs nothing;
 * charging would turn the memory error into a budget error). `allocs` is how many times it
 * allocates that size (a buffer and the string, or the string alone): already paid, so the
 * allocator's own charge for big allocations does not count them again. */
static void charge_alloc(lua_State *L, size_t bytes, size_t per_unit, size_t allocs) {
    if (bytes < per_unit || bytes > bp_memory_room(L)) return;
    bp_charge(L, (long long)(bytes / per_unit));
    bp_prepay(L, bytes * allocs);
}

static void charge_work(lua_State *L, size_t amount, size_t per_unit) {
    if (amount >= per_unit) bp_charge(L, (long long)(amount / per_unit > UNITS_MAX ? UNITS_MAX : amount / per_unit));
}

/* `items` times `units` each, saturating. */
static void charge_items(lua_State *L, size_t items, size_t units) {
    if (items == 0) return;
    bp_charge(L, (long long)(items > UNITS_MAX / units ? UNITS_MAX : items * units));
}

/* ---------------------------------------------------------------- single characters */

/* `cl` is the letter after a '%': a class (upper case: its complement) or a literal. */
static int pm_class(int c, int cl) {
    int in;
    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated, still in 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !in : in != 0;
}

/* A set: `p` at its '[', `close` at its final ']' (pm_item_end found it). */
static int pm_in_set(int c, const char *p, const char *close) {
    int want = 1;
    p++;
    if (*p == '^') {
        want = 0;
        p++;
    }
    for (; p < close; p++) {
        unsigned char x = (unsigned char)*p;
        if (x == PM_ESC) {
            p++;
            if (pm_class(c, (unsigned char)*p)) return want;
        } else if (p + 2 < close && p[1] == '-') {
            if (x <= c && c <= (unsigned char)p[2]) return want;
            p += 2;
        } else if (x == c) {
            return want;
        }
    }
    return !want;
}

/* End of the single-character item at p (a character, '.', %x or a set); raises for a
 * malformed one. Like the stock library this runs only when the matcher reaches the item,
 * so an error in a part of the pattern never tried is never reported. */
static const char *pm_item_end(pm_state *m, const char *p) {
    unsigned char c = (unsigned char)*p++;
    if (c == PM_ESC) {
        if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pat_end && *p == '^') p++;
        /* The first member may be ']' itself, so the test for the end follows it. */
        do {
            if (p >= m->pat_end) luaL_error(m->L, "malformed pattern (missing ']')");
            c = (unsigned char)*p++;
            if (c == PM_ESC && p < m->pat_end) p++;
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Whether the item p..ep matches the character at s (none at the end). Not counted here:
 * callers burn pm_cost per call, the greedy loop in batches. */
static inline int pm_single(pm_state *m, const char *s, const char *p, const char *ep) {
    if (s >= m->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case PM_ESC: return pm_class(c, (unsigned char)p[1]);
    case '[': return pm_in_set(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* Steps one pm_single of the item costs: 1, and a long set is linear work for every
 * character tried against it. */
static inline long pm_cost(const char *p, const char *ep) {
    return *p == '[' && ep - p > PM_SET_BYTES_PER_STEP ? 1 + (ep - p) / PM_SET_BYTES_PER_STEP : 1;
}

/* ---------------------------------------------------------------- the matcher */

static const char *pm_match(pm_state *m, const char *s, const char *p);

/* %bxy at s: the end of a balanced run, or NULL. */
static const char *pm_balance(pm_state *m, const char *s, const char *p) {
    if (m->pat_end - p < 2) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    const char *from = s;
    while (++s < m->src_end) {
        if (((s - from) & (PM_BALANCE_BYTES_PER_STEP - 1)) == 0) pm_burn(m, 1);
        /* close first: %bxx pairs each x with the next one */
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* %1-%9 (and the invalid %0) at s. */
static const char *pm_backref(pm_state *m, const char *s, int digit) {
    int i = digit - '1';
    if (i < 0 || i >= m->level || m->cap[i].len == PM_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    /* A position capture's length is negative: as a size it is longer than any subject,
     * so it never matches, as in the stock library. */
    size_t len = (size_t)m->cap[i].len;
    if ((size_t)(m->src_end - s) < len) return NULL;
    pm_burn(m, (long)(len / PM_BACKREF_BYTES_PER_STEP));
    return memcmp(m->cap[i].at, s, len) == 0 ? s + len : NULL;
}

static const char *pm_open(pm_state *m, const char *s, const char *p, ptrdiff_t kind) {
    if (m->level >= PM_MAXCAPTURES) luaL_error(m->L, "too many captures");
    m->cap[m->level].at = s;
    m->cap[m->level].len = kind;
    m->level++;
    const char *r = pm_match(m, s, p);
    if (r == NULL) m->level--;
    return r;
}

static const char *pm_close(pm_state *m, const char *s, const char *p) {
    int i = m->level - 1;
    while (i >= 0 && m->cap[i].len != PM_OPEN) i--;
    if (i < 0) luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = pm_match(m, s, p);
    if (r == NULL) m->cap[i].len = PM_OPEN;
    return r;
}

/* Greedy: as many as match, then give back one at a time. */
static const char *pm_greedy(pm_state *m, const char *s, const char *p, const char *ep, long cost) {
    ptrdiff_t n = 0;
    long batch = 0;
    while (pm_single(m, s + n, p, ep)) {
        n++;
        if (++batch == 1024) {
            pm_burn(m, batch * cost);
            batch = 0;
        }
    }
    pm_burn(m, (batch + 1) * cost);
    for (; n >= 0; n--) {
        const char *r = pm_match(m, s + n, ep + 1);
        if (r) return r;
    }
    return NULL;
}

/* Lazy: the rest of the pattern first, one more repetition each time it fails. */
static const char *pm_lazy(pm_state *m, const char *s, const char *p, const char *ep, long cost) {
    for (;;) {
        const char *r = pm_match(m, s, ep + 1);
        if (r) return r;
        pm_burn(m, cost);
        if (!pm_single(m, s, p, ep)) return NULL;
        s++;
    }
}

/* Matches the pattern from p against the subject from s; the end of the match or NULL.
 * Items that cannot backtrack continue in the loop; the recursion (and so the depth limit)
 * happens at the same places as in the stock library: captures, '?', '*', '+', '-'. */
static const char *pm_match(pm_state *m, const char *s, const char *p) {
    if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
    while (p < m->pat_end) {
        int next = p + 1 < m->pat_end ? (unsigned char)p[1] : -1;
        switch (*p) {
        case '(':
            s = next == ')' ? pm_open(m, s, p + 2, PM_POSITION) : pm_open(m, s, p + 1, PM_OPEN);
            goto out;
        case ')':
            s = pm_close(m, s, p + 1);
            goto out;
        case '$':
            if (next == -1) {
                if (s != m->src_end) s = NULL;
                goto out;
            }
            break; /* not last: an ordinary character */
        case PM_ESC:
            if (next == 'b') {
                pm_burn(m, 1);
                s = pm_balance(m, s, p + 2);
                if (s == NULL) goto out;
                p += 4;
                continue;
            }
            if (next == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = pm_item_end(m, p);
                pm_burn(m, 2 * pm_cost(p, ep));
                int before = s == m->src ? 0 : (unsigned char)s[-1];
                int here = s < m->src_end ? (unsigned char)*s : 0;
                if (pm_in_set(before, p, ep - 1) || !pm_in_set(here, p, ep - 1)) {
                    s = NULL;
                    goto out;
                }
                p = ep;
                continue;
            }
            if (next >= '0' && next <= '9') {
                pm_burn(m, 1);
                s = pm_backref(m, s, next);
                if (s == NULL) goto out;
                p += 2;
                continue;
            }
            break; /* a class or an escaped character */
        }
        /* A single-character item and its quantifier, if any. */
        const char *ep = pm_item_end(m, p);
        int q = ep < m->pat_end ? (unsigned char)*ep : 0;
        long cost = pm_cost(p, ep);
        pm_burn(m, cost);
        if (!pm_single(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1; /* zero repetitions will do */
                continue;
            }
            s = NULL;
            goto out;
        }
        switch (q) {
        case '?': {
            const char *r = pm_match(m, s + 1, ep + 1);
            if (r) {
                s = r;
                goto out;
            }
            p = ep + 1;
            continue;
        }
        case '+': s = pm_greedy(m, s + 1, p, ep, cost); goto out;
        case '*': s = pm_greedy(m, s, p, ep, cost); goto out;
        case '-': s = pm_lazy(m, s, p, ep, cost); goto out;
        default:
            s++;
            p = ep;
            continue;
        }
    }
out:
    m->depth++;
    return s;
}

/* ---------------------------------------------------------------- captures */

/* Capture i of the match s..e; with no captures, i == 0 is the whole match. Returns the
 * length and sets *at, or returns PM_POSITION after pushing the position. */
static ptrdiff_t pm_capture(pm_state *m, int i, const char *s, const char *e, const char **at) {
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        *at = s;
        return e - s;
    }
    ptrdiff_t len = m->cap[i].len;
    *at = m->cap[i].at;
    if (len == PM_OPEN) luaL_error(m->L, "unfinished capture");
    if (len == PM_POSITION) lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->src) + 1);
    return len;
}

static void pm_push_capture(pm_state *m, int i, const char *s, const char *e) {
    const char *at;
    ptrdiff_t len = pm_capture(m, i, s, e, &at);
    if (len != PM_POSITION) lua_pushlstring(m->L, at, (size_t)len);
}

/* Pushes every capture (the whole match when there are none and s is given). */
static int pm_push_captures(pm_state *m, const char *s, const char *e) {
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) pm_push_capture(m, i, s, e);
    return n;
}

/* ---------------------------------------------------------------- find, match */

/* A 1-based start position (negative counts from the end, clipped to 1) as the stock
 * library reads it. */
static size_t start_pos(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

/* Without any of ^$*+?.([%- find searches plainly. */
static int has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++) {
        switch (p[i]) {
        case '^': case '$': case '*': case '+': case '?': case '.': case '(': case '[': case '%': case '-':
            return 1;
        }
    }
    return 0;
}

/* First occurrence of n in h. memmem is linear, but its short-needle search can still look at
 * each byte many times, so it runs per window and every window is charged. */
static const char *plain_find(lua_State *L, const char *h, size_t hl, const char *n, size_t nl) {
    if (nl == 0) return h;
    if (nl > hl) return NULL;
    if (hl <= PLAIN_SHORT) {
        /* DHCP-sized: memmem's setup costs more than the search; at most PLAIN_SHORT^2 / 4
         * bytes compared, too little to charge. */
        const char *last = h + (hl - nl);
        while (h <= last) {
            const char *c = (const char *)memchr(h, n[0], (size_t)(last - h) + 1);
            if (c == NULL) return NULL;
            if (memcmp(c + 1, n + 1, nl - 1) == 0) return c;
            h = c + 1;
        }
        return NULL;
    }
    size_t starts = hl - nl + 1;
    while (starts > 0) {
        size_t w = starts < PLAIN_WINDOW ? starts : PLAIN_WINDOW;
        charge_work(L, (w + nl) * (nl < 16 ? 1 : 4), PLAIN_BYTES_PER_UNIT);
        const char *hit = (const char *)memmem(h, w + nl - 1, n, nl);
        if (hit) return hit;
        h += w;
        starts -= w;
    }
    return NULL;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = plain_find(L, s + init, ls - init, p, lp);
        if (hit) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    pm_state m;
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    pm_init(&m, L, s, ls, p, lp);
    const char *from = s + init;
    for (;;) {
        pm_reset(&m);
        const char *e = pm_match(&m, from, p);
        if (e) {
            pm_settle(&m);
            if (find) {
                lua_pushinteger(L, (lua_Integer)(from - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return pm_push_captures(&m, NULL, NULL) + 2;
            }
            return pm_push_captures(&m, from, e);
        }
        if (anchored || from >= m.src_end) break;
        from++;
    }
    pm_settle(&m);
    luaL_pushfail(L);
    return 1;
}

static int bp_str_find(lua_State *L) { return find_or_match(L, 1); }
static int bp_str_match(lua_State *L) { return find_or_match(L, 0); }

/* ---------------------------------------------------------------- gmatch */

typedef struct {
    pm_state m;
    const char *from, *pat, *last; /* next start, pattern, end of the previous match */
} gm_state;

static int gmatch_next(lua_State *L) {
    gm_state *g = (gm_state *)lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L;
    g->m.fuel = PM_FUEL;
    for (const char *from = g->from; from <= g->m.src_end; from++) {
        pm_reset(&g->m);
        const char *e = pm_match(&g->m, from, g->pat);
        /* An empty match right where the previous one ended is skipped (5.4). */
        if (e && e != g->last) {
            g->from = g->last = e;
            pm_settle(&g->m);
            return pm_push_captures(&g->m, from, e);
        }
    }
    pm_settle(&g->m);
    return 0;
}

static int bp_str_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2); /* the closure keeps both strings alive */
    gm_state *g = (gm_state *)lua_newuserdatauv(L, sizeof *g, 0);
    if (init > ls) init = ls + 1; /* nothing to find; and s + init stays in range */
    /* No anchor in gmatch: a leading '^' is an ordinary character, as in the stock library. */
    pm_init(&g->m, L, s, ls, p, lp);
    g->from = s + init;
    g->pat = p;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---------------------------------------------------------------- gsub */

/* A replacement string: %0-%9 are captures, %% is '%', any other '%' is an error. */
static void gsub_add_string(pm_state *m, luaL_Buffer *b, const char *s, const char *e) {
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    const char *end = r + l;
    pm_burn(m, (long)(l >> 4));
    for (;;) {
        const char *pct = (const char *)memchr(r, PM_ESC, (size_t)(end - r));
        if (pct == NULL) break;
        luaL_addlstring(b, r, (size_t)(pct - r));
        int d = pct + 1 < end ? (unsigned char)pct[1] : 0;
        if (d == PM_ESC) {
            luaL_addchar(b, PM_ESC);
        } else if (d == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(d)) {
            const char *at;
            ptrdiff_t len = pm_capture(m, d - '1', s, e, &at);
            if (len == PM_POSITION) luaL_addvalue(b);
            else luaL_addlstring(b, at, (size_t)len);
        } else {
            luaL_error(m->L, "invalid use of '%c' in replacement string", PM_ESC);
        }
        r = pct + 2;
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

/* Adds the replacement of the match s..e; 1 when it changed something. */
static int gsub_add(pm_state *m, luaL_Buffer *b, const char *s, const char *e, int kind) {
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = pm_push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        pm_push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        gsub_add_string(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: the match stays as it was */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int bp_str_gsub(lua_State *L) {
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION || kind == LUA_TTABLE,
                     3, "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    pm_state m;
    pm_init(&m, L, src, ls, p, lp);
    const char *last = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max) {
        pm_reset(&m);
        const char *e = pm_match(&m, src, p);
        if (e && e != last) {
            n++;
            changed |= gsub_add(&m, &b, src, e, kind);
            src = last = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchored) break;
    }
    pm_settle(&m);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ---------------------------------------------------------------- charged wrappers */

/* The stock function this wrapper stands for, called on the wrapper's own stack frame: its
 * argument errors name the same function at the same call site. */
static int call_stock(lua_State *L) { return lua_tocfunction(L, lua_upvalueindex(1))(L); }

/* Length of the string at idx, 0 for anything else (the stock code raises for that). */
static size_t str_len(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TSTRING ? lua_rawlen(L, idx) : 0;
}

/* An integer argument, or `def` when absent; 0 in *ok when it is neither (the stock code
 * will raise). */
static lua_Integer int_arg(lua_State *L, int idx, lua_Integer def, int *ok) {
    if (lua_isnoneornil(L, idx)) return def;
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum) *ok = 0;
    return v;
}

static int wrap_case(lua_State *L) {
    charge_alloc(L, str_len(L, 1), CASE_BYTES_PER_UNIT, 2);
    return call_stock(L);
}

static int wrap_reverse(lua_State *L) {
    charge_alloc(L, str_len(L, 1), REVERSE_BYTES_PER_UNIT, 2);
    return call_stock(L);
}

/* rep is ours too: the stock loop copies once per repetition, 3.5 ns a copy for the common
 * string.rep("x", n), 25 times memcpy's cost per byte. Here the first period is written once
 * and then doubled, so the cost (and the charge, made before the work) is per byte. */
static int bp_str_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t period = l + lsep;
    if (period < l || period > (size_t)INT_MAX / (size_t)n)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * period - lsep;
    charge_alloc(L, total, COPY_BYTES_PER_UNIT, 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    if (total > 0) {
        memcpy(out, s, l);
        if (total > l) memcpy(out + l, sep, lsep);
        /* What is written is whole periods: copying it doubles them, the last copy cut at
         * the end (which falls after an `s`, never inside a trailing separator). */
        size_t done = total > l ? period : l;
        while (done < total) {
            size_t k = done < total - done ? done : total - done;
            memcpy(out + done, out, k);
            done += k;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* The span i..j of a string of length len as string.sub and string.byte read it. */
static size_t span_of(lua_State *L, size_t len, lua_Integer def_end) {
    int ok = 1;
    size_t i = start_pos(int_arg(L, 2, 1, &ok), len);
    lua_Integer j = int_arg(L, 3, def_end, &ok);
    if (!ok) return 0;
    size_t e = j > (lua_Integer)len ? len : j >= 0 ? (size_t)j : j < -(lua_Integer)len ? 0 : len + (size_t)j + 1;
    return e >= i ? e - i + 1 : 0;
}

static int wrap_sub(lua_State *L) {
    size_t len = str_len(L, 1);
    if (len >= COPY_BYTES_PER_UNIT) charge_alloc(L, span_of(L, len, -1), COPY_BYTES_PER_UNIT, 1);
    return call_stock(L);
}

/* string.byte and utf8.codepoint push one value per byte or character of s[i..j]; the end
 * defaults to the start as given; past the stack's limit the stock code fails at once
 * ("string slice too long"), so that is not charged. */
static int charge_pushed_span(lua_State *L, size_t per_unit) {
    int ok = 1;
    lua_Integer i = int_arg(L, 2, 1, &ok);
    size_t n = ok ? span_of(L, str_len(L, 1), i) : 0;
    if (n <= STACK_MAX) charge_work(L, n, per_unit);
    return call_stock(L);
}

static int wrap_byte(lua_State *L) { return charge_pushed_span(L, BYTE_VALUES_PER_UNIT); }

static int wrap_char(lua_State *L) {
    charge_work(L, (size_t)lua_gettop(L), CHAR_VALUES_PER_UNIT);
    return call_stock(L);
}

/* format's output size is known only afterwards: charged then, so the next call (or the
 * next instruction) stops a policy that keeps formatting large strings. */
static int wrap_format(lua_State *L) {
    size_t args = (size_t)lua_gettop(L);
    int n = call_stock(L);
    charge_work(L, str_len(L, -1) + args * FORMAT_UNITS_PER_ARG * FORMAT_BYTES_PER_UNIT, FORMAT_BYTES_PER_UNIT);
    return n;
}

static int wrap_concat(lua_State *L) {
    int ok = 1;
    lua_Integer i = int_arg(L, 3, 1, &ok);
    lua_Integer j = lua_isnoneornil(L, 4) && lua_type(L, 1) == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, 1)
                                                                          : int_arg(L, 4, 0, &ok);
    int n = call_stock(L);
    size_t items = ok && j >= i ? (size_t)(j - i) + 1 : 0;
    charge_work(L, str_len(L, -1) + items * CONCAT_UNITS_PER_ITEM * CONCAT_BYTES_PER_UNIT, CONCAT_BYTES_PER_UNIT);
    return n;
}

/* Items i..j, saturating; 0 when j < i. */
static size_t count_of(lua_Integer i, lua_Integer j) {
    if (j < i) return 0;
    lua_Unsigned n = (lua_Unsigned)j - (lua_Unsigned)i;
    return n >= SIZE_MAX ? SIZE_MAX : (size_t)n + 1;
}

static size_t raw_len(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TTABLE ? (size_t)lua_rawlen(L, idx) : 0;
}

/* table.move(a1, f, e, t): one call moved 10^12 nils for hours. Charged before, unless the
 * stock code is about to refuse the arguments. */
static int wrap_move(lua_State *L) {
    int ok = lua_type(L, 1) == LUA_TTABLE && !lua_isnoneornil(L, 2) && !lua_isnoneornil(L, 3) && !lua_isnoneornil(L, 4);
    lua_Integer f = int_arg(L, 2, 0, &ok), e = int_arg(L, 3, 0, &ok), t = int_arg(L, 4, 0, &ok);
    /* the stock checks: "too many elements to move", "destination wrap around" */
    if (ok && e >= f && (f > 0 || e < LUA_MAXINTEGER + f) && t <= LUA_MAXINTEGER - (e - f + 1) + 1)
        charge_items(L, count_of(f, e), MOVE_UNITS_PER_ITEM);
    return call_stock(L);
}

/* insert(t, pos, v) and remove(t, pos) shift everything after pos. */
static int wrap_insert(lua_State *L) {
    int ok = 1;
    if (lua_gettop(L) == 3) {
        lua_Integer pos = int_arg(L, 2, 0, &ok);
        if (ok) charge_items(L, count_of(pos, (lua_Integer)raw_len(L, 1)), SHIFT_UNITS_PER_ITEM);
    }
    return call_stock(L);
}

static int wrap_remove(lua_State *L) {
    int ok = 1;
    lua_Integer size = (lua_Integer)raw_len(L, 1);
    lua_Integer pos = int_arg(L, 2, size, &ok);
    if (ok) charge_items(L, count_of(pos, size - 1), SHIFT_UNITS_PER_ITEM);
    return call_stock(L);
}

/* n log2 n comparisons and swaps; a Lua comparator's own instructions count besides. */
static int wrap_sort(lua_State *L) {
    size_t n = raw_len(L, 1), log = 1;
    while (log < 64 && ((size_t)1 << log) < n) log++;
    if (n > 1) charge_items(L, n * log, SORT_UNITS_PER_STEP);
    return call_stock(L);
}

static int wrap_unpack(lua_State *L) {
    int ok = 1;
    lua_Integer i = int_arg(L, 2, 1, &ok);
    lua_Integer j = lua_isnoneornil(L, 3) ? (lua_Integer)raw_len(L, 1) : int_arg(L, 3, 0, &ok);
    size_t n = count_of(i, j);
    if (ok && n <= STACK_MAX) charge_work(L, n, UNPACK_ITEMS_PER_UNIT);
    return call_stock(L);
}

static int wrap_utf8_len(lua_State *L) {
    charge_work(L, span_of(L, str_len(L, 1), -1), UTF8_BYTES_PER_UNIT);
    return call_stock(L);
}

static int wrap_codepoint(lua_State *L) { return charge_pushed_span(L, CODEPOINTS_PER_UNIT); }

/* offset(s, n, i) walks up to |n| characters, and no further than the string. */
static int wrap_offset(lua_State *L) {
    int ok = 1;
    lua_Integer n = int_arg(L, 2, 0, &ok);
    size_t len = str_len(L, 1);
    size_t steps = !ok ? 0 : n == LUA_MININTEGER ? len : (size_t)(n < 0 ? -n : n);
    charge_work(L, steps < len ? steps : len, UTF8_SCAN_BYTES_PER_UNIT);
    return call_stock(L);
}

/* utf8.char, like string.char: one checked argument each. */
static int wrap_values(lua_State *L) {
    charge_work(L, (size_t)lua_gettop(L), CHAR_VALUES_PER_UNIT);
    return call_stock(L);
}

/* pack, packsize, unpack: the format is read item by item; pack's output is charged after
 * like format's. */
static int wrap_pack(lua_State *L) {
    charge_work(L, str_len(L, 1), PACK_FORMAT_BYTES_PER_UNIT);
    int n = call_stock(L);
    if (n == 1) charge_work(L, str_len(L, -1), FORMAT_BYTES_PER_UNIT);
    return n;
}

static int wrap_tonumber(lua_State *L) {
    charge_work(L, str_len(L, 1), NUMBER_BYTES_PER_UNIT);
    return call_stock(L);
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg matchers[] = {
    {"find", bp_str_find},
    {"match", bp_str_match},
    {"gmatch", bp_str_gmatch},
    {"gsub", bp_str_gsub},
    {"rep", bp_str_rep},
    {NULL, NULL},
};

static void wrap(lua_State *L, int idx, const char *name, lua_CFunction fn) {
    if (lua_getfield(L, idx, name) != LUA_TFUNCTION || lua_tocfunction(L, -1) == NULL) {
        lua_pop(L, 1);
        return;
    }
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, idx, name);
}

void bp_push_matchers(lua_State *L) { luaL_newlib(L, matchers); }

void bp_budget_string_lib(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_pushvalue(L, idx);
    luaL_setfuncs(L, matchers, 0);
    lua_pop(L, 1);
    wrap(L, idx, "upper", wrap_case);
    wrap(L, idx, "lower", wrap_case);
    wrap(L, idx, "reverse", wrap_reverse);
    wrap(L, idx, "sub", wrap_sub);
    wrap(L, idx, "byte", wrap_byte);
    wrap(L, idx, "char", wrap_char);
    wrap(L, idx, "format", wrap_format);
    wrap(L, idx, "pack", wrap_pack);
    wrap(L, idx, "packsize", wrap_pack);
    wrap(L, idx, "unpack", wrap_pack);
}

void bp_budget_table_lib(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    wrap(L, idx, "concat", wrap_concat);
    wrap(L, idx, "move", wrap_move);
    wrap(L, idx, "insert", wrap_insert);
    wrap(L, idx, "remove", wrap_remove);
    wrap(L, idx, "sort", wrap_sort);
    wrap(L, idx, "unpack", wrap_unpack);
}

void bp_budget_utf8_lib(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    wrap(L, idx, "len", wrap_utf8_len);
    wrap(L, idx, "codepoint", wrap_codepoint);
    wrap(L, idx, "offset", wrap_offset);
    wrap(L, idx, "char", wrap_values);
}

void bp_budget_base_lib(lua_State *L, int idx) {
    wrap(L, lua_absindex(L, idx), "tonumber", wrap_tonumber);
}
