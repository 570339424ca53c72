/*
 * bench_cli_replay.c - `tend replay RUN` speed: 1,000,000 metric rows
 * (40,000 steps x 25 metrics: loss, grad norm, lr, tokens/s, step time,
 * 2 MoE layers x (8 loads, max/mean, entropy)) with a restart in the
 * middle, in a real store. Measures in the same run:
 *   plain   every value read metric by metric in the store's own order
 *           (store_metrics_read, no sort): the floor for reading them
 *   scan    store_metrics_scan: one query, by attempt and step (a sort)
 *   replay  rpl_store: the scan, samples built, every detector
 *   tend    `tend replay RUN` as a child process, when TEND_BIN is set
 * and prints each time with its ratio to plain. Target: replay <= 3 s.
 *
 *   bench_cli_replay [STEPS]
 */
#include "replay.h"
#include "store.h"
#include "store_replay.h"
#include "tend.h"

#include <ftw.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NAMES 25

static char names[NAMES][32];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void make_names(void)
{
	const char *base[] = {"loss", "grad_norm", "lr", "tokens_per_s", "step_time_s"};
	int n = 0;
	for (int i = 0; i < 5; i++)
		snprintf(names[n++], sizeof names[0], "%s", base[i]);
	for (int l = 0; l < 2; l++) {
		for (int e = 0; e < 8; e++)
			snprintf(names[n++], sizeof names[0], "moe.%d.load.%d", l, e);
		snprintf(names[n++], sizeof names[0], "moe.%d.max_over_mean", l);
		snprintf(names[n++], sizeof names[0], "moe.%d.entropy", l);
	}
}

static double value(int k, long step)
{
	double s = (double)step;
	switch (k) {
	case 0: return 2 + 3 * exp(-s / 5000) + 0.01 * sin(s * 1.3);
	case 1: return 1 + 0.1 * sin(s * 0.7);
	case 2: return 3e-4;
	case 3: return 100000 + 500 * sin(s);
	case 4: return 0.25;
	case 13: case 23: return 1.05;  /* max over mean */
	case 14: case 24: return 2.07;  /* entropy, near log(8) */
	default: return 0.125 + 0.01 * sin(s + k); /* expert loads */
	}
}

static int fill(store *s, int64_t run, int attempt, long from, long to)
{
	int rc = 0;
	for (long step = from; step <= to && rc == 0; step++) {
		if ((step - from) % 2000 == 0 && (rc = store_batch_begin(s)) < 0)
			break;
		for (int k = 0; k < NAMES && rc == 0; k++)
			rc = store_metric_put(s, run, attempt, step, names[k], value(k, step),
					      1.0e9 + (double)step * 0.25);
		if (rc == 0 && ((step - from) % 2000 == 1999 || step == to))
			rc = store_batch_commit(s);
	}
	return rc;
}

static int count_cb(int64_t step, int attempt, double v, double t, void *ud)
{
	(void)step, (void)attempt, (void)v, (void)t;
	(*(long *)ud)++;
	return 0;
}

static int scan_cb(int attempt, int64_t step, const char *name, double v,
		   double t, void *ud)
{
	(void)attempt, (void)step, (void)name, (void)v, (void)t;
	(*(long *)ud)++;
	return 0;
}

static double run_tend(const char *bin, const char *ws)
{
	double t0 = now_s();
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl(bin, bin, "--workspace", ws, "replay", "bench", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? now_s() - t0 : NAN;
}

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w)
{
	(void)sb, (void)f, (void)w;
	return remove(p);
}

int main(int argc, char **argv)
{
	long steps = argc > 1 ? atol(argv[1]) : 40000;
	const char *bin = getenv("TEND_BIN");
	char dir[] = "/tmp/tend-bench-XXXXXX", db[64], cmd[256];
	store *s = NULL;
	int64_t run;
	int n, rc = 1;
	if (!mkdtemp(dir))
		return 1;
	make_names();
	/* A real workspace when the binary is there, so `tend replay` can run. */
	snprintf(cmd, sizeof cmd, "'%s' init '%s/ws' > /dev/null", bin ? bin : "", dir);
	bool ws = bin && system(cmd) == 0;
	snprintf(db, sizeof db, "%s/%s", dir, ws ? "ws/tend.db" : "tend.db");
	double t0 = now_s();
	long half = steps / 2, back = half - steps / 20;
	if (store_open(&s, db, STORE_CREATE) < 0 ||
	    store_run_create(s, &run, "bench", "", dir) < 0 ||
	    store_attempt_begin(s, &n, run, "start", NULL, -1, 1, 1.0e9) < 0 ||
	    fill(s, run, 1, 1, half) < 0 ||
	    store_attempt_begin(s, &n, run, "crash", "c", back, 2, 1.0e9) < 0 ||
	    fill(s, run, 2, back + 1, back + (steps - half)) < 0) {
		fprintf(stderr, "bench: %s\n", tend_error_last());
		goto done;
	}
	double t_fill = now_s() - t0;

	long plain_rows = 0, scan_rows = 0;
	t0 = now_s();
	for (int k = 0; k < NAMES; k++)
		store_metrics_read(s, run, names[k], 0, count_cb, &plain_rows);
	double t_plain = now_s() - t0;

	t0 = now_s();
	store_metrics_scan(s, run, NULL, 0, scan_cb, &scan_rows);
	double t_scan = now_s() - t0;

	rpl_result res;
	t0 = now_s();
	if (rpl_store(&res, s, run, NULL) < 0) {
		fprintf(stderr, "bench: %s\n", tend_error_last());
		rpl_result_free(&res);
		goto done;
	}
	double t_replay = now_s() - t0;
	char ws_path[64];
	snprintf(ws_path, sizeof ws_path, "%s/ws", dir);
	double t_tend = ws ? run_tend(bin, ws_path) : NAN;

	printf("bench_cli_replay: %ld rows (%ld steps x %d metrics, 1 restart), "
	       "written in %.2f s\n", scan_rows, steps, NAMES, t_fill);
	printf("  plain   %.3f s  %5.2f Mrows/s  1.00x  (per-metric reads, store order)\n",
	       t_plain, (double)plain_rows / t_plain / 1e6);
	printf("  scan    %.3f s  %5.2f Mrows/s  %.2fx  (one query by attempt, step)\n",
	       t_scan, (double)scan_rows / t_scan / 1e6, t_scan / t_plain);
	printf("  replay  %.3f s  %5.2f Mrows/s  %.2fx  (%ld samples, %ld incidents, "
	       "%ld restarts)\n", t_replay, (double)res.rows / t_replay / 1e6,
	       t_replay / t_plain, res.samples, (long)res.n, res.restarts);
	if (ws)
		printf("  tend    %.3f s                 %.2fx  (`tend replay` process)\n",
		       t_tend, t_tend / t_plain);
	rc = scan_rows == plain_rows && res.rows == scan_rows ? 0 : 1;
	rpl_result_free(&res);
done:
	store_close(s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
