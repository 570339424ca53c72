/*
 * test_detectors.c - each detector fires on its synthetic anomaly with the
 * right kind, onset step, severity and signature; repeats fold into one
 * signature; a rollback (explicit or read from steps going back) raises
 * nothing; malformed samples and failing callbacks are answered.
 *
 * Anomalies are bent into the realistic clean curves of gen.h (which raise
 * nothing, see test_clean.c), so each test also shows the other detectors
 * stay quiet.
 */
#include "gen.h"
#include "mon.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdlib.h>

/* A set with defaults (or p) and a fresh collector. */
typedef struct fixture {
	mon_set *set;
	got *g;
	gen_run run;
	mon_sample s;
} fixture;

static int fx_open(fixture *f, const mon_params *p, uint64_t seed)
{
	memset(f, 0, sizeof *f);
	f->g = calloc(1, sizeof *f->g);
	gen_init(&f->run, seed, 5000);
	if (!f->g)
		return TEND_ENOMEM;
	return mon_set_new(&f->set, p);
}

static void fx_close(fixture *f)
{
	mon_set_free(f->set);
	free(f->g);
}

/* Generates the next clean row into f->s without feeding it. */
static mon_sample *fx_next(fixture *f)
{
	gen_next(&f->run, &f->s);
	return &f->s;
}

static int fx_feed(fixture *f)
{
	return mon_feed(f->set, &f->s, got_emit, f->g);
}

/* Feeds clean rows up to and including step `to`. */
static void fx_clean_to(fixture *f, long to)
{
	while (f->run.step < to) {
		fx_next(f);
		fx_feed(f);
	}
}

static void dump(const got *g)
{
	for (int i = 0; i < g->n && i < GOT_MAX; i++)
		fprintf(stderr, "  %s onset %ld last %ld: %s\n", g->inc[i].signature,
			g->inc[i].onset_step, g->inc[i].last_step, g->inc[i].summary);
}

static void test_loss_spike(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 42) == 0);
	fx_clean_to(&f, 2999);
	for (int i = 0; i < 10; i++) {
		fx_next(&f)->loss *= 2.5;
		fx_feed(&f);
	}
	fx_clean_to(&f, 3500);
	TT_CHECK(f.g->n == 1);
	const mon_incident *inc = got_find(f.g, "loss_spike");
	TT_REQUIRE(inc);
	TT_CHECK(inc->kind == MON_LOSS_SPIKE && inc->severity == MON_WARNING);
	TT_CHECK(inc->onset_step == 3000 && inc->last_step == 3002);
	TT_CHECK_HAS(inc->summary, "at step 3002 is ");
	TT_CHECK_HAS(inc->summary, "robust sigmas above the median");
	TT_CHECK_HAS(inc->summary, "of the last 128 steps (3 in a row since step 3000)");
	TT_CHECK(inc->n_evidence == MON_EVIDENCE_MAX);
	TT_CHECK(inc->ev_step[MON_EVIDENCE_MAX - 1] == 3002);
	TT_CHECK(inc->ev_value[MON_EVIDENCE_MAX - 1] == inc->value);
	TT_CHECK(inc->value > inc->threshold && inc->threshold > inc->baseline);
	if (f.g->n != 1)
		dump(f.g);
	fx_close(&f);
}

static void test_grad_spike_comes_first(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 43) == 0);
	fx_clean_to(&f, 2994);
	for (int i = 0; i < 8; i++) {
		fx_next(&f)->grad_norm *= 10;
		if (i >= 3)
			f.s.loss *= 2;   /* the loss follows three steps later */
		fx_feed(&f);
	}
	fx_clean_to(&f, 3300);
	TT_CHECK(f.g->n == 2);
	const mon_incident *g = got_find(f.g, "grad_spike");
	const mon_incident *l = got_find(f.g, "loss_spike");
	TT_REQUIRE(g && l);
	TT_CHECK(g->onset_step == 2995 && g->last_step == 2996);
	TT_CHECK(l->onset_step == 2998 && l->last_step == 3000);
	TT_CHECK(g < l);   /* emitted first */
	TT_CHECK_HAS(g->summary, "grad_norm ");
	if (f.g->n != 2)
		dump(f.g);
	fx_close(&f);
}

/* A single bad batch (one high loss) is under patience. */
static void test_single_outlier_is_not_a_spike(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 44) == 0);
	fx_clean_to(&f, 1999);
	fx_next(&f)->loss *= 3;
	fx_feed(&f);
	fx_clean_to(&f, 2500);
	TT_CHECK(f.g->n == 0);
	fx_close(&f);
}

