/*
 * sup_ingest.c - the one-way pipe from the trainer's files to the store
 * and the monitors. Each batch is one transaction holding the rows, the
 * log lines, the incidents they raised, and the byte offsets they were
 * read up to, so a supervisor killed at any moment resumes without losing
 * or repeating a row.
 */
#include "sup_int.h"
#include "clock.h"
#include "tend.h"
#include "umon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE ((size_t)1 << 20)
#define BATCH_BYTES ((size_t)4 << 20)

int sup__ingest_open(sup *s)
{
	int64_t off[3] = {0, 0, 0};
	const char *paths[3] = {s->metrics_path, s->out_path, s->err_path};
	tail **tails[3] = {&s->t_metrics, &s->t_out, &s->t_err};
	for (int i = 0; i < 3; i++) {
		int rc = store_offset_get(s->st, &off[i], s->run_id, paths[i]);
		if (rc < 0 && rc != TEND_ENOTFOUND)
			return rc;
		if ((rc = tail_new(tails[i], paths[i], rc < 0 ? 0 : off[i], MAX_LINE)) < 0)
			return rc;
	}
	mline_init(&s->ml);
	return 0;
}

void sup__ingest_close(sup *s)
{
	tail_free(s->t_metrics);
	tail_free(s->t_out);
	tail_free(s->t_err);
	mline_free(&s->ml);
	for (int i = 0; i < SUP_RING; i++)
		free(s->ring[i]);
}

void sup__ring_push(sup *s, const char *line, size_t len)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return;
	memcpy(copy, line, len);
	copy[len] = '\0';
	free(s->ring[s->ring_pos]);
	s->ring[s->ring_pos] = copy;
	s->ring_pos = (s->ring_pos + 1) % SUP_RING;
}

/* Every row handler returns 0 or the store's error, which fails the whole
 * batch: a row that did not make it must not be covered by the offset. */
