/*
 * serve_ds.c - min/max-per-bucket downsampling for the dashboard's charts
 * (serve.h says the rules). One pass, O(buckets) memory: a metric with a
 * million steps never needs a million-point array on the server.
 */
#include "serve.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void bucket_clear(srv_bucket *b)
{
	*b = (srv_bucket){.min_x = -1, .max_x = -1, .bad_x = -1,
			  .min_y = NAN, .max_y = NAN, .bad_y = NAN, .t_last = NAN};
}

int srv_ds_init(srv_ds *d, int64_t from, int64_t to, size_t buckets)
{
	memset(d, 0, sizeof *d);
	if (buckets < 1 || buckets > SRV_DS_MAX_BUCKETS)
		return tend_error_set(TEND_EINVAL, "buckets must be 1..%d, got %zu",
				      SRV_DS_MAX_BUCKETS, buckets);
	if (from < 0 || (to >= 0 && to < from) || to < -1)
		return tend_error_set(TEND_EINVAL, "bad step range %lld..%lld",
				      (long long)from, (long long)to);
	d->b = malloc(buckets * sizeof *d->b);
	if (!d->b)
		return tend_error_set(TEND_ENOMEM, "downsampling buffer");
	for (size_t i = 0; i < buckets; i++)
		bucket_clear(&d->b[i]);
	d->from = from;
	d->to = to;
	d->nb = buckets;
	d->width = 1;
	if (to >= 0) {
		/* ceil(span / buckets) without overflowing near INT64_MAX */
		int64_t span = to - from;
		d->width = span / (int64_t)buckets + 1;
	}
	d->px = -1;
	d->last_x = -1;
	d->t_first = NAN;
	return 0;
}

void srv_ds_free(srv_ds *d)
{
	if (!d)
		return;
	free(d->b);
	d->b = NULL;
}

/* Folds b into a (b covers later steps than a). */
static void bucket_merge(srv_bucket *a, const srv_bucket *b)
{
	if (b->count == 0)
		return;
	if (a->count == 0) {
		*a = *b;
		return;
	}
	if (b->finite && (!a->finite || b->min_y < a->min_y)) {
		a->min_x = b->min_x;
		a->min_y = b->min_y;
	}
	if (b->finite && (!a->finite || b->max_y > a->max_y)) {
		a->max_x = b->max_x;
		a->max_y = b->max_y;
	}
	if (a->bad_x < 0 && b->bad_x >= 0) {
		a->bad_x = b->bad_x;
		a->bad_y = b->bad_y;
	}
	a->sum += b->sum;
	a->finite += b->finite;
	a->count += b->count;
	if (!isnan(b->t_last))
		a->t_last = b->t_last;
}

/* Doubles the width: bucket i takes buckets 2i and 2i+1. */
static void widen(srv_ds *d)
{
	size_t half = (d->used + 1) / 2;
	for (size_t i = 0; i < half; i++) {
		srv_bucket m = d->b[2 * i];
		if (2 * i + 1 < d->used)
			bucket_merge(&m, &d->b[2 * i + 1]);
		d->b[i] = m;
	}
	for (size_t i = half; i < d->used; i++)
		bucket_clear(&d->b[i]);
	d->used = half;
	d->width *= 2;
}

static void bucket_put(srv_bucket *b, int64_t x, double y, double t)
{
	b->count++;
	if (!isnan(t) && (isnan(b->t_last) || t > b->t_last))
		b->t_last = t;
	if (!isfinite(y)) {
		if (b->bad_x < 0) {
			b->bad_x = x;
			b->bad_y = y;
		}
		return;
	}
	if (!b->finite || y < b->min_y) {
		b->min_x = x;
		b->min_y = y;
	}
	if (!b->finite || y > b->max_y) {
		b->max_x = x;
		b->max_y = y;
	}
	b->sum += y;
	b->finite++;
}

/* Puts the pending point into its bucket, widening while it falls past
 * the last one (only when `to` is unknown). */
