/*
 * lsb.c - the Lua sandbox: a capped allocator, a count hook for the
 * instruction budget and deadline, and the whitelisted _ENV.
 *
 * The real globals, the library tables and the registry stay out of the
 * sandbox's reach: chunks get a fresh _ENV table holding copies of the
 * allowed functions. A few library functions are wrapped because they can
 * loop in C, where the count hook never fires (string.rep of "", table
 * functions over a made-up __len, table.move over a huge range); the
 * pattern functions are replaced by a budgeted matcher (lsb_pat.c).
 */
#include "lsb.h"
#include "lsb_int.h"
#include "tend.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_EVERY 1000            /* instructions between hook calls */
#define ERROR_SLACK ((size_t)1 << 20) /* heap allowed past the cap for tracebacks */
#define OUT_CAP ((size_t)64 << 10) /* buffered print() output */
#define RANDOM_SEED 0x7e4d         /* math.random is reproducible */

static const char out_note[] = "[print output truncated at 64 KiB]\n";

enum { TRIP_NONE, TRIP_BUDGET, TRIP_DEADLINE };

struct lsb {
	lua_State *L;
	lsb_limits lim;
	size_t used;      /* heap bytes */
	size_t slack;     /* extra heap allowed while the message handler runs */
	long long count;  /* instructions (and matcher steps) in this call */
	double deadline;  /* monotonic seconds */
	int tripped;      /* TRIP_*: sticky until the outer lsb_call returns */
	int depth;        /* nested lsb_call */
	char trip_msg[96];
	lsb_print_fn print_fn;
	void *print_ud;
	char *out;        /* buffered print output, OUT_CAP + note + NUL */
	size_t out_len;
	int out_full;
};

/* Registry key of the sandbox _ENV (its address is unique). */
static const char env_key = 'E';

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The sandbox owning a state (or any of its threads): the allocator's ud. */
static lsb *lsb_from(lua_State *L)
{
	void *ud = NULL;
	lua_getallocf(L, &ud);
	return ud;
}

/* Counts every byte; refuses growth past the cap. Frees and shrinks always
 * succeed, as Lua requires. On a refusal Lua runs a full collection and
 * asks again before raising "not enough memory". */
static void *lsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	lsb *sb = ud;
	size_t old = ptr ? osize : 0;
	size_t limit = sb->lim.mem_bytes + sb->slack;
	if (nsize == 0) {
		free(ptr);
		sb->used -= old;
		return NULL;
	}
	if (nsize > old && (nsize > limit || sb->used - old > limit - nsize))
		return NULL;
	void *p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	sb->used = sb->used - old + nsize;
	return p;
}

/* Reached only by a Lua error outside any lua_pcall: a bug in tend, since
 * every entry goes through lsb_call. Lua aborts when this returns anyway;
 * saying why first is all that can be done. */
static int lsb_panic(lua_State *L)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
	fprintf(stderr, "tend: Lua error outside lua_pcall (a bug in tend): %s\n", msg);
	fflush(stderr);
	abort();
}

static void lsb_hook(lua_State *L, lua_Debug *ar);

/* Raises once the budget or deadline is spent, and from then on at every
 * instruction of this thread: a pcall inside the sandbox may catch the
 * error, but the code around it gets no further. level is the stack level
 * of the Lua code to blame (0 in a hook, 1 in a C function). */
static void check_limits(lua_State *L, lsb *sb, int level)
{
	if (!sb->tripped) {
		if (sb->count > sb->lim.instructions) {
			sb->tripped = TRIP_BUDGET;
			snprintf(sb->trip_msg, sizeof sb->trip_msg,
				 "instruction budget exceeded (%lld per call)",
				 sb->lim.instructions);
		} else if (now_s() > sb->deadline) {
			sb->tripped = TRIP_DEADLINE;
			snprintf(sb->trip_msg, sizeof sb->trip_msg,
				 "deadline exceeded (%g s per call)", sb->lim.deadline_s);
		} else {
			return;
		}
	}
	lua_sethook(L, lsb_hook, LUA_MASKCOUNT, 1);
	luaL_where(L, level);
	lua_pushstring(L, sb->trip_msg);
	lua_concat(L, 2);
	lua_error(L);
}