static void test_nonfinite_loss_and_grad(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 45) == 0);
	fx_clean_to(&f, 499);
	double before = f.run.loss;
	fx_next(&f)->loss = NAN;   /* reported: MON_F_LOSS is set */
	fx_feed(&f);
	fx_clean_to(&f, 699);
	fx_next(&f)->grad_norm = INFINITY;
	fx_feed(&f);
	fx_clean_to(&f, 800);
	/* NaN without the bit is an absent field, not an incident */
	fx_next(&f)->loss = NAN;
	f.s.present = 0;
	fx_feed(&f);
	fx_clean_to(&f, 900);
	TT_CHECK(f.g->n == 2);
	const mon_incident *l = got_find(f.g, "nonfinite:loss");
	const mon_incident *g = got_find(f.g, "nonfinite:grad_norm");
	TT_REQUIRE(l && g);
	TT_CHECK(l->kind == MON_NONFINITE && l->severity == MON_CRITICAL);
	TT_CHECK(l->onset_step == 500 && l->last_step == 500);
	char want[96];
	snprintf(want, sizeof want, "loss is nan at step 500 (last finite %.4g at step 499)",
		 before);
	TT_CHECK_STR(l->summary, want);
	TT_CHECK(isnan(l->ev_value[l->n_evidence - 1]));
	TT_CHECK(g->onset_step == 700);
	TT_CHECK_HAS(g->summary, "grad_norm is inf at step 700");
	fx_close(&f);
}

/* A NaN that persists is one signature, re-emitted every reemit_steps. */
static void test_nonfinite_folds(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 46) == 0);
	fx_clean_to(&f, 99);
	for (int i = 0; i < 250; i++) {
		fx_next(&f)->loss = NAN;
		fx_feed(&f);
	}
	TT_CHECK(f.g->n == 3);   /* steps 100, 200, 300 */
	TT_CHECK(got_count(f.g, "nonfinite:loss") == 3);
	TT_CHECK(f.g->inc[2].onset_step == 100 && f.g->inc[2].last_step == 300);
	fx_close(&f);
}

/* Noise-free so the onset is exact: flat 3.0, then +0.002 per step from
 * step 1001. The median of 200 lags 100 steps and crosses 3.3 at step 1250. */
static void test_divergence_exact_onset(void)
{
	mon_params p;
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	mon_params_default(&p);
	p.loss_spike.on = false;   /* a noise-free ramp is a spike at any sigma */
	TT_REQUIRE(g && mon_set_new(&set, &p) == 0);
	for (long s = 1; s <= 1400; s++) {
		mon_sample x;
		mon_sample_init(&x, MON_SAMPLE_STEP, s, (double)s);
		x.loss = s <= 1000 ? 3.0 : 3.0 + 0.002 * (double)(s - 1000);
		mon_feed(set, &x, got_emit, g);
	}
	const mon_incident *inc = got_find(g, "divergence");
	TT_REQUIRE(inc);
	TT_CHECK(inc->kind == MON_DIVERGENCE && inc->severity == MON_CRITICAL);
	TT_CHECK(inc->onset_step == 1250 && inc->last_step == 1269);
	TT_CHECK_HAS(inc->summary, "above its minimum 3 at step 1099 (limit +10%)");
	TT_CHECK(got_count(g, "divergence") == 2);   /* 1269 and 1369 */
	mon_set_free(set);
	free(g);
}

/* A slow rise in a noisy curve: divergence, and no spike. */
static void test_divergence_noisy_slow_rise(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 47) == 0);
	fx_clean_to(&f, 3000);
	for (int i = 1; i <= 600; i++) {
		fx_next(&f)->loss *= 1 + 0.0005 * i;
		fx_feed(&f);
	}
	const mon_incident *inc = got_find(f.g, "divergence");
	TT_REQUIRE(inc);
	TT_CHECK(inc->onset_step >= 3200 && inc->onset_step <= 3400);
	TT_CHECK(got_count(f.g, "loss_spike") == 0);
	for (int i = 0; i < f.g->n; i++)
		TT_CHECK(f.g->inc[i].kind == MON_DIVERGENCE);
	fx_close(&f);
}

