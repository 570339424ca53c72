/*
 * serve.h - `tend serve`: the review dashboard. An HTTP server (libmicrohttpd)
 * that serves a single-page UI embedded in the binary and a JSON API over the
 * workspace's store, opened read-only: runs and their curves (downsampled on
 * the server), incidents, proposals with their evaluations, the audit log,
 * and /metrics in the Prometheus text format. docs/serve.md lists the
 * endpoints and the security model.
 *
 * The server never writes the store itself. Approve and reject run
 * `tend --workspace WS proposal approve|reject ...` as a child process, and
 * the audit check runs `tend audit verify`, so the dashboard and the CLI
 * share one path.
 */
#ifndef SERVE_H
#define SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the server --------------------------------------------------------- */

typedef struct srv srv;

typedef struct srv_opts {
	const char *workspace;  /* absolute path of the workspace (required) */
	const char *listen;     /* "HOST:PORT" (IPv6 as "[::1]:PORT"); port 0
				   picks a free one; NULL: 127.0.0.1:8765 */
	bool read_only;         /* refuse approve and reject (403) */
	/* Where the bearer token lives. NULL or "": WS/serve.token. Relative
	 * paths are taken from the workspace. */
	const char *token_file;
	/* Demand the token even on loopback. A non-loopback address always
	 * demands it. */
	bool require_token;
	const char *tend_exe;   /* the binary actions run; NULL: /proc/self/exe */
	int threads;            /* request threads; 0: 4 */
	double action_timeout_s; /* limit on one child process; 0: 300 */
} srv_opts;

/* Loads or creates the token when one is needed (a new token file is
 * written 0600; an existing one readable by group or others is refused),
 * binds the address and starts serving on background threads. Returns 0,
 * TEND_EINVAL for a bad address or token file, TEND_EIO when the address
 * cannot be bound. Free with srv_free, which stops the server. */
int srv_new(srv **out, const srv_opts *o);

/* Stops serving (waits for requests in progress) and frees; accepts NULL. */
void srv_free(srv *s);

/* The port actually bound (useful after port 0). */
int srv_port(const srv *s);

/* "http://HOST:PORT/": where to point a browser. Owned by s. */
const char *srv_url(const srv *s);

/* The token file in use, or NULL when no token is demanded. Owned by s. */
const char *srv_token_path(const srv *s);

/* True when HOST is a loopback address (127.0.0.0/8, ::1, localhost). */
bool srv_is_loopback(const char *host);

/* ---- downsampling ------------------------------------------------------- */

/*
 * Min/max per bucket: the steps [from, to] are cut into buckets of equal
 * width and each bucket keeps the points holding its smallest and its
 * largest value (in step order, once when they coincide), plus the first
 * non-finite value it saw, so spikes and NaNs survive at any zoom. At most
 * SRV_DS_CAP(buckets) points come out.
 *
 * When `to` is not known (-1) the width starts at 1 step and doubles as
 * steps arrive past the last bucket, merging neighbours; min, max, sums
 * and counts merge exactly, so the result equals bucketing with the final
 * width, and between buckets/2 and buckets buckets are used. A step given
 * twice in a row (a restart repeating it) keeps the later value.
 */
#define SRV_DS_CAP(buckets) ((size_t)(buckets) * 3)
#define SRV_DS_MAX_BUCKETS 10000

typedef struct srv_bucket {
	int64_t min_x, max_x, bad_x; /* bad_x: first non-finite; -1 none */
	double min_y, max_y, bad_y;
	double sum;                  /* of the finite values */
	int64_t finite, count;       /* finite values, all values */
	double t_last;               /* the newest wall time fed (NaN: none) */
} srv_bucket;

typedef struct srv_ds {
	int64_t from, to;            /* to -1: unknown */
	int64_t width;               /* steps per bucket */
	size_t nb;                   /* buckets */
	size_t used;                 /* the highest bucket touched + 1 */
	srv_bucket *b;
	int64_t fed;                 /* distinct steps taken in */
	int64_t last_x;              /* the highest step taken in; -1 none */
	double t_first;              /* the wall time of the first; NaN none */
	int64_t px;                  /* the pending point (-1: none) */
	double py, pt;
} srv_ds;

/* Sets d up for steps [from, to] (to -1: unknown, growing) and buckets in
 * 1..SRV_DS_MAX_BUCKETS. 0, TEND_EINVAL or TEND_ENOMEM. */
int srv_ds_init(srv_ds *d, int64_t from, int64_t to, size_t buckets);

/* Feeds one point; steps must not decrease. 0 when taken or skipped (x
 * before from), 1 when x is past `to` (stop feeding), TEND_EINVAL when x
 * went backwards. */
int srv_ds_add(srv_ds *d, int64_t x, double y);

/* srv_ds_add with the wall time t of the value, which the buckets keep
 * (t_last) so that a time can later be found on the step axis. */
int srv_ds_add_t(srv_ds *d, int64_t x, double y, double t);

/* The first step of the first bucket holding a value written at or after
 * wall time t, or -1 when t is before the first value or after the last.
 * With the width, it bounds where t falls: a read of at most d->width
 * steps from there finds the exact step. */
int64_t srv_ds_bucket_at_time(srv_ds *d, double t);

/* Writes the downsampled points, in step order, into x and y (room for
 * SRV_DS_CAP(d->nb) each) and returns how many. May be called again after
 * more srv_ds_add calls. */
size_t srv_ds_points(srv_ds *d, int64_t *x, double *y);

/* The mean of each used bucket's finite values (NaN for a bucket with
 * none) and the bucket's first step, into mean and x (room for d->nb);
 * returns the buckets written. For heatmaps. */
size_t srv_ds_means(srv_ds *d, int64_t *x, double *mean);

void srv_ds_free(srv_ds *d);

/* Downsamples x[0..n) (non-decreasing steps) and y into out_x and out_y
 * (room for SRV_DS_CAP(buckets) each) over the range x[0]..x[n-1]; the
 * count goes to *out_n. 0, TEND_EINVAL (steps going backwards, buckets out
 * of range) or TEND_ENOMEM. */
int srv_downsample(int64_t *out_x, double *out_y, size_t *out_n,
		   const int64_t *x, const double *y, size_t n, size_t buckets);

#endif
