/*
 * e2e.h - helpers for the end-to-end tests of `tend run`: real workspaces
 * made by `$TEND_BIN init`, a small tend.yaml for short CPU runs, real
 * `tend` child processes with a deadline, and the store read back through
 * SQLite. Header-only; every test binary includes it once.
 */
#ifndef E2E_H
#define E2E_H

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double e2e_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void e2e_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- configs ------------------------------------------------------------ */

/* What a test changes in the short-run config; zero values take the
 * defaults below. */
typedef struct e2e_cfg {
	long steps;             /* run.steps (80) */
	long seed;              /* run.seed (1337) */
	long ckpt_every;        /* run.checkpoint_every (10) */
	const char *inject;     /* trainer.inject items, e.g. "\"nan@35\"" */
	const char *run;        /* more run: lines (2-space indent) */
	const char *trainer;    /* the trainer: section's model lines, or tiny */
	const char *monitors;   /* the monitors: section's body, or the default */
	const char *recovery;   /* more recovery: lines (2-space indent) */
	const char *extra;      /* more top-level sections (alerts: ...) */
} e2e_cfg;

/* Monitors tuned for 40-150 step runs: short windows and warm-ups, spike
 * patience 1 (an injected spike is one batch) and so a z-score of 12, well
 * above what a 32-sample MAD of a smooth grad norm makes of clean noise
 * (6.6 sigmas seen on a clean run with window 16, z 6), a 3 s stall limit. */
#define E2E_MONITORS \
	"  loss_spike:\n    window: 32\n    warmup: 16\n    zscore: 12\n    patience: 1\n" \
	"  grad_spike:\n    window: 32\n    warmup: 16\n    zscore: 12\n    patience: 1\n" \
	"  divergence:\n    window: 16\n" \
	"  throughput:\n    window: 20\n    patience: 10\n" \
	"  stall:\n    timeout_s: 3\n" \
	"  heartbeat:\n    timeout_s: 20\n"

/* The tiny model of the tests: one MoE block, a few ms per step. */
#define E2E_TINY \
	"  layers: 1\n  d_model: 32\n  heads: 2\n  context: 32\n" \
	"  batch: 4\n  experts: 4\n  top_k: 2\n"

static inline int e2e_write_config(const char *ws, const e2e_cfg *c)
{
	char path[PATH_MAX], text[8192];
	int n = snprintf(text, sizeof text,
		"version: 1\n"
		"run:\n  steps: %ld\n  eval_every: 20\n  checkpoint_every: %ld\n"
		"  keep_last: 50\n  keep_every: 0\n  seed: %ld\n%s"
		"trainer:\n%s"
		"  capacity_factor: 2.0\n  threads: 1\n  device: cpu\n  inject: [%s]\n"
		"monitors:\n%s"
		"recovery:\n  term_grace_s: 2\n  backoff_initial_s: 0.2\n"
		"  backoff_max_s: 2\n  rollback_steps: 10\n  skip_batches: 20\n"
		"  cooldown_steps: 5\n%s"
		"proposer:\n  auto: false\n"
		"%s",
		c->steps ? c->steps : 80, c->ckpt_every ? c->ckpt_every : 10,
		c->seed ? c->seed : 1337, c->run ? c->run : "",
		c->trainer ? c->trainer : E2E_TINY, c->inject ? c->inject : "",
		c->monitors ? c->monitors : E2E_MONITORS, c->recovery ? c->recovery : "",
		c->extra ? c->extra : "");
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	return fsu_write_atomic(path, text, (size_t)n, 0644);
}

/* ---- processes ---------------------------------------------------------- */

typedef struct e2e_proc {
	pid_t pid;
	char out[PATH_MAX], err[PATH_MAX];
} e2e_proc;

/* Starts `$TEND_BIN --workspace WS ARGS...` (args NULL-terminated) with
 * its stdout and stderr in WS/TAG.out and WS/TAG.err. */
static inline int e2e_spawnv(e2e_proc *p, const char *ws, const char *tag, const char *const *args)
{
	const char *bin = getenv("TEND_BIN");
	const char *argv[32];
	int n = 0;
	if (!bin)
		return -1;
	argv[n++] = bin;
	argv[n++] = "--workspace";
	argv[n++] = ws;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(p->out, sizeof p->out, "%s/%s.out", ws, tag);
	snprintf(p->err, sizeof p->err, "%s/%s.err", ws, tag);
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		int fo = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);
		if (fo < 0 || fe < 0 || nul < 0)
			_exit(126);
		dup2(nul, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		/* The machine is shared: OpenMP must not spin on idle cores. */
		setenv("OMP_WAIT_POLICY", "passive", 1);
		unsetenv("TEND_WORKSPACE");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return 0;
}

#define E2E_TIMEOUT (-1000)

/* Waits up to timeout_s: the exit code, -SIG when killed by a signal, or
 * E2E_TIMEOUT (the process is then killed). */
static inline int e2e_wait(e2e_proc *p, double timeout_s)
{
	double t0 = e2e_now();
	int st;
	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid)
			break;
		if (r < 0)
			return -1;
		if (e2e_now() - t0 > timeout_s) {
			fprintf(stderr, "e2e: pid %d still running after %.0f s: killed\n",
				(int)p->pid, timeout_s);
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			return E2E_TIMEOUT;
		}
		e2e_sleep(0.01);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* Runs `tend ARGS...` to the end (or the deadline); its exit code. */
