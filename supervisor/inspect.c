/*
 * inspect.c - the store as the inspection commands read it: read-only
 * opening, runs by name, a run's final timeline and its accounts
 * (inspect.h says the rules).
 */
#include "inspect.h"
#include "cli.h"
#include "config.h"
#include "render.h"
#include "store_replay.h"
#include "sup.h"
#include "tend.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int insp_open(store **out, char *ws, size_t cap)
{
	char path[PATH_MAX + 16];
	int rc;
	*out = NULL;
	if ((rc = cli_workspace(ws, cap)) < 0)
		return rc;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	rc = store_open(out, path, STORE_READONLY);
	if (rc == TEND_EVERSION) {
		/* A store from an older tend: bring it up to date, as any
		 * writer would, unless a supervisor (of that older tend,
		 * then) is using it. A newer store is refused again. */
		int pid = 0;
		char run[160];
		sup_lock_holder(ws, &pid, run, sizeof run);
		if (pid == 0)
			rc = store_open(out, path, 0);
	}
	return rc;
}

int insp_run(store *s, const char *name, store_run **out)
{
	int rc = store_run_get_by_name(s, out, name);
	if (rc == TEND_ENOTFOUND)
		return tend_error_set(TEND_ENOTFOUND, "no run named '%s' in this "
				      "workspace; `tend runs` lists them", name);
	return rc;
}

int insp_default_run(store *s, const char *ws, store_run **out)
{
	char held[160] = "";
	int pid = 0, rc;
	store_run *runs = NULL;
	size_t n = 0;
	*out = NULL;
	sup_lock_holder(ws, &pid, held, sizeof held);
	if (pid > 0 && held[0] && store_run_get_by_name(s, out, held) == 0)
		return 0;
	if ((rc = store_run_list(s, &runs, &n)) < 0)
		return rc;
	rc = n == 0 ? tend_error_set(TEND_ENOTFOUND, "no runs in this workspace "
				     "yet; start one with `tend run`")
		: store_run_get(s, out, runs[n - 1].id);
	store_run_list_free(runs, n);
	return rc;
}

bool insp_terminal(const char *state)
{
	return state && (strcmp(state, "finished") == 0 ||
			 strcmp(state, "stopped") == 0 || strcmp(state, "failed") == 0);
}

/* ---- the timeline ------------------------------------------------------ */

static const char *const series[INSP_NSERIES] = {
	[INSP_LOSS] = "loss", [INSP_STEP_TIME] = "step_time_s",
	[INSP_TOKENS] = "tokens_per_s", [INSP_VAL_LOSS] = "val_loss",
};

static int push_point(insp_timeline *tl, int64_t step)
{
	if (tl->n == tl->cap) {
		size_t cap = tl->cap ? 2 * tl->cap : 256;
		insp_point *p = realloc(tl->p, cap * sizeof *p);
		if (!p)
			return tend_error_set(TEND_ENOMEM, "reading a run: out of memory");
		tl->p = p;
		tl->cap = cap;
	}
	insp_point *pt = &tl->p[tl->n++];
	pt->step = step;
	pt->have = 0;
	for (int k = 0; k < INSP_NSERIES; k++)
		pt->v[k] = NAN;
	return 0;
}

/* What the reader keeps while the rows go by. */
typedef struct tl_read {
	insp_timeline *tl;
	int64_t *from;        /* by attempt number: from_step, STORE_NONE or NO_RECORD */
	int n_from;           /* highest recorded attempt number + 1 */
	int attempt;          /* of the rows so far; 0 before the first */
	int64_t frontier;     /* the newest step row: the supervisor's last step */
} tl_read;

#define NO_RECORD INT64_MIN

