/*
 * ttrain.h - helpers shared by the tests in tests/train: a fresh temp
 * directory, the real `tend train` binary (TEND_BIN) run as a child with a
 * tiny model, waiting for it with a deadline, and metrics.jsonl read back
 * through the protocol's own parser (core/mline.h).
 *
 * Every run gets the tiny model of TR_TINY so a test takes seconds, runs
 * with the temp directory as its working directory (no workspace is found
 * there, so the flags decide everything) and OMP_WAIT_POLICY=passive.
 */
#ifndef TTRAIN_H
#define TTRAIN_H

#include "fsutil.h"
#include "mline.h"
#include "tend.h"
#include "tt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TR_TINY "--layers", "1", "--d-model", "32", "--heads", "2", "--context", "32", \
	"--batch", "4", "--experts", "4", "--top-k", "2", "--threads", "1"

static char tr_dir[64];

static inline void tr_mkdtemp(void)
{
	strcpy(tr_dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tr_dir)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* Removes the temp dir, unless TEND_TEST_KEEP is set (for a post-mortem);
 * returns TT_DONE()'s value. */
static inline int tr_finish(void)
{
	if (getenv("TEND_TEST_KEEP"))
		fprintf(stderr, "kept %s\n", tr_dir);
	else
		fsu_rm_rf(tr_dir);
	return TT_DONE();
}

/* A path under the temp dir, in a rotating static buffer. */
static inline const char *tr_path(const char *fmt, ...)
{
	static char buf[16][512];
	static int k;
	char rel[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	k = (k + 1) % 16;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tr_dir, rel);
	return buf[k];
}

static inline double tr_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void tr_sleep(double s)
{
	usleep((useconds_t)(s * 1e6));
}

/* Reads a file into a malloc'd NUL-terminated buffer; NULL when missing. */
static inline char *tr_read(const char *path)
{
	char *buf = NULL;
	size_t n = 0;
	return fsu_read_file(&buf, &n, path, 256u << 20) < 0 ? NULL : buf;
}

static inline int tr_write(const char *path, const char *text)
{
	return fsu_write_atomic(path, text, strlen(text), 0644);
}

/* Starts TEND_BIN train with the tiny model and args (NULL-terminated);
 * its stdout and stderr go to tag.out and tag.err in the temp dir. extra_env
 * is one NAME=VALUE or NULL. Returns the pid, or -1. */
static inline pid_t tr_spawn_env(const char *tag, const char *extra_env, const char *const *args)
{
	const char *bin = getenv("TEND_BIN");
	const char *tiny[] = {TR_TINY};
	char *argv[64];
	int n = 0;
	if (!bin)
		return -1;
	argv[n++] = (char *)bin;
	argv[n++] = "train";
	for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++)
		argv[n++] = (char *)tiny[i];
	for (; *args && n < 63; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	char out[512], err[512];
	snprintf(out, sizeof out, "%s/%s.out", tr_dir, tag);
	snprintf(err, sizeof err, "%s/%s.err", tr_dir, tag);
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0 || chdir(tr_dir) < 0)
			_exit(126);
		dup2(fo, 1);
		dup2(fe, 2);
		unsetenv("TEND_WORKSPACE");
		setenv("OMP_WAIT_POLICY", "passive", 1);
		if (extra_env)
			putenv((char *)extra_env);
		execv(bin, argv);
		_exit(127);
	}
	return pid;
}

static inline pid_t tr_spawn(const char *tag, const char *const *args)
{
	return tr_spawn_env(tag, NULL, args);
}

/* Waits for pid up to timeout seconds; kills it with SIGKILL past that
 * (and returns -1). Otherwise returns the raw wait status. */
static inline int tr_wait(pid_t pid, double timeout)
{
	int status;
	double end = tr_now() + timeout;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if (tr_now() > end) {
			fprintf(stderr, "ttrain: pid %d ran past %.0f s, killing it\n", (int)pid, timeout);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		tr_sleep(0.01);
	}
}

/* True when pid has not exited within s seconds (it is left running). */
static inline bool tr_alive_after(pid_t pid, double s)
{
	int status;
	double end = tr_now() + s;
	while (tr_now() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return false;
		tr_sleep(0.01);
	}
	return true;
}

/* Runs to the end (60 s at most) and returns the exit code, or -1 when it
 * did not exit normally. */
