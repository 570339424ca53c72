/*
 * scf.c - the scaffold host: loads a scaffold directory into an lsb
 * sandbox, validates it against scaffold API 1, and answers the trainer's
 * per-step questions (lr, clip, coeffs, on_step) with checked values.
 *
 * Everything that touches the Lua state runs inside lsb_cpcall: building
 * the metrics table or reading a field can raise once the heap is at its
 * cap, and a raise must land in lua_pcall. The scaffold table S lives in
 * the registry, out of the sandbox's reach but read afresh on each call,
 * so a scaffold may replace its own functions as it runs.
 */
#include "scf.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 64

struct scf {
	char *dir;
	lsb_limits lim;
	bool has_lim;
	lsb *sb;
	lsb_print_fn print_fn;
	void *print_ud;
};

/* Registry key of S, and the mark of a module being imported. */
static const char s_key = 'S';
static const char importing = 'I';

/* Reads dir/name into a malloc'd NUL-terminated buffer. Refuses links and
 * anything not a regular file: the scaffold repository is model-writable,
 * and a link could point a syntax error message at any file. Returns 0 or
 * a TEND_E* code with the message in err. */
static int read_text(const char *dir, const char *name, char **out, size_t *len,
		     char *err, size_t cap)
{
	char path[PATH_MAX];
	struct stat st;
	char *buf = NULL;
	int rc = 0, fd = -1;
	*out = NULL;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		rc = errno == ENOENT ? TEND_ENOTFOUND : TEND_EIO;
		snprintf(err, cap, "%s: %s", name, errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SCF_FILE_MAX) {
		rc = TEND_EINVAL;
		snprintf(err, cap, "%s: %s", name, S_ISREG(st.st_mode) ?
			 "larger than 1 MiB" : "not a regular file");
		goto done;
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		rc = TEND_ENOMEM;
		snprintf(err, cap, "%s: out of memory", name);
		goto done;
	}
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		rc = TEND_EIO;
		snprintf(err, cap, "%s: short read", name);
		goto done;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	*out = buf;
	buf = NULL;
done:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* import(name): runs name.lua from the scaffold directory once, in the
 * sandbox _ENV, and returns (and caches) its first result, or true.
 * Upvalues: the directory, the cache table, the sandbox _ENV. */
static int import_module(lua_State *L)
{
	size_t n, len;
	char err[512], file[NAME_MAX_LEN + 8];
	char *src;
	const char *name = luaL_checklstring(L, 1, &n);
	if (!valid_name(name, n))
		return luaL_error(L, "import: bad module name '%s' (want 1-64 of [a-z0-9_]: "
				  "a file of the scaffold directory, without .lua)", name);
	lua_settop(L, 1);
	if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL) {
		if (lua_touserdata(L, -1) == &importing)
			return luaL_error(L, "import: '%s' is being imported already "
					  "(an import cycle, or its first import failed)", name);
		return 1;
	}
	lua_pop(L, 1);
	snprintf(file, sizeof file, "%s.lua", name);
	if (read_text(lua_tostring(L, lua_upvalueindex(1)), file, &src, &len, err, sizeof err) < 0)
		return luaL_error(L, "import: %s", err);
	lua_pushfstring(L, "@%s", file);
	int status = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
	free(src);
	if (status != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, lua_upvalueindex(3));
	lua_setupvalue(L, -2, 1);
	lua_pushlightuserdata(L, (void *)&importing);
	lua_setfield(L, lua_upvalueindex(2), name);
	lua_call(L, 0, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, lua_upvalueindex(2), name);
	return 1;
}

typedef struct load_ctx {
	lsb *sb;
	const char *dir;
} load_ctx;

static int install_import(lua_State *L)
{
	load_ctx *c = lua_touserdata(L, 1);
	lsb_push_env(c->sb);
	lua_pushstring(L, c->dir);
	lua_newtable(L);
	lsb_push_env(c->sb);
	lua_pushcclosure(L, import_module, 3);
	lua_setfield(L, -2, "import");
	return 0;
}

/* "nil", "a string", "a table"...: for messages about a value's type. */
static const char *a_type(lua_State *L, int idx)
{
	static const char *const phrase[] = {"nil", "a boolean", "a light userdata",
		"a number", "a string", "a table", "a function", "a userdata", "a thread"};
	int t = lua_type(L, idx);
	return t >= LUA_TNIL && t <= LUA_TTHREAD ? phrase[t] : "no value";
}