static int keep_attempt(const store_attempt *a, void *ud)
{
	tl_read *r = ud;
	if (a->n < 0 || a->n > 1023)
		return 0; /* the store never numbers one so */
	if (a->n >= r->n_from) {
		int64_t *v = realloc(r->from, (size_t)(a->n + 1) * sizeof *v);
		if (!v)
			return tend_error_set(TEND_ENOMEM, "reading a run: out of memory");
		for (int i = r->n_from; i <= a->n; i++)
			v[i] = NO_RECORD;
		r->from = v;
		r->n_from = a->n + 1;
	}
	r->from[a->n] = a->from_step < 0 ? STORE_NONE : a->from_step;
	return 0;
}

static void drop_after(insp_timeline *tl, int64_t step)
{
	while (tl->n > 0 && tl->p[tl->n - 1].step > step)
		tl->n--;
}

/* A trainer resumed at step from: as the supervisor counts it when it
 * starts one, the steps from the last one seen back to from are lost,
 * and they leave the timeline. */
static void resume_at(tl_read *r, int64_t from)
{
	if (r->frontier > from) {
		r->tl->lost_steps += (long)(r->frontier - from);
		r->tl->rewinds++;
	}
	r->frontier = from;
	drop_after(r->tl, from);
}

/* The attempts after the current one up to upto began, in order, rows or
 * not (one that crashed before its first step still resumed somewhere). */
static void enter_attempts(tl_read *r, int upto)
{
	for (int n = r->attempt + 1; n <= upto; n++)
		if (n < r->n_from && r->from[n] >= 0)
			resume_at(r, r->from[n]);
	if (upto > r->attempt)
		r->attempt = upto;
}

static int on_row(int attempt, int64_t step, const char *name, double v,
		  double t, void *ud)
{
	(void)t;
	tl_read *r = ud;
	insp_timeline *tl = r->tl;
	int k = 0, rc;
	while (k < INSP_NSERIES && strcmp(series[k], name) != 0)
		k++;
	if (k == INSP_NSERIES)
		return 0;
	bool recorded = attempt < r->n_from && r->from[attempt] != NO_RECORD;
	if (attempt != r->attempt)
		enter_attempts(r, attempt);
	if (tl->n > 0 && step < tl->p[tl->n - 1].step) {
		/* A step going backwards that no attempt record explains (a
		 * store without them, or an attempt begun after they were
		 * read): a restart from the step before, as the supervisor
		 * would have seen it live. */
		if (!recorded)
			resume_at(r, step - 1);
		else
			drop_after(tl, step - 1);
	}
	if ((tl->n == 0 || tl->p[tl->n - 1].step != step) &&
	    (rc = push_point(tl, step)) < 0)
		return rc;
	insp_point *pt = &tl->p[tl->n - 1];
	pt->v[k] = v;
	pt->have |= 1u << k;
	/* Evaluations do not move the supervisor's step. */
	if (k != INSP_VAL_LOSS)
		r->frontier = step;
	tl->last_attempt = attempt;
	return 0;
}

int insp_timeline_read(store *s, int64_t run, insp_timeline *tl)
{
	tl_read r = {.tl = tl};
	memset(tl, 0, sizeof *tl);
	/* The attempts first: where each resumed is what the accounts read,
	 * not the order of the rows. */
	int rc = store_attempt_list(s, run, keep_attempt, &r);
	if (rc == 0)
		rc = store_metrics_scan(s, run, series, INSP_NSERIES, on_row, &r);
	if (rc == 0)
		enter_attempts(&r, r.n_from - 1); /* begun, no rows yet */
	free(r.from);
	if (rc < 0)
		insp_timeline_free(tl);
	return rc;
}

void insp_timeline_free(insp_timeline *tl)
{
	free(tl->p);
	memset(tl, 0, sizeof *tl);
}

/* ---- the accounts ------------------------------------------------------ */

static int count_attempt(const store_attempt *a, void *ud)
{
	(void)a;
	(*(int *)ud)++;
	return 0;
}

static int count_incident(const store_incident *i, void *ud)
{
	insp_summary *s = ud;
	s->incidents++;
	s->open_incidents += strcmp(i->state, "open") == 0;
	return 0;
}

