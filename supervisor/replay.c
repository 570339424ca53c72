/*
 * replay.c - recorded metrics through a fresh mon_set (replay.h). Store
 * rows arrive one value at a time, ordered by attempt, step and name; the
 * values of one (attempt, step) make one step sample, and val_* values
 * one eval sample after it, as a trainer writes its eval line after the
 * step line. A group holding only a checkpoint's `bytes` was a checkpoint
 * line: a heartbeat, as live ingest feeds it.
 */
#include "replay.h"
#include "mline.h"
#include "sample.h"
#include "store_replay.h"
#include "tend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct replay {
	mon_set *mon;
	umon *user;
	int queued;                  /* samples given to user since its last flush */
	rpl_result *res;
	/* the (attempt, step) group being collected from store rows */
	int attempt;
	int64_t step;
	bool open;
	int n_step, n_eval, n_other; /* values in each part; n_other: not bytes */
	smp step_b, eval_b;
	long last_step;
	bool have_step;
} replay;

/* ---- folding incidents ------------------------------------------------- */

static int on_incident(const mon_incident *inc, void *ud)
{
	rpl_result *r = ud;
	for (size_t i = 0; i < r->n; i++) {
		rpl_incident *x = &r->v[i];
		if (strcmp(x->first.signature, inc->signature) != 0)
			continue;
		x->count++;
		x->last_step = inc->last_step;
		x->severity = inc->severity > x->severity ? inc->severity : x->severity;
		return 0;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		rpl_incident *v = realloc(r->v, cap * sizeof *v);
		if (!v)
			return tend_error_set(TEND_ENOMEM, "replay: out of memory");
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (rpl_incident){*inc, inc->severity, inc->last_step, 1};
	return 0;
}

void rpl_result_free(rpl_result *r)
{
	if (!r)
		return;
	free(r->v);
	memset(r, 0, sizeof *r);
}

/* Runs the Lua monitors on the samples queued for them. */
static int flush_user(replay *rp)
{
	rpl_result *r = rp->res;
	if (!rp->user || rp->queued == 0)
		return 0;
	rp->queued = 0;
	if (umon_flush(rp->user, on_incident, r) < 0) {
		if (tend_error_code() == TEND_ENOMEM)
			return TEND_ENOMEM;
		if (r->user_errors++ == 0)
			snprintf(r->user_error, sizeof r->user_error, "%s", tend_error_last());
	}
	return 0;
}

/* One sample to the monitors, the time-based checks first. */
static int feed(replay *rp, const mon_sample *s)
{
	int rc = 0;
	if (isfinite(s->t))
		rc = mon_tick(rp->mon, s->t, on_incident, rp->res);
	if (s->type == MON_SAMPLE_STEP) {
		if (rp->have_step && s->step < rp->last_step)
			rp->res->restarts++;
		rp->have_step = true;
		rp->last_step = s->step;
	}
	rp->res->samples++;
	int rc2 = mon_feed(rp->mon, s, on_incident, rp->res);
	/* TEND_EINVAL is a sample the monitors refuse (nothing was fed);
	 * live ingest goes on past it, and so does replay. */
	if (rc2 == TEND_EINVAL)
		rc2 = 0;
	if (rp->user) {
		umon_add(rp->user, s);
		if (++rp->queued == RPL_USER_BATCH && rc2 == 0)
			rc2 = flush_user(rp);
	}
	return rc < 0 ? rc : rc2;
}

static int start(replay *rp, rpl_result *out, const rpl_opts *o)
{
	memset(out, 0, sizeof *out);
	memset(rp, 0, sizeof *rp);
	rp->res = out;
	rp->user = o ? o->user : NULL;
	return mon_set_new(&rp->mon, o ? o->params : NULL);
}

/* ---- from the store ---------------------------------------------------- */

static int flush(replay *rp)
{
	int rc = 0;
	if (!rp->open)
		return 0;
	rp->open = false;
	if (rp->n_step > 0) {
		/* Only `bytes`: a checkpoint line, which live ingest feeds as
		 * a heartbeat. */
		if (rp->n_other == 0)
			rp->step_b.s.type = MON_SAMPLE_HEARTBEAT;
		rc = feed(rp, smp_sample(&rp->step_b));
	}
	if (rc == 0 && rp->n_eval > 0)
		rc = feed(rp, smp_sample(&rp->eval_b));
	return rc;
}

static int on_row(int attempt, int64_t step, const char *name, double v,
		  double t, void *ud)
{
	replay *rp = ud;
	int rc;
	rp->res->rows++;
	if (rp->open && (attempt != rp->attempt || step != rp->step) &&
	    (rc = flush(rp)) < 0)
		return rc;
	if (!rp->open) {
		rp->open = true;
		rp->attempt = attempt;
		rp->step = step;
		rp->n_step = rp->n_eval = rp->n_other = 0;
	}
	bool eval = strncmp(name, "val_", 4) == 0;
	smp *b = eval ? &rp->eval_b : &rp->step_b;
	int *n = eval ? &rp->n_eval : &rp->n_step;
	if ((*n)++ == 0)
		smp_begin(b, eval ? MON_SAMPLE_EVAL : MON_SAMPLE_STEP, (long)step, t);
	if (!eval && strcmp(name, "bytes") != 0)
		rp->n_other++;
	smp_put(b, name, v);
	return 0;
}

int rpl_store(rpl_result *out, store *s, int64_t run, const rpl_opts *o)
{
	replay rp;
	int rc = start(&rp, out, o);
	if (rc == 0)
		rc = store_metrics_scan(s, run, NULL, 0, on_row, &rp);
	if (rc == 0)
		rc = flush(&rp);
	if (rc == 0)
		rc = flush_user(&rp);
	mon_set_free(rp.mon);
	return rc;
}

/* ---- from a file ------------------------------------------------------- */

/* One parsed line, as sup_ingest.c feeds it. */
static int feed_line(replay *rp, const mline *m)
{
	mon_sample_type type = m->type == MLINE_STEP ? MON_SAMPLE_STEP
		: m->type == MLINE_EVAL ? MON_SAMPLE_EVAL : MON_SAMPLE_HEARTBEAT;
	smp_begin(&rp->step_b, type, (long)m->step, m->t);
	if (type != MON_SAMPLE_HEARTBEAT)
		for (size_t i = 0; i < m->n_metrics; i++)
			smp_put(&rp->step_b, m->metrics[i].name, m->metrics[i].value);
	return feed(rp, smp_sample(&rp->step_b));
}

int rpl_file(rpl_result *out, const char *path, const rpl_opts *o)
{
	replay rp;
	mline m;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f = NULL;
	int rc = start(&rp, out, o);
	mline_init(&m);
	if (rc < 0)
		goto done;
	if (!(f = fopen(path, "r"))) {
		rc = tend_error_os("%s", path);
		goto done;
	}
	while (rc >= 0 && (len = getline(&line, &cap, f)) > 0) {
		out->rows++;
		if (mline_parse(&m, line, (size_t)len) < 0) {
			out->malformed++;
			continue;
		}
		rc = feed_line(&rp, &m);
	}
	if (rc >= 0 && ferror(f))
		rc = tend_error_os("%s", path);
	if (rc >= 0)
		rc = flush_user(&rp);
done:
	if (f)
		fclose(f);
	free(line);
	mline_free(&m);
	mon_set_free(rp.mon);
	return rc < 0 ? rc : 0;
}