static void commit(srv_ds *d)
{
	if (d->px < 0)
		return;
	uint64_t off = (uint64_t)(d->px - d->from);
	while (off / (uint64_t)d->width >= d->nb)
		widen(d);
	size_t i = (size_t)(off / (uint64_t)d->width);
	bucket_put(&d->b[i], d->px, d->py, d->pt);
	if (i + 1 > d->used)
		d->used = i + 1;
	if (d->fed++ == 0)
		d->t_first = d->pt;
	d->last_x = d->px;
	d->px = -1;
}

int srv_ds_add(srv_ds *d, int64_t x, double y)
{
	return srv_ds_add_t(d, x, y, NAN);
}

int srv_ds_add_t(srv_ds *d, int64_t x, double y, double t)
{
	int64_t last = d->px >= 0 ? d->px : d->last_x;
	if (x < last)
		return tend_error_set(TEND_EINVAL, "steps went backwards: %lld "
				      "after %lld", (long long)x, (long long)last);
	if (x < d->from)
		return 0;
	if (d->to >= 0 && x > d->to)
		return 1;
	if (d->px != x)
		commit(d);
	d->px = x;
	d->py = y;
	d->pt = t;
	return 0;
}

int64_t srv_ds_bucket_at_time(srv_ds *d, double t)
{
	commit(d);
	if (isnan(d->t_first) || t < d->t_first)
		return -1;
	for (size_t i = 0; i < d->used; i++)
		if (d->b[i].t_last >= t)
			return d->from + (int64_t)i * d->width;
	return -1;
}

/* Appends one point unless it repeats the previous one. */
static void emit(int64_t *x, double *y, size_t *n, int64_t px, double py)
{
	if (px < 0 || (*n > 0 && x[*n - 1] == px))
		return;
	x[*n] = px;
	y[*n] = py;
	(*n)++;
}

size_t srv_ds_points(srv_ds *d, int64_t *x, double *y)
{
	size_t n = 0;
	commit(d);
	for (size_t i = 0; i < d->used; i++) {
		const srv_bucket *b = &d->b[i];
		/* the (up to three) points of a bucket, in step order */
		int64_t px[3] = {b->min_x, b->max_x, b->bad_x};
		double py[3] = {b->min_y, b->max_y, b->bad_y};
		for (int a = 0; a < 3; a++)
			for (int c = a + 1; c < 3; c++)
				if (px[c] >= 0 && (px[a] < 0 || px[c] < px[a])) {
					int64_t tx = px[a]; double ty = py[a];
					px[a] = px[c]; py[a] = py[c];
					px[c] = tx; py[c] = ty;
				}
		for (int a = 0; a < 3; a++)
			emit(x, y, &n, px[a], py[a]);
	}
	return n;
}

size_t srv_ds_means(srv_ds *d, int64_t *x, double *mean)
{
	commit(d);
	for (size_t i = 0; i < d->used; i++) {
		const srv_bucket *b = &d->b[i];
		x[i] = d->from + (int64_t)i * d->width;
		mean[i] = b->finite ? b->sum / (double)b->finite : NAN;
	}
	return d->used;
}

int srv_downsample(int64_t *out_x, double *out_y, size_t *out_n,
		   const int64_t *x, const double *y, size_t n, size_t buckets)
{
	srv_ds d;
	int rc;
	*out_n = 0;
	for (size_t i = 1; i < n; i++)
		if (x[i] < x[i - 1])
			return tend_error_set(TEND_EINVAL, "steps went backwards: "
					      "%lld after %lld", (long long)x[i],
					      (long long)x[i - 1]);
	if ((rc = srv_ds_init(&d, n ? x[0] : 0, n ? x[n - 1] : 0, buckets)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = srv_ds_add(&d, x[i], y[i])) < 0)
			goto done;
	*out_n = srv_ds_points(&d, out_x, out_y);
	rc = 0;
done:
	srv_ds_free(&d);
	return rc;
}