static void test_plateau_info(void)
{
	mon_params p;
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	gen_rng r = {9};
	mon_params_default(&p);
	TT_REQUIRE(g && mon_set_new(&set, &p) == 0);
	/* improving 5% per 1000 steps until 2000, then flat */
	for (long s = 1; s <= 4000; s++) {
		mon_sample x;
		double base = s < 2000 ? 3.0 * (1 - 0.00005 * (double)s) : 2.7;
		mon_sample_init(&x, MON_SAMPLE_STEP, s, (double)s);
		x.loss = base * (1 + 0.02 * gen_normal(&r));
		mon_feed(set, &x, got_emit, g);
	}
	TT_CHECK(g->n >= 1);
	const mon_incident *inc = got_find(g, "plateau");
	TT_REQUIRE(inc);
	TT_CHECK(inc->severity == MON_INFO);
	TT_CHECK(inc->last_step >= 2900 && inc->last_step <= 3300);
	TT_CHECK_HAS(inc->summary, "has not improved by 1.0%");
	TT_CHECK(got_count(g, "plateau") == g->n);
	TT_CHECK(g->n <= 2);   /* at most once per plateau length */
	mon_set_free(set);
	free(g);
}

static mon_sample step_at(long step, double t)
{
	mon_sample x;
	mon_sample_init(&x, MON_SAMPLE_STEP, step, t);
	x.loss = 3.0;
	return x;
}

static mon_sample beat_at(long step, double t)
{
	mon_sample x;
	mon_sample_init(&x, MON_SAMPLE_HEARTBEAT, step, t);
	return x;
}

/* Heartbeats keep coming, steps do not: a stall at > 300 s, re-emitted
 * every 300 s, never a lost heartbeat. */
static void test_stall_synthetic_time(void)
{
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	TT_REQUIRE(g && mon_set_new(&set, NULL) == 0);
	for (long s = 1; s <= 100; s++) {
		mon_sample x = step_at(s, (double)s);
		mon_feed(set, &x, got_emit, g);
	}
	for (double t = 110; t <= 400; t += 10) {
		mon_sample b = beat_at(100, t);
		mon_feed(set, &b, got_emit, g);
	}
	TT_CHECK(g->n == 0);
	mon_tick(set, 400.5, got_emit, g);
	TT_CHECK(g->n == 1);
	const mon_incident *inc = got_find(g, "stall");
	TT_REQUIRE(inc);
	TT_CHECK(inc->kind == MON_STALL && inc->severity == MON_CRITICAL);
	TT_CHECK(inc->onset_step == 100 && inc->last_step == 100);
	TT_CHECK_STR(inc->summary, "no step progress for 300 s after step 100 (limit 300 s: "
		     "max of 300 s and 10 x the slowest recent step gap 1 s)");
	for (double t = 410; t <= 720; t += 10) {
		mon_sample b = beat_at(100, t);
		mon_feed(set, &b, got_emit, g);
	}
	TT_CHECK(g->n == 2);   /* 400.5 and 710 */
	TT_CHECK(got_count(g, "stall") == 2);
	/* progress resumes; the 625 s gap must not raise the next limit */
	mon_sample x = step_at(101, 725);
	mon_feed(set, &x, got_emit, g);
	for (double t = 735; t <= 1025; t += 10) {
		mon_sample b = beat_at(101, t);
		mon_feed(set, &b, got_emit, g);
	}
	TT_CHECK(g->n == 2);
	mon_tick(set, 1026.5, got_emit, g);
	TT_CHECK(got_count(g, "stall") == 3);
	TT_CHECK(g->n == 3 && g->inc[2].onset_step == 101);
	mon_set_free(set);
	free(g);
}

/* k x the slowest recent gap when that is above the floor. */
static void test_stall_k_times_slowest(void)
{
	mon_params p;
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	mon_params_default(&p);
	p.stall.timeout_s = 5;
	TT_REQUIRE(g && mon_set_new(&set, &p) == 0);
	for (long s = 1; s <= 30; s++) {
		mon_sample x = step_at(s, 2.0 * (double)s);
		mon_feed(set, &x, got_emit, g);
	}
	mon_tick(set, 60 + 19, got_emit, g);
	TT_CHECK(g->n == 0);
	mon_tick(set, 60 + 21, got_emit, g);
	TT_CHECK(g->n == 1);
	TT_CHECK_HAS(g->inc[0].summary, "(limit 20 s: max of 5 s and 10 x the slowest "
		     "recent step gap 2 s)");
	mon_set_free(set);
	free(g);
}

