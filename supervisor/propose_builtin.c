/*
 * propose_builtin.c - the offline proposer: the scaffold's playbook.lua,
 * run in the Lua sandbox, maps an incident to edits of the scaffold files
 * ({file, find, replace}); the host applies them to the files of the
 * context (each find must occur exactly once) and writes the unified diff
 * itself with libgit2. The result then goes through prop_parse_response
 * like a model's answer, so both kinds meet the same rules downstream.
 * The playbook is model-writable code: everything it returns is checked.
 */
#include "propose_int.h"
#include "fsutil.h"
#include "lsb.h"
#include "sha256.h"
#include "tend.h"

#include <git2.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAYBOOK_MAX (1 << 20)
#define EDITS_MAX 16

typedef struct pb_edit {
	char *file, *find, *replace;
	size_t find_len, replace_len;
} pb_edit;

/* What PB.propose said; filled inside the sandbox call, freed outside. */
typedef struct pb_run {
	const json_val *ctx;
	bool none;
	char *diagnosis, *rationale, *effect;
	double confidence;
	pb_edit edit[EDITS_MAX];
	size_t nedit;
	char err[512];
} pb_run;

static void pb_run_free(pb_run *r)
{
	free(r->diagnosis);
	free(r->rationale);
	free(r->effect);
	for (size_t i = 0; i < r->nedit; i++) {
		free(r->edit[i].file);
		free(r->edit[i].find);
		free(r->edit[i].replace);
	}
}

/* ---- inside the sandbox ---------------------------------------------------- */

/* Pushes a JSON value as a Lua value (null: nil, objects: tables by key). */
static void push_json(lua_State *L, const json_val *v)
{
	size_t len;
	luaL_checkstack(L, 4, "context too deep");
	switch (json_type(v)) {
	case JSON_BOOL:
		lua_pushboolean(L, json_bool(v));
		break;
	case JSON_NUM: {
		double d = json_num(v);
		if (d == floor(d) && fabs(d) < 9007199254740992.0)
			lua_pushinteger(L, (lua_Integer)d);
		else
			lua_pushnumber(L, d);
		break;
	}
	case JSON_STR: {
		const char *s = json_str(v, &len);
		lua_pushlstring(L, s, len);
		break;
	}
	case JSON_ARR:
		lua_createtable(L, (int)json_len(v), 0);
		for (size_t i = 0; i < json_len(v); i++) {
			push_json(L, json_at(v, i));
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_OBJ:
		lua_createtable(L, 0, (int)json_len(v));
		for (size_t i = 0; i < json_len(v); i++) {
			const char *k = json_key_at(v, i, &len);
			lua_pushlstring(L, k, len);
			push_json(L, json_at(v, i));
			lua_rawset(L, -3);
		}
		break;
	default:
		lua_pushnil(L);
	}
}

/* Copies the string field key of the table at idx into *out; optional
 * fields may be nil. Returns false with r->err set otherwise. */
static bool get_str(lua_State *L, pb_run *r, int idx, const char *what, const char *key,
		    bool optional, char **out, size_t *out_len)
{
	size_t len;
	int t = lua_getfield(L, idx, key);
	bool ok = t == LUA_TSTRING || (optional && t == LUA_TNIL);
	if (!ok)
		snprintf(r->err, sizeof r->err, "%s: %s must be a string, not %s", what, key,
			 lua_typename(L, t));
	else if (t == LUA_TSTRING) {
		const char *s = lua_tolstring(L, -1, &len);
		if (!(*out = malloc(len + 1)))
			luaL_error(L, "out of memory");
		memcpy(*out, s, len);
		(*out)[len] = '\0';
		if (out_len)
			*out_len = len;
	}
	lua_pop(L, 1);
	return ok;
}

static bool get_edit(lua_State *L, pb_run *r, size_t i)
{
	char what[64];
	pb_edit *e = &r->edit[i];
	snprintf(what, sizeof what, "playbook: edit %zu", i + 1);
	if (!lua_istable(L, -1)) {
		snprintf(r->err, sizeof r->err, "%s must be a table {file, find, replace}", what);
		return false;
	}
	r->nedit = i + 1;
	return get_str(L, r, -1, what, "file", false, &e->file, NULL) &&
	       get_str(L, r, -1, what, "find", false, &e->find, &e->find_len) &&
	       get_str(L, r, -1, what, "replace", false, &e->replace, &e->replace_len);
}

static bool get_edits(lua_State *L, pb_run *r, int idx)
{
	if (lua_getfield(L, idx, "edits") != LUA_TTABLE) {
		snprintf(r->err, sizeof r->err, "playbook: edits must be a list of tables");
		return false;
	}
	lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
	if (n < 1 || n > EDITS_MAX) {
		snprintf(r->err, sizeof r->err, "playbook: %lld edits, want 1 to %d",
			 (long long)n, EDITS_MAX);
		return false;
	}
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		if (!get_edit(L, r, (size_t)i - 1))
			return false;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return true;
}

/* Refuses keys outside the answer's schema, as the scaffold host does for
 * actions: a misspelt key fails loudly. */
static bool known_keys(lua_State *L, pb_run *r, int idx)
{
	static const char *const keys[] = {"diagnosis", "confidence", "rationale",
					   "expected_effect", "edits", NULL};
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		bool ok = false;
		for (int i = 0; k && keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok) {
			snprintf(r->err, sizeof r->err, "playbook: unknown key '%s' in the answer "
				 "(known: diagnosis, confidence, rationale, expected_effect, edits)",
				 k ? k : luaL_typename(L, -1));
			lua_pop(L, 1);
			return false;
		}
	}
	return true;
}

