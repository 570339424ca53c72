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

static void malformed(sup *s, const char *line, size_t len, const char *why)
{
	char buf[600];
	int n = snprintf(buf, sizeof buf, "%s: %.*s", why, (int)(len > 400 ? 400 : len), line);
	s->malformed++;
	store_log_put(s->st, s->run_id, s->attempt, tend_wall_s(), STORE_MALFORMED, buf,
		      (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

static void feed(sup *s, mon_sample_type type)
{
	const mline *m = &s->ml;
	smp_begin(&s->smp, type, (long)m->step, ev_now(s->loop));
	for (size_t i = 0; i < m->n_metrics; i++)
		smp_put(&s->smp, m->metrics[i].name, m->metrics[i].value);
	mon_feed(s->mon, smp_sample(&s->smp), sup__incident_emit, s);
}

static void on_step_line(sup *s)
{
	const mline *m = &s->ml;
	double t = isnan(m->t) ? tend_wall_s() : m->t;
	double step_time = NAN;
	for (size_t i = 0; i < m->n_metrics; i++) {
		const mline_metric *x = &m->metrics[i];
		store_metric_put(s->st, s->run_id, s->attempt, m->step, x->name, x->value, t);
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
	feed(s, m->type == MLINE_STEP ? MON_SAMPLE_STEP : MON_SAMPLE_EVAL);
}

static void on_checkpoint_line(sup *s)
{
	const mline *m = &s->ml;
	store_checkpoint c = {
		.run_id = s->run_id, .attempt = s->attempt, .step = m->step, .path = m->path,
		.sha256 = m->sha256, .bytes = -1, .t = isnan(m->t) ? tend_wall_s() : m->t,
		.good = -1,
	};
	store_checkpoint_add(s->st, NULL, &c);
	feed(s, MON_SAMPLE_HEARTBEAT);
}

static void on_event_line(sup *s, const char *line, size_t len)
{
	const mline *m = &s->ml;
	if (m->event && strcmp(m->event, "exit") == 0 && m->message &&
	    strcmp(m->message, "finished") == 0)
		s->finished = true;
	store_event_put(s->st, s->run_id, s->attempt, isnan(m->t) ? tend_wall_s() : m->t,
			m->step, m->event, m->message ? m->message : "", NULL);
	store_log_put(s->st, s->run_id, s->attempt, tend_wall_s(), STORE_EVENT, line, len);
	feed(s, MON_SAMPLE_HEARTBEAT);
}

static int on_metrics(const char *line, size_t len, int64_t end, bool over, void *ud)
{
	(void)end;
	sup *s = ud;
	if (over) {
		malformed(s, line, len, "line over 1 MiB");
		return 0;
	}
	if (mline_parse(&s->ml, line, len) < 0) {
		malformed(s, line, len, tend_error_last());
		return 0;
	}
	switch (s->ml.type) {
	case MLINE_STEP:
	case MLINE_EVAL:
		on_step_line(s);
		break;
	case MLINE_CHECKPOINT:
		on_checkpoint_line(s);
		break;
	case MLINE_EVENT:
		on_event_line(s, line, len);
		break;
	case MLINE_HEARTBEAT:
		feed(s, MON_SAMPLE_HEARTBEAT);
		break;
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
	store_log_put(c->s->st, c->s->run_id, c->s->attempt, tend_wall_s(), c->stream, line, len);
	sup__ring_push(c->s, line, len);
	return 0;
}

int sup__ingest(sup *s)
{
	int rc, n = 0;
	log_ctx out = {s, STORE_STDOUT}, err = {s, STORE_STDERR};
	if ((rc = store_batch_begin(s->st)) < 0)
		return rc;
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
	if (rc >= 0 && n > 0 &&
	    (rc = store_offset_set(s->st, s->run_id, s->metrics_path, tail_offset(s->t_metrics))) >= 0 &&
	    (rc = store_offset_set(s->st, s->run_id, s->out_path, tail_offset(s->t_out))) >= 0)
		rc = store_offset_set(s->st, s->run_id, s->err_path, tail_offset(s->t_err));
	if (rc < 0) {
		store_batch_rollback(s->st);
		return rc;
	}
	if ((rc = store_batch_commit(s->st)) < 0)
		return rc;
	if (s->n_pending > 0)
		sup__policy_run(s);
	return n;
}
