/*
 * eval.c - running and measuring the arms of an evaluation (see eval.h).
 * The arms are `tend train` child processes in their own process groups;
 * the only wait point is a sleep-and-poll loop, because this code runs in
 * the proposal pipeline's own process, never in the supervisor's loop.
 */
#include "eval.h"
#include "clock.h"
#include "fsutil.h"
#include "launch.h"
#include "mline.h"
#include "tend.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EVAL_MAX_ARMS 8

typedef struct arm_state {
	pid_t pid;
	int status;
	bool done;
	char dir[PATH_MAX];
	char metrics[PATH_MAX];
	double t0, t1;
} arm_state;

static int start_arm(arm_state *a, const eval_spec *s, const eval_arm *arm)
{
	char steps[32], skip[32], threads[32], out[PATH_MAX + 16], err[PATH_MAX + 16];
	int rc;
	snprintf(a->dir, sizeof a->dir, "%s/%s", s->dir, arm->name);
	snprintf(a->metrics, sizeof a->metrics, "%s/metrics.jsonl", a->dir);
	if ((rc = fsu_mkdir_p(a->dir, 0755)) < 0)
		return rc;
	unlink(a->metrics);
	snprintf(steps, sizeof steps, "%ld", s->from_step + s->steps);
	snprintf(skip, sizeof skip, "%ld", arm->extra_skip);
	snprintf(threads, sizeof threads, "%d", s->threads);
	snprintf(out, sizeof out, "%s/stdout.log", a->dir);
	snprintf(err, sizeof err, "%s/stderr.log", a->dir);
	const char *argv[32] = {
		s->trainer_exe, "--workspace", s->workspace, "--run-dir", a->dir,
		"--scaffold", arm->scaffold_dir, "--steps", steps, "--eval-every",
		steps, "--no-checkpoints", "--no-machine-faults", "--heartbeat", "0",
	};
	int n = 15;
	if (s->checkpoint && *s->checkpoint) {
		argv[n++] = "--resume";
		argv[n++] = s->checkpoint;
	}
	if (s->data_dir && *s->data_dir) {
		argv[n++] = "--data";
		argv[n++] = s->data_dir;
	}
	if (arm->extra_skip > 0) {
		argv[n++] = "--skip-batches";
		argv[n++] = skip;
	}
	if (s->threads > 0) {
		argv[n++] = "--threads";
		argv[n++] = threads;
	}
	argv[n] = NULL;
	const char *extra[] = {"OMP_WAIT_POLICY=passive", "OPENBLAS_NUM_THREADS=1", NULL};
	/* Niced: an evaluation must not slow the run it is trying to help. */
	launch_spec ls = {.argv = argv, .cwd = a->dir, .stdout_path = out,
		.stderr_path = err, .extra = extra, .nice = 10};
	a->t0 = tend_wall_s();
	return launch_start(&a->pid, &ls);
}

/* The last step and loss written so far, for the progress line. */
static void peek(const char *path, long *step, double *loss)
{
	char *buf = NULL;
	size_t len = 0;
	*step = 0;
	*loss = NAN;
	if (fsu_read_file(&buf, &len, path, 64u << 20) < 0)
		return;
	char *line = buf + len;
	for (int seen = 0; line > buf && seen < 16; seen++) {
		char *end = line;
		while (line > buf && line[-1] != '\n')
			line--;
		if (sscanf(line, "{\"type\":\"step\",\"step\":%ld", step) == 1) {
			char *l = strstr(line, "\"loss\":");
			if (l && l < end)
				*loss = strtod(l + 7, NULL);
			break;
		}
		if (line > buf)
			line--;
	}
	free(buf);
}

static bool all_done(arm_state *a, int n)
{
	for (int i = 0; i < n; i++)
		if (!a[i].done)
			return false;
	return true;
}

