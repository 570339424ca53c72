/*
 * umon.c - running monitors.lua (see umon.h).
 */
#include "umon.h"
#include "fsutil.h"
#include "lsb.h"
#include "tend.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct umon {
	lsb *sb;
	mon_sample *batch;
	int n;
};

int umon_open(umon **out, const char *dir)
{
	char path[PATH_MAX], *src = NULL;
	size_t len;
	umon *u = NULL;
	int rc;
	*out = NULL;
	snprintf(path, sizeof path, "%s/monitors.lua", dir);
	if (!fsu_exists(path))
		return 0;
	if ((rc = fsu_read_file(&src, &len, path, 1 << 20)) < 0)
		return rc;
	if (!(u = calloc(1, sizeof *u)) || !(u->batch = calloc(UMON_BATCH_MAX, sizeof *u->batch))) {
		rc = tend_error_set(TEND_ENOMEM, "user monitors: out of memory");
		goto fail;
	}
	if ((rc = lsb_new(&u->sb, NULL)) < 0 ||
	    (rc = lsb_load(u->sb, "monitors.lua", src, len)) < 0)
		goto fail;
	lua_State *L = lsb_state(u->sb);
	if (lua_gettop(L) < 1 || !lua_istable(L, -1)) {
		rc = tend_error_set(TEND_EINVAL, "must return a table with check()");
		goto fail;
	}
	lua_getfield(L, -1, "check");
	bool has_check = lua_isfunction(L, -1);
	lua_pop(L, 1);
	if (!has_check) {
		rc = tend_error_set(TEND_EINVAL, "M.check must be a function");
		goto fail;
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "tend.monitors");
	lua_settop(L, 0);
	free(src);
	*out = u;
	return 0;
fail:
	free(src);
	umon_free(u);
	return tend_error_wrap(rc, "%s", path);
}

void umon_free(umon *u)
{
	if (!u)
		return;
	lsb_free(u->sb);
	free(u->batch);
	free(u);
}

void umon_add(umon *u, const mon_sample *s)
{
	if (!u)
		return;
	if (u->n == UMON_BATCH_MAX) {
		memmove(u->batch, u->batch + 1, (UMON_BATCH_MAX - 1) * sizeof *u->batch);
		u->n--;
	}
	u->batch[u->n] = *s;
	u->batch[u->n].moe = NULL; /* not kept: it points into the caller's buffer */
	u->batch[u->n].n_moe = 0;
	u->n++;
}

static void field(lua_State *L, const char *k, double v, bool present)
{
	if (isnan(v) && !present)
		return;
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static void push_sample(lua_State *L, const mon_sample *s)
{
	static const char *const types[] = {"step", "eval", "heartbeat"};
	lua_createtable(L, 0, 9);
	lua_pushinteger(L, s->step);
	lua_setfield(L, -2, "step");
	lua_pushstring(L, types[s->type <= MON_SAMPLE_HEARTBEAT ? s->type : 2]);
	lua_setfield(L, -2, "type");
	field(L, "loss", s->loss, s->present & MON_F_LOSS);
	field(L, "grad_norm", s->grad_norm, s->present & MON_F_GRAD_NORM);
	field(L, "lr", s->lr, s->present & MON_F_LR);
	field(L, "val_loss", s->val_loss, s->present & MON_F_VAL_LOSS);
	field(L, "tokens_per_s", s->tokens_per_s, false);
	field(L, "step_time_s", s->step_time_s, false);
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 40)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

/* Reads the incident table at the top of the stack into inc. */
static int read_incident(lua_State *L, mon_incident *inc, long last_step, int i)
{
	memset(inc, 0, sizeof *inc);
	inc->kind = MON_USER;
	inc->severity = MON_WARNING;
	inc->value = inc->baseline = inc->threshold = NAN;
	if (!lua_istable(L, -1))
		return tend_error_set(TEND_EINVAL, "check(): incident %d is not a table", i);
	lua_getfield(L, -1, "kind");
	const char *kind = lua_tostring(L, -1);
	if (!kind || !valid_name(kind)) {
		lua_pop(L, 1);
		return tend_error_set(TEND_EINVAL, "check(): incident %d: kind must be 1-40 of "
				      "[a-z0-9_]", i);
	}
	snprintf(inc->signature, sizeof inc->signature, "user:%s", kind);
	lua_pop(L, 1);
	lua_getfield(L, -1, "severity");
	const char *sev = lua_tostring(L, -1);
	if (sev && !strcmp(sev, "critical"))
		inc->severity = MON_CRITICAL;
	else if (sev && !strcmp(sev, "info"))
		inc->severity = MON_INFO;
	else if (sev && strcmp(sev, "warning") != 0) {
		lua_pop(L, 1);
		return tend_error_set(TEND_EINVAL, "check(): incident %d: severity must be info, "
				      "warning or critical", i);
	}
	lua_pop(L, 1);
	lua_getfield(L, -1, "step");
	inc->last_step = lua_isinteger(L, -1) ? (long)lua_tointeger(L, -1) : last_step;
	lua_pop(L, 1);
	lua_getfield(L, -1, "onset_step");
	inc->onset_step = lua_isinteger(L, -1) ? (long)lua_tointeger(L, -1) : inc->last_step;
	lua_pop(L, 1);
	lua_getfield(L, -1, "summary");
	snprintf(inc->summary, sizeof inc->summary, "%s: %s", inc->signature,
		 lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no summary)");
	lua_pop(L, 1);
	return 0;
}

int umon_flush(umon *u, mon_emit_fn emit, void *ud)
{
	if (!u || u->n == 0)
		return 0;
	lua_State *L = lsb_state(u->sb);
	long last = u->batch[u->n - 1].step;
	int rc;
	lua_settop(L, 0);
	lua_getfield(L, LUA_REGISTRYINDEX, "tend.monitors");
	lua_getfield(L, -1, "check");
	lua_remove(L, -2);
	lua_createtable(L, u->n, 0);
	for (int i = 0; i < u->n; i++) {
		push_sample(L, &u->batch[i]);
		lua_rawseti(L, -2, i + 1);
	}
	u->n = 0;
	if ((rc = lsb_call(u->sb, 1, 1)) < 0)
		return tend_error_wrap(rc, "monitors.lua check()");
	if (lua_isnil(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		return tend_error_set(TEND_EINVAL, "monitors.lua check(): must return nil or a list");
	lua_Integer n = luaL_len(L, -1);
	if (n > UMON_INCIDENTS_MAX)
		return tend_error_set(TEND_EINVAL, "monitors.lua check(): %lld incidents in one "
				      "call (at most %d)", (long long)n, UMON_INCIDENTS_MAX);
	for (lua_Integer i = 1; i <= n; i++) {
		mon_incident inc;
		lua_rawgeti(L, -1, i);
		rc = read_incident(L, &inc, last, (int)i);
		lua_pop(L, 1);
		if (rc < 0)
			return tend_error_wrap(rc, "monitors.lua");
		if (emit && (rc = emit(&inc, ud)) < 0)
			return rc;
	}
	lua_settop(L, 0);
	return 0;
}