/* S.field (S at t) must have the type; an optional field may be nil. */
static void need(lua_State *L, int t, const char *field, int type, bool optional)
{
	int got = lua_getfield(L, t, field);
	if (got != type && !(optional && got == LUA_TNIL))
		luaL_error(L, "scaffold.lua: S.%s is %s, want a %s", field, a_type(L, -1),
			   lua_typename(L, type));
	lua_pop(L, 1);
}

/* Checks S (argument 1) against API 1 and keeps it in the registry. */
static int adopt(lua_State *L)
{
	static const char *const fns[] = {"lr", "clip", "coeffs", "on_step", NULL};
	if (!lua_istable(L, 1))
		return luaL_error(L, "scaffold.lua returned %s, want the scaffold table", a_type(L, 1));
	if (lua_getfield(L, 1, "api") != LUA_TNUMBER)
		return luaL_error(L, "scaffold.lua: S.api is %s, want %d", a_type(L, -1), SCF_API);
	if (lua_tonumber(L, -1) != SCF_API)
		return luaL_error(L, "scaffold.lua: S.api is %s, but this tend speaks scaffold API %d",
				  lua_tostring(L, -1), SCF_API);
	need(L, 1, "config", LUA_TTABLE, false);
	for (const char *const *f = fns; *f; f++)
		need(L, 1, *f, LUA_TFUNCTION, false);
	need(L, 1, "selftest", LUA_TFUNCTION, true);
	lua_pushvalue(L, 1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &s_key);
	return 0;
}

/* Pushes S[name], which must be a function. */
static void push_fn(lua_State *L, const char *name)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &s_key);
	if (lua_getfield(L, -1, name) != LUA_TFUNCTION)
		luaL_error(L, "S.%s is %s, want a function", name, a_type(L, -1));
	lua_remove(L, -2);
}

static int run_selftest(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &s_key);
	if (lua_getfield(L, -1, "selftest") == LUA_TNIL)
		return 0;
	lua_call(L, 0, 1);
	if (!(lua_isboolean(L, -1) && lua_toboolean(L, -1)))
		return luaL_error(L, "S.selftest returned %s, want true",
				  lua_isnoneornil(L, -1) ? "nil" : luaL_tolstring(L, -1, NULL));
	return 0;
}

/* Runs scaffold.lua and adopts its first result as S. */
static int run_entry(lsb *sb, const char *dir)
{
	lua_State *L = lsb_state(sb);
	char err[512], *src = NULL;
	size_t len;
	int base = lua_gettop(L);
	int rc = read_text(dir, "scaffold.lua", &src, &len, err, sizeof err);
	if (rc < 0)
		return tend_error_set(rc, "%s", err);
	rc = lsb_load(sb, "scaffold.lua", src, len);
	free(src);
	if (rc < 0)
		return rc;
	if (lua_gettop(L) == base)
		return tend_error_set(TEND_EINVAL, "scaffold.lua returned nothing; want the scaffold table");
	lua_settop(L, base + 1);
	lua_pushcfunction(L, adopt);
	lua_insert(L, -2);
	if ((rc = lsb_call(sb, 1, 0)) < 0)
		return rc;
	return lsb_cpcall(sb, run_selftest, NULL, 0);
}

/* A fresh sandbox holding the directory's scaffold, validated. */
static int load_state(scf *f, lsb **out)
{
	lsb *sb = NULL;
	int rc = lsb_new(&sb, f->has_lim ? &f->lim : NULL);
	*out = NULL;
	if (rc < 0)
		goto done;
	lsb_set_print(sb, f->print_fn, f->print_ud);
	load_ctx c = {sb, f->dir};
	if ((rc = lsb_cpcall(sb, install_import, &c, 0)) < 0)
		goto done;
	if ((rc = run_entry(sb, f->dir)) < 0)
		goto done;
	*out = sb;
	sb = NULL;
done:
	lsb_free(sb);
	if (rc < 0)
		tend_error_wrap(rc, "scaffold %s", f->dir);
	return rc;
}