static void reap(arm_state *a, int n)
{
	for (int i = 0; i < n; i++) {
		if (a[i].done)
			continue;
		pid_t p = waitpid(a[i].pid, &a[i].status, WNOHANG);
		if (p == a[i].pid) {
			a[i].done = true;
			a[i].t1 = tend_wall_s();
		}
	}
}

static void kill_all(arm_state *a, int n)
{
	for (int i = 0; i < n; i++)
		if (!a[i].done)
			launch_signal(a[i].pid, SIGKILL);
	for (int i = 0; i < n; i++) {
		if (!a[i].done) {
			waitpid(a[i].pid, &a[i].status, 0);
			a[i].t1 = tend_wall_s();
		}
	}
}

int eval_run(gate_figures *out, const eval_spec *s, const eval_arm *arms, int n)
{
	arm_state a[EVAL_MAX_ARMS] = {0};
	int rc = 0, started = 0;
	bool timed_out = false;
	if (n < 1 || n > EVAL_MAX_ARMS)
		return tend_error_set(TEND_EINVAL, "evaluation: 1 to %d arms", EVAL_MAX_ARMS);
	for (; started < n; started++)
		if ((rc = start_arm(&a[started], s, &arms[started])) < 0)
			break;
	if (rc < 0) {
		kill_all(a, started);
		return tend_error_wrap(rc, "evaluation arm %s", arms[started].name);
	}
	double t0 = tend_wall_s(), last = 0;
	while (!all_done(a, n)) {
		usleep(50000);
		reap(a, n);
		double now = tend_wall_s();
		if (now - t0 > s->max_wall_s) {
			timed_out = true;
			kill_all(a, n);
			break;
		}
		if (s->progress && now - last >= 0.5) {
			long step[EVAL_MAX_ARMS];
			double loss[EVAL_MAX_ARMS];
			last = now;
			for (int i = 0; i < n; i++)
				peek(a[i].metrics, &step[i], &loss[i]);
			s->progress(n, arms, step, loss, s->from_step + s->steps, s->ud);
		}
	}
	for (int i = 0; i < n; i++) {
		eval_measure(&out[i], a[i].metrics, s->steps, s->mon);
		out[i].wall_s = a[i].t1 - a[i].t0;
		out[i].timed_out = timed_out && !(WIFEXITED(a[i].status) && WEXITSTATUS(a[i].status) == 0);
		out[i].crashed = !out[i].timed_out &&
			!(WIFEXITED(a[i].status) && WEXITSTATUS(a[i].status) == 0);
	}
	return 0;
}

/* ---- measuring ------------------------------------------------------------ */

typedef struct meas {
	double *loss, *tps;
	long n, cap;
	double val_loss;
	long first_step, last_step;
	int incidents;
	mon_set *mon;
} meas;

static int count_incident(const mon_incident *inc, void *ud)
{
	if (inc->severity >= MON_WARNING)
		((meas *)ud)->incidents++;
	return 0;
}

static void push(meas *m, double loss, double tps)
{
	if (m->n == m->cap) {
		long cap = m->cap ? m->cap * 2 : 1024;
		double *l = realloc(m->loss, (size_t)cap * sizeof *l);
		if (!l)
			return;
		m->loss = l;
		double *t = realloc(m->tps, (size_t)cap * sizeof *t);
		if (!t)
			return;
		m->tps = t;
		m->cap = cap;
	}
	m->loss[m->n] = loss;
	m->tps[m->n++] = tps;
}

