/*
 * bench_downsample.c - what the dashboard pays to chart a metric with
 * 1,000,000 values: the query through the store plus min/max downsampling
 * to 2,000 points (1,000 buckets), against a plain full read of the same
 * rows into arrays (the ratio is measured in the same run). When TEND_BIN
 * is set it also times GET /api/series of that run from a real
 * `tend serve`, and the JSON bytes sent against what the full series
 * would take.
 */
#include "../serve/client.h"
#include "../serve/fill.h"
#include "fsutil.h"
#include "serve.h"
#include "store.h"
#include "tend.h"

#include <ftw.h>
#include <time.h>

#define N 1000000
#define BUCKETS 1000
#define REPS 3

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct arrays {
	int64_t *x;
	double *y;
	size_t n;
} arrays;

static int into_arrays(int64_t step, int attempt, double v, double t, void *ud)
{
	arrays *a = ud;
	(void)attempt, (void)t;
	a->x[a->n] = step;
	a->y[a->n++] = v;
	return 0;
}

static int into_ds(int64_t step, int attempt, double v, double t, void *ud)
{
	(void)attempt, (void)t;
	return srv_ds_add(ud, step, v);
}

/* Best of REPS: a full read, and a read through the downsampler. */
static int time_reads(store *s, int64_t run, double *full_ms, double *ds_ms, size_t *pts)
{
	static int64_t ox[SRV_DS_CAP(BUCKETS)];
	static double oy[SRV_DS_CAP(BUCKETS)];
	arrays a = {malloc(N * sizeof(int64_t)), malloc(N * sizeof(double)), 0};
	*full_ms = *ds_ms = 1e30;
	for (int r = 0; r < REPS && a.x && a.y; r++) {
		double t = now_ms();
		a.n = 0;
		if (store_metrics_read(s, run, "loss", 0, into_arrays, &a) < 0 || a.n != N)
			return -1;
		*full_ms = fmin(*full_ms, now_ms() - t);
		srv_ds d;
		t = now_ms();
		if (srv_ds_init(&d, 0, -1, BUCKETS) < 0 ||
		    store_metrics_read(s, run, "loss", 0, into_ds, &d) < 0)
			return -1;
		*pts = srv_ds_points(&d, ox, oy);
		*ds_ms = fmin(*ds_ms, now_ms() - t);
		srv_ds_free(&d);
	}
	free(a.x);
	free(a.y);
	return 0;
}

/* GET /api/series of run "big" from a real server: the first request
 * (which reads the store) and the best of the next REPS (served from the
 * series the server keeps, plus rows written since: none). */
static void time_http(const char *ws, double full_ms)
{
	served s;
	resp r = {0};
	double first = -1, again = 1e30;
	size_t bytes = 0;
	const char *ro[] = {"--read-only", NULL};
	if (served_start(&s, ws, NULL, ro, NULL) < 0) {
		fprintf(stderr, "bench: tend serve did not start: %s\n", s.banner);
		return;
	}
	for (int i = 0; i <= REPS; i++) {
		if (http(&r, &s, "GET", "/api/series?run=big&name=loss&points=2000",
			 NULL, NULL) < 0 || r.status != 200)
			break;
		if (i == 0)
			first = r.ms;
		else
			again = fmin(again, r.ms);
		bytes = r.len;
		resp_free(&r);
	}
	resp_free(&r);
	served_stop(&s);
	printf("http GET /api/series, 1,000,000 -> 2,000 points: first %.1f ms "
	       "(%.2fx the full read), again %.1f ms; %zu bytes (%.4f of the ~%d "
	       "bytes the full series would take)\n", first, first / full_ms, again,
	       bytes, (double)bytes / (N * 25.0), N * 25);
}

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w)
{
	(void)sb, (void)f, (void)w;
	return remove(p);
}

int main(void)
{
	char dir[64] = "/tmp/tend-test-XXXXXX", ws[128], db[192];
	const char *bin = getenv("TEND_BIN");
	store *s = NULL;
	store_run *run = NULL;
	double full = 0, ds = 0;
	size_t pts = 0;
	int rc = 1;
	if (!mkdtemp(dir))
		return 1;
	snprintf(ws, sizeof ws, "%s/ws", dir);
	snprintf(db, sizeof db, "%s/tend.db", ws);
	char *init[] = {(char *)bin, "init", ws, NULL};
	if (bin ? run_quiet(init) != 0 : fsu_mkdir_p(ws, 0755) < 0)
		goto done;
	double t = now_ms();
	if (store_open(&s, db, STORE_CREATE) < 0 || fill_big(s, N, 1.7e9) < 0)
		goto done;
	printf("insert 1,000,000 values: %.0f ms\n", now_ms() - t);
	if (store_run_get_by_name(s, &run, "big") < 0 ||
	    time_reads(s, run->id, &full, &ds, &pts) < 0) {
		fprintf(stderr, "bench: %s\n", tend_error_last());
		goto done;
	}
	printf("full read of 1,000,000 values: %.1f ms\n", full);
	printf("read + downsample to %zu points: %.1f ms (%.2fx the full read)\n",
	       pts, ds, ds / full);
	store_close(s);
	s = NULL;
	if (bin) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		time_http(ws, full);
		curl_global_cleanup();
	}
	rc = 0;
done:
	store_run_free(run);
	store_close(s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
