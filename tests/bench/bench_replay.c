/*
 * bench_replay.c - replay speed: 1,000,000 metric rows (loss, grad norm,
 * lr, tokens/s, step time, 2 MoE layers x 8 experts) through every builtin
 * detector, against just iterating the same rows (building each mon_sample)
 * in the same run. Target: <= 2 s for the million rows.
 *
 *   bench_replay [ROWS]
 */
#include "../monitors/gen.h"
#include "mon.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* One recorded row, compact as a replay reads it from the store. */
typedef struct row {
	long step;
	double t;
	float loss, grad, lr, tps, st;
	float load[GEN_LAYERS][GEN_E];
	float dropped[GEN_LAYERS], tokens[GEN_LAYERS];
} row;

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a shared machine the wall time also counts
 * the time other processes held the core. */
static double cpu_s(void)
{
	return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void record(row *r, const mon_sample *s)
{
	r->step = s->step;
	r->t = s->t;
	r->loss = (float)s->loss;
	r->grad = (float)s->grad_norm;
	r->lr = (float)s->lr;
	r->tps = (float)s->tokens_per_s;
	r->st = (float)s->step_time_s;
	for (int l = 0; l < GEN_LAYERS; l++) {
		for (int e = 0; e < GEN_E; e++)
			r->load[l][e] = (float)s->moe[l].load[e];
		r->dropped[l] = (float)s->moe[l].dropped;
		r->tokens[l] = (float)s->moe[l].tokens;
	}
}

/* What a replay does per row before any detector: build the sample. */
typedef struct rowbuf {
	double load[GEN_LAYERS][GEN_E];
	mon_moe_layer moe[GEN_LAYERS];
	mon_sample s;
} rowbuf;

static void load_row(rowbuf *b, const row *r)
{
	mon_sample_init(&b->s, MON_SAMPLE_STEP, r->step, r->t);
	b->s.present = MON_F_LOSS | MON_F_GRAD_NORM | MON_F_LR;
	b->s.loss = r->loss;
	b->s.grad_norm = r->grad;
	b->s.lr = r->lr;
	b->s.tokens_per_s = r->tps;
	b->s.step_time_s = r->st;
	for (int l = 0; l < GEN_LAYERS; l++) {
		for (int e = 0; e < GEN_E; e++)
			b->load[l][e] = r->load[l][e];
		b->moe[l] = (mon_moe_layer){2 * l + 1, GEN_E, b->load[l], NAN, NAN,
			r->dropped[l], r->tokens[l], 0};
	}
	b->s.n_moe = GEN_LAYERS;
	b->s.moe = b->moe;
}

static int count_emit(const mon_incident *inc, void *ud)
{
	(void)inc;
	(*(long *)ud)++;
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	row *rows = n > 0 ? malloc((size_t)n * sizeof *rows) : NULL;
	mon_set *set = NULL;
	gen_run g;
	mon_sample s;
	rowbuf b;
	long incidents = 0;
	double sink = 0;
	int rc = 1;
	if (!rows) {
		fprintf(stderr, "bench_replay: cannot hold %ld rows\n", n);
		return 1;
	}
	gen_init(&g, 1, (double)n);
	for (long i = 0; i < n; i++) {
		gen_next(&g, &s);
		record(&rows[i], &s);
	}
	double t0 = now_s(), c0 = cpu_s();
	for (long i = 0; i < n; i++) {
		load_row(&b, &rows[i]);
		sink += b.s.loss + b.moe[1].load[7];
	}
	double base = now_s() - t0, base_cpu = cpu_s() - c0;
	if (mon_set_new(&set, NULL) < 0) {
		fprintf(stderr, "bench_replay: %s\n", tend_error_last());
		goto done;
	}
	t0 = now_s();
	c0 = cpu_s();
	for (long i = 0; i < n; i++) {
		load_row(&b, &rows[i]);
		sink += b.s.loss + b.moe[1].load[7];
		if (mon_feed(set, &b.s, count_emit, &incidents) < 0) {
			fprintf(stderr, "bench_replay: %s\n", tend_error_last());
			goto done;
		}
	}
	double mon = now_s() - t0, mon_cpu = cpu_s() - c0;
	printf("replay: %ld rows through every monitor: %.3f s wall, %.3f s CPU, "
	       "%.0f rows/s (CPU), %.0f ns/row, %ld incidents\n", n, mon, mon_cpu,
	       (double)n / mon_cpu, 1e9 * mon_cpu / (double)n, incidents);
	printf("replay: iterating the same rows without monitors: %.3f s wall, %.3f s CPU; "
	       "monitors cost %.1f x plain iteration (CPU)\n", base, base_cpu,
	       base_cpu > 0 ? mon_cpu / base_cpu : 0.0);
	printf("replay: target <= 2 s per 1,000,000 rows: %s at %.2f s CPU per million "
	       "(checksum %g)\n", mon_cpu * 1e6 / (double)n <= 2.0 ? "met" : "MISSED",
	       mon_cpu * 1e6 / (double)n, sink);
	rc = 0;
done:
	mon_set_free(set);
	free(rows);
	return rc;
}