static void read_answer(lua_State *L, pb_run *r, int idx)
{
	if (lua_isnil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx))) {
		r->none = true;
		return;
	}
	if (!lua_istable(L, idx)) {
		snprintf(r->err, sizeof r->err, "playbook: PB.propose must return nil or a table, "
			 "not %s", luaL_typename(L, idx));
		return;
	}
	if (!known_keys(L, r, idx) ||
	    !get_str(L, r, idx, "playbook", "diagnosis", false, &r->diagnosis, NULL) ||
	    !get_str(L, r, idx, "playbook", "rationale", true, &r->rationale, NULL) ||
	    !get_str(L, r, idx, "playbook", "expected_effect", true, &r->effect, NULL))
		return;
	if (lua_getfield(L, idx, "confidence") != LUA_TNUMBER) {
		snprintf(r->err, sizeof r->err, "playbook: confidence must be a number");
		return;
	}
	r->confidence = lua_tonumber(L, -1);
	lua_pop(L, 1);
	get_edits(L, r, idx);
}

/* Runs PB.selftest() (when present) and PB.propose(ctx) in one sandbox
 * call: stack 1 = PB, 2 = the pb_run. */
static int pb_main(lua_State *L)
{
	pb_run *r = lua_touserdata(L, 2);
	if (!lua_istable(L, 1)) {
		snprintf(r->err, sizeof r->err, "playbook.lua must return a table with propose()");
		return 0;
	}
	if (lua_getfield(L, 1, "selftest") == LUA_TFUNCTION) {
		lua_call(L, 0, 1);
		if (!lua_isboolean(L, -1) || !lua_toboolean(L, -1)) {
			snprintf(r->err, sizeof r->err, "playbook: PB.selftest() returned %s, want true",
				 luaL_tolstring(L, -1, NULL));
			return 0;
		}
	}
	lua_settop(L, 2);
	if (lua_getfield(L, 1, "propose") != LUA_TFUNCTION) {
		snprintf(r->err, sizeof r->err, "playbook: PB.propose is not a function");
		return 0;
	}
	push_json(L, r->ctx);
	lua_call(L, 1, 1);
	read_answer(L, r, lua_gettop(L));
	return 0;
}