static int64_t configured_steps(const store_run *r)
{
	cfg *c = NULL;
	int64_t steps = -1;
	if (r->config && cfg_load_buf(&c, "run config", r->config, strlen(r->config)) == 0)
		steps = c->run.steps;
	cfg_free(c);
	return steps;
}

/* The figures of the timeline alone. */
static void sum_timeline(const insp_timeline *tl, insp_summary *o)
{
	for (size_t i = 0; i < tl->n; i++) {
		const insp_point *p = &tl->p[i];
		double st = p->v[INSP_STEP_TIME], vl = p->v[INSP_VAL_LOSS];
		if (p->have & (1u << INSP_STEP_TIME) && isfinite(st) && st >= 0)
			o->productive_s += st;
		if (p->have & (1u << INSP_LOSS)) {
			o->last_loss = p->v[INSP_LOSS];
			o->last_step = p->step;
		}
		if (p->have & (1u << INSP_STEP_TIME) && p->step > o->last_step)
			o->last_step = p->step;
		if (p->have & (1u << INSP_TOKENS))
			o->tokens_per_s = p->v[INSP_TOKENS];
		if (isfinite(vl) && (isnan(o->best_val_loss) || vl < o->best_val_loss)) {
			o->best_val_loss = vl;
			o->best_val_step = p->step;
		}
	}
	o->lost_steps = tl->lost_steps;
}

int insp_summarize(store *s, const store_run *r, const insp_timeline *tl,
		   double now, insp_summary *o)
{
	int rc;
	*o = (insp_summary){
		.last_step = -1, .total_steps = configured_steps(r), .last_loss = NAN,
		.tokens_per_s = NAN, .best_val_loss = NAN, .best_val_step = -1,
		.ett = NAN, .eta_s = NAN,
	};
	sum_timeline(tl, o);
	if ((rc = store_attempt_list(s, r->id, count_attempt, &o->attempts)) < 0 ||
	    (rc = store_incident_list(s, r->id, NULL, count_incident, o)) < 0)
		return rc;
	o->restarts = o->attempts > 1 ? o->attempts - 1 : 0;
	if (strcmp(r->state, "finished") == 0 && o->last_step >= 0)
		o->total_steps = o->last_step; /* it did all it was asked to */
	double end = r->ended_t > 0 ? r->ended_t : now;
	o->wall_s = r->started_t <= 0 ? NAN : end > r->started_t ? end - r->started_t : 0;
	if (o->wall_s > 0)
		o->ett = o->productive_s / o->wall_s;
	if (!insp_terminal(r->state) && o->last_step > 0 && o->total_steps > o->last_step &&
	    o->wall_s > 0)
		o->eta_s = o->wall_s / (double)o->last_step *
			   (double)(o->total_steps - o->last_step);
	return 0;
}

int insp_summary_of(store *s, const store_run *r, double now, insp_summary *out)
{
	insp_timeline tl;
	int rc = insp_timeline_read(s, r->id, &tl);
	if (rc < 0)
		return rc;
	rc = insp_summarize(s, r, &tl, now, out);
	insp_timeline_free(&tl);
	return rc;
}

/* ---- output ------------------------------------------------------------ */

static void key_num(jbuf *b, const char *key, double v)
{
	jbuf_key(b, key);
	rnd_json_num(b, v);
}

static void key_int(jbuf *b, const char *key, int64_t v)
{
	jbuf_key(b, key);
	if (v < 0)
		jbuf_null(b);
	else
		jbuf_int(b, v);
}