static inline int tr_run(const char *tag, const char *const *args)
{
	int st = tr_wait(tr_spawn(tag, args), 60);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- metrics.jsonl read back ---- */

typedef struct tr_line {
	mline_type type;
	long step;
	char loss_text[40]; /* the loss exactly as written, for bit-exact compares */
	char lr_text[40];
	double loss, lr, grad_norm, step_time, val_loss, max_over_mean, dead;
	char event[40];
	char message[512];
	char path[512];
	int ok;
} tr_line;

typedef struct tr_metrics {
	tr_line *v;
	int n;
	int bad; /* lines mline_parse refused */
} tr_metrics;

/* The raw text of "key":<number> in line, cut at ',' or '}'. */
static inline void tr_raw(const char *line, const char *key, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(line, pat);
	out[0] = '\0';
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, ",}");
	snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static inline double tr_get(const mline *m, const char *name)
{
	double v = NAN;
	mline_get(m, name, &v);
	return v;
}

static inline void tr_fill(tr_line *l, const mline *m, const char *text)
{
	memset(l, 0, sizeof *l);
	l->type = m->type;
	l->step = (long)m->step;
	l->loss = tr_get(m, "loss");
	l->lr = tr_get(m, "lr");
	l->grad_norm = tr_get(m, "grad_norm");
	l->step_time = tr_get(m, "step_time_s");
	l->val_loss = tr_get(m, "val_loss");
	l->max_over_mean = tr_get(m, "moe.0.max_over_mean");
	l->dead = tr_get(m, "moe.0.dead");
	l->ok = m->ok;
	tr_raw(text, "loss", l->loss_text, sizeof l->loss_text);
	tr_raw(text, "lr", l->lr_text, sizeof l->lr_text);
	snprintf(l->event, sizeof l->event, "%s", m->event ? m->event : "");
	snprintf(l->message, sizeof l->message, "%s", m->message ? m->message : "");
	snprintf(l->path, sizeof l->path, "%s", m->path ? m->path : "");
}

/* Reads every line of the file (a missing file reads as empty). */
static inline void tr_metrics_read(tr_metrics *out, const char *path)
{
	mline m;
	char *buf = tr_read(path);
	memset(out, 0, sizeof *out);
	if (!buf)
		return;
	mline_init(&m);
	int cap = 0;
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl) /* a line still being written */
			break;
		*nl = '\0';
		if (mline_parse(&m, line, (size_t)(nl - line)) < 0) {
			fprintf(stderr, "ttrain: malformed metrics line: %s (%s)\n", line,
				tend_error_last());
			out->bad++;
			continue;
		}
		if (out->n == cap) {
			cap = cap ? cap * 2 : 256;
			out->v = realloc(out->v, (size_t)cap * sizeof *out->v);
		}
		tr_fill(&out->v[out->n++], &m, line);
	}
	mline_free(&m);
	free(buf);
}

static inline void tr_metrics_free(tr_metrics *m)
{
	free(m->v);
	memset(m, 0, sizeof *m);
}

/* The i-th line of type t from the start (nth = 0, 1, ...) with that step;
 * NULL when none. */
static inline const tr_line *tr_find(const tr_metrics *m, mline_type t, long step, int nth)
{
	for (int i = 0; i < m->n; i++)
		if (m->v[i].type == t && m->v[i].step == step && nth-- == 0)
			return &m->v[i];
	return NULL;
}

/* The nth (0, 1, ...) event line named ev; NULL when none. */
static inline const tr_line *tr_event(const tr_metrics *m, const char *ev, int nth)
{
	for (int i = 0; i < m->n; i++)
		if (m->v[i].type == MLINE_EVENT && strcmp(m->v[i].event, ev) == 0 && nth-- == 0)
			return &m->v[i];
	return NULL;
}

static inline int tr_count(const tr_metrics *m, mline_type t)
{
	int c = 0;
	for (int i = 0; i < m->n; i++)
		c += m->v[i].type == t;
	return c;
}

/* The highest step among step lines; 0 when none. */
static inline long tr_last_step(const tr_metrics *m)
{
	long s = 0;
	for (int i = 0; i < m->n; i++)
		if (m->v[i].type == MLINE_STEP && m->v[i].step > s)
			s = m->v[i].step;
	return s;
}

/* Polls the metrics file until a step line with step >= want appears (or
 * an event named ev, when ev is not NULL); false after timeout seconds. */
static inline bool tr_wait_for(const char *path, long want, const char *ev, double timeout)
{
	double end = tr_now() + timeout;
	while (tr_now() < end) {
		tr_metrics m;
		tr_metrics_read(&m, path);
		bool hit = ev ? tr_event(&m, ev, 0) != NULL : tr_last_step(&m) >= want;
		tr_metrics_free(&m);
		if (hit)
			return true;
		tr_sleep(0.02);
	}
	return false;
}

/* Copies the default scaffold's Lua files (scaffold.lua and its neighbours in
 * TEND_SOURCE_ROOT/lua) into the temp dir's sub-folder name; returns its path. */
static inline const char *tr_scaffold_copy(const char *name)
{
	static const char *files[] = {"scaffold.lua", "policies.lua", "playbook.lua"};
	const char *root = getenv("TEND_SOURCE_ROOT");
	const char *dir = tr_path("%s", name);
	char src[1024], dst[1024];
	fsu_mkdir_p(dir, 0755);
	for (size_t i = 0; root && i < sizeof files / sizeof files[0]; i++) {
		snprintf(src, sizeof src, "%s/lua/%s", root, files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
		char *text = tr_read(src);
		if (text)
			tr_write(dst, text);
		free(text);
	}
	return dir;
}

/* Replaces the first occurrence of from with to in the file; 0 or -1. */
static inline int tr_replace(const char *path, const char *from, const char *to)
{
	char *text = tr_read(path);
	char *p = text ? strstr(text, from) : NULL;
	if (!p) {
		free(text);
		return -1;
	}
	size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
	int rc = tr_write(path, out);
	free(out);
	free(text);
	return rc;
}

#endif