#define e2e_tend(p, ws, tag, timeout, ...) \
	(e2e_spawnv((p), (ws), (tag), (const char *const[]){__VA_ARGS__, NULL}) < 0 ? -1 : \
	 e2e_wait((p), (timeout)))

/* A file's text (malloc'd, "" when missing); the caller frees. */
static inline char *e2e_slurp(const char *path)
{
	char *text = NULL;
	size_t len;
	if (fsu_read_file(&text, &len, path, 1 << 28) < 0)
		return strdup("");
	return text;
}

/* True while a trainer of run NAME holds its lock (see sup_life.c); its
 * pid in *pid. */
static inline int e2e_trainer_alive(const char *ws, const char *name, pid_t *pid)
{
	char path[PATH_MAX], buf[32] = "";
	snprintf(path, sizeof path, "%s/runs/%s/trainer.lock", ws, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int alive = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	if (pid)
		*pid = (pid_t)atol(buf);
	return alive;
}

/* Kills what a failed test may have left running: the run's trainer
 * (its process group, found through its lock, so never a recycled pid). */
static inline void e2e_kill_trainer(const char *ws, const char *name)
{
	pid_t pid = 0;
	for (int i = 0; i < 50 && e2e_trainer_alive(ws, name, &pid); i++) {
		if (pid > 1)
			kill(-pid, SIGKILL);
		e2e_sleep(0.05);
	}
}

/* ---- the store ---------------------------------------------------------- */

static inline sqlite3 *e2e_db(const char *ws)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "e2e: %s: %s\n", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

static inline sqlite3_stmt *e2e_prep(sqlite3 *db, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = NULL;
	char *sql = sqlite3_vmprintf(fmt, ap);
	if (!db || !sql || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "e2e: %s: %s\n", sql ? sql : fmt, db ? sqlite3_errmsg(db) : "no db");
		st = NULL;
	}
	sqlite3_free(sql);
	return st;
}

/* The first column of the first row as an integer; -1 when there is no
 * row or the query fails (printed). %q/%Q work as in sqlite3_mprintf. */
static inline long long e2e_int(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sqlite3_stmt *st = e2e_prep(db, fmt, ap);
	va_end(ap);
	long long v = -1;
	int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
	if (rc == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
	else if (st && rc != SQLITE_DONE)
		fprintf(stderr, "e2e: %s: %s\n", sqlite3_sql(st), sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return v;
}

/* The same as text into a static buffer ("" when none). */
static inline const char *e2e_text(sqlite3 *db, const char *fmt, ...)
{
	static char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	sqlite3_stmt *st = e2e_prep(db, fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* Prints a query's rows to stderr, '|'-separated: context for a failure. */
static inline void e2e_dump(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sqlite3_stmt *st = e2e_prep(db, fmt, ap);
	va_end(ap);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *t = sqlite3_column_text(st, i);
			fprintf(stderr, "%s%s", i ? "|" : "  ", t ? (const char *)t : "");
		}
		fputc('\n', stderr);
	}
	sqlite3_finalize(st);
}

/* What a failed run test prints: the run, attempts, incidents, events. */
static inline void e2e_dump_run(sqlite3 *db)
{
	fprintf(stderr, "-- runs\n");
	e2e_dump(db, "SELECT id, name, state, exit_status FROM runs");
	fprintf(stderr, "-- attempts\n");
	e2e_dump(db, "SELECT n, exit_status, signal, reason, from_checkpoint, from_step FROM attempts");
	fprintf(stderr, "-- incidents\n");
	e2e_dump(db, "SELECT kind, severity, signature, onset_step, last_step, count, summary "
		 "FROM incidents");
	fprintf(stderr, "-- events\n");
	e2e_dump(db, "SELECT attempt, step, kind, reason FROM events ORDER BY id");
}

/* ---- temp dirs ---------------------------------------------------------- */

static char e2e_root[64];

static inline int e2e_setup(void)
{
	strcpy(e2e_root, "/tmp/tend-test-XXXXXX");
	if (!getenv("TEND_BIN") || !mkdtemp(e2e_root)) {
		fprintf(stderr, "e2e: TEND_BIN unset or no temp dir\n");
		return -1;
	}
	return 0;
}

/* Removes the temp dir unless TEND_KEEP is set (for a post-mortem). */
static inline void e2e_teardown(void)
{
	if (getenv("TEND_KEEP"))
		fprintf(stderr, "e2e: kept %s\n", e2e_root);
	else
		fsu_rm_rf(e2e_root);
}

/* A fresh workspace ROOT/NAME made by `tend init`, with config c. */
static inline int e2e_workspace(char *ws, size_t cap, const char *name, const e2e_cfg *c)
{
	e2e_proc p;
	snprintf(ws, cap, "%s/%s", e2e_root, name);
	int rc = e2e_tend(&p, e2e_root, name, 30, "init", ws);
	if (rc != 0) {
		fprintf(stderr, "e2e: tend init %s: exit %d\n", ws, rc);
		return -1;
	}
	return e2e_write_config(ws, c);
}

#endif