/* Loads src and runs pb_main under the sandbox's limits. */
static int run_playbook(pb_run *r, const char *src, size_t len)
{
	lsb *sb = NULL;
	int rc;
	if ((rc = lsb_new(&sb, NULL)) < 0)
		return rc;
	if ((rc = lsb_load(sb, "playbook.lua", src, len)) < 0)
		goto done;
	lua_State *L = lsb_state(sb);
	lua_settop(L, lua_gettop(L) ? 1 : 0);
	if (lua_gettop(L) == 0)
		lua_pushnil(L); /* pushing nil never allocates */
	lua_pushcfunction(L, pb_main);
	lua_insert(L, -2);
	lua_pushlightuserdata(L, r);
	rc = lsb_call(sb, 2, 0);
	if (rc == 0 && r->err[0])
		rc = tend_error_set(TEND_EINVAL, "%s", r->err);
done:
	lsb_free(sb);
	return rc;
}

/* ---- the host's side: edits into a diff --------------------------------- */

static size_t count_occ(const char *s, size_t n, const char *find, size_t fl)
{
	size_t c = 0;
	for (const char *p = s; fl && (p = memmem(p, n - (size_t)(p - s), find, fl)); p += fl)
		c++;
	return c;
}

/* Applies edit e to the text *cur of its file (replacing *cur). */
static int apply_edit(char **cur, size_t *len, const pb_edit *e, size_t i)
{
	size_t occ = count_occ(*cur, *len, e->find, e->find_len);
	if (occ != 1)
		return tend_error_set(TEND_EINVAL, "playbook: edit %zu (%s): the find text occurs "
				      "%zu times, want exactly 1: \"%.80s\"", i + 1, e->file, occ,
				      e->find);
	const char *at = memmem(*cur, *len, e->find, e->find_len);
	size_t pre = (size_t)(at - *cur), nl = *len - e->find_len + e->replace_len;
	char *n = malloc(nl + 1);
	if (!n)
		return tend_error_set(TEND_ENOMEM, "playbook: out of memory");
	memcpy(n, *cur, pre);
	memcpy(n + pre, e->replace, e->replace_len);
	memcpy(n + pre + e->replace_len, at + e->find_len, *len - pre - e->find_len);
	n[nl] = '\0';
	free(*cur);
	*cur = n;
	*len = nl;
	return 0;
}

static int file_diff(prop__text *t, const char *path, const char *old, size_t ol,
		     const char *new, size_t nl)
{
	git_patch *p = NULL;
	git_buf b = {0};
	git_diff_options o;
	int rc = 0;
	git_diff_options_init(&o, GIT_DIFF_OPTIONS_VERSION);
	if (git_patch_from_buffers(&p, old, ol, path, new, nl, path, &o) < 0 ||
	    git_patch_to_buf(&b, p) < 0)
		rc = tend_error_set(TEND_ERROR, "playbook: diff of %s: %s", path,
				    git_error_last() ? git_error_last()->message : "?");
	else
		prop__tadd(t, b.ptr, b.size);
	git_buf_dispose(&b);
	git_patch_free(p);
	return rc;
}