/* Threads inherit the hook from the thread that creates them, so it runs
 * inside coroutines too; the count is per thread. */
static void lsb_hook(lua_State *L, lua_Debug *ar)
{
	lsb *sb = lsb_from(L);
	int every = lua_gethookcount(L);
	(void)ar;
	sb->count += every;
	if (!sb->tripped && every != HOOK_EVERY)
		lua_sethook(L, lsb_hook, LUA_MASKCOUNT, HOOK_EVERY);
	check_limits(L, sb, 0);
}

void lsb__charge(lua_State *L, long long steps)
{
	lsb *sb = lsb_from(L);
	sb->count += steps;
	check_limits(L, sb, 1);
}

/* Is there Lua code at stack level 1 or above? */
static int has_lua_frame(lua_State *L)
{
	lua_Debug ar;
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "S", &ar);
		if (strcmp(ar.what, "C") != 0)
			return 1;
	}
	return 0;
}

/* Message handler: the message plus a traceback, when the stack holds any
 * Lua code (host C functions check values and raise with nothing but
 * "[C]: in ?" to show). Error objects that are not strings are described,
 * not converted: __tostring would run sandbox code inside the handler. */
static int lsb_msgh(lua_State *L)
{
	lsb *sb = lsb_from(L);
	const char *msg;
	sb->slack = ERROR_SLACK;
	if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
		msg = lua_tostring(L, 1);
	else
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	if (has_lua_frame(L))
		luaL_traceback(L, L, msg, 1);
	else
		lua_pushstring(L, msg);
	return 1;
}

static int call_error(lsb *sb, int status)
{
	lua_State *L = sb->L;
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
							  : "(no message)";
	int code = TEND_EINVAL;
	if (sb->tripped) {
		code = TEND_ETIMEOUT;
		if (!strstr(msg, sb->trip_msg))
			tend_error_set(code, "%s; then: %s", sb->trip_msg, msg);
		else
			tend_error_set(code, "%s", msg);
	} else if (status == LUA_ERRMEM) {
		code = tend_error_set(TEND_ENOMEM, "%s (the sandbox heap cap of %zu bytes was reached)",
				      msg, sb->lim.mem_bytes);
	} else {
		tend_error_set(code, "%s", msg);
	}
	lua_pop(L, 1);
	return code;
}

int lsb_call(lsb *sb, int nargs, int nresults)
{
	lua_State *L = sb->L;
	int fn = lua_gettop(L) - nargs;
	if (nargs < 0 || fn < 1)
		return tend_error_set(TEND_EINVAL, "lsb_call: %d arguments but %d values on the stack",
				      nargs, lua_gettop(L));
	if (!lua_checkstack(L, 2)) {
		lua_settop(L, fn - 1);
		return tend_error_set(TEND_ENOMEM, "lsb_call: no room to grow the Lua stack");
	}
	if (sb->depth++ == 0) {
		sb->count = 0;
		sb->tripped = TRIP_NONE;
		sb->deadline = now_s() + sb->lim.deadline_s;
		lua_sethook(L, lsb_hook, LUA_MASKCOUNT, HOOK_EVERY);
	}
	lua_pushcfunction(L, lsb_msgh);
	lua_insert(L, fn);
	int status = lua_pcall(L, nargs, nresults, fn);
	lua_remove(L, fn);
	int rc = status == LUA_OK ? 0 : call_error(sb, status);
	if (rc == 0 && sb->depth == 1 && sb->tripped) {
		/* a pcall or coroutine.resume inside caught the limit error */
		lua_settop(L, fn - 1);
		rc = tend_error_set(TEND_ETIMEOUT, "%s (caught inside the sandbox, which then returned)",
				    sb->trip_msg);
	}
	if (--sb->depth == 0) {
		sb->slack = 0;
		sb->tripped = TRIP_NONE;
	}
	return rc;
}

