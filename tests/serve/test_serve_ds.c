/*
 * test_serve_ds.c - the dashboard's downsampler (srv_ds_*, srv_downsample)
 * against brute force on a million points: every bucket keeps exactly its
 * min and max, spikes and NaNs survive, the growing-range mode equals
 * fixed buckets of its final width, and bad input is refused.
 */
#include "serve.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

#define N 1000000

static int64_t *xs;
static double *ys;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void make_data(void)
{
	uint64_t r = 88172645463325252ull;
	for (int64_t i = 0; i < N; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		xs[i] = i;
		ys[i] = 3.0 * exp(-(double)i / 2e5) + (double)(r % 1000) / 1e4;
	}
	ys[123457] = 50.0;  /* a one-step spike */
	ys[654321] = NAN;   /* a NaN */
	ys[777777] = -INFINITY;
}

/* Checks out[] against brute-force buckets [from + k*width, ...). */
static void check_buckets(const int64_t *ox, const double *oy, size_t on,
			  int64_t from, int64_t width)
{
	size_t j = 0;
	for (int64_t start = from; start < N; start += width) {
		int64_t end = start + width < N ? start + width : N;
		double mn = INFINITY, mx = -INFINITY;
		int64_t first_bad = -1;
		for (int64_t i = start; i < end; i++) {
			if (!isfinite(ys[i])) {
				if (first_bad < 0)
					first_bad = i;
				continue;
			}
			mn = fmin(mn, ys[i]);
			mx = fmax(mx, ys[i]);
		}
		bool saw_min = false, saw_max = false, saw_bad = first_bad < 0;
		for (; j < on && ox[j] < end; j++) {
			TT_REQUIRE(ox[j] >= start);
			TT_REQUIRE(ys[ox[j]] == oy[j] || (isnan(oy[j]) && isnan(ys[ox[j]])));
			saw_min |= oy[j] == mn;
			saw_max |= oy[j] == mx;
			saw_bad |= ox[j] == first_bad;
		}
		TT_REQUIRE(saw_min && saw_max && saw_bad);
	}
	TT_CHECK(j == on);
}

static void test_fixed_range_million(void)
{
	static int64_t ox[SRV_DS_CAP(1000)];
	static double oy[SRV_DS_CAP(1000)];
	size_t on = 0;
	double t = now_ms();
	TT_CHECK_RC(srv_downsample(ox, oy, &on, xs, ys, N, 1000), 0);
	double ms = now_ms() - t;
	fprintf(stderr, "downsample 1,000,000 -> %zu points: %.1f ms\n", on, ms);
	TT_CHECK(on >= 1000 && on <= 2002); /* two per bucket, +1 each for bad ones */
	for (size_t i = 1; i < on; i++)
		TT_REQUIRE(ox[i] > ox[i - 1]);
	check_buckets(ox, oy, on, 0, 1000);
	bool spike = false, nan = false, inf = false;
	for (size_t i = 0; i < on; i++) {
		spike |= ox[i] == 123457 && oy[i] == 50.0;
		nan |= ox[i] == 654321 && isnan(oy[i]);
		inf |= ox[i] == 777777 && isinf(oy[i]);
	}
	TT_CHECK(spike && nan && inf);
	TT_CHECK(ms < 2000); /* one pass; a bound a loaded machine under ASan meets */
}

static void test_growing_range_equals_fixed(void)
{
	srv_ds d;
	static int64_t ox[SRV_DS_CAP(1000)];
	static double oy[SRV_DS_CAP(1000)];
	TT_REQUIRE(srv_ds_init(&d, 0, -1, 1000) == 0);
	for (int64_t i = 0; i < N; i++)
		TT_REQUIRE(srv_ds_add(&d, xs[i], ys[i]) == 0);
	size_t on = srv_ds_points(&d, ox, oy);
	/* 1,000,000 steps from width 1 doubling: 1024 steps per bucket */
	TT_CHECK(d.width == 1024);
	TT_CHECK(d.used == 977);
	TT_CHECK(d.fed == N);
	check_buckets(ox, oy, on, 0, d.width);
	srv_ds_free(&d);
}

