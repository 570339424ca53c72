/*
 * test_window.c - the building blocks: the incremental rolling window
 * against a brute-force median/MAD/max, its rollback, the rollback
 * records, the alarm's re-emission rule, parameter validation, kind names
 * and the evidence JSON.
 */
#include "gen.h"
#include "mon.h"
#include "mon_int.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double brute_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median, MAD and max of xs[from..to) by sorting copies. */
static void brute(const double *xs, int from, int to, double *med, double *mad,
		  double *mx)
{
	int n = to - from;
	double *a = malloc((size_t)n * sizeof *a);
	for (int i = 0; i < n; i++)
		a[i] = xs[from + i];
	*med = brute_median(a, n);
	*mx = a[n - 1];
	for (int i = 0; i < n; i++)
		a[i] = fabs(xs[from + i] - *med);
	*mad = brute_median(a, n);
	free(a);
}

static void check_against_brute(int window, int quantise)
{
	mon__win w;
	gen_rng r = {(uint64_t)window * 31 + (uint64_t)quantise};
	double xs[1200];
	TT_REQUIRE(mon__win_init(&w, window, 16) == 0);
	for (int i = 0; i < 1200; i++) {
		double v = gen_normal(&r) * 3 + 10;
		xs[i] = quantise ? round(v) : v;   /* duplicates stress delete */
		mon__win_push(&w, i, xs[i]);
		int from = i + 1 > window ? i + 1 - window : 0;
		double med, mad, mx;
		brute(xs, from, i + 1, &med, &mad, &mx);
		double got_med = mon__win_median(&w);
		if (got_med != med || mon__win_mad(&w, got_med) != mad ||
		    mon__win_max(&w) != mx) {
			fprintf(stderr, "window %d at %d: median %g/%g mad %g/%g\n", window, i,
				got_med, med, mon__win_mad(&w, got_med), mad);
			TT_CHECK(0);
			break;
		}
	}
	mon__win_free(&w);
}

static void test_window_matches_brute_force(void)
{
	int windows[] = {1, 2, 3, 7, 50, 128, 200};
	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		check_against_brute(windows[i], 0);
		check_against_brute(windows[i], 1);
	}
}

static void test_window_empty_is_nan(void)
{
	mon__win w;
	TT_REQUIRE(mon__win_init(&w, 8, 0) == 0);
	TT_CHECK(isnan(mon__win_median(&w)));
	TT_CHECK(isnan(mon__win_mad(&w, 0)));
	TT_CHECK(isnan(mon__win_max(&w)));
	mon__win_free(&w);
}

/* After a rollback the window is what it was at from_step. */
static void test_window_rollback_restores(void)
{
	mon__win w, ref;
	gen_rng r = {5};
	TT_REQUIRE(mon__win_init(&w, 128, 1024) == 0);
	TT_REQUIRE(mon__win_init(&ref, 128, 1024) == 0);
	for (long s = 1; s <= 3000; s++) {
		double v = gen_normal(&r);
		mon__win_push(&w, s, v);
		if (s <= 2500)
			mon__win_push(&ref, s, v);
	}
	mon__win_rollback(&w, 2500);
	TT_CHECK(w.ns == 128);
	TT_CHECK(mon__win_median(&w) == mon__win_median(&ref));
	TT_CHECK(mon__win_mad(&w, mon__win_median(&w)) ==
		 mon__win_mad(&ref, mon__win_median(&ref)));
	mon_incident inc;
	mon__win_evidence(&w, &inc);
	TT_CHECK(inc.n_evidence == MON_EVIDENCE_MAX);
	TT_CHECK(inc.ev_step[MON_EVIDENCE_MAX - 1] == 2500);
	/* further back than the history holds: what is left, nothing newer */
	mon__win_rollback(&w, 1000);
	TT_CHECK(w.n == 0 && w.ns == 0);
	mon__win_free(&w);
	mon__win_free(&ref);
}

static void test_records_coarsen_and_rollback(void)
{
	mon__recs r = {0};
	long step;
	double v;
	for (long s = 1; s <= 10000; s++)
		mon__recs_push(&r, s, 10000.0 - (double)s);
	TT_CHECK(r.n <= MON__RECS_MAX);
	TT_CHECK(r.step[0] == 1 && r.step[r.n - 1] > 9900);   /* spread evenly */
	for (int i = 1; i < r.n; i++)
		TT_CHECK(r.step[i] - r.step[i - 1] <= 64);
	TT_CHECK(mon__recs_rollback(&r, 5000, &step, &v));
	TT_CHECK(step <= 5000 && step > 4900);   /* a true, slightly older mark */
	TT_CHECK(v == 10000.0 - (double)step);
	TT_CHECK(!mon__recs_rollback(&r, 0, &step, &v));
}