int lsb_cpcall(lsb *sb, lua_CFunction fn, void *ud, int nresults)
{
	if (!lua_checkstack(sb->L, 4))
		return tend_error_set(TEND_ENOMEM, "lsb_cpcall: no room to grow the Lua stack");
	lua_pushcfunction(sb->L, fn);
	lua_pushlightuserdata(sb->L, ud);
	return lsb_call(sb, 1, nresults);
}

/* ---- the functions the sandbox gets in place of the standard ones ---- */

static void emit(lsb *sb, const char *s, size_t len)
{
	if (sb->print_fn) {
		sb->print_fn(s, len, sb->print_ud);
		return;
	}
	if (sb->out_full)
		return;
	if (!sb->out && !(sb->out = malloc(OUT_CAP + sizeof out_note)))
		return;
	if (sb->out_len + len > OUT_CAP) {
		memcpy(sb->out + sb->out_len, out_note, sizeof out_note);
		sb->out_len += sizeof out_note - 1;
		sb->out_full = 1;
		return;
	}
	memcpy(sb->out + sb->out_len, s, len);
	sb->out_len += len;
	sb->out[sb->out_len] = '\0';
}

static int sb_print(lua_State *L)
{
	int n = lua_gettop(L);
	size_t len;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_addchar(&b, '\n');
	luaL_pushresult(&b);
	const char *s = lua_tolstring(L, -1, &len);
	emit(lsb_from(L), s, len);
	return 0;
}

static int is_bytecode(const char *s, size_t len)
{
	return len > 0 && s[0] == LUA_SIGNATURE[0];
}

/* load(chunk [, name [, mode [, env]]]): strings only, always text mode.
 * Without env the chunk gets the sandbox _ENV, not the real globals; an
 * env given is honoured, as every value the sandbox can name is its own. */
static int sb_load(lua_State *L)
{
	size_t len;
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only string chunks are allowed in the sandbox (got %s)",
				  luaL_typename(L, 1));
	const char *s = lua_tolstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, s);
	luaL_optstring(L, 3, "t"); /* mode: ignored, always "t" */
	if (is_bytecode(s, len)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "load: bytecode is not allowed in the sandbox (text chunks only)");
		return 2;
	}
	if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
		luaL_pushfail(L);
		lua_insert(L, -2);
		return 2;
	}
	if (lua_isnone(L, 4))
		lua_rawgetp(L, LUA_REGISTRYINDEX, &env_key);
	else
		lua_pushvalue(L, 4);
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return 1;
}

/* collectgarbage: "count" tells the heap size; "collect" and "step" are
 * no-ops (a full collection of a large heap is a C loop the hook cannot
 * interrupt); stopping or tuning the collector is refused. */
static int sb_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "count") == 0) {
		lua_pushnumber(L, (lua_Number)lsb_from(L)->used / 1024.0);
		return 1;
	}
	if (strcmp(opt, "collect") == 0) {
		lua_pushinteger(L, 0);
		return 1;
	}
	if (strcmp(opt, "step") == 0 || strcmp(opt, "isrunning") == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	return luaL_error(L, "collectgarbage: option '%s' is not allowed in the sandbox", opt);
}

/* setmetatable as in the base library, refusing __gc: a finalizer would
 * run sandbox code at collection time, outside any lsb_call. */
static int sb_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* Calls the wrapped original (upvalue 1) with all arguments. */
static int call_original(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* string.rep of an empty string and separator loops n times in C doing
 * nothing; answer it directly. */
static int sb_rep(lua_State *L)
{
	size_t l, lsep;
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n > 0 && l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	return call_original(L);
}

/* Most elements a real array could have under the heap cap. */
static lua_Integer max_len(lua_State *L)
{
	return (lua_Integer)(lsb_from(L)->lim.mem_bytes / 16);
}

/* table.insert/remove/sort/concat loop in C up to #t; with a __len
 * metamethod #t is made up and the loop need not touch memory. */
static int sb_tlen(lua_State *L)
{
	if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL) {
		lua_pop(L, 1);
		lua_Integer n = luaL_len(L, 1);
		if (n > max_len(L))
			return luaL_error(L, "%s: length %I is more than the sandbox allows (%I)",
					  lua_tostring(L, lua_upvalueindex(2)), n, max_len(L));
	}
	return call_original(L);
}