int scf_open(scf **out, const char *dir, const lsb_limits *lim)
{
	scf *f = calloc(1, sizeof *f);
	int rc = 0;
	*out = NULL;
	if (!f || !(f->dir = strdup(dir))) {
		rc = tend_error_set(TEND_ENOMEM, "scaffold %s: out of memory", dir);
		goto done;
	}
	if (lim) {
		f->lim = *lim;
		f->has_lim = true;
	}
	if ((rc = load_state(f, &f->sb)) < 0)
		goto done;
	*out = f;
	f = NULL;
done:
	scf_free(f);
	return rc;
}

void scf_free(scf *f)
{
	if (!f)
		return;
	lsb_free(f->sb);
	free(f->dir);
	free(f);
}

int scf_reload(scf *f)
{
	lsb *sb;
	int rc = load_state(f, &sb);
	if (rc < 0)
		return rc;
	lsb_free(f->sb);
	f->sb = sb;
	return 0;
}

/* ---- per-step calls: each runs in lsb_cpcall with a call_ctx ---- */

typedef struct call_ctx {
	long step, total;
	const scf_metrics *m;
	const char *key;
	double def;
	double out[2];
	scf_actions act;
} call_ctx;

/* A finite number >= 0 at idx, or an error naming where it came from:
 * what is a lua_pushfstring format ("S.lr(%I, %I) returned") of a and b,
 * formatted only on failure (this runs several times per training step). */
static double checked_num(lua_State *L, int idx, const char *what, lua_Integer a,
			  lua_Integer b)
{
	int t = lua_type(L, idx);
	double v = t == LUA_TNUMBER ? lua_tonumber(L, idx) : 0;
	idx = lua_absindex(L, idx);
	if (t == LUA_TNUMBER && isfinite(v) && v >= 0)
		return v;
	lua_pushfstring(L, what, a, b);
	if (t != LUA_TNUMBER)
		luaL_error(L, "%s %s, want a number", lua_tostring(L, -1), a_type(L, idx));
	luaL_error(L, "%s %s, want a finite number >= 0", lua_tostring(L, -1),
		   isnan(v) ? "NaN" : lua_tostring(L, idx));
	return 0;
}

static int op_lr(lua_State *L)
{
	call_ctx *c = lua_touserdata(L, 1);
	push_fn(L, "lr");
	lua_pushinteger(L, c->step);
	lua_pushinteger(L, c->total);
	lua_call(L, 2, 1);
	c->out[0] = checked_num(L, -1, "S.lr(%I, %I) returned", c->step, c->total);
	return 0;
}

static int op_clip(lua_State *L)
{
	call_ctx *c = lua_touserdata(L, 1);
	push_fn(L, "clip");
	lua_pushinteger(L, c->step);
	lua_call(L, 1, 1);
	c->out[0] = checked_num(L, -1, "S.clip(%I) returned", c->step, 0);
	return 0;
}

static int op_coeffs(lua_State *L)
{
	call_ctx *c = lua_touserdata(L, 1);
	push_fn(L, "coeffs");
	lua_pushinteger(L, c->step);
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "S.coeffs(%I) returned %s, want a table {aux=, z=}",
				  (lua_Integer)c->step, a_type(L, -1));
	lua_getfield(L, -1, "aux");
	c->out[0] = checked_num(L, -1, "S.coeffs(%I).aux is", c->step, 0);
	lua_getfield(L, -2, "z");
	c->out[1] = checked_num(L, -1, "S.coeffs(%I).z is", c->step, 0);
	return 0;
}