/* Silence: a lost heartbeat (the stall it implies is not reported). */
static void test_heartbeat_lost(void)
{
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	TT_REQUIRE(g && mon_set_new(&set, NULL) == 0);
	for (long s = 1; s <= 50; s++) {
		mon_sample x = step_at(s, (double)s);
		mon_feed(set, &x, got_emit, g);
	}
	mon_tick(set, 50 + 299, got_emit, g);
	TT_CHECK(g->n == 0);
	mon_tick(set, 50 + 301, got_emit, g);
	mon_tick(set, 50 + 400, got_emit, g);
	TT_CHECK(g->n == 1);
	mon_tick(set, 50 + 601, got_emit, g);
	TT_CHECK(g->n == 2);
	TT_CHECK(got_count(g, "heartbeat") == 2);
	const mon_incident *inc = &g->inc[0];
	TT_CHECK(inc->kind == MON_HEARTBEAT && inc->onset_step == 50);
	TT_CHECK_STR(inc->summary, "no output of any kind for 301 s after step 50 (limit 300 s)");
	mon_set_free(set);
	free(g);
}

/* Before the first step the startup limit applies. */
static void test_stall_before_first_step(void)
{
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	TT_REQUIRE(g && mon_set_new(&set, NULL) == 0);
	for (double t = 0; t <= 1800; t += 10) {
		mon_sample b = beat_at(0, t);
		mon_feed(set, &b, got_emit, g);
	}
	TT_CHECK(g->n == 0);
	mon_sample b = beat_at(0, 1810);
	mon_feed(set, &b, got_emit, g);
	TT_CHECK(g->n == 1);
	TT_CHECK_STR(g->inc[0].summary, "no first step 1810 s after the trainer started "
		     "(limit 1800 s)");
	mon_set_free(set);
	free(g);
}

static void test_throughput_drop(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 48) == 0);
	fx_clean_to(&f, 499);
	double base = f.run.tps0;
	for (int i = 0; i < 300; i++) {
		fx_next(&f)->tokens_per_s *= 0.4;
		fx_feed(&f);
	}
	TT_CHECK(got_count(f.g, "throughput") == 3);   /* 504, 604, 704 */
	TT_CHECK(f.g->n == 3);
	const mon_incident *inc = got_find(f.g, "throughput");
	TT_REQUIRE(inc);
	TT_CHECK(inc->kind == MON_THROUGHPUT && inc->severity == MON_WARNING);
	TT_CHECK(inc->onset_step == 500 && inc->last_step == 504);
	TT_CHECK(fabs(inc->baseline - base) < 0.05 * base);
	TT_CHECK_HAS(inc->summary, "(limit 0.50 x) for 5 steps since step 500");
	/* hits stayed out of the window: still measured against the old level */
	TT_CHECK(fabs(f.g->inc[2].baseline - base) < 0.05 * base);
	fx_close(&f);
}

/* Layer index 1 (model layer 3) collapses onto expert 3 at step 200. */
static void test_moe_collapse_onto_one_expert(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 49) == 0);
	fx_clean_to(&f, 199);
	for (int i = 0; i < 300; i++) {
		fx_next(&f);
		for (int e = 0; e < GEN_E; e++)
			f.run.load[1][e] = e == 3 ? 1000.0 : 0.0;
		fx_feed(&f);
	}
	const mon_incident *imb = got_find(f.g, "moe_imbalance:layer3");
	const mon_incident *col = got_find(f.g, "moe_entropy_collapse:layer3");
	TT_REQUIRE(imb && col);
	TT_CHECK(imb->onset_step == 200 && imb->last_step == 209);
	TT_CHECK(col->onset_step == 200 && col->severity == MON_CRITICAL);
	TT_CHECK(imb->value == 8.0 && imb->threshold == 3.0);
	TT_CHECK_STR(imb->summary, "layer 3: max/mean expert load 8.00 at step 209 is above "
		     "3.00 for 10 steps since step 200");
	TT_CHECK(got_count(f.g, "moe_imbalance:layer3") == 3);   /* 209, 309, 409 */
	for (int i = 0; i < f.g->n; i++) {
		TT_CHECK(f.g->inc[i].kind == MON_MOE_IMBALANCE ||
			 f.g->inc[i].kind == MON_MOE_ENTROPY_COLLAPSE);
		TT_CHECK(f.g->inc[i].onset_step == 200);
	}
	fx_close(&f);
}

/* Expert 5 of model layer 1 gets nothing from step 300: one signature,
 * re-emitted every 100 steps with the same onset. */
