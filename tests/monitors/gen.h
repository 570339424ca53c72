/*
 * gen.h - synthetic but realistic training curves for the monitor tests and
 * the replay benchmark, header-only and seeded (same seed, same rows).
 *
 *   loss      L_inf + A (tau + 1)^-alpha, tau the optimizer progress (slow
 *             during LR warm-up), x (1 + noise N(0,1)) x (1 + mild bumps of
 *             1-2.5 noise sigmas lasting 20-80 steps every 500-1500 steps)
 *   grad norm high early, decaying, then drifting up 30% over 5000 steps,
 *             lognormal noise (sigma 0.1-0.2)
 *   lr        linear warm-up, cosine decay to 10%
 *   tokens/s  +-10% uniform noise; the first 3 steps at 0.3x (compilation);
 *             every 1000 steps a checkpoint step at 0.2x plus a 30 s pause
 *   MoE       2 layers x 8 experts, load noise sigma 0.3 early falling to
 *             0.1, capacity factor 1.25 (overflow is dropped)
 */
#ifndef MON_TEST_GEN_H
#define MON_TEST_GEN_H

#include "mon.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct gen_rng {
	uint64_t s;
} gen_rng;

/* splitmix64: tiny, seedable, good enough for noise */
static inline uint64_t gen_u64(gen_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline double gen_unif(gen_rng *r)
{
	return (double)(gen_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double gen_normal(gen_rng *r)
{
	double u = gen_unif(r), v = gen_unif(r);
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

#define GEN_E 8
#define GEN_LAYERS 2

typedef struct gen_run {
	gen_rng r;
	double L_inf, A, alpha, noise, warmup, peak_lr, total;
	double g0, g_sigma, tps0, tokens_per_step;
	double tau, t;
	long step;
	long next_bump, bump_start, bump_len;
	double bump_amp;
	double load[GEN_LAYERS][GEN_E];
	mon_moe_layer moe[GEN_LAYERS];
	/* the clean figures of the last row, before a test bends them */
	double loss, grad_norm;
} gen_run;

static inline double gen_range(gen_rng *r, double lo, double hi)
{
	return lo + (hi - lo) * gen_unif(r);
}

static inline void gen_init(gen_run *g, uint64_t seed, double total_steps)
{
	memset(g, 0, sizeof *g);
	g->r.s = seed * 7919 + 17;
	g->L_inf = gen_range(&g->r, 1.8, 2.5);
	g->A = gen_range(&g->r, 6.0, 9.0);
	g->alpha = gen_range(&g->r, 0.3, 0.5);
	g->noise = gen_range(&g->r, 0.01, 0.03);
	g->warmup = gen_range(&g->r, 100, 500);
	g->peak_lr = gen_range(&g->r, 1e-4, 6e-4);
	g->total = total_steps;
	g->g0 = gen_range(&g->r, 0.3, 1.5);
	g->g_sigma = gen_range(&g->r, 0.1, 0.2);
	g->tps0 = gen_range(&g->r, 5e4, 2e5);
	g->tokens_per_step = 524288;
	g->next_bump = (long)gen_range(&g->r, 500, 1500);
	g->bump_start = -1000000;
	for (int l = 0; l < GEN_LAYERS; l++) {
		g->moe[l].layer = 2 * l + 1;
		g->moe[l].n_experts = GEN_E;
		g->moe[l].load = g->load[l];
	}
}

static inline double gen_lr(const gen_run *g, double s)
{
	if (s < g->warmup)
		return g->peak_lr * s / g->warmup;
	double x = (s - g->warmup) / (g->total - g->warmup);
	if (x > 1)
		x = 1;
	return g->peak_lr * (0.1 + 0.45 * (1 + cos(3.141592653589793 * x)));
}

static inline double gen_bump(gen_run *g)
{
	if (g->step == g->next_bump) {
		g->bump_start = g->step;
		g->bump_len = (long)gen_range(&g->r, 20, 80);
		g->bump_amp = gen_range(&g->r, 1.0, 2.5) * g->noise;
		g->next_bump = g->step + (long)gen_range(&g->r, 500, 1500);
	}
	long i = g->step - g->bump_start;
	if (i < 0 || i >= g->bump_len)
		return 0.0;
	double sn = sin(3.141592653589793 * (double)i / (double)g->bump_len);
	return g->bump_amp * sn * sn;
}

static inline void gen_moe(gen_run *g, mon_sample *s)
{
	double sigma = 0.1 + 0.2 * exp(-(double)g->step / 500.0);
	double mean = g->tokens_per_step * 2 / GEN_E;   /* top-2 routing */
	for (int l = 0; l < GEN_LAYERS; l++) {
		double dropped = 0, cap = 1.25 * mean;
		for (int e = 0; e < GEN_E; e++) {
			double v = mean * (1 + sigma * gen_normal(&g->r));
			if (v < 0.01 * mean)
				v = 0.01 * mean;
			if (v > cap)
				dropped += v - cap;
			g->load[l][e] = v;
		}
		g->moe[l].max_over_mean = g->moe[l].entropy = NAN;
		g->moe[l].dropped = dropped;
		g->moe[l].tokens = mean * GEN_E;
	}
	s->n_moe = GEN_LAYERS;
	s->moe = g->moe;
}

/* The next step's row. */
static inline void gen_next(gen_run *g, mon_sample *s)
{
	g->step++;
	double st = (double)g->step;
	g->tau += st < g->warmup ? st / g->warmup : 1.0;
	double clean = g->L_inf + g->A * pow(g->tau + 1, -g->alpha);
	double bump = gen_bump(g);
	g->loss = clean * (1 + g->noise * gen_normal(&g->r)) * (1 + bump);
	double drift = (1 + 2 * exp(-st / 300.0)) * (1 + 0.3 * st / 5000.0);
	g->grad_norm = g->g0 * drift * exp(g->g_sigma * gen_normal(&g->r));
	double tps = g->tps0 * (1 + 0.1 * (2 * gen_unif(&g->r) - 1));
	if (g->step <= 3)
		tps *= 0.3;
	if (g->step % 1000 == 0) {
		tps *= 0.2;
		g->t += 30.0;
	}
	double step_time = g->tokens_per_step / tps;
	g->t += step_time;
	mon_sample_init(s, MON_SAMPLE_STEP, g->step, g->t);
	s->present = MON_F_LOSS | MON_F_GRAD_NORM | MON_F_LR;
	s->loss = g->loss;
	s->grad_norm = g->grad_norm;
	s->lr = gen_lr(g, st);
	s->tokens_per_s = tps;
	s->step_time_s = step_time;
	gen_moe(g, s);
}

/* ---- collecting incidents -------------------------------------------- */

#define GOT_MAX 256

/* What the emit callback saw: every incident counted, the first GOT_MAX
 * kept. Zero it before use. */
typedef struct got {
	int n;
	mon_incident inc[GOT_MAX];
} got;

static inline int got_emit(const mon_incident *inc, void *ud)
{
	got *g = ud;
	if (g->n < GOT_MAX)
		g->inc[g->n] = *inc;
	g->n++;
	return 0;
}

/* How many kept incidents have this signature. */
static inline int got_count(const got *g, const char *sig)
{
	int c = 0;
	for (int i = 0; i < g->n && i < GOT_MAX; i++)
		c += strcmp(g->inc[i].signature, sig) == 0;
	return c;
}

/* The first kept incident with this signature, or NULL. */
static inline const mon_incident *got_find(const got *g, const char *sig)
{
	for (int i = 0; i < g->n && i < GOT_MAX; i++)
		if (strcmp(g->inc[i].signature, sig) == 0)
			return &g->inc[i];
	return NULL;
}

#endif
