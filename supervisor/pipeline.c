/*
 * pipeline.c - from incident to a branched, statically checked proposal
 * (see pipeline.h). The model's answer is hostile input: it reaches git
 * only after strict JSON parsing (propose.c), path rules from tend.yaml,
 * a clean libgit2 apply, and a sandboxed load of every patched Lua file.
 */
#include "pipe_int.h"
#include "audit.h"
#include "fsutil.h"
#include "lsb.h"
#include "propose.h"
#include "propose_int.h"
#include "scf.h"
#include "sha256.h"
#include "sup.h"
#include "tend.h"

#include <dirent.h>
#include <git2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const denied[] = {"tend.yaml", "gates*", "*.yaml", ".git*", "sandbox*"};

int pipe__open(pipe_ws *w, const pipe_opts *o)
{
	char path[PATH_MAX + 16];
	int rc;
	memset(w, 0, sizeof *w);
	w->o = o;
	snprintf(w->ws, sizeof w->ws, "%s", o->ws);
	snprintf(path, sizeof path, "%s/tend.yaml", w->ws);
	if ((rc = cfg_load(&w->cfg, path)) < 0)
		return rc;
	snprintf(path, sizeof path, "%s/tend.db", w->ws);
	if ((rc = store_open(&w->st, path, 0)) < 0)
		return rc;
	snprintf(path, sizeof path, "%s/scaffold", w->ws);
	return patch_repo_open(&w->repo, path);
}

void pipe__close(pipe_ws *w)
{
	patch_repo_free(w->repo);
	store_close(w->st);
	cfg_free(w->cfg);
}

void pipe__say(const pipe_ws *w, const char *fmt, ...)
{
	va_list ap;
	if (!w->o->log)
		return;
	va_start(ap, fmt);
	fputs("[tend] ", w->o->log);
	vfprintf(w->o->log, fmt, ap);
	fputc('\n', w->o->log);
	fflush(w->o->log);
	va_end(ap);
}

int pipe__reject(pipe_ws *w, int64_t id, const char *state, const char *reason)
{
	char subj[32], ids[24];
	snprintf(subj, sizeof subj, "proposal:%lld", (long long)id);
	snprintf(ids, sizeof ids, "%lld", (long long)id);
	int rc = store_proposal_set_state(w->st, id, state, reason);
	if (rc == 0)
		rc = audit_log(w->st, "tend", "proposal_rejected", subj, "state", state,
			       "reason", reason, (char *)NULL);
	pipe__say(w, "proposal %lld %s: %s", (long long)id, state, reason);
	return rc;
}

void pipe__notify(const pipe_ws *w)
{
	int pid = 0;
	char run[160];
	sup_lock_holder(w->ws, &pid, run, sizeof run);
	if (pid > 0 && kill(pid, SIGHUP) == 0)
		pipe__say(w, "told the supervisor of run %s to reload the scaffold", run);
}

/* ---- static checks -------------------------------------------------------- */

/* Loads one Lua file of the scaffold in a fresh sandbox and runs the
 * selftest() of the table it returns, if any. */
static int load_and_selftest(const char *dir, const char *name)
{
	char path[PATH_MAX], *src = NULL;
	size_t len;
	lsb *sb = NULL;
	int rc;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((rc = fsu_read_file(&src, &len, path, 1 << 20)) < 0)
		return rc;
	if ((rc = lsb_new(&sb, NULL)) < 0 || (rc = lsb_load(sb, name, src, len)) < 0)
		goto done;
	lua_State *L = lsb_state(sb);
	if (lua_gettop(L) >= 1 && lua_istable(L, -1)) {
		lua_getfield(L, -1, "selftest");
		if (lua_isfunction(L, -1)) {
			if ((rc = lsb_call(sb, 0, 1)) < 0)
				goto done;
			if (lua_toboolean(L, -1) == 0)
				rc = tend_error_set(TEND_EINVAL, "selftest() returned false");
		}
	}
done:
	if (rc < 0)
		tend_error_wrap(rc, "%s", name);
	lsb_free(sb);
	free(src);
	return rc;
}