static void test_moe_dead_expert_folds(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 50) == 0);
	fx_clean_to(&f, 299);
	for (int i = 0; i < 700; i++) {
		fx_next(&f);
		f.run.load[0][5] = 0.0;
		fx_feed(&f);
	}
	TT_CHECK(f.g->n == 7);   /* 399, 499, ..., 999 */
	TT_CHECK(got_count(f.g, "moe_dead_expert:layer1:expert5") == 7);
	const mon_incident *inc = &f.g->inc[6];
	TT_CHECK(inc->onset_step == 300 && inc->last_step == 999);
	TT_CHECK(f.g->inc[0].last_step == 399);
	TT_CHECK_HAS(f.g->inc[0].summary, "layer 1 expert 5 got 0.00% of tokens at step 399 "
		     "(fair share 12.50%, dead below 1.25%) for 100 steps since step 300");
	TT_CHECK(inc->n_evidence == MON_EVIDENCE_MAX && inc->ev_value[0] == 0.0);
	fx_close(&f);
}

/* A confident router with balanced load: the trainer's per-token entropy. */
static void test_moe_entropy_collapse_reported(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 51) == 0);
	fx_clean_to(&f, 99);
	for (int i = 0; i < 20; i++) {
		fx_next(&f);
		f.run.moe[0].entropy = 0.3;
		fx_feed(&f);
	}
	TT_CHECK(f.g->n == 1);
	const mon_incident *inc = got_find(f.g, "moe_entropy_collapse:layer1");
	TT_REQUIRE(inc);
	TT_CHECK(inc->onset_step == 100 && inc->last_step == 109);
	TT_CHECK_HAS(inc->summary, "routing entropy 0.3 nats at step 109 is below 1.04");
	fx_close(&f);
}

static void test_moe_dropped_tokens(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 52) == 0);
	fx_clean_to(&f, 49);
	for (int i = 0; i < 20; i++) {
		fx_next(&f);
		f.run.moe[0].dropped = 0.2 * f.run.moe[0].tokens;
		fx_feed(&f);
	}
	TT_CHECK(f.g->n == 1);
	const mon_incident *inc = got_find(f.g, "moe_dropped:layer1");
	TT_REQUIRE(inc);
	TT_CHECK(inc->onset_step == 50 && inc->last_step == 59);
	TT_CHECK_STR(inc->summary, "layer 1: 20.0% of tokens dropped at step 59 (limit "
		     "10.0%) for 10 steps since step 50");
	fx_close(&f);
}

/* Two experts: the imbalance bound drops to (1 + E) / 2 = 1.5. */
static void test_moe_small_e_bound(void)
{
	mon_set *set = NULL;
	got *g = calloc(1, sizeof *g);
	TT_REQUIRE(g && mon_set_new(&set, NULL) == 0);
	for (long s = 1; s <= 40; s++) {
		double load[2] = {s > 20 ? 80 : 52, s > 20 ? 20 : 48};
		mon_moe_layer l = {0, 2, load, NAN, NAN, NAN, NAN, 0};
		mon_sample x;
		mon_sample_init(&x, MON_SAMPLE_STEP, s, (double)s);
		x.n_moe = 1;
		x.moe = &l;
		mon_feed(set, &x, got_emit, g);
	}
	TT_CHECK(g->n == 1);
	TT_CHECK(g->n && g->inc[0].onset_step == 21 && g->inc[0].threshold == 1.5);
	mon_set_free(set);
	free(g);
}

/* Trains to 3000, restarts from 500 and retrains: no incident, whether the
 * restart is announced or read from the steps. Counter-proof: the same
 * values with steps that keep counting do raise incidents. */
static void restart_case(int mode, got *g)
{
	mon_set *set = NULL;
	gen_run a, b;
	mon_sample s;
	TT_REQUIRE(mon_set_new(&set, NULL) == 0);
	gen_init(&a, 60, 5000);
	for (int i = 0; i < 3000; i++) {
		gen_next(&a, &s);
		mon_feed(set, &s, got_emit, g);
	}
	gen_init(&b, 60, 5000);
	for (int i = 0; i < 500; i++)
		gen_next(&b, &s);
	if (mode == 0)
		mon_reset_after_restart(set, 500);
	for (int i = 0; i < 1500; i++) {
		gen_next(&b, &s);
		s.t += a.t + 60;   /* the supervisor's clock does not go back */
		if (mode == 2)
			s.step += 2500;
		mon_feed(set, &s, got_emit, g);
	}
	mon_set_free(set);
}

