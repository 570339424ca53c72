/*
 * serve_api.c - the dashboard's read-only JSON endpoints: the session,
 * runs with their accounts, one run, metric series (downsampled), MoE
 * incidents, proposals with evaluations and promotions, and the audit
 * log (series and MoE load are in serve_series.c). docs/serve.md shows each answer's shape.
 */
#include "clock.h"
#include "render.h"
#include "serve_int.h"
#include "tend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON helpers ------------------------------------------------------- */

void srv__num(jbuf *b, double v)
{
	rnd_json_num(b, v);
}

void srv__time(jbuf *b, double t)
{
	if (t > 0)
		jbuf_num(b, t);
	else
		jbuf_null(b);
}

void srv__json_text(jbuf *b, const char *text)
{
	json_doc *d = NULL;
	if (!text) {
		jbuf_null(b);
		return;
	}
	if (json_parse(&d, text, strlen(text), NULL) == 0)
		jbuf_raw(b, text, strlen(text));
	else
		jbuf_str(b, text); /* not JSON after all: show it as text */
	json_doc_free(d);
}

void srv__kv_str(jbuf *b, const char *key, const char *v)
{
	jbuf_key(b, key);
	if (v)
		jbuf_str(b, v);
	else
		jbuf_null(b);
}

void srv__kv_int(jbuf *b, const char *key, int64_t v)
{
	jbuf_key(b, key);
	if (v == STORE_NONE)
		jbuf_null(b);
	else
		jbuf_int(b, v);
}

void srv__kv_num(jbuf *b, const char *key, double v)
{
	jbuf_key(b, key);
	srv__num(b, v);
}

void srv__kv_time(jbuf *b, const char *key, double t)
{
	jbuf_key(b, key);
	srv__time(b, t);
}

void srv__run_name(store *st, int64_t id, char *out, size_t cap)
{
	store_run *r = NULL;
	out[0] = '\0';
	if (id > 0 && store_run_get(st, &r, id) == 0)
		snprintf(out, cap, "%s", r->name);
	store_run_free(r);
}

int srv__store_fail(srv__req *r)
{
	int code = tend_error_code();
	return srv__fail(r, code == TEND_EBUSY ? 503 : 500, "%s", tend_error_last());
}

/* ---- session ------------------------------------------------------------ */

int srv__api_session(srv__req *r, store *st)
{
	jbuf *b = &r->out;
	const char *base = strrchr(r->s->ws, '/');
	(void)st;
	jbuf_obj_open(b);
	srv__kv_str(b, "version", TEND_VERSION);
	srv__kv_str(b, "workspace", base ? base + 1 : r->s->ws);
	jbuf_key(b, "read_only");
	jbuf_bool(b, r->s->read_only);
	jbuf_key(b, "token_required");
	jbuf_bool(b, r->s->need_token);
	srv__kv_str(b, "csrf", r->s->csrf);
	jbuf_obj_close(b);
	return 200;
}

/* ---- runs --------------------------------------------------------------- */

int srv__summary_of(srv *s, store *st, const store_run *r, insp_summary *out)
{
	double now = tend_wall_s();
	int hit = -1, rc;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->ncache; i++)
		if (s->cache[i].run_id == r->id) {
			hit = i;
			break;
		}
	bool fresh = hit >= 0 && (s->cache[hit].final ||
				  now - s->cache[hit].at < SRV__LIVE_TTL_S);
	if (fresh)
		*out = s->cache[hit].s;
	pthread_mutex_unlock(&s->mu);
	if (fresh)
		return 0;
	if ((rc = insp_summary_of(st, r, now, out)) < 0)
		return rc;
	pthread_mutex_lock(&s->mu);
	if (hit < 0 || s->cache[hit].run_id != r->id) {
		hit = s->ncache < SRV__CACHE ? s->ncache++ : s->cache_next;
		s->cache_next = (hit + 1) % SRV__CACHE;
	}
	s->cache[hit] = (srv__summary){r->id, now,
		insp_terminal(r->state) && r->ended_t > 0, *out};
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* The fields of a run and its accounts, inside an open object. */
static void run_fields(jbuf *b, const store_run *r, const insp_summary *m)
{
	srv__kv_int(b, "id", r->id);
	srv__kv_str(b, "name", r->name);
	srv__kv_str(b, "state", r->state);
	srv__kv_time(b, "created_t", r->created_t);
	srv__kv_time(b, "started_t", r->started_t);
	srv__kv_time(b, "ended_t", r->ended_t);
	srv__kv_int(b, "step", m->last_step);
	srv__kv_int(b, "total_steps", m->total_steps);
	srv__kv_num(b, "loss", m->last_loss);
	srv__kv_num(b, "tokens_per_s", m->tokens_per_s);
	srv__kv_num(b, "best_val_loss", m->best_val_loss);
	srv__kv_num(b, "productive_s", m->productive_s);
	srv__kv_num(b, "wall_s", m->wall_s);
	srv__kv_num(b, "ett", m->ett);
	srv__kv_num(b, "eta_s", m->eta_s);
	srv__kv_int(b, "lost_steps", m->lost_steps);
	srv__kv_int(b, "attempts", m->attempts);
	srv__kv_int(b, "restarts", m->restarts);
	srv__kv_int(b, "incidents", m->incidents);
	srv__kv_int(b, "open_incidents", m->open_incidents);
}