static void set_num(lua_State *L, const char *k, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static void push_metrics(lua_State *L, const scf_metrics *m)
{
	lua_createtable(L, 0, 9);
	lua_pushinteger(L, m->step);
	lua_setfield(L, -2, "step");
	set_num(L, "loss", m->loss);
	set_num(L, "grad_norm", m->grad_norm);
	set_num(L, "lr", m->lr);
	set_num(L, "tokens_per_s", m->tokens_per_s);
	set_num(L, "step_time_s", m->step_time_s);
	if (m->has_val_loss)
		set_num(L, "val_loss", m->val_loss);
	lua_createtable(L, m->n_moe, 0);
	for (int i = 0; i < m->n_moe; i++) {
		lua_createtable(L, 0, 3);
		set_num(L, "max_over_mean", m->moe[i].max_over_mean);
		set_num(L, "entropy", m->moe[i].entropy);
		set_num(L, "dropped", m->moe[i].dropped);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "moe");
}

/* One key of the actions table (key at -2, value at -1) into a. */
static void parse_action(lua_State *L, scf_actions *a)
{
	const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
	int t = lua_type(L, -1);
	if (!strcmp(k, "skip")) {
		int whole = 0;
		lua_Integer n = t == LUA_TNUMBER ? lua_tointegerx(L, -1, &whole) : 0;
		if (!whole || n < 0 || n > INT_MAX)
			luaL_error(L, "S.on_step: actions.skip is %s, want a whole number >= 0",
				   luaL_tolstring(L, -1, NULL));
		a->skip = (long)n;
	} else if (!strcmp(k, "checkpoint") || !strcmp(k, "stop")) {
		if (t != LUA_TBOOLEAN)
			luaL_error(L, "S.on_step: actions.%s is %s, want a boolean", k, a_type(L, -1));
		if (k[0] == 's')
			a->stop = lua_toboolean(L, -1);
		else
			a->checkpoint = lua_toboolean(L, -1);
	} else if (!strcmp(k, "reason")) {
		if (t != LUA_TSTRING)
			luaL_error(L, "S.on_step: actions.reason is %s, want a string", a_type(L, -1));
		snprintf(a->reason, sizeof a->reason, "%s", lua_tostring(L, -1));
	} else {
		luaL_error(L, "S.on_step: unknown action '%s' (API %d knows skip, checkpoint, stop, reason)",
			   luaL_tolstring(L, -2, NULL), SCF_API);
	}
}

static int op_on_step(lua_State *L)
{
	call_ctx *c = lua_touserdata(L, 1);
	push_fn(L, "on_step");
	push_metrics(L, c->m);
	lua_call(L, 1, 1);
	int t = lua_type(L, -1);
	if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
		return 0;
	if (t != LUA_TTABLE)
		return luaL_error(L, "S.on_step returned %s, want nil or an actions table",
				  a_type(L, -1));
	int actions = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, actions)) {
		parse_action(L, &c->act);
		lua_settop(L, actions + 1);
	}
	return 0;
}

static int op_config(lua_State *L)
{
	call_ctx *c = lua_touserdata(L, 1);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &s_key);
	if (lua_getfield(L, -1, "config") != LUA_TTABLE)
		return luaL_error(L, "S.config is %s, want a table", a_type(L, -1));
	int t = lua_getfield(L, -1, c->key);
	if (t == LUA_TNIL)
		c->out[0] = c->def;
	else if (t == LUA_TNUMBER)
		c->out[0] = lua_tonumber(L, -1);
	else
		return luaL_error(L, "S.config.%s is %s, want a number", c->key, a_type(L, -1));
	return 0;
}

int scf_lr(scf *f, long step, long total, double *out)
{
	call_ctx c = {.step = step, .total = total};
	int rc = lsb_cpcall(f->sb, op_lr, &c, 0);
	*out = rc < 0 ? 0 : c.out[0];
	return rc;
}

int scf_clip(scf *f, long step, double *out)
{
	call_ctx c = {.step = step};
	int rc = lsb_cpcall(f->sb, op_clip, &c, 0);
	*out = rc < 0 ? 0 : c.out[0];
	return rc;
}

int scf_coeffs(scf *f, long step, double *aux, double *z)
{
	call_ctx c = {.step = step};
	int rc = lsb_cpcall(f->sb, op_coeffs, &c, 0);
	*aux = rc < 0 ? 0 : c.out[0];
	*z = rc < 0 ? 0 : c.out[1];
	return rc;
}

int scf_on_step(scf *f, const scf_metrics *m, scf_actions *out)
{
	call_ctx c = {.m = m};
	int rc = lsb_cpcall(f->sb, op_on_step, &c, 0);
	memset(out, 0, sizeof *out);
	if (rc == 0)
		*out = c.act;
	return rc;
}

int scf_config_num(scf *f, const char *key, double def, double *out)
{
	call_ctx c = {.key = key, .def = def};
	int rc = lsb_cpcall(f->sb, op_config, &c, 0);
	*out = rc < 0 ? def : c.out[0];
	return rc;
}

void scf_set_print(scf *f, lsb_print_fn fn, void *ud)
{
	f->print_fn = fn;
	f->print_ud = ud;
	lsb_set_print(f->sb, fn, ud);
}

const char *scf_dir(const scf *f)
{
	return f->dir;
}

lsb *scf_sandbox(scf *f)
{
	return f->sb;
}