static void test_alarm_reemits_every_n(void)
{
	mon__alarm a;
	int emitted = 0;
	mon__alarm_init(&a);
	for (long s = 10; s < 400; s++) {
		mon__alarm_hit(&a, s);
		emitted += mon__alarm_due(&a, s, 3, 100);
	}
	/* steps 12, 112, 212, 312 */
	TT_CHECK(emitted == 4);
	TT_CHECK(a.onset == 10);
	/* a new run of hits soon after: folded until 100 steps have passed */
	mon__alarm_miss(&a);
	for (long s = 400; s <= 402; s++)
		mon__alarm_hit(&a, s);
	TT_CHECK(!mon__alarm_due(&a, 402, 3, 100));   /* 312 + 100 > 402 */
	TT_CHECK(a.onset == 400);
	for (long s = 403; s <= 411; s++) {
		mon__alarm_hit(&a, s);
		TT_CHECK(!mon__alarm_due(&a, s, 3, 100));
	}
	mon__alarm_hit(&a, 412);
	TT_CHECK(mon__alarm_due(&a, 412, 3, 100));
	TT_CHECK(mon__alarm_due_t(&a, 10.0, 300.0));
	TT_CHECK(!mon__alarm_due_t(&a, 309.0, 300.0));
	TT_CHECK(mon__alarm_due_t(&a, 310.0, 300.0));
}

static void test_params_validated(void)
{
	mon_params p;
	mon_set *set = (mon_set *)1;
	mon_params_default(&p);
	p.loss_spike.window = 2;
	TT_CHECK_RC(mon_set_new(&set, &p), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "monitors: loss_spike.window must be in 3..65536, got 2");
	TT_CHECK(set == NULL);
	mon_params_default(&p);
	p.throughput.drop_ratio = NAN;
	TT_CHECK_RC(mon_set_new(&set, &p), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "monitors: throughput.drop_ratio must be in (0, 1), got nan");
	mon_params_default(&p);
	p.moe.entropy_ratio = 1.5;
	TT_CHECK_RC(mon_set_new(&set, &p), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "monitors: moe.entropy_ratio must be in (0, 1), got 1.5");
	TT_CHECK_RC(mon_set_new(&set, NULL), 0);
	mon_set_free(set);
	mon_set_free(NULL);
}

static void test_kind_names(void)
{
	TT_CHECK_STR(mon_kind_name(MON_MOE_ENTROPY_COLLAPSE), "moe_entropy_collapse");
	TT_CHECK_STR(mon_kind_name(MON_CRASH_OTHER), "crash_other");
	TT_CHECK_STR(mon_kind_name(MON_KIND_COUNT), "unknown");
	for (int k = 0; k < MON_KIND_COUNT; k++)
		TT_CHECK(mon_kind_from_name(mon_kind_name((mon_kind)k)) == k);
	TT_CHECK_RC(mon_kind_from_name("spike"), TEND_ENOTFOUND);
	TT_CHECK_STR(tend_error_last(), "monitors: no incident kind \"spike\"");
	TT_CHECK_STR(mon_severity_name(MON_WARNING), "warning");
}

static void test_evidence_json(void)
{
	mon_incident inc;
	char buf[256];
	mon__incident_init(&inc, MON_NONFINITE, MON_CRITICAL, 3, 4);
	inc.value = INFINITY;
	inc.threshold = 2.5;
	inc.n_evidence = 2;
	inc.ev_step[0] = 3;
	inc.ev_value[0] = 1.25;
	inc.ev_step[1] = 4;
	inc.ev_value[1] = NAN;
	int n = mon_incident_evidence_json(buf, sizeof buf, &inc);
	TT_CHECK_STR(buf, "{\"value\":\"inf\",\"baseline\":null,\"threshold\":2.5,"
		     "\"steps\":[3,4],\"values\":[1.25,null]}");
	TT_CHECK(n == (int)strlen(buf));
	TT_CHECK_RC(mon_incident_evidence_json(buf, 20, &inc), TEND_EINVAL);
	TT_CHECK_STR(buf, "{}");
}

int main(void)
{
	TT_RUN(test_window_matches_brute_force);
	TT_RUN(test_window_empty_is_nan);
	TT_RUN(test_window_rollback_restores);
	TT_RUN(test_records_coarsen_and_rollback);
	TT_RUN(test_alarm_reemits_every_n);
	TT_RUN(test_params_validated);
	TT_RUN(test_kind_names);
	TT_RUN(test_evidence_json);
	return TT_DONE();
}