/* table.move(a1, f, e, t): moving nils costs no memory, so bound the range. */
static int sb_tmove(lua_State *L)
{
	lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
	if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= (lua_Unsigned)max_len(L))
		return luaL_error(L, "table.move: range of %I elements is more than the sandbox allows (%I)",
				  (lua_Integer)((lua_Unsigned)e - (lua_Unsigned)f + 1), max_len(L));
	return call_original(L);
}

/* ---- building the sandbox ---- */

/* Replaces t[name] (t on top) with fn closing over the original (and name). */
static void wrap_field(lua_State *L, const char *name, lua_CFunction fn, const char *label)
{
	lua_getfield(L, -1, name);
	int n = 1;
	if (label) {
		lua_pushstring(L, label);
		n = 2;
	}
	lua_pushcclosure(L, fn, n);
	lua_setfield(L, -2, name);
}

/* Copies the listed fields from the table at src into the table on top. */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
	src = lua_absindex(L, src);
	for (; *names; names++) {
		lua_getfield(L, src, *names);
		lua_setfield(L, -2, *names);
	}
}

/* Opens a library into the registry's loaded table only; pushes it. */
static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
	luaL_requiref(L, name, fn, 0);
}

static void add_base(lua_State *L, int env)
{
	static const char *const names[] = {"assert", "error", "ipairs", "next",
		"pairs", "pcall", "xpcall", "select", "tonumber", "tostring", "type",
		"rawequal", "rawlen", "rawget", "rawset", "getmetatable", "_VERSION", NULL};
	static const luaL_Reg own[] = {{"print", sb_print}, {"load", sb_load},
		{"collectgarbage", sb_collectgarbage}, {"setmetatable", sb_setmetatable},
		{NULL, NULL}};
	open_lib(L, LUA_GNAME, luaopen_base);
	int g = lua_gettop(L);
	lua_pushvalue(L, env);
	copy_fields(L, g, names);
	luaL_setfuncs(L, own, 0);
	lua_pushvalue(L, env);
	lua_setfield(L, -2, "_G");
	lua_pop(L, 1);
	/* The real globals are out of reach; empty the file loaders anyway. */
	lua_pushnil(L);
	lua_setfield(L, g, "dofile");
	lua_pushnil(L);
	lua_setfield(L, g, "loadfile");
	lua_pop(L, 1);
}

/* string without dump, with guarded rep and the budgeted matcher; the
 * string metatable (shared by every string of this state) keeps __index
 * on this table and hides itself from getmetatable. */
static void add_string(lua_State *L, int env)
{
	open_lib(L, LUA_STRLIBNAME, luaopen_string);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	wrap_field(L, "rep", sb_rep, NULL);
	lsb__open_patterns(L);
	lua_setfield(L, env, "string");
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
}

static void add_table(lua_State *L, int env)
{
	open_lib(L, LUA_TABLIBNAME, luaopen_table);
	wrap_field(L, "insert", sb_tlen, "table.insert");
	wrap_field(L, "remove", sb_tlen, "table.remove");
	wrap_field(L, "sort", sb_tlen, "table.sort");
	wrap_field(L, "concat", sb_tlen, "table.concat");
	wrap_field(L, "move", sb_tmove, NULL);
	lua_getfield(L, -1, "unpack");
	lua_setfield(L, env, "unpack");
	lua_setfield(L, env, "table");
}

/* math with a fixed seed and no randomseed: runs are reproducible. */
static void add_math(lua_State *L, int env)
{
	open_lib(L, LUA_MATHLIBNAME, luaopen_math);
	lua_getfield(L, -1, "randomseed");
	lua_pushinteger(L, RANDOM_SEED);
	lua_call(L, 1, 0);
	lua_pushnil(L);
	lua_setfield(L, -2, "randomseed");
	lua_setfield(L, env, "math");
}

static void add_os(lua_State *L, int env)
{
	static const char *const names[] = {"clock", "time", "date", NULL};
	open_lib(L, LUA_OSLIBNAME, luaopen_os);
	lua_newtable(L);
	copy_fields(L, -2, names);
	lua_setfield(L, env, "os");
	lua_pop(L, 1);
}