int srv__api_runs(srv__req *r, store *st)
{
	store_run *runs = NULL;
	size_t n = 0;
	jbuf *b = &r->out;
	int status = 200;
	if (store_run_list(st, &runs, &n) < 0)
		return srv__store_fail(r);
	jbuf_obj_open(b);
	jbuf_key(b, "runs");
	jbuf_arr_open(b);
	for (size_t i = 0; i < n; i++) {
		insp_summary m;
		if (srv__summary_of(r->s, st, &runs[i], &m) < 0) {
			status = srv__store_fail(r);
			goto done;
		}
		jbuf_obj_open(b);
		run_fields(b, &runs[i], &m);
		jbuf_obj_close(b);
	}
	jbuf_arr_close(b);
	jbuf_obj_close(b);
done:
	store_run_list_free(runs, n);
	return status;
}

static int attempt_json(const store_attempt *a, void *ud)
{
	jbuf *b = ud;
	jbuf_obj_open(b);
	srv__kv_int(b, "n", a->n);
	srv__kv_time(b, "started_t", a->started_t);
	srv__kv_time(b, "ended_t", a->ended_t);
	srv__kv_int(b, "exit_status", a->exit_status);
	srv__kv_int(b, "signal", a->signal);
	srv__kv_str(b, "reason", a->reason);
	srv__kv_int(b, "from_step", a->from_step);
	jbuf_obj_close(b);
	return 0;
}

static int name_json(const char *name, void *ud)
{
	return jbuf_str(ud, name) < 0;
}

/* At most this many events go out with a run; later ones are left out. */
#define EVENTS_MAX 500

typedef struct ev_ctx {
	jbuf *b;
	int left;
} ev_ctx;

static int event_json(const store_event *e, void *ud)
{
	ev_ctx *x = ud;
	jbuf *b = x->b;
	if (x->left-- == 0)
		return 1;
	jbuf_obj_open(b);
	srv__kv_int(b, "id", e->id);
	srv__kv_int(b, "attempt", e->attempt);
	srv__kv_time(b, "t", e->t);
	srv__kv_int(b, "step", e->step);
	srv__kv_str(b, "kind", e->kind);
	srv__kv_str(b, "reason", e->reason);
	jbuf_key(b, "detail");
	srv__json_text(b, e->detail);
	jbuf_obj_close(b);
	return 0;
}

int srv__api_run(srv__req *r, store *st)
{
	store_run *run = NULL;
	insp_summary m;
	jbuf *b = &r->out;
	int rc = srv__arg_run(r, st, &run);
	if (rc)
		return rc;
	if (srv__summary_of(r->s, st, run, &m) < 0) {
		rc = srv__store_fail(r);
		goto done;
	}
	jbuf_obj_open(b);
	jbuf_key(b, "run");
	jbuf_obj_open(b);
	run_fields(b, run, &m);
	srv__kv_str(b, "scaffold_commit", run->scaffold_commit);
	srv__kv_int(b, "exit_status", run->exit_status);
	srv__kv_str(b, "notes", run->notes);
	jbuf_key(b, "terminal");
	jbuf_bool(b, insp_terminal(run->state));
	jbuf_obj_close(b);
	jbuf_key(b, "attempts");
	jbuf_arr_open(b);
	rc = store_attempt_list(st, run->id, attempt_json, b);
	jbuf_arr_close(b);
	jbuf_key(b, "metrics");
	jbuf_arr_open(b);
	if (rc >= 0)
		rc = store_metric_names(st, run->id, name_json, b);
	jbuf_arr_close(b);
	jbuf_key(b, "events");
	jbuf_arr_open(b);
	ev_ctx ev = {b, EVENTS_MAX};
	if (rc >= 0)
		rc = store_events_read(st, run->id, 0, event_json, &ev);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	rc = rc < 0 ? srv__store_fail(r) : 200;
done:
	store_run_free(run);
	return rc;
}

/* ---- incidents ---------------------------------------------------------- */

typedef struct inc_ctx {
	jbuf *b;
	store *st;
} inc_ctx;