static void test_repeated_step_keeps_later(void)
{
	srv_ds d;
	int64_t ox[SRV_DS_CAP(10)];
	double oy[SRV_DS_CAP(10)];
	TT_REQUIRE(srv_ds_init(&d, 0, -1, 10) == 0);
	srv_ds_add(&d, 1, 5.0);
	srv_ds_add(&d, 2, 7.0);
	srv_ds_add(&d, 2, 3.0); /* a restart wrote step 2 again */
	srv_ds_add(&d, 3, 4.0);
	size_t on = srv_ds_points(&d, ox, oy);
	TT_CHECK(on == 3 && d.fed == 3);
	TT_CHECK(ox[1] == 2 && oy[1] == 3.0);
	srv_ds_free(&d);
}

static void test_small_input_is_kept_whole(void)
{
	int64_t x[5] = {10, 11, 12, 20, 30}, ox[SRV_DS_CAP(100)];
	double y[5] = {1, 2, NAN, 4, 5}, oy[SRV_DS_CAP(100)];
	size_t on = 0;
	TT_CHECK_RC(srv_downsample(ox, oy, &on, x, y, 5, 100), 0);
	TT_REQUIRE(on == 5);
	for (int i = 0; i < 5; i++)
		TT_CHECK(ox[i] == x[i] && (oy[i] == y[i] || (isnan(oy[i]) && isnan(y[i]))));
	TT_CHECK_RC(srv_downsample(ox, oy, &on, x, y, 0, 100), 0);
	TT_CHECK(on == 0);
}

static void test_range_and_means(void)
{
	srv_ds d;
	int64_t mx[4];
	double mm[4];
	TT_REQUIRE(srv_ds_init(&d, 100, 139, 4) == 0);
	TT_CHECK(d.width == 10);
	TT_CHECK(srv_ds_add(&d, 5, 1.0) == 0); /* before the range: skipped */
	for (int64_t i = 100; i < 140; i++)
		TT_CHECK(srv_ds_add(&d, i, (double)(i / 10)) == 0);
	TT_CHECK(srv_ds_add(&d, 140, 1.0) == 1); /* past it: stop */
	TT_REQUIRE(srv_ds_means(&d, mx, mm) == 4);
	TT_CHECK(mx[0] == 100 && mx[3] == 130);
	TT_CHECK(mm[0] == 10.0 && mm[3] == 13.0);
	srv_ds_free(&d);
}

static void test_bad_input(void)
{
	srv_ds d;
	int64_t x[3] = {5, 4, 6}, ox[SRV_DS_CAP(10)];
	double y[3] = {1, 2, 3}, oy[SRV_DS_CAP(10)];
	size_t on = 7;
	TT_CHECK_RC(srv_downsample(ox, oy, &on, x, y, 3, 10), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "steps went backwards: 4 after 5");
	TT_CHECK(on == 0);
	TT_CHECK_RC(srv_ds_init(&d, 0, -1, 0), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "buckets must be 1..10000, got 0");
	TT_CHECK_RC(srv_ds_init(&d, 0, -1, SRV_DS_MAX_BUCKETS + 1), TEND_EINVAL);
	TT_CHECK_RC(srv_ds_init(&d, 10, 5, 10), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "bad step range 10..5");
	srv_ds_free(NULL);
}

static void test_huge_steps_do_not_overflow(void)
{
	srv_ds d;
	int64_t ox[SRV_DS_CAP(4)];
	double oy[SRV_DS_CAP(4)];
	const int64_t big = (int64_t)1 << 53;
	TT_REQUIRE(srv_ds_init(&d, 0, -1, 4) == 0);
	TT_CHECK(srv_ds_add(&d, 0, 1.0) == 0);
	TT_CHECK(srv_ds_add(&d, big, 2.0) == 0);
	size_t on = srv_ds_points(&d, ox, oy);
	TT_CHECK(on == 2 && ox[1] == big);
	TT_CHECK(d.used <= 4);
	srv_ds_free(&d);
}

int main(void)
{
	xs = malloc(N * sizeof *xs);
	ys = malloc(N * sizeof *ys);
	if (!xs || !ys)
		return 1;
	make_data();
	TT_RUN(test_fixed_range_million);
	TT_RUN(test_growing_range_equals_fixed);
	TT_RUN(test_repeated_step_keeps_later);
	TT_RUN(test_small_input_is_kept_whole);
	TT_RUN(test_range_and_means);
	TT_RUN(test_bad_input);
	TT_RUN(test_huge_steps_do_not_overflow);
	free(xs);
	free(ys);
	return TT_DONE();
}