static int setup(lua_State *L)
{
	lua_newtable(L);
	int env = lua_gettop(L);
	add_base(L, env);
	add_string(L, env);
	add_table(L, env);
	add_math(L, env);
	add_os(L, env);
	open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
	lua_setfield(L, env, "utf8");
	open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
	lua_setfield(L, env, "coroutine");
	lua_pushvalue(L, env);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);
	return 0;
}

static int check_limits_arg(const lsb_limits *lim)
{
	if (lim && (lim->instructions < 0 || !(lim->deadline_s >= 0)))
		return tend_error_set(TEND_EINVAL, "lsb: negative instruction budget or deadline");
	return 0;
}

int lsb_new(lsb **out, const lsb_limits *lim)
{
	lsb *sb = NULL;
	int rc = check_limits_arg(lim);
	*out = NULL;
	if (rc < 0)
		goto done;
	if (!(sb = calloc(1, sizeof *sb))) {
		rc = tend_error_set(TEND_ENOMEM, "lsb: out of memory");
		goto done;
	}
	if (lim)
		sb->lim = *lim;
	if (!sb->lim.mem_bytes)
		sb->lim.mem_bytes = LSB_DEFAULT_MEM;
	if (!sb->lim.instructions)
		sb->lim.instructions = LSB_DEFAULT_INSTRUCTIONS;
	if (!(sb->lim.deadline_s > 0))
		sb->lim.deadline_s = LSB_DEFAULT_DEADLINE_S;
	if (!(sb->L = lua_newstate(lsb_alloc, sb))) {
		rc = tend_error_set(TEND_ENOMEM, "lsb: a Lua state does not fit in %zu bytes",
				    sb->lim.mem_bytes);
		goto done;
	}
	lua_atpanic(sb->L, lsb_panic);
	if ((rc = lsb_cpcall(sb, setup, NULL, 0)) < 0) {
		tend_error_wrap(rc, "lsb: opening the sandbox libraries");
		goto done;
	}
	*out = sb;
	sb = NULL;
done:
	lsb_free(sb);
	return rc;
}

void lsb_free(lsb *sb)
{
	if (!sb)
		return;
	if (sb->L)
		lua_close(sb->L);
	free(sb->out);
	free(sb);
}

lua_State *lsb_state(lsb *sb)
{
	return sb->L;
}

void lsb_push_env(lsb *sb)
{
	lua_rawgetp(sb->L, LUA_REGISTRYINDEX, &env_key);
}

int lsb_load(lsb *sb, const char *chunkname, const char *src, size_t len)
{
	lua_State *L = sb->L;
	char name[256];
	if (chunkname[0] == '@' || chunkname[0] == '=')
		snprintf(name, sizeof name, "%s", chunkname);
	else
		snprintf(name, sizeof name, "@%s", chunkname);
	if (is_bytecode(src, len))
		return tend_error_set(TEND_EINVAL, "%s: bytecode is not allowed in the sandbox (text chunks only)",
				      name + 1);
	if (!lua_checkstack(L, 3))
		return tend_error_set(TEND_ENOMEM, "lsb_load: no room to grow the Lua stack");
	int status = luaL_loadbufferx(L, src, len, name, "t");
	if (status != LUA_OK)
		return call_error(sb, status);
	lsb_push_env(sb);
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return lsb_call(sb, 0, LUA_MULTRET);
}

void lsb_set_print(lsb *sb, lsb_print_fn fn, void *ud)
{
	sb->print_fn = fn;
	sb->print_ud = ud;
}

const char *lsb_output(const lsb *sb, size_t *len)
{
	if (len)
		*len = sb->out ? sb->out_len : 0;
	return sb->out ? sb->out : "";
}

void lsb_output_clear(lsb *sb)
{
	sb->out_len = 0;
	sb->out_full = 0;
	if (sb->out)
		sb->out[0] = '\0';
}

size_t lsb_mem_used(const lsb *sb)
{
	return sb->used;
}