/* The edited copies of the context's files (NULL: untouched). */
static int apply_edits(char **text, size_t *len, const prop_ctx *ctx, const pb_run *r)
{
	for (size_t i = 0; i < r->nedit; i++) {
		const pb_edit *e = &r->edit[i];
		size_t f = 0;
		while (f < ctx->nfiles && strcmp(ctx->files[f].path, e->file) != 0)
			f++;
		if (f == ctx->nfiles)
			return tend_error_set(TEND_EINVAL, "playbook: edit %zu: \"%.200s\" is not "
					      "one of the scaffold files shown", i + 1, e->file);
		if (ctx->files[f].cut)
			return tend_error_set(TEND_EINVAL, "playbook: edit %zu: %s is shown cut "
					      "and cannot be edited", i + 1, e->file);
		if (!text[f]) {
			if (!(text[f] = strdup(ctx->files[f].text)))
				return tend_error_set(TEND_ENOMEM, "playbook: out of memory");
			len[f] = ctx->files[f].len;
		}
		int rc = apply_edit(&text[f], &len[f], e, i);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int edits_to_diff(char **out, const prop_ctx *ctx, const pb_run *r)
{
	char **text = calloc(ctx->nfiles + 1, sizeof *text);
	size_t *len = calloc(ctx->nfiles + 1, sizeof *len);
	prop__text t = {0};
	int rc = TEND_ENOMEM;
	if (!text || !len) {
		tend_error_set(rc, "playbook: out of memory");
		goto done;
	}
	if ((rc = apply_edits(text, len, ctx, r)) < 0)
		goto done;
	for (size_t f = 0; f < ctx->nfiles && rc == 0; f++)
		if (text[f] && (len[f] != ctx->files[f].len ||
				memcmp(text[f], ctx->files[f].text, len[f]) != 0))
			rc = file_diff(&t, ctx->files[f].path, ctx->files[f].text,
				       ctx->files[f].len, text[f], len[f]);
	if (rc == 0 && t.len == 0 && !t.err)
		rc = tend_error_set(TEND_EINVAL, "playbook: the edits change nothing");
	if (rc == 0)
		rc = prop__ttake(out, &t);
done:
	for (size_t f = 0; text && f < ctx->nfiles; f++)
		free(text[f]);
	free(text);
	free(len);
	free(t.s);
	return rc;
}

/* The answer as a model would have written it; then the common checks. */
static int finish(prop_result *out, const pb_run *r, const char *diff)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "diagnosis");
	jbuf_str(&b, r->diagnosis);
	jbuf_key(&b, "confidence");
	if (isfinite(r->confidence))
		jbuf_num(&b, r->confidence);
	else
		jbuf_str(&b, "not a finite number");
	jbuf_key(&b, "diff");
	jbuf_str(&b, diff);
	jbuf_key(&b, "rationale");
	jbuf_str(&b, r->rationale ? r->rationale : "");
	jbuf_key(&b, "expected_effect");
	jbuf_str(&b, r->effect ? r->effect : "");
	jbuf_obj_close(&b);
	size_t len;
	const char *text = jbuf_cstr(&b, &len);
	int rc = b.err ? tend_error_set(TEND_ENOMEM, "playbook: out of memory")
		       : prop_parse_response(out, text, len);
	if (rc == 0)
		sha256_hex(text, len, out->response_sha256);
	else
		tend_error_wrap(rc, "playbook");
	jbuf_free(&b);
	return rc;
}

static int ctx_doc(json_doc **doc, char sha[65], const prop_ctx *ctx)
{
	jbuf b;
	jbuf_init(&b);
	int rc = prop_ctx_json(ctx, &b);
	size_t len;
	const char *text = jbuf_cstr(&b, &len);
	if (rc == 0) {
		sha256_hex(text, len, sha);
		rc = json_parse(doc, text, len, NULL);
	}
	if (rc < 0)
		tend_error_set(rc, "playbook: cannot render the context");
	jbuf_free(&b);
	return rc;
}

int prop__builtin(prop_result *out, const prop_ctx *ctx, const char *dir)
{
	char path[4096], sha[65], prompt_sha[65];
	char *src = NULL, *diff = NULL;
	size_t len;
	json_doc *doc = NULL;
	pb_run r = {0};
	int rc;
	git_libgit2_init();
	snprintf(path, sizeof path, "%s/playbook.lua", dir);
	if ((rc = fsu_read_file(&src, &len, path, PLAYBOOK_MAX)) < 0)
		goto done;
	if ((rc = ctx_doc(&doc, prompt_sha, ctx)) < 0)
		goto done;
	r.ctx = json_root(doc);
	if ((rc = run_playbook(&r, src, len)) < 0) {
		tend_error_wrap(rc, "%s", path);
		goto done;
	}
	if (r.none) {
		rc = tend_error_set(TEND_ENOTFOUND, "playbook: no proposal for incident kind '%s'",
				    ctx->kind);
		goto done;
	}
	if ((rc = edits_to_diff(&diff, ctx, &r)) < 0 || (rc = finish(out, &r, diff)) < 0)
		goto done;
	sha256_hex(src, len, sha);
	snprintf(out->proposer, sizeof out->proposer, "builtin");
	snprintf(out->model, sizeof out->model, "playbook.lua@%.12s", sha);
	memcpy(out->prompt_sha256, prompt_sha, sizeof prompt_sha);
done:
	pb_run_free(&r);
	json_doc_free(doc);
	free(src);
	free(diff);
	git_libgit2_shutdown();
	return rc;
}