static bool is_dir(const char *path, const struct dirent *e)
{
	struct stat sb;
	if (e->d_type != DT_UNKNOWN)
		return e->d_type == DT_DIR;
	return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Loads every .lua file under dir/rel but scaffold.lua, folders included:
 * the allowed paths may open one (the hooks folder by default), and a file
 * there must not reach main unchecked. */
static int check_tree(const char *dir, const char *rel)
{
	char path[PATH_MAX], sub[PATH_MAX], full[PATH_MAX * 2];
	int rc = 0;
	snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return tend_error_os("%s", path);
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		size_t n = strlen(e->d_name);
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		snprintf(full, sizeof full, "%s/%s", dir, sub);
		if (is_dir(full, e))
			rc = check_tree(dir, sub);
		else if (n >= 5 && !strcmp(e->d_name + n - 4, ".lua") && strcmp(sub, "scaffold.lua"))
			rc = load_and_selftest(dir, sub);
	}
	closedir(d);
	return rc;
}

int pipe__static_check(const char *dir)
{
	scf *s = NULL;
	int rc = scf_open(&s, dir, NULL); /* loads, validates, runs S.selftest */
	scf_free(s);
	if (rc < 0)
		return rc;
	return check_tree(dir, "");
}

/* ---- proposing -------------------------------------------------------------- */

typedef struct dup_ctx {
	const char *hash;
	int64_t self, found;
} dup_ctx;

static int find_dup(const store_proposal *p, void *ud)
{
	dup_ctx *d = ud;
	char h[65];
	if (p->id == d->self || !p->diff || d->found)
		return 0;
	sha256_hex(p->diff, strlen(p->diff), h);
	if (strcmp(h, d->hash) == 0)
		d->found = p->id;
	return 0;
}

static int record(pipe_ws *w, int64_t *id, int64_t incident, const prop_result *r)
{
	char subj[32], inc[24], conf[32];
	store_proposal p = {
		.incident_id = incident, .proposer = r->proposer, .model = r->model,
		.state = "proposed", .diagnosis = r->diagnosis, .confidence = r->confidence,
		.diff = r->diff, .rationale = r->rationale, .expected_effect = r->expected_effect,
		.prompt_sha256 = r->prompt_sha256, .response_sha256 = r->response_sha256,
	};
	int rc = store_proposal_insert(w->st, id, &p);
	if (rc < 0)
		return rc;
	snprintf(subj, sizeof subj, "proposal:%lld", (long long)*id);
	snprintf(inc, sizeof inc, "%lld", (long long)incident);
	snprintf(conf, sizeof conf, "%.2f", r->confidence);
	return audit_log(w->st, r->proposer, "proposal", subj, "incident", inc, "model",
			 r->model, "confidence", conf, "prompt_sha256", r->prompt_sha256,
			 "response_sha256", r->response_sha256, (char *)NULL);
}