static void test_restart_is_not_an_anomaly(void)
{
	got *g = calloc(1, sizeof *g);
	TT_REQUIRE(g);
	restart_case(0, g);
	TT_CHECK(g->n == 0);
	if (g->n)
		dump(g);
	g->n = 0;
	restart_case(1, g);   /* not announced: steps go back */
	TT_CHECK(g->n == 0);
	g->n = 0;
	restart_case(2, g);   /* the counter-proof */
	TT_CHECK(got_count(g, "divergence") + got_count(g, "loss_spike") > 0);
	free(g);
}

/* A short rollback restores the window: a spike right after the restart is
 * caught without a new warm-up, under the same signature. */
static void test_restart_keeps_watching(void)
{
	fixture f;
	TT_REQUIRE(fx_open(&f, NULL, 61) == 0);
	fx_clean_to(&f, 1999);
	for (int i = 0; i < 20; i++) {
		fx_next(&f)->loss *= 3;
		fx_feed(&f);
	}
	TT_CHECK(got_count(f.g, "loss_spike") == 1);
	double t_end = f.run.t;
	mon_reset_after_restart(f.set, 1900);
	gen_init(&f.run, 61, 5000);
	for (int i = 0; i < 1900; i++)
		gen_next(&f.run, &f.s);
	for (int i = 0; i < 100; i++) {
		fx_next(&f);
		f.s.t += t_end + 60;
		if (f.s.step >= 1950 && f.s.step < 1955)
			f.s.loss *= 3;
		fx_feed(&f);
	}
	TT_CHECK(f.g->n == 2);
	TT_CHECK(got_count(f.g, "loss_spike") == 2);
	TT_CHECK(f.g->inc[1].onset_step == 1950 && f.g->inc[1].last_step == 1952);
	fx_close(&f);
}

static int fail_emit(const mon_incident *inc, void *ud)
{
	(void)inc;
	(*(int *)ud)++;
	return TEND_EIO;
}

static void test_emit_error_and_bad_samples(void)
{
	mon_set *set = NULL;
	int calls = 0;
	TT_REQUIRE(mon_set_new(&set, NULL) == 0);
	mon_sample x;
	mon_sample_init(&x, MON_SAMPLE_STEP, 1, 1.0);
	x.loss = INFINITY;
	x.grad_norm = INFINITY;
	TT_CHECK_RC(mon_feed(set, &x, fail_emit, &calls), TEND_EIO);
	TT_CHECK(calls == 2);   /* both detectors still ran */
	mon_sample_init(&x, MON_SAMPLE_STEP, 2, 2.0);
	x.loss = INFINITY;
	TT_CHECK_RC(mon_feed(set, &x, NULL, NULL), 0);
	double load[65] = {0};
	mon_moe_layer l = {7, 65, load, NAN, NAN, NAN, NAN, 0};
	mon_sample_init(&x, MON_SAMPLE_STEP, 5, 5.0);
	x.n_moe = 1;
	x.moe = &l;
	TT_CHECK_RC(mon_feed(set, &x, NULL, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "monitors: step 5: MoE layer 7 has 65 experts (at most 64)");
	x.moe = NULL;
	TT_CHECK_RC(mon_feed(set, &x, NULL, NULL), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "monitors: step 5: 1 MoE layers (at most 256, with an array)");
	mon_set_free(set);
}

int main(void)
{
	TT_RUN(test_loss_spike);
	TT_RUN(test_grad_spike_comes_first);
	TT_RUN(test_single_outlier_is_not_a_spike);
	TT_RUN(test_nonfinite_loss_and_grad);
	TT_RUN(test_nonfinite_folds);
	TT_RUN(test_divergence_exact_onset);
	TT_RUN(test_divergence_noisy_slow_rise);
	TT_RUN(test_plateau_info);
	TT_RUN(test_stall_synthetic_time);
	TT_RUN(test_stall_k_times_slowest);
	TT_RUN(test_heartbeat_lost);
	TT_RUN(test_stall_before_first_step);
	TT_RUN(test_throughput_drop);
	TT_RUN(test_moe_collapse_onto_one_expert);
	TT_RUN(test_moe_dead_expert_folds);
	TT_RUN(test_moe_entropy_collapse_reported);
	TT_RUN(test_moe_dropped_tokens);
	TT_RUN(test_moe_small_e_bound);
	TT_RUN(test_restart_is_not_an_anomaly);
	TT_RUN(test_restart_keeps_watching);
	TT_RUN(test_emit_error_and_bad_samples);
	return TT_DONE();
}
