/*
 * lsb_pat.c - Lua 5.4 patterns for the sandbox, with every matching step
 * charged to the instruction budget.
 *
 * The standard matcher backtracks in C, where the count hook never fires:
 * ("a"):rep(40):find(("a*"):rep(20) .. "b") would run for years, far past
 * any deadline. This file implements the same patterns (Lua 5.4 manual,
 * section 6.4.1) and the same string.find, match, gmatch and gsub, with the
 * same results and error messages (tests/lsb/test_lsb.c compares the two),
 * and reports its work through lsb__charge so budget and deadline hold.
 *
 * The matcher is the classic recursive backtracker: match() walks the
 * pattern one item at a time and recurses only where it must try more than
 * one way (quantifiers, captures), so its depth is bounded by MAXDEPTH.
 */
#include "lsb_int.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

#define MAXDEPTH 200          /* recursion of match(), as Lua's MAXCCALLS */
#define MAXCAPTURES 32        /* as Lua's LUA_MAXCAPTURES */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define TICK_BATCH 1024       /* steps between calls to lsb__charge */
#define SPECIALS "^$*+?.([%-"

typedef struct pat {
	lua_State *L;
	const char *src, *src_end; /* the subject */
	const char *p_end;         /* end of the pattern */
	int depth;                 /* recursion left */
	int level;                 /* captures open or closed */
	long long steps;           /* not yet charged */
	struct {
		const char *init;
		ptrdiff_t len;     /* or CAP_UNFINISHED / CAP_POSITION */
	} cap[MAXCAPTURES];
} pat;

static const char *match(pat *ms, const char *s, const char *p);

static void tick(pat *ms, long long n)
{
	ms->steps += n;
	if (ms->steps >= TICK_BATCH) {
		long long n_all = ms->steps;
		ms->steps = 0;
		lsb__charge(ms->L, n_all);
	}
}

/* %a, %d, ... against byte c; an upper-case class letter complements. */
static int class_match(int c, int cl)
{
	int r;
	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	case 'z': r = c == 0; break; /* deprecated in Lua, still there */
	default: return cl == c;
	}
	return isupper(cl) ? !r : r != 0;
}

/* A [set]: p at '[', last at its closing ']'. */
static int set_match(int c, const char *p, const char *last)
{
	int yes = 1;
	if (p[1] == '^') {
		yes = 0;
		p++;
	}
	while (++p < last) {
		if (*p == '%') {
			p++;
			if (class_match(c, (unsigned char)*p))
				return yes;
		} else if (p[1] == '-' && p + 2 < last) {
			p += 2;
			if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p)
				return yes;
		} else if ((unsigned char)*p == c) {
			return yes;
		}
	}
	return !yes;
}

/* The end of the single-character class starting at p. Patterns are Lua
 * strings, so *p_end is a readable '\0'. */
static const char *class_end(pat *ms, const char *p)
{
	char c = *p++;
	if (c == '%') {
		if (p == ms->p_end)
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c != '[')
		return p;
	if (*p == '^')
		p++;
	do {
		if (p == ms->p_end)
			luaL_error(ms->L, "malformed pattern (missing ']')");
		if (*p++ == '%' && p < ms->p_end)
			p++;
	} while (*p != ']');
	return p + 1;
}

