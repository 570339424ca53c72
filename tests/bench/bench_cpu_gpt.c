/*
 * bench_cpu_gpt.c - throughput of the CPU reference trainer, measured
 * against this machine's own FP32 FMA peak taken in the same run.
 *
 *  (a) peak: independent AVX2 FMA chains on every OpenMP thread;
 *  (b) GPT-2 124M dense, B=4 T=64, forward + backward + AdamW step:
 *      achieved GFLOP/s (gpt_flops_per_token) and the share of the peak;
 *  (c) "mini activations": an MoE model (8 experts, top-2, cf 1.25) next
 *      to the dense model with the same active FLOPs (same d_model, dense
 *      FFN width 2 x 4C = the two experts a token visits): tokens/s and
 *      their ratio.
 * Usage: bench_cpu_gpt [a|b|c]... (default all). Each part runs < ~60 s.
 */
#include "gpt.h"
#include "rng.h"
#include "tend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of all our threads: on a shared machine wall time mixes in
 * other people's load, so every rate is also given per CPU-second. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

/* ---- (a) peak ------------------------------------------------------------ */

#define PEAK_ACC 12 /* > FMA latency x ports (4 x 2 on Zen 3) */

/* FLOPs done by one thread in iters iterations; *sink gets the result.
 * Twelve named accumulators, not an array: gcc keeps an array of __m256
 * in memory and the loop then measures store forwarding, not FMA. */
static double fma_chains(long iters, float *sink)
{
#if defined(__AVX2__) && defined(__FMA__)
	__m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
	__m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(1.0f);
	__m256 c2 = _mm256_set1_ps(2.0f), c3 = _mm256_set1_ps(3.0f);
	__m256 c4 = _mm256_set1_ps(4.0f), c5 = _mm256_set1_ps(5.0f);
	__m256 c6 = _mm256_set1_ps(6.0f), c7 = _mm256_set1_ps(7.0f);
	__m256 c8 = _mm256_set1_ps(8.0f), c9 = _mm256_set1_ps(9.0f);
	__m256 c10 = _mm256_set1_ps(10.0f), c11 = _mm256_set1_ps(11.0f);
	for (long it = 0; it < iters; it++) {
		c0 = _mm256_fmadd_ps(c0, a, b);
		c1 = _mm256_fmadd_ps(c1, a, b);
		c2 = _mm256_fmadd_ps(c2, a, b);
		c3 = _mm256_fmadd_ps(c3, a, b);
		c4 = _mm256_fmadd_ps(c4, a, b);
		c5 = _mm256_fmadd_ps(c5, a, b);
		c6 = _mm256_fmadd_ps(c6, a, b);
		c7 = _mm256_fmadd_ps(c7, a, b);
		c8 = _mm256_fmadd_ps(c8, a, b);
		c9 = _mm256_fmadd_ps(c9, a, b);
		c10 = _mm256_fmadd_ps(c10, a, b);
		c11 = _mm256_fmadd_ps(c11, a, b);
	}
	__m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1),
					       _mm256_add_ps(c2, c3)),
				 _mm256_add_ps(_mm256_add_ps(c4, c5),
					       _mm256_add_ps(c6, c7)));
	s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9),
					   _mm256_add_ps(c10, c11)));
	float out[8];
	_mm256_storeu_ps(out, s);
	*sink = out[0];
	return 2.0 * 8 * PEAK_ACC * (double)iters;
#else
	float c[4] = { 0, 1, 2, 3 };
	for (long it = 0; it < iters; it++) {
		c[0] = c[0] * 0.999999f + 1e-7f;
		c[1] = c[1] * 0.999999f + 1e-7f;
		c[2] = c[2] * 0.999999f + 1e-7f;
		c[3] = c[3] * 0.999999f + 1e-7f;
	}
	*sink = c[0] + c[1] + c[2] + c[3];
	return 2.0 * 4 * (double)iters;
#endif
}

typedef struct rate {
	double wall;  /* GFLOP/s over wall time, all threads */
	double core;  /* GFLOP per CPU-second, i.e. per busy core */
} rate;

/* Where each thread leaves its result, so the loop is not optimised away. */
static volatile float peak_sink[256];

/* Runs the FMA chains on every thread for iters iterations; adds the FLOPs
 * and the wall and CPU seconds into *acc (flops, wall, cpu). */