static void incident_fields(jbuf *b, store *st, const store_incident *i)
{
	char run[256];
	srv__run_name(st, i->run_id, run, sizeof run);
	srv__kv_int(b, "id", i->id);
	srv__kv_int(b, "run_id", i->run_id);
	srv__kv_str(b, "run", run);
	srv__kv_str(b, "kind", i->kind);
	srv__kv_str(b, "severity", i->severity);
	srv__kv_str(b, "signature", i->signature);
	srv__kv_int(b, "onset_step", i->onset_step);
	srv__kv_int(b, "last_step", i->last_step);
	srv__kv_time(b, "first_t", i->first_t);
	srv__kv_time(b, "last_t", i->last_t);
	srv__kv_int(b, "count", i->count);
	srv__kv_str(b, "state", i->state);
	srv__kv_str(b, "summary", i->summary);
	jbuf_key(b, "evidence");
	srv__json_text(b, i->evidence);
	srv__kv_time(b, "resolved_t", i->resolved_t);
	srv__kv_str(b, "resolution", i->resolution);
}

static int incident_json(const store_incident *i, void *ud)
{
	inc_ctx *x = ud;
	jbuf_obj_open(x->b);
	incident_fields(x->b, x->st, i);
	jbuf_obj_close(x->b);
	return 0;
}

int srv__api_incidents(srv__req *r, store *st)
{
	store_run *run = NULL;
	const char *state = srv__arg(r, "state");
	inc_ctx x = {&r->out, st};
	int rc = 0;
	if (state && strcmp(state, "open") && strcmp(state, "resolved"))
		return srv__fail(r, 400, "query argument state: expected open or "
				 "resolved, got \"%.40s\"", state);
	if (srv__arg(r, "run") && (rc = srv__arg_run(r, st, &run)))
		return rc;
	jbuf_obj_open(x.b);
	jbuf_key(x.b, "incidents");
	jbuf_arr_open(x.b);
	rc = store_incident_list(st, run ? run->id : 0, state, incident_json, &x);
	jbuf_arr_close(x.b);
	jbuf_obj_close(x.b);
	store_run_free(run);
	return rc < 0 ? srv__store_fail(r) : 200;
}

static void proposal_brief(jbuf *b, const store_proposal *p)
{
	srv__kv_int(b, "id", p->id);
	srv__kv_int(b, "incident_id", p->incident_id);
	srv__kv_int(b, "n", p->n);
	srv__kv_str(b, "proposer", p->proposer);
	srv__kv_str(b, "model", p->model);
	srv__kv_str(b, "state", p->state);
	srv__kv_str(b, "diagnosis", p->diagnosis);
	jbuf_key(b, "confidence");
	if (p->confidence < 0)
		jbuf_null(b);
	else
		jbuf_num(b, p->confidence);
	srv__kv_time(b, "created_t", p->created_t);
	srv__kv_time(b, "updated_t", p->updated_t);
}

static int proposal_brief_json(const store_proposal *p, void *ud)
{
	jbuf_obj_open(ud);
	proposal_brief(ud, p);
	jbuf_obj_close(ud);
	return 0;
}