/* Does the byte at s match the class p..ep? */
static int single(pat *ms, const char *s, const char *p, const char *ep)
{
	if (s >= ms->src_end)
		return 0;
	int c = (unsigned char)*s;
	switch (*p) {
	case '.': return 1;
	case '%': return class_match(c, (unsigned char)p[1]);
	case '[': return set_match(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

/* %bxy at s (p at x). */
static const char *balance(pat *ms, const char *s, const char *p)
{
	if (p >= ms->p_end - 1)
		luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
	if (s >= ms->src_end || *s != *p)
		return NULL;
	const char *start = s;
	int open = 1;
	while (++s < ms->src_end) {
		if (*s == p[1]) {
			if (--open == 0) {
				tick(ms, s - start);
				return s + 1;
			}
		} else if (*s == p[0]) {
			open++;
		}
	}
	tick(ms, s - start);
	return NULL;
}

/* %f[set] at s (p at '['); returns the pattern after the set, or NULL. */
static const char *frontier(pat *ms, const char *s, const char *p)
{
	if (*p != '[')
		luaL_error(ms->L, "missing '[' after '%%f' in pattern");
	const char *ep = class_end(ms, p);
	int prev = s == ms->src ? '\0' : (unsigned char)s[-1];
	int cur = s < ms->src_end ? (unsigned char)*s : '\0';
	if (!set_match(prev, p, ep - 1) && set_match(cur, p, ep - 1))
		return ep;
	return NULL;
}

/* %1-%9 at s: the text of a closed capture again. */
static const char *back_ref(pat *ms, const char *s, int digit)
{
	int l = digit - '1';
	if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED)
		luaL_error(ms->L, "invalid capture index %%%d", l + 1);
	ptrdiff_t len = ms->cap[l].len;
	if (len < 0) /* a position capture matches no text */
		return NULL;
	tick(ms, len);
	if (ms->src_end - s >= len && memcmp(ms->cap[l].init, s, (size_t)len) == 0)
		return s + len;
	return NULL;
}

static const char *open_capture(pat *ms, const char *s, const char *p, ptrdiff_t what)
{
	if (ms->level >= MAXCAPTURES)
		luaL_error(ms->L, "too many captures");
	ms->cap[ms->level].init = s;
	ms->cap[ms->level].len = what;
	ms->level++;
	const char *r = match(ms, s, p);
	if (!r)
		ms->level--;
	return r;
}

static const char *close_capture(pat *ms, const char *s, const char *p)
{
	int l = ms->level - 1;
	while (l >= 0 && ms->cap[l].len != CAP_UNFINISHED)
		l--;
	if (l < 0)
		luaL_error(ms->L, "invalid pattern capture");
	ms->cap[l].len = s - ms->cap[l].init;
	const char *r = match(ms, s, p);
	if (!r)
		ms->cap[l].len = CAP_UNFINISHED;
	return r;
}

/* Greedy: take as many as match, then give back one at a time. */
static const char *expand_max(pat *ms, const char *s, const char *p, const char *ep)
{
	ptrdiff_t i = 0;
	while (single(ms, s + i, p, ep))
		i++;
	tick(ms, i);
	for (; i >= 0; i--) {
		const char *r = match(ms, s + i, ep + 1);
		if (r)
			return r;
	}
	return NULL;
}

/* Lazy: try the rest first, take one more only when it fails. */
static const char *expand_min(pat *ms, const char *s, const char *p, const char *ep)
{
	for (;;) {
		const char *r = match(ms, s, ep + 1);
		if (r)
			return r;
		if (!single(ms, s, p, ep))
			return NULL;
		s++;
	}
}

/* One class with its optional quantifier; *ps and *pp advance when the
 * walk goes on. Returns 1 to go on, 0 for done with *result set. */
static int match_class(pat *ms, const char **ps, const char **pp, const char **result)
{
	const char *s = *ps, *p = *pp;
	const char *ep = class_end(ms, p);
	char q = *ep;
	if (!single(ms, s, p, ep)) {
		*pp = ep + 1;
		*result = NULL;
		return q == '*' || q == '?' || q == '-';
	}
	switch (q) {
	case '?':
		if ((*result = match(ms, s + 1, ep + 1)) != NULL)
			return 0;
		*pp = ep + 1;
		return 1;
	case '+': *result = expand_max(ms, s + 1, p, ep); return 0;
	case '*': *result = expand_max(ms, s, p, ep); return 0;
	case '-': *result = expand_min(ms, s, p, ep); return 0;
	default:
		*ps = s + 1;
		*pp = ep;
		return 1;
	}
}

/* Walks the pattern from p against the subject from s; returns the end of
 * the match or NULL. */
static const char *match_seq(pat *ms, const char *s, const char *p)
{
	const char *r;
	while (p != ms->p_end) {
		tick(ms, 1);
		switch (*p) {
		case '(':
			if (p[1] == ')')
				return open_capture(ms, s, p + 2, CAP_POSITION);
			return open_capture(ms, s, p + 1, CAP_UNFINISHED);
		case ')':
			return close_capture(ms, s, p + 1);
		case '$':
			if (p + 1 == ms->p_end)
				return s == ms->src_end ? s : NULL;
			break;
		case '%':
			if (p[1] == 'b') {
				if (!(s = balance(ms, s, p + 2)))
					return NULL;
				p += 4;
				continue;
			}
			if (p[1] == 'f') {
				if (!(p = frontier(ms, s, p + 2)))
					return NULL;
				continue;
			}
			if (isdigit((unsigned char)p[1])) {
				if (!(s = back_ref(ms, s, (unsigned char)p[1])))
					return NULL;
				p += 2;
				continue;
			}
			break;
		}
		if (!match_class(ms, &s, &p, &r))
			return r;
	}
	return s;
}

static const char *match(pat *ms, const char *s, const char *p)
{
	if (ms->depth-- == 0)
		luaL_error(ms->L, "pattern too complex");
	const char *r = match_seq(ms, s, p);
	ms->depth++;
	return r;
}

static void prep(pat *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
	ms->L = L;
	ms->src = s;
	ms->src_end = s + ls;
	ms->p_end = p + lp;
	ms->steps = 0;
}

/* Before each attempt at a new position. */
static void restart(pat *ms)
{
	ms->level = 0;
	ms->depth = MAXDEPTH;
}

/* Pushes capture i; with no captures, i = 0 is the whole match s..e. */
static void push_capture(pat *ms, int i, const char *s, const char *e)
{
	if (i >= ms->level) {
		if (i != 0)
			luaL_error(ms->L, "invalid capture index %%%d", i + 1);
		lua_pushlstring(ms->L, s, (size_t)(e - s));
		return;
	}
	ptrdiff_t len = ms->cap[i].len;
	if (len == CAP_UNFINISHED)
		luaL_error(ms->L, "unfinished capture");
	else if (len == CAP_POSITION)
		lua_pushinteger(ms->L, ms->cap[i].init - ms->src + 1);
	else
		lua_pushlstring(ms->L, ms->cap[i].init, (size_t)len);
}

/* Pushes all captures (the whole match when there are none and s is not
 * NULL); returns how many. */
static int push_captures(pat *ms, const char *s, const char *e)
{
	int n = ms->level == 0 && s ? 1 : ms->level;
	luaL_checkstack(ms->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(ms, i, s, e);
	return n;
}

/* A start position from a 1-based, possibly negative argument. */
static size_t pos_start(lua_Integer pos, size_t len)
{
	if (pos > 0)
		return (size_t)pos;
	if (pos == 0 || pos < -(lua_Integer)len)
		return 1;
	return len + (size_t)pos + 1;
}

static int no_specials(const char *p, size_t lp)
{
	for (size_t i = 0; i < lp; i++)
		if (p[i] && memchr(SPECIALS, p[i], sizeof SPECIALS - 1))
			return 0;
	return 1;
}

/* Plain substring search; each candidate position is charged. */
static const char *find_plain(lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
	if (lp == 0)
		return s;
	if (lp > ls)
		return NULL;
	const char *end = s + (ls - lp) + 1; /* past the last possible start */
	long long steps = 0;
	while (s < end) {
		const char *c = memchr(s, p[0], (size_t)(end - s));
		if (!c)
			break;
		steps += 1 + (long long)(lp / 16);
		if (steps >= TICK_BATCH) {
			lsb__charge(L, steps);
			steps = 0;
		}
		if (memcmp(c + 1, p + 1, lp - 1) == 0)
			return c;
		s = c + 1;
	}
	return NULL;
}

static int find_aux(lua_State *L, int find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = pos_start(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init > ls) {
		luaL_pushfail(L);
		return 1;
	}
	if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
		const char *hit = find_plain(L, s + init, ls - init, p, lp);
		if (!hit) {
			luaL_pushfail(L);
			return 1;
		}
		lua_pushinteger(L, hit - s + 1);
		lua_pushinteger(L, (lua_Integer)(hit - s + lp));
		return 2;
	}
	pat ms;
	int anchor = *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	prep(&ms, L, s, ls, p, lp);
	const char *s1 = s + init;
	do {
		restart(&ms);
		const char *e = match(&ms, s1, p);
		if (e && !find)
			return push_captures(&ms, s1, e);
		if (e) {
			lua_pushinteger(L, s1 - s + 1);
			lua_pushinteger(L, e - s);
			return push_captures(&ms, NULL, NULL) + 2;
		}
	} while (s1++ < ms.src_end && !anchor);
	luaL_pushfail(L);
	return 1;
}

static int pat_find(lua_State *L)
{
	return find_aux(L, 1);
}

static int pat_match(lua_State *L)
{
	return find_aux(L, 0);
}

typedef struct gmatch_state {
	pat ms;
	const char *src;  /* where the next search starts */
	const char *p;
	const char *last; /* end of the last match: no empty match there */
} gmatch_state;

static int gmatch_next(lua_State *L)
{
	gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
	g->ms.L = L;
	for (const char *s = g->src; s <= g->ms.src_end; s++) {
		restart(&g->ms);
		const char *e = match(&g->ms, s, g->p);
		if (e && e != g->last) {
			g->src = g->last = e;
			return push_captures(&g->ms, s, e);
		}
	}
	return 0;
}

/* gmatch(s, pattern [, init]); '^' is no anchor here, as in Lua 5.4. The
 * subject and pattern stay alive as upvalues of the iterator. */
static int pat_gmatch(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = pos_start(luaL_optinteger(L, 3, 1), ls) - 1;
	lua_settop(L, 2);
	gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
	if (init > ls)
		init = ls + 1;
	prep(&g->ms, L, s, ls, p, lp);
	g->src = s + init;
	g->p = p;
	g->last = NULL;
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* Appends the replacement string (argument 3) with %0-%9 and %% expanded. */
static void add_template(pat *ms, luaL_Buffer *b, const char *s, const char *e)
{
	size_t l;
	const char *t = lua_tolstring(ms->L, 3, &l);
	const char *pc;
	while ((pc = memchr(t, '%', l)) != NULL) {
		luaL_addlstring(b, t, (size_t)(pc - t));
		pc++; /* the '\0' ending the string when '%' is last */
		if (*pc == '%') {
			luaL_addchar(b, '%');
		} else if (*pc == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else if (isdigit((unsigned char)*pc)) {
			push_capture(ms, *pc - '1', s, e);
			luaL_addvalue(b);
		} else {
			luaL_error(ms->L, "invalid use of '%%' in replacement string");
		}
		l -= (size_t)(pc + 1 - t);
		t = pc + 1;
	}
	luaL_addlstring(b, t, l);
}

/* Appends the replacement for match s..e; returns 1 when it changed text. */
static int add_value(pat *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
	lua_State *L = ms->L;
	if (tr == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		lua_call(L, push_captures(ms, s, e), 1);
	} else if (tr == LUA_TTABLE) {
		push_capture(ms, 0, s, e);
		lua_gettable(L, 3);
	} else {
		add_template(ms, b, s, e);
		return 1;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
		return 0;
	}
	if (!lua_isstring(L, -1))
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	luaL_addvalue(b);
	return 1;
}

static int pat_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *src = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	const char *last = NULL;
	int tr = lua_type(L, 3);
	lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	int anchor = *p == '^', changed = 0;
	lua_Integer n = 0;
	pat ms;
	luaL_Buffer b;
	luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING ||
			 tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3, "string/function/table");
	luaL_buffinit(L, &b);
	if (anchor) {
		p++;
		lp--;
	}
	prep(&ms, L, src, ls, p, lp);
	while (n < max_n) {
		restart(&ms);
		const char *e = match(&ms, src, p);
		if (e && e != last) {
			n++;
			changed |= add_value(&ms, &b, src, e, tr);
			src = last = e;
		} else if (src < ms.src_end) {
			luaL_addchar(&b, *src++);
		} else {
			break;
		}
		if (anchor)
			break;
	}
	if (!changed) {
		lua_pushvalue(L, 1);
	} else {
		luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
		luaL_pushresult(&b);
	}
	lua_pushinteger(L, n);
	return 2;
}

void lsb__open_patterns(lua_State *L)
{
	static const luaL_Reg fns[] = {{"find", pat_find}, {"match", pat_match},
		{"gmatch", pat_gmatch}, {"gsub", pat_gsub}, {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
}