int insp_summary_json(jbuf *b, const store_run *r, const insp_summary *s)
{
	jbuf_key(b, "name");
	jbuf_str(b, r->name);
	jbuf_key(b, "state");
	jbuf_str(b, r->state);
	key_num(b, "started_t", r->started_t > 0 ? r->started_t : NAN);
	key_num(b, "ended_t", r->ended_t > 0 ? r->ended_t : NAN);
	key_int(b, "last_step", s->last_step);
	key_int(b, "total_steps", s->total_steps);
	key_num(b, "last_loss", s->last_loss);
	key_num(b, "tokens_per_s", s->tokens_per_s);
	key_num(b, "best_val_loss", s->best_val_loss);
	key_int(b, "best_val_step", s->best_val_step);
	key_num(b, "wall_s", s->wall_s);
	key_num(b, "productive_s", s->productive_s);
	key_num(b, "ett", s->ett);
	key_num(b, "eta_s", s->eta_s);
	key_int(b, "lost_steps", s->lost_steps);
	key_int(b, "attempts", s->attempts);
	key_int(b, "restarts", s->restarts);
	key_int(b, "incidents", s->incidents);
	key_int(b, "open_incidents", s->open_incidents);
	return b->err;
}

static void key_str(jbuf *b, const char *key, const char *v)
{
	jbuf_key(b, key);
	if (v)
		jbuf_str(b, v);
	else
		jbuf_null(b);
}

int insp_incident_json(jbuf *b, const store_incident *i, const char *run)
{
	key_int(b, "id", i->id);
	key_str(b, "run", run);
	key_str(b, "kind", i->kind);
	key_str(b, "severity", i->severity);
	key_str(b, "signature", i->signature);
	key_str(b, "state", i->state);
	key_int(b, "onset_step", i->onset_step);
	key_int(b, "last_step", i->last_step);
	key_num(b, "first_t", i->first_t);
	key_num(b, "last_t", i->last_t);
	key_int(b, "count", i->count);
	key_str(b, "summary", i->summary);
	jbuf_key(b, "evidence");
	/* The store checked it is JSON when it was written. */
	if (i->evidence && *i->evidence)
		jbuf_raw(b, i->evidence, strlen(i->evidence));
	else
		jbuf_null(b);
	key_num(b, "resolved_t", i->resolved_t > 0 ? i->resolved_t : NAN);
	key_str(b, "resolution", i->resolution);
	return b->err;
}

void insp_status_line(char *out, size_t cap, const store_run *r,
		      const insp_summary *s)
{
	char loss[32], tps[32], eta[32], ett[32], total[32] = "?";
	if (s->total_steps >= 0)
		snprintf(total, sizeof total, "%lld", (long long)s->total_steps);
	snprintf(out, cap, "%s %s | step %lld/%s | loss %s | %s tok/s | ETA %s | "
		 "ETT %s | lost %ld | incidents %d open", r->name, r->state,
		 (long long)(s->last_step < 0 ? 0 : s->last_step), total,
		 rnd_num(loss, sizeof loss, s->last_loss, 5, 1),
		 rnd_num(tps, sizeof tps, s->tokens_per_s, 4, 1),
		 rnd_duration(eta, sizeof eta, s->eta_s),
		 rnd_percent(ett, sizeof ett, s->ett), s->lost_steps, s->open_incidents);
}

const char *insp_stream_name(store_stream s)
{
	static const char *const names[] = {
		[STORE_STDOUT] = "stdout", [STORE_STDERR] = "stderr",
		[STORE_EVENT] = "event", [STORE_MALFORMED] = "malformed",
	};
	return (unsigned)s <= STORE_MALFORMED ? names[s] : "?";
}

void insp_print_log(FILE *f, const store_log *l)
{
	char when[32];
	double ms = isfinite(l->t) ? floor(fmod(l->t, 1.0) * 1000) : 0;
	fprintf(f, "%s.%03d %-9s ", rnd_time(when, sizeof when, l->t), (int)ms,
		insp_stream_name(l->stream));
	fwrite(l->line, 1, l->len, f);
	fputc('\n', f);
}

int insp_usage(const char *help)
{
	const char *end = strstr(help, "\n\n");
	int len = end ? (int)(end - help) : (int)strlen(help);
	fprintf(stderr, "%.*s\n", len, help);
	return CLI_USAGE;
}

/* ---- following --------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void insp_catch_sigint(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

bool insp_interrupted(void)
{
	return interrupted != 0;
}

void insp_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	if (!interrupted)
		nanosleep(&ts, NULL); /* EINTR on SIGINT: return early */
}