static void peak_burst(long iters, double acc[3])
{
	double flops = 0.0;
	double t0 = now(), c0 = cpu_now();
#ifdef _OPENMP
#pragma omp parallel reduction(+ : flops)
#endif
	{
		float s;
		flops += fma_chains(iters, &s);
#ifdef _OPENMP
		peak_sink[omp_get_thread_num() & 255] = s;
#else
		peak_sink[0] = s;
#endif
	}
	acc[0] += flops;
	acc[1] += now() - t0;
	acc[2] += cpu_now() - c0;
}

static rate peak_rate(const double acc[3])
{
	rate r = { acc[0] / acc[1] * 1e-9, acc[0] / acc[2] * 1e-9 };
	return r;
}

static rate measure_peak(void)
{
	double acc[3] = { 0 };
	peak_burst(60000000, acc);
	rate r = peak_rate(acc);
	printf("peak: %s FP32 FMA on %d threads: %.1f GFLOP/s wall, %.1f "
	       "GFLOP per CPU-second (%.2f s)\n",
#if defined(__AVX2__) && defined(__FMA__)
	       "AVX2",
#else
	       "scalar (no -mavx2 -mfma)",
#endif
	       threads(), r.wall, r.core, acc[1]);
	return r;
}

/* ---- a training step ----------------------------------------------------- */

/* A model being trained on random tokens, with its step times. */
typedef struct runner {
	const char *name;
	gpt *g;
	int B, T, *inp, *tgt;
	rng r;
	int steps;
	double fwd, bwd, opt, cpu;
	float loss;
} runner;

static int runner_open(runner *ru, const char *name, const gpt_config *c,
		       int B, int T)
{
	memset(ru, 0, sizeof *ru);
	ru->name = name;
	ru->B = B;
	ru->T = T;
	ru->inp = malloc((size_t)B * T * sizeof(int));
	ru->tgt = malloc((size_t)B * T * sizeof(int));
	rng_seed(&ru->r, 1);
	if (!ru->inp || !ru->tgt || gpt_new(&ru->g, c, 1) != 0) {
		fprintf(stderr, "%s: %s\n", name, tend_error_last());
		return 1;
	}
	return 0;
}

static void runner_close(runner *ru)
{
	gpt_free(ru->g);
	free(ru->inp);
	free(ru->tgt);
}

/* One forward + backward + clip + AdamW step; timed unless warmup. */
static int runner_step(runner *ru, int warmup)
{
	int n = ru->B * ru->T, V = gpt_get_config(ru->g)->vocab, rc;
	gpt_adamw opt = gpt_adamw_defaults();
	for (int i = 0; i < n; i++) {
		ru->inp[i] = (int)rng_below(&ru->r, (uint64_t)V);
		ru->tgt[i] = (int)rng_below(&ru->r, (uint64_t)V);
	}
	double c0 = cpu_now(), t0 = now();
	rc = gpt_forward(ru->g, ru->inp, ru->tgt, ru->B, ru->T, &ru->loss);
	double t1 = now();
	gpt_zero_grad(ru->g);
	if (rc == 0)
		rc = gpt_backward(ru->g);
	double t2 = now();
	gpt_clip(ru->g, 1.0f);
	if (rc == 0)
		rc = gpt_step(ru->g, &opt, 1e-4f);
	double t3 = now();
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", ru->name, tend_error_last());
		return 1;
	}
	if (!warmup) {
		ru->fwd += t1 - t0;
		ru->bwd += t2 - t1;
		ru->opt += t3 - t2;
		ru->cpu += cpu_now() - c0;
		ru->steps++;
	}
	return 0;
}

static double runner_wall(const runner *ru)
{
	return ru->fwd + ru->bwd + ru->opt;
}

static void runner_print(const runner *ru)
{
	double w = runner_wall(ru), s = ru->steps;
	printf("%s B=%d T=%d: %zu params (%zu active), %.3f s/step (fwd %.3f "
	       "bwd %.3f clip+adamw %.3f), %.0f tok/s, loss %.3f\n", ru->name,
	       ru->B, ru->T, gpt_num_params(ru->g),
	       gpt_num_active_params(ru->g), w / s, ru->fwd / s, ru->bwd / s,
	       ru->opt / s, ru->B * ru->T * s / w, ru->loss);
}

/* ---- (b) GPT-2 124M ------------------------------------------------------ */

/* Steps alternate with short peak bursts, so that both see the same load
 * on a shared machine. */