int srv__api_incident(srv__req *r, store *st)
{
	store_incident *i = NULL;
	jbuf *b = &r->out;
	int rc = store_incident_get(st, &i, r->id);
	if (rc == TEND_ENOTFOUND)
		return srv__fail(r, 404, "no incident %lld", (long long)r->id);
	if (rc < 0)
		return srv__store_fail(r);
	jbuf_obj_open(b);
	jbuf_key(b, "incident");
	jbuf_obj_open(b);
	incident_fields(b, st, i);
	jbuf_obj_close(b);
	jbuf_key(b, "proposals");
	jbuf_arr_open(b);
	rc = store_proposal_list(st, i->id, proposal_brief_json, b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	store_incident_free(i);
	return rc < 0 ? srv__store_fail(r) : 200;
}

/* ---- proposals ---------------------------------------------------------- */

int srv__api_proposals(srv__req *r, store *st)
{
	jbuf *b = &r->out;
	jbuf_obj_open(b);
	jbuf_key(b, "proposals");
	jbuf_arr_open(b);
	int rc = store_proposal_list(st, 0, proposal_brief_json, b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	return rc < 0 ? srv__store_fail(r) : 200;
}

static int evaluation_json(const store_evaluation *e, void *ud)
{
	inc_ctx *x = ud;
	jbuf *b = x->b;
	char base[256], cand[256];
	srv__run_name(x->st, e->baseline_run_id, base, sizeof base);
	srv__run_name(x->st, e->candidate_run_id, cand, sizeof cand);
	jbuf_obj_open(b);
	srv__kv_int(b, "id", e->id);
	srv__kv_str(b, "stage", e->stage);
	srv__kv_str(b, "state", e->state);
	srv__kv_str(b, "baseline_run", base[0] ? base : NULL);
	srv__kv_str(b, "candidate_run", cand[0] ? cand : NULL);
	jbuf_key(b, "figures");
	srv__json_text(b, e->figures);
	srv__kv_str(b, "gates_sha256", e->gates_sha256);
	srv__kv_str(b, "verdict", e->verdict);
	srv__kv_str(b, "reason", e->reason);
	srv__kv_time(b, "started_t", e->started_t);
	srv__kv_time(b, "ended_t", e->ended_t);
	jbuf_obj_close(b);
	return 0;
}

static int promotion_json(const store_promotion *p, void *ud)
{
	jbuf *b = ud;
	jbuf_obj_open(b);
	srv__kv_int(b, "id", p->id);
	srv__kv_int(b, "proposal_id", p->proposal_id);
	srv__kv_int(b, "evaluation_id", p->evaluation_id);
	srv__kv_str(b, "commit", p->commit);
	srv__kv_str(b, "merged_commit", p->merged_commit);
	srv__kv_str(b, "approved_by", p->approved_by);
	srv__kv_time(b, "t", p->t);
	jbuf_obj_close(b);
	return 0;
}

static void proposal_full(jbuf *b, const store_proposal *p)
{
	jbuf_obj_open(b);
	proposal_brief(b, p);
	srv__kv_str(b, "diff", p->diff);
	srv__kv_str(b, "rationale", p->rationale);
	srv__kv_str(b, "expected_effect", p->expected_effect);
	srv__kv_str(b, "prompt_sha256", p->prompt_sha256);
	srv__kv_str(b, "response_sha256", p->response_sha256);
	srv__kv_str(b, "branch", p->branch);
	srv__kv_str(b, "commit", p->commit);
	srv__kv_str(b, "reject_reason", p->reject_reason);
	jbuf_obj_close(b);
}

int srv__api_proposal(srv__req *r, store *st)
{
	store_proposal *p = NULL;
	store_incident *inc = NULL;
	inc_ctx x = {&r->out, st};
	jbuf *b = &r->out;
	int rc = store_proposal_get(st, &p, r->id);
	if (rc == TEND_ENOTFOUND)
		return srv__fail(r, 404, "no proposal %lld", (long long)r->id);
	if (rc < 0)
		return srv__store_fail(r);
	jbuf_obj_open(b);
	jbuf_key(b, "proposal");
	proposal_full(b, p);
	jbuf_key(b, "incident");
	if (p->incident_id > 0 && store_incident_get(st, &inc, p->incident_id) == 0) {
		jbuf_obj_open(b);
		incident_fields(b, st, inc);
		jbuf_obj_close(b);
	} else {
		jbuf_null(b);
	}
	jbuf_key(b, "evaluations");
	jbuf_arr_open(b);
	rc = store_evaluation_list(st, p->id, evaluation_json, &x);
	jbuf_arr_close(b);
	jbuf_key(b, "promotions");
	jbuf_arr_open(b);
	if (rc >= 0)
		rc = store_promotion_list(st, p->id, promotion_json, b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	store_incident_free(inc);
	store_proposal_free(p);
	return rc < 0 ? srv__store_fail(r) : 200;
}

/* ---- audit -------------------------------------------------------------- */

typedef struct audit_ctx {
	jbuf *b;
	int64_t left, last;
	bool more;
} audit_ctx;

static int audit_json(const store_audit_row *a, void *ud)
{
	audit_ctx *x = ud;
	if (x->left-- == 0) {
		x->more = true;
		return 1;
	}
	jbuf *b = x->b;
	jbuf_obj_open(b);
	srv__kv_int(b, "seq", a->seq);
	srv__kv_time(b, "t", a->t);
	srv__kv_str(b, "actor", a->actor);
	srv__kv_str(b, "action", a->action);
	srv__kv_str(b, "subject", a->subject);
	jbuf_key(b, "detail");
	srv__json_text(b, a->detail);
	srv__kv_str(b, "prev_hash", a->prev_hash);
	srv__kv_str(b, "hash", a->hash);
	jbuf_obj_close(b);
	x->last = a->seq;
	return 0;
}

int srv__api_audit(srv__req *r, store *st)
{
	int64_t since = 0, limit = 1000;
	audit_ctx x = {&r->out, 0, 0, false};
	int rc;
	if ((rc = srv__arg_int(r, "since", 0, INT64_MAX, &since)) ||
	    (rc = srv__arg_int(r, "limit", 1, SRV__MAX_LIMIT, &limit)))
		return rc;
	x.left = limit;
	x.last = since;
	jbuf_obj_open(x.b);
	jbuf_key(x.b, "rows");
	jbuf_arr_open(x.b);
	rc = store_audit_list(st, since, audit_json, &x);
	jbuf_arr_close(x.b);
	srv__kv_int(x.b, "next", x.last);
	jbuf_key(x.b, "more");
	jbuf_bool(x.b, x.more);
	jbuf_obj_close(x.b);
	return rc < 0 ? srv__store_fail(r) : 200;
}