static void feed_line(meas *m, const mline *ml)
{
	mon_sample smp;
	double loss = NAN, tps = NAN, gn = NAN, lr = NAN, st = NAN;
	mline_get(ml, "loss", &loss);
	mline_get(ml, "tokens_per_s", &tps);
	mline_get(ml, "grad_norm", &gn);
	mline_get(ml, "lr", &lr);
	mline_get(ml, "step_time_s", &st);
	if (ml->type == MLINE_EVAL) {
		mline_get(ml, "val_loss", &m->val_loss);
		return;
	}
	if (ml->type != MLINE_STEP)
		return;
	if (m->first_step < 0)
		m->first_step = (long)ml->step;
	m->last_step = (long)ml->step;
	push(m, loss, tps);
	/* Only the fields that decide the scalar detectors: an evaluation
	 * judges stability of the loss and gradients, not the clock. */
	mon_sample_init(&smp, MON_SAMPLE_STEP, (long)ml->step, NAN);
	smp.loss = loss;
	smp.grad_norm = gn;
	smp.lr = lr;
	smp.present = MON_F_LOSS | MON_F_GRAD_NORM | MON_F_LR;
	if (m->mon)
		mon_feed(m->mon, &smp, count_incident, m);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void summarise(gate_figures *out, meas *m, long steps_wanted)
{
	out->val_loss = m->val_loss;
	out->steps = m->first_step < 0 ? 0 : m->last_step - m->first_step + 1;
	out->steps_wanted = steps_wanted;
	out->incidents = m->incidents;
	long tail = m->n / 10 > 0 ? m->n / 10 : m->n;
	double sum = 0;
	for (long i = m->n - tail; i < m->n; i++)
		sum += m->loss[i];
	out->loss_tail = tail > 0 ? sum / (double)tail : NAN;
	if (m->n > 0) {
		qsort(m->tps, (size_t)m->n, sizeof *m->tps, cmp_double);
		out->tokens_per_s = m->tps[m->n / 2];
	}
}

int eval_measure(gate_figures *out, const char *path, long steps_wanted, const mon_params *mp)
{
	char *buf = NULL;
	size_t len = 0;
	mline ml;
	meas m = {.val_loss = NAN, .first_step = -1};
	memset(out, 0, sizeof *out);
	out->val_loss = out->loss_tail = out->tokens_per_s = out->wall_s = NAN;
	out->steps_wanted = steps_wanted;
	int rc = fsu_read_file(&buf, &len, path, 1u << 30);
	if (rc < 0)
		return rc == TEND_ENOTFOUND ? 0 : rc;
	if (mp && (rc = mon_set_new(&m.mon, mp)) < 0) {
		free(buf);
		return rc;
	}
	mline_init(&ml);
	for (char *p = buf, *end; p < buf + len; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			break; /* an unfinished last line is not a result */
		if (mline_parse(&ml, p, (size_t)(end - p)) == 0)
			feed_line(&m, &ml);
	}
	summarise(out, &m, steps_wanted);
	mline_free(&ml);
	mon_set_free(m.mon);
	free(m.loss);
	free(m.tps);
	free(buf);
	return 0;
}

int eval_ingest(store *st, int64_t run_id, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	mline ml;
	int rc = fsu_read_file(&buf, &len, path, 1u << 30);
	if (rc < 0)
		return rc;
	mline_init(&ml);
	if ((rc = store_batch_begin(st)) < 0)
		goto done;
	for (char *p = buf, *end; p < buf + len && rc >= 0; p = end + 1) {
		end = memchr(p, '\n', (size_t)(buf + len - p));
		if (!end)
			break;
		if (mline_parse(&ml, p, (size_t)(end - p)) < 0 ||
		    (ml.type != MLINE_STEP && ml.type != MLINE_EVAL))
			continue;
		double t = isnan(ml.t) ? tend_wall_s() : ml.t;
		for (size_t i = 0; i < ml.n_metrics && rc >= 0; i++)
			rc = store_metric_put(st, run_id, 1, ml.step, ml.metrics[i].name,
					      ml.metrics[i].value, t);
	}
	if (rc >= 0)
		rc = store_offset_set(st, run_id, path, (int64_t)len);
	if (rc < 0)
		store_batch_rollback(st);
	else
		rc = store_batch_commit(st);
done:
	mline_free(&ml);
	free(buf);
	return rc;
}