static int branch(pipe_ws *w, int64_t id, int64_t incident, const prop_result *r, char *out_branch,
		  size_t cap)
{
	store_proposal *p = NULL;
	git_oid oid;
	char msg[512], commit[GIT_OID_HEXSZ + 1], pid[24], inc[24];
	int rc = store_proposal_get(w->st, &p, id);
	if (rc < 0)
		return rc;
	snprintf(out_branch, cap, "proposals/%lld-%d", (long long)incident, p->n);
	store_proposal_free(p);
	snprintf(pid, sizeof pid, "%lld", (long long)id);
	snprintf(inc, sizeof inc, "%lld", (long long)incident);
	patch_trailer tr[] = {
		{"Incident", inc}, {"Proposal", pid}, {"Proposer", r->proposer},
		{"Model", r->model}, {"Prompt-SHA256", r->prompt_sha256},
		{"Response-SHA256", r->response_sha256},
	};
	snprintf(msg, sizeof msg, "proposal %lld: %.200s", (long long)id, r->diagnosis);
	for (char *c = msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	rc = patch_apply_to_branch(&oid, w->repo, "main", r->diff, strlen(r->diff), out_branch,
				   msg, tr, sizeof tr / sizeof tr[0]);
	if (rc < 0)
		return rc;
	git_oid_tostr(commit, sizeof commit, &oid);
	if ((rc = store_proposal_set_branch(w->st, id, out_branch, commit)) < 0)
		return rc;
	pipe__say(w, "proposal %lld: committed %.12s on branch %s", (long long)id, commit,
		  out_branch);
	return audit_log(w->st, "tend", "branch", commit, "proposal", pid, "branch", out_branch,
			 (char *)NULL);
}

/* Validates and branches a recorded proposal. 1 = it survived, 0 = it was
 * rejected (recorded), < 0 = error. */
static int validate(pipe_ws *w, int64_t id, int64_t incident, const prop_result *r)
{
	char hash[65], why[1024], br[128], dir[PATH_MAX + 64];
	const cfg_strlist *allowed = &w->cfg->proposer.allowed_paths;
	dup_ctx d = {.hash = hash, .self = id};
	sha256_hex(r->diff, strlen(r->diff), hash);
	store_proposal_list(w->st, 0, find_dup, &d);
	if (d.found) {
		snprintf(why, sizeof why, "identical to proposal %lld: not evaluated again",
			 (long long)d.found);
		return pipe__reject(w, id, "duplicate", why);
	}
	if (patch_validate_paths(r->diff, strlen(r->diff), (const char *const *)allowed->v,
				 allowed->n, denied, sizeof denied / sizeof denied[0]) < 0) {
		snprintf(why, sizeof why, "diff refused: %s", tend_error_last());
		return pipe__reject(w, id, "rejected", why);
	}
	if (branch(w, id, incident, r, br, sizeof br) < 0) {
		snprintf(why, sizeof why, "does not apply: %s", tend_error_last());
		return pipe__reject(w, id, "rejected", why);
	}
	snprintf(dir, sizeof dir, "%s/runs/proposal-%lld/static", w->ws, (long long)id);
	fsu_rm_rf(dir);
	int rc = patch_materialize(w->repo, br, dir);
	if (rc == 0)
		rc = pipe__static_check(dir);
	fsu_rm_rf(dir);
	if (rc < 0) {
		snprintf(why, sizeof why, "static check failed: %s", tend_error_last());
		return pipe__reject(w, id, "rejected", why);
	}
	store_proposal_set_state(w->st, id, "branched", NULL);
	pipe__say(w, "proposal %lld: applies, loads and passes its self-tests", (long long)id);
	return 1;
}

/* The API key goes into the request header only (docs/proposals.md). An
 * endpoint that echoes it back in its answer must not get it stored in
 * tend.db, committed on a branch or printed: it is scrubbed from every
 * text of the result before anything else sees it. */
static int scrub_key(prop_result *r, const cfg_proposer *p)
{
	const char *key = p->api_key_env && *p->api_key_env ? getenv(p->api_key_env) : NULL;
	char **f[] = {&r->diagnosis, &r->diff, &r->rationale, &r->expected_effect};
	int rc = 0;
	for (size_t i = 0; key && rc == 0 && i < sizeof f / sizeof f[0]; i++)
		rc = prop__scrub(f[i], key);
	return rc;
}

/* The budget of one run: what every proposal for its incidents spent,
 * kept in RUN_DIR/proposer-usage ("requests tokens"), so separate
 * `tend propose` processes share it. */
typedef struct run_budget {
	char path[PATH_MAX];
	int64_t requests, tokens;
} run_budget;

static int budget_open(pipe_ws *w, int64_t incident, run_budget *rb, prop_budget *b)
{
	const cfg_proposer *p = &w->cfg->proposer;
	store_incident *inc = NULL;
	store_run *run = NULL;
	memset(rb, 0, sizeof *rb);
	prop_budget_init(b, p);
	if (store_incident_get(w->st, &inc, incident) == 0 &&
	    store_run_get(w->st, &run, inc->run_id) == 0 && run->workdir)
		snprintf(rb->path, sizeof rb->path, "%s/proposer-usage", run->workdir);
	store_run_free(run);
	store_incident_free(inc);
	if (!rb->path[0])
		return 0;
	FILE *f = fopen(rb->path, "r");
	if (f) {
		long long rq = 0, tk = 0;
		if (fscanf(f, "%lld %lld", &rq, &tk) == 2) {
			rb->requests = rq;
			rb->tokens = tk;
		}
		fclose(f);
	}
	int64_t left_rq = p->run_max_requests - rb->requests;
	int64_t left_tk = p->run_max_tokens - rb->tokens;
	if (left_rq <= 0 || left_tk <= 0)
		return tend_error_set(TEND_EBUSY, "the run's proposer budget is spent: %lld requests "
				      "and %lld tokens used (proposer.run_max_requests %lld, "
				      "run_max_tokens %lld)", (long long)rb->requests,
				      (long long)rb->tokens, (long long)p->run_max_requests,
				      (long long)p->run_max_tokens);
	if (b->max_requests == 0 || left_rq < b->max_requests)
		b->max_requests = left_rq;
	b->max_tokens = left_tk;
	return 0;
}

static void budget_close(const run_budget *rb, const prop_budget *b)
{
	char text[64];
	if (!rb->path[0] || (b->requests == 0 && b->tokens == 0))
		return;
	int n = snprintf(text, sizeof text, "%lld %lld\n", (long long)(rb->requests + b->requests),
			 (long long)(rb->tokens + b->tokens));
	fsu_write_atomic(rb->path, text, (size_t)n, 0644);
}

static int ask(pipe_ws *w, prop_result *r, int64_t incident)
{
	prop_ctx *ctx = NULL;
	prop_budget budget;
	run_budget rb;
	char dir[PATH_MAX + 16];
	const cfg_strlist *allowed = &w->cfg->proposer.allowed_paths;
	prop_ctx_opts co = {.allowed = (const char *const *)allowed->v, .n_allowed = allowed->n};
	int rc = budget_open(w, incident, &rb, &budget);
	if (rc < 0)
		return rc;
	if ((rc = prop_ctx_build(&ctx, w->st, w->repo, incident, &co)) < 0)
		return rc;
	snprintf(dir, sizeof dir, "%s/scaffold", w->ws);
	rc = prop_ask(r, &w->cfg->proposer, ctx, dir, &budget);
	budget_close(&rb, &budget);
	if (rc == 0)
		rc = scrub_key(r, &w->cfg->proposer);
	prop_ctx_free(ctx);
	return rc;
}

int pipe_propose(int64_t *out_id, const pipe_opts *o, int64_t incident)
{
	pipe_ws w;
	prop_result r = {0};
	int64_t id = 0;
	int rc;
	*out_id = 0;
	if ((rc = pipe__open(&w, o)) < 0)
		goto done;
	pipe__say(&w, "incident %lld: asking the %s proposer", (long long)incident,
		  w.cfg->proposer.kind == CFG_PROPOSER_BUILTIN ? "builtin" :
		  w.cfg->proposer.kind == CFG_PROPOSER_OPENAI ? "openai" : "anthropic");
	if ((rc = ask(&w, &r, incident)) < 0) {
		char inc[24];
		snprintf(inc, sizeof inc, "%lld", (long long)incident);
		pipe__say(&w, "incident %lld: no proposal: %s", (long long)incident, tend_error_last());
		audit_log(w.st, "tend", "proposer_failed", inc, "reason", tend_error_last(),
			  (char *)NULL);
		rc = rc == TEND_ENOTFOUND ? 0 : rc;
		goto done;
	}
	if ((rc = record(&w, &id, incident, &r)) < 0)
		goto done;
	*out_id = id;
	pipe__say(&w, "proposal %lld (%s, confidence %.2f): %s", (long long)id, r.proposer,
		  r.confidence, r.diagnosis);
	if ((rc = validate(&w, id, incident, &r)) <= 0 || !o->evaluate)
		goto done;
	pipe__close(&w);
	prop_result_free(&r);
	return pipe_evaluate(o, id);
done:
	prop_result_free(&r);
	pipe__close(&w);
	return rc < 0 ? rc : 0;
}

int pipe_reject(const pipe_opts *o, int64_t proposal, const char *who, const char *reason)
{
	pipe_ws w;
	store_proposal *p = NULL;
	char subj[32];
	int rc;
	if ((rc = pipe__open(&w, o)) < 0 || (rc = store_proposal_get(w.st, &p, proposal)) < 0)
		goto done;
	if (!strcmp(p->state, "promoted")) {
		rc = tend_error_set(TEND_EINVAL, "proposal %lld is already promoted; use "
				    "`tend rollback COMMIT` to revert it", (long long)proposal);
		goto done;
	}
	snprintf(subj, sizeof subj, "proposal:%lld", (long long)proposal);
	if ((rc = store_proposal_set_state(w.st, proposal, "rejected", reason)) == 0)
		rc = audit_log(w.st, who, "reject", subj, "reason", reason, (char *)NULL);
done:
	store_proposal_free(p);
	pipe__close(&w);
	return rc;
}
