/*
 * bench_ingest.c - how fast the store takes metrics: 2,000,000 values
 * (25 names per step, 80,000 steps) in batches of one transaction per
 * 1,000 metrics lines (steps) plus an offset update per batch, into a real
 * file on disk; the same inserts into ":memory:" in the same run give the
 * ratio that says what the file costs. Also a smaller batch (40 steps,
 * 1,000 values) and reading one metric of one run back by step.
 *
 * Next to each wall-clock rate is the rate in this process's CPU time:
 * on a shared machine the gap between the two is time spent waiting for
 * the disk or for a core.
 *
 * Usage: bench_ingest [scale]   (scale 0.1 runs a tenth of the steps)
 */
#include "store.h"
#include "tend.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NAMES 25

static const char *const names[NAMES] = {
	"loss", "loss_ema", "lr", "grad_norm", "grad_norm_clipped",
	"tokens_per_s", "step_time_ms", "data_time_ms", "gpu_mem_gb",
	"param_norm", "update_ratio", "moe/aux_loss", "moe/z_loss",
	"moe/drop_frac", "moe/expert0_frac", "moe/expert1_frac",
	"moe/expert2_frac", "moe/expert3_frac", "moe/expert4_frac",
	"moe/expert5_frac", "moe/expert6_frac", "moe/expert7_frac",
	"attn/entropy", "logit_max", "eval/loss",
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static uint64_t rng = 88172645463325252ull;

static double next_value(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0 * 10.0;
}

/* Inserts steps x NAMES values, batch_steps steps per transaction; returns
 * the seconds it took (and the CPU seconds in *cpu), or -1 with the error
 * printed. */
static double ingest(store *s, int64_t run, long steps, long batch_steps,
		     double *cpu)
{
	double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	int rc = 0;

	for (long step = 0; step < steps && rc == 0; step += batch_steps) {
		long end = step + batch_steps < steps ? step + batch_steps : steps;

		rc = store_batch_begin(s);
		for (long k = step; k < end && rc == 0; k++)
			for (int i = 0; i < NAMES && rc == 0; i++)
				rc = store_metric_put(s, run, 1, k, names[i],
						      next_value(), 1.7e9 + k * 0.1);
		if (rc == 0)
			rc = store_offset_set(s, run, "metrics.jsonl", end * 900);
		if (rc == 0)
			rc = store_batch_commit(s);
	}
	if (rc) {
		fprintf(stderr, "bench_ingest: %s\n", tend_error_last());
		return -1;
	}
	*cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	return now_s() - t0;
}

static int count_cb(int64_t step, int attempt, double v, double t, void *ud)
{
	(void)step; (void)attempt; (void)v; (void)t;
	++*(long *)ud;
	return 0;
}

typedef struct result {
	double ingest_s, ingest_cpu_s, read_s;
	long read_n;
} result;

/* One full measurement against path; 0 or -1. */
static int measure(const char *path, long steps, long batch_steps,
		   result *r)
{
	store *s = NULL;
	int64_t run = 0;
	double t0;

	if (store_open(&s, path, STORE_CREATE) != 0 ||
	    store_run_create(s, &run, "bench", "", "/w") != 0) {
		fprintf(stderr, "bench_ingest: %s\n", tend_error_last());
		store_close(s);
		return -1;
	}
	r->ingest_s = ingest(s, run, steps, batch_steps, &r->ingest_cpu_s);
	r->read_n = 0;
	t0 = now_s();
	if (r->ingest_s >= 0 &&
	    store_metrics_read(s, run, "grad_norm", 0, count_cb, &r->read_n))
		r->ingest_s = -1;
	r->read_s = now_s() - t0;
	store_close(s);
	return r->ingest_s < 0 ? -1 : 0;
}

static int rm_one(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st; (void)f; (void)w;
	return remove(p);
}

static int run_case(const char *dir, long steps, long batch_steps, int k)
{
	char path[256];
	result file, mem;
	double values = (double)steps * NAMES;

	snprintf(path, sizeof path, "%s/bench-%d.db", dir, k);
	if (measure(path, steps, batch_steps, &file) != 0 ||
	    measure(":memory:", steps, batch_steps, &mem) != 0)
		return -1;
	printf("ingest %.0f values, %ld values/batch: file %.0f values/s "
	       "(%.2f s; CPU time %.0f values/s), memory %.0f values/s "
	       "(CPU time %.0f values/s), file/memory %.2f\n", values,
	       batch_steps * NAMES, values / file.ingest_s, file.ingest_s,
	       values / file.ingest_cpu_s, values / mem.ingest_s,
	       values / mem.ingest_cpu_s, mem.ingest_s / file.ingest_s);
	printf("read one metric, %ld values by step: file %.0f values/s, "
	       "memory %.0f values/s, file/memory %.2f\n", file.read_n,
	       file.read_n / file.read_s, mem.read_n / mem.read_s,
	       mem.read_s / file.read_s);
	return 0;
}

int main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;
	long steps = (long)(80000 * (scale > 0 ? scale : 1.0));
	char dir[] = "/tmp/tend-bench-XXXXXX";
	int rc;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	printf("bench_ingest: %ld steps x %d names, one run, WAL file in %s\n",
	       steps, NAMES, dir);
	rc = run_case(dir, steps, 1000, 1);
	if (rc == 0)
		rc = run_case(dir, steps, 40, 2);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return rc ? 1 : 0;
}