static int malformed(sup *s, const char *line, size_t len, const char *why)
{
	char buf[600];
	int n = snprintf(buf, sizeof buf, "%s: %.*s", why, (int)(len > 400 ? 400 : len), line);
	s->malformed++;
	return store_log_put(s->st, s->run_id, s->attempt, tend_wall_s(), STORE_MALFORMED, buf,
			     (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

/* The monitors refuse a malformed sample (TEND_EINVAL: nothing fed, not
 * the store's fault); any other code is the incident's store write. */
static int feed(sup *s, mon_sample_type type)
{
	const mline *m = &s->ml;
	smp_begin(&s->smp, type, (long)m->step, ev_now(s->loop));
	for (size_t i = 0; i < m->n_metrics; i++)
		smp_put(&s->smp, m->metrics[i].name, m->metrics[i].value);
	umon_add(s->umon, smp_sample(&s->smp));
	int rc = mon_feed(s->mon, smp_sample(&s->smp), sup__incident_emit, s);
	return rc == TEND_EINVAL ? 0 : rc;
}

static int on_step_line(sup *s)
{
	const mline *m = &s->ml;
	double t = isnan(m->t) ? tend_wall_s() : m->t;
	double step_time = NAN;
	int rc;
	for (size_t i = 0; i < m->n_metrics; i++) {
		const mline_metric *x = &m->metrics[i];
		if ((rc = store_metric_put(s->st, s->run_id, s->attempt, m->step, x->name,
					   x->value, t)) < 0)
			return rc;
		if (m->type != MLINE_STEP)
			continue;
		if (strcmp(x->name, "step_time_s") == 0)
			step_time = x->value;
		else if (strcmp(x->name, "loss") == 0)
			s->last_loss = x->value;
		else if (strcmp(x->name, "tokens_per_s") == 0)
			s->tokens_per_s = x->value;
	}
	if (m->type == MLINE_STEP) {
		if (m->step < s->last_step)
			sup__account_rollback(s, (long)m->step - 1);
		s->last_step = (long)m->step;
		sup__account_step(s, (long)m->step, step_time);
	}
	return feed(s, m->type == MLINE_STEP ? MON_SAMPLE_STEP : MON_SAMPLE_EVAL);
}

static int on_checkpoint_line(sup *s)
{
	const mline *m = &s->ml;
	store_checkpoint c = {
		.run_id = s->run_id, .attempt = s->attempt, .step = m->step, .path = m->path,
		.sha256 = m->sha256, .bytes = -1, .t = isnan(m->t) ? tend_wall_s() : m->t,
		.good = -1,
	};
	/* A rolled-back run writes the same checkpoint path again. */
	int rc = store_checkpoint_add(s->st, NULL, &c);
	if (rc < 0 && rc != TEND_EEXISTS)
		return rc;
	return feed(s, MON_SAMPLE_HEARTBEAT);
}

static int on_event_line(sup *s, const char *line, size_t len)
{
	int rc;
	const mline *m = &s->ml;
	if (m->event && strcmp(m->event, "exit") == 0 && m->message &&
	    strcmp(m->message, "finished") == 0)
		s->finished = true;
	if ((rc = store_event_put(s->st, s->run_id, s->attempt, isnan(m->t) ? tend_wall_s() : m->t,
				  m->step, m->event, m->message ? m->message : "", NULL)) < 0 ||
	    (rc = store_log_put(s->st, s->run_id, s->attempt, tend_wall_s(), STORE_EVENT, line,
				len)) < 0)
		return rc;
	return feed(s, MON_SAMPLE_HEARTBEAT);
}

/* The batch opens at the first line read, so a wake-up or timer tick that
 * finds nothing new costs a few system calls and no transaction. Nonzero
 * stops the poll. */
static int open_batch(sup *s)
{
	if (s->in_batch)
		return 0;
	if ((s->batch_rc = store_batch_begin(s->st)) < 0)
		return 1;
	s->in_batch = true;
	return 0;
}

/* Keeps the first error and stops the poll; the batch is rolled back. */
static int failed(sup *s, int rc)
{
	if (rc >= 0)
		return 0;
	s->batch_rc = rc;
	return 1;
}

static int on_metrics(const char *line, size_t len, int64_t end, bool over, void *ud)
{
	(void)end;
	sup *s = ud;
	if (open_batch(s))
		return 1;
	if (over)
		return failed(s, malformed(s, line, len, "line over 1 MiB"));
	if (mline_parse(&s->ml, line, len) < 0)
		return failed(s, malformed(s, line, len, tend_error_last()));
	switch (s->ml.type) {
	case MLINE_STEP:
	case MLINE_EVAL:
		return failed(s, on_step_line(s));
	case MLINE_CHECKPOINT:
		return failed(s, on_checkpoint_line(s));
	case MLINE_EVENT:
		return failed(s, on_event_line(s, line, len));
	case MLINE_HEARTBEAT:
		return failed(s, feed(s, MON_SAMPLE_HEARTBEAT));
	}
	return 0;
}

typedef struct {
	sup *s;
	store_stream stream;
} log_ctx;

static int on_log(const char *line, size_t len, int64_t end, bool over, void *ud)
{
	(void)end;
	(void)over;
	log_ctx *c = ud;
	if (open_batch(c->s))
		return 1;
	sup__ring_push(c->s, line, len);
	return failed(c->s, store_log_put(c->s->st, c->s->run_id, c->s->attempt, tend_wall_s(),
					  c->stream, line, len));
}

/* Reads what is new in the three files into the open store batch. */
static int ingest_read(sup *s, int *lines)
{
	int rc, n = 0;
	log_ctx out = {s, STORE_STDOUT}, err = {s, STORE_STDERR};
	s->batch_rc = 0;
	rc = tail_poll(s->t_metrics, BATCH_BYTES, on_metrics, s, NULL);
	n += rc > 0 ? rc : 0;
	if (rc >= 0) {
		rc = tail_poll(s->t_out, BATCH_BYTES, on_log, &out, NULL);
		n += rc > 0 ? rc : 0;
	}
	if (rc >= 0) {
		rc = tail_poll(s->t_err, BATCH_BYTES, on_log, &err, NULL);
		n += rc > 0 ? rc : 0;
	}
	if (rc >= 0 && s->batch_rc < 0)
		rc = s->batch_rc;
	s->backlog = tail_full(s->t_metrics) || tail_full(s->t_out) || tail_full(s->t_err);
	if (rc >= 0 && s->in_batch && n > 0)
		sup__user_monitors(s); /* their incidents join this transaction */
	*lines = n;
	return rc;
}

/* Commits the batch with the offsets it was read up to, then lets the
 * policies act on what it raised. */
static int ingest_commit(sup *s, int rc)
{
	if (!s->in_batch)
		return rc;
	if (rc >= 0 &&
	    (rc = store_offset_set(s->st, s->run_id, s->metrics_path, tail_offset(s->t_metrics))) >= 0 &&
	    (rc = store_offset_set(s->st, s->run_id, s->out_path, tail_offset(s->t_out))) >= 0)
		rc = store_offset_set(s->st, s->run_id, s->err_path, tail_offset(s->t_err));
	s->in_batch = false;
	if (rc < 0) {
		store_batch_rollback(s->st);
		return rc;
	}
	if ((rc = store_batch_commit(s->st)) < 0)
		return rc;
	s->last_commit = ev_now(s->loop);
	if (s->n_pending > 0)
		sup__policy_run(s);
	return 0;
}

int sup__ingest(sup *s)
{
	int n, rc = ingest_read(s, &n);
	rc = ingest_commit(s, rc);
	return rc < 0 ? rc : n;
}

/* The timer's ingest: reads every tick, so incidents are found within one
 * period, but commits at most every SUP_COMMIT_S unless an incident waits
 * for its policy: a commit per tick was most of the supervisor's own cost. */
int sup__ingest_tick(sup *s)
{
	int n, rc = ingest_read(s, &n);
	if (rc >= 0 && s->in_batch && s->n_pending == 0 && s->state == SUP_RUNNING &&
	    ev_now(s->loop) - s->last_commit < SUP_COMMIT_S)
		return n; /* the batch stays open: rows and offsets commit together */
	rc = ingest_commit(s, rc);
	return rc < 0 ? rc : n;
}