static int bench_gpt2(void)
{
	enum { STEPS = 5 };
	gpt_config c = gpt_config_gpt2_124m();
	runner ru;
	double acc[3] = { 0 }, t0 = now();
	if (runner_open(&ru, "gpt2-124m", &c, 4, 64) != 0)
		return 1;
	printf("gpt2-124m: init %.2f s\n", now() - t0);
	int rc = runner_step(&ru, 1);
	for (int s = 0; s < STEPS && rc == 0; s++) {
		peak_burst(10000000, acc);
		rc = runner_step(&ru, 0);
	}
	if (rc == 0) {
		rate peak = peak_rate(acc);
		double flops = gpt_flops_per_token(ru.g, ru.T) * ru.B * ru.T *
			       ru.steps;
		double gf = flops / runner_wall(&ru) * 1e-9;
		double gfc = flops / ru.cpu * 1e-9;
		runner_print(&ru);
		printf("gpt2-124m: %.1f GFLOP/s = %.1f%% of the peak measured "
		       "alongside (%.1f GFLOP/s; goal >= 40%%)\n", gf,
		       100.0 * gf / peak.wall, peak.wall);
		printf("gpt2-124m: %.1f GFLOP per CPU-second = %.1f%% of the "
		       "peak per CPU-second (%.1f); CPU use %.0f%% of %d "
		       "threads\n", gfc, 100.0 * gfc / peak.core, peak.core,
		       100.0 * ru.cpu / runner_wall(&ru) / threads(),
		       threads());
	}
	runner_close(&ru);
	return rc;
}

/* ---- (c) MoE vs dense at equal active FLOPs ------------------------------ */

/* The two models take steps in turn, so load changes hit both alike. */
static int bench_moe(void)
{
	enum { STEPS = 4 };
	gpt_config dense = { .vocab = 8192, .context = 256, .layers = 4,
			     .heads = 8, .d_model = 512, .d_ff = 2 * 4 * 512,
			     .moe_every = 0 };
	gpt_config moe = dense;
	moe.d_ff = 4 * 512;
	moe.moe_every = 1;
	moe.experts = 8;
	moe.top_k = 2;
	moe.capacity_factor = 1.25f;
	runner d, m;
	int rc = runner_open(&d, "dense d_ff=8C", &dense, 8, 64) ||
		 runner_open(&m, "moe 8x top-2 d_ff=4C", &moe, 8, 64) ||
		 runner_step(&d, 1) || runner_step(&m, 1);
	for (int s = 0; s < STEPS && rc == 0; s++)
		rc = runner_step(&d, 0) || runner_step(&m, 0);
	if (rc == 0) {
		gpt_moe_layer_stats ms;
		runner_print(&d);
		runner_print(&m);
		gpt_moe_stats(m.g, &ms, 1);
		printf("moe: GFLOP/token dense %.3f, moe %.3f; layer 0 load "
		       "max %.3f, entropy %.3f, dropped %.1f%%\n",
		       gpt_flops_per_token(d.g, 64) * 1e-9,
		       gpt_flops_per_token(m.g, 64) * 1e-9, ms.load_max,
		       ms.entropy, 100.0 * ms.dropped_frac);
		printf("moe/dense tokens/s ratio: %.2f (goal >= 0.70); "
		       "forward+backward only: %.2f\n",
		       runner_wall(&d) / runner_wall(&m),
		       (d.fwd + d.bwd) / (m.fwd + m.bwd));
	}
	runner_close(&d);
	runner_close(&m);
	return rc;
}

/* libgomp reads OMP_WAIT_POLICY when it loads, so the only way to choose
 * it is before exec. Passive: a thread waiting at a barrier sleeps instead
 * of spinning; on this shared 2-core machine a spinning thread takes the
 * core its partner needs (measured: 37% -> 56% of peak per CPU-second
 * under load), and on an idle one the futex wake-ups cost ~1% of a step. */
static void choose_wait_policy(char **argv)
{
	if (getenv("OMP_WAIT_POLICY"))
		return;
	setenv("OMP_WAIT_POLICY", "passive", 1);
	execv("/proc/self/exe", argv);
	/* exec failed: carry on with the default policy */
}

int main(int argc, char **argv)
{
	choose_wait_policy(argv);
	const char *parts = argc > 1 ? "" : "abc";
	int want[3] = { 0 };
	for (int i = 1; i < argc; i++)
		for (const char *p = argv[i]; *p; p++)
			if (*p >= 'a' && *p <= 'c')
				want[*p - 'a'] = 1;
	for (const char *p = parts; *p; p++)
		want[*p - 'a'] = 1;
	printf("bench_cpu_gpt: %d threads, OMP_WAIT_POLICY=%s\n", threads(),
	       getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "-");
	if (want[0])
		measure_peak();
	if (want[1] && bench_gpt2() != 0)
		return 1;
	if (want[2] && bench_moe() != 0)
		return 1;
	return 0;
}
