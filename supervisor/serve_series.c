/*
 * serve_series.c - the dashboard's charts: GET /api/series (metrics of a
 * run, min/max downsampled, with incident markers and promotion lines) and
 * GET /api/moe (MoE expert load as heatmap rows).
 *
 * A full-range series is kept, downsampled, between requests (up to
 * SRV__SERIES of them): the next request reads only the steps written
 * since, so a live run's chart is refreshed for the cost of its new rows,
 * and a finished run's for nothing. A restart (a new attempt) rewrites
 * steps, so a change in the attempt count throws the kept series away.
 */
#include "clock.h"
#include "serve_int.h"
#include "tend.h"

#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct srv__series {
	int64_t run_id;
	char name[132];
	size_t buckets;
	int attempts;     /* of the run when read */
	double used;      /* last use, for eviction */
	srv_ds ds;
};

/* ---- the series cache --------------------------------------------------- */

static void series_free(srv__series *e)
{
	if (!e)
		return;
	srv_ds_free(&e->ds);
	free(e);
}

void srv__series_cache_free(srv *s)
{
	for (int i = 0; i < SRV__SERIES; i++) {
		series_free(s->series[i]);
		s->series[i] = NULL;
	}
}

/* Takes the kept series out of the cache (NULL when none): while one
 * request updates it, no other sees it. */
static srv__series *cache_take(srv *s, int64_t run, const char *name, size_t buckets)
{
	srv__series *e = NULL;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < SRV__SERIES && !e; i++)
		if (s->series[i] && s->series[i]->run_id == run &&
		    s->series[i]->buckets == buckets && !strcmp(s->series[i]->name, name)) {
			e = s->series[i];
			s->series[i] = NULL;
		}
	pthread_mutex_unlock(&s->mu);
	return e;
}

/* Puts e back, evicting the least recently used when full. */
static void cache_put(srv *s, srv__series *e)
{
	int slot = 0;
	e->used = tend_wall_s();
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < SRV__SERIES; i++) {
		if (!s->series[i]) {
			slot = i;
			break;
		}
		if (s->series[i]->used < s->series[slot]->used)
			slot = i;
	}
	srv__series *old = s->series[slot];
	s->series[slot] = e;
	pthread_mutex_unlock(&s->mu);
	series_free(old);
}

static int count_attempt(const store_attempt *a, void *ud)
{
	(void)a;
	(*(int *)ud)++;
	return 0;
}

static int feed_row(int64_t step, int attempt, double value, double t, void *ud)
{
	(void)attempt;
	return srv_ds_add_t(ud, step, value, t);
}

/* The series name of run over [from, to] (to -1: all) in buckets: from
 * the cache topped up with new rows when the range is the full one, else
 * read afresh. *keep says whether to cache_put it afterwards. */
static int series_get(srv *s, store *st, int64_t run, const char *name,
		      int64_t from, int64_t to, size_t buckets, srv__series **out,
		      bool *keep)
{
	srv__series *e = NULL;
	int attempts = 0, rc;
	*out = NULL;
	*keep = from == 0 && to < 0 && strlen(name) < sizeof e->name;
	if ((rc = store_attempt_list(st, run, count_attempt, &attempts)) < 0)
		return rc;
	if (*keep && (e = cache_take(s, run, name, buckets)) && e->attempts != attempts) {
		series_free(e); /* a restart rewrote steps */
		e = NULL;
	}
	if (!e) {
		if (!(e = calloc(1, sizeof *e)))
			return tend_error_set(TEND_ENOMEM, "series");
		if ((rc = srv_ds_init(&e->ds, from, to, buckets)) < 0) {
			free(e);
			return rc;
		}
		e->run_id = run;
		e->buckets = buckets;
		e->attempts = attempts;
		snprintf(e->name, sizeof e->name, "%s", name);
	}
	rc = store_metrics_read(st, run, name, e->ds.last_x >= 0 ? e->ds.last_x + 1 : from,
				feed_row, &e->ds);
	if (rc == TEND_ENOTFOUND || rc == 1)
		rc = 0; /* a metric nobody recorded is an empty series */
	if (rc < 0) {
		series_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

static void series_done(srv *s, srv__series *e, bool keep)
{
	if (keep && e)
		cache_put(s, e);
	else
		series_free(e);
}

/* ---- promotions on the step axis ---------------------------------------- */

typedef struct promo {
	int64_t id, proposal_id;
	char commit[80], merged[80], by[80];
	double t;
	int64_t step;         /* -1: not within the run's time */
} promo;

typedef struct promos {
	promo *v;
	size_t n, cap;
} promos;

static int promo_collect(const store_promotion *p, void *ud)
{
	promos *ps = ud;
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 16;
		promo *v = realloc(ps->v, cap * sizeof *v);
		if (!v)
			return tend_error_set(TEND_ENOMEM, "promotions");
		ps->v = v;
		ps->cap = cap;
	}
	promo *o = &ps->v[ps->n++];
	*o = (promo){.id = p->id, .proposal_id = p->proposal_id, .t = p->t, .step = -1};
	snprintf(o->commit, sizeof o->commit, "%s", p->commit ? p->commit : "");
	snprintf(o->merged, sizeof o->merged, "%s", p->merged_commit ? p->merged_commit : "");
	snprintf(o->by, sizeof o->by, "%s", p->approved_by ? p->approved_by : "");
	return 0;
}

typedef struct time_find {
	double t;
	int64_t step, stop;
} time_find;

static int find_time(int64_t step, int attempt, double value, double t, void *ud)
{
	time_find *f = ud;
	(void)attempt, (void)value;
	if (step > f->stop)
		return 1;
	if (t >= f->t) {
		f->step = step;
		return 1;
	}
	return 0;
}

/* Puts each promotion on the step axis of series e: the first step
 * written at or after it. The buckets say where; one short read says
 * exactly. */
static int promos_place(store *st, int64_t run, srv__series *e, promos *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		int64_t start = srv_ds_bucket_at_time(&e->ds, ps->v[i].t);
		if (start < 0)
			continue;
		time_find f = {ps->v[i].t, -1, start + 2 * e->ds.width};
		int rc = store_metrics_read(st, run, e->name, start, find_time, &f);
		if (rc < 0)
			return rc;
		ps->v[i].step = f.step;
	}
	return 0;
}

static void promos_json(jbuf *b, const promos *ps)
{
	jbuf_key(b, "promotions");
	jbuf_arr_open(b);
	for (size_t i = 0; i < ps->n; i++) {
		const promo *p = &ps->v[i];
		if (p->step < 0)
			continue;
		jbuf_obj_open(b);
		srv__kv_int(b, "id", p->id);
		srv__kv_int(b, "proposal_id", p->proposal_id);
		srv__kv_str(b, "commit", p->commit);
		srv__kv_str(b, "merged_commit", p->merged);
		srv__kv_str(b, "approved_by", p->by);
		srv__kv_time(b, "t", p->t);
		srv__kv_int(b, "step", p->step);
		jbuf_obj_close(b);
	}
	jbuf_arr_close(b);
}

static int marker_json(const store_incident *i, void *ud)
{
	jbuf *b = ud;
	jbuf_obj_open(b);
	srv__kv_int(b, "id", i->id);
	srv__kv_str(b, "kind", i->kind);
	srv__kv_str(b, "severity", i->severity);
	srv__kv_str(b, "state", i->state);
	srv__kv_int(b, "onset_step", i->onset_step);
	srv__kv_int(b, "last_step", i->last_step);
	srv__kv_str(b, "summary", i->summary);
	jbuf_obj_close(b);
	return 0;
}

/* ---- /api/series -------------------------------------------------------- */

typedef struct names {
	const char *v[SRV__MAX_NAMES];
	int n;
	bool over, bad;
} names;

static enum MHD_Result collect_name(void *ud, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	names *ns = ud;
	(void)kind;
	if (strcmp(key, "name") != 0)
		return MHD_YES;
	if (!value || !*value || strlen(value) > 128)
		ns->bad = true;
	else if (ns->n == SRV__MAX_NAMES)
		ns->over = true;
	else
		ns->v[ns->n++] = value;
	return MHD_YES;
}

/* Reads the query of /api/series: 0 or the status of the answer written. */
static int series_query(srv__req *r, names *ns, int64_t *from, int64_t *to,
			int64_t *points)
{
	int rc;
	const int64_t max_step = (int64_t)1 << 53;
	MHD_get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, collect_name, ns);
	if (ns->bad)
		return srv__fail(r, 400, "query argument name: expected a metric "
				 "name of 1..128 bytes");
	if (ns->over)
		return srv__fail(r, 400, "too many metrics: at most %d name= "
				 "arguments", SRV__MAX_NAMES);
	if (ns->n == 0)
		ns->v[ns->n++] = "loss";
	if ((rc = srv__arg_int(r, "from", 0, max_step, from)) ||
	    (rc = srv__arg_int(r, "to", 0, max_step, to)) ||
	    (rc = srv__arg_int(r, "points", 2, 2 * SRV_DS_MAX_BUCKETS, points)))
		return rc;
	if (*to >= 0 && *to < *from)
		return srv__fail(r, 400, "empty step range: from %lld is after to %lld",
				 (long long)*from, (long long)*to);
	return 0;
}

static int series_json(jbuf *b, srv__series *e)
{
	size_t cap = SRV_DS_CAP(e->buckets);
	int64_t *xs = malloc(cap * sizeof *xs);
	double *ys = malloc(cap * sizeof *ys);
	if (!xs || !ys) {
		free(xs);
		free(ys);
		return tend_error_set(TEND_ENOMEM, "series buffers");
	}
	size_t n = srv_ds_points(&e->ds, xs, ys);
	jbuf_obj_open(b);
	srv__kv_str(b, "name", e->name);
	srv__kv_int(b, "read", e->ds.fed);
	srv__kv_int(b, "width", e->ds.width);
	jbuf_key(b, "x");
	jbuf_arr_open(b);
	for (size_t i = 0; i < n; i++)
		jbuf_int(b, xs[i]);
	jbuf_arr_close(b);
	jbuf_key(b, "y");
	jbuf_arr_open(b);
	for (size_t i = 0; i < n; i++)
		srv__num(b, ys[i]);
	jbuf_arr_close(b);
	free(xs);
	free(ys);
	return jbuf_obj_close(b);
}

/* One series into b; the first one also places the promotions. */
static int series_one(srv__req *r, store *st, int64_t run, const char *name,
		      int64_t from, int64_t to, size_t buckets, promos *ps)
{
	srv__series *e = NULL;
	bool keep = false;
	int rc = series_get(r->s, st, run, name, from, to, buckets, &e, &keep);
	if (rc < 0)
		return rc;
	if (ps)
		rc = promos_place(st, run, e, ps);
	if (rc == 0)
		rc = series_json(&r->out, e);
	series_done(r->s, e, keep && rc == 0);
	return rc;
}

int srv__api_series(srv__req *r, store *st)
{
	names ns = {0};
	int64_t from = 0, to = -1, points = 2000;
	promos ps = {0};
	store_run *run = NULL;
	jbuf *b = &r->out;
	int rc = series_query(r, &ns, &from, &to, &points);
	if (rc || (rc = srv__arg_run(r, st, &run)))
		return rc;
	if (store_promotion_list(st, 0, promo_collect, &ps) < 0) {
		rc = srv__store_fail(r);
		goto done;
	}
	jbuf_obj_open(b);
	srv__kv_str(b, "run", run->name);
	srv__kv_int(b, "from", from);
	srv__kv_int(b, "to", to);
	srv__kv_int(b, "points", points);
	jbuf_key(b, "series");
	jbuf_arr_open(b);
	for (int i = 0; i < ns.n; i++)
		if (series_one(r, st, run->id, ns.v[i], from, to, (size_t)(points / 2),
			       i == 0 ? &ps : NULL) < 0) {
			rc = srv__store_fail(r);
			goto done;
		}
	jbuf_arr_close(b);
	promos_json(b, &ps);
	jbuf_key(b, "incidents");
	jbuf_arr_open(b);
	rc = store_incident_list(st, run->id, NULL, marker_json, b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	rc = rc < 0 ? srv__store_fail(r) : 200;
done:
	free(ps.v);
	store_run_free(run);
	return rc;
}

/* ---- /api/moe ----------------------------------------------------------- */

#define MOE_MAX 1024 /* load series one answer may hold */

typedef struct moe_name {
	int layer, expert;
	char name[48];
} moe_name;

typedef struct moe_list {
	moe_name v[MOE_MAX];
	int n;
} moe_list;

static int moe_collect(const char *name, void *ud)
{
	moe_list *l = ud;
	int layer, expert, used = 0;
	if (strlen(name) >= 48 || sscanf(name, "moe.%d.load.%d%n", &layer, &expert, &used) != 2 ||
	    name[used] || layer < 0 || expert < 0)
		return 0;
	if (l->n == MOE_MAX)
		return 1;
	l->v[l->n] = (moe_name){layer, expert, ""};
	snprintf(l->v[l->n++].name, 48, "%s", name);
	return 0;
}

static int moe_cmp(const void *a, const void *b)
{
	const moe_name *x = a, *y = b;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return (x->expert > y->expert) - (x->expert < y->expert);
}

/* One expert's mean load per bucket. The first expert of a layer sets
 * the buckets (*width); an expert whose kept series ended up with other
 * buckets is read again over exactly those. */
static int moe_expert(srv__req *r, store *st, int64_t run, const char *name,
		      size_t buckets, int64_t *width, jbuf *xs)
{
	srv__series *e = NULL;
	bool keep = false, first = *width == 0;
	int rc = series_get(r->s, st, run, name, 0, -1, buckets, &e, &keep);
	if (rc == 0 && !first && e->ds.width != *width) {
		series_done(r->s, e, keep);
		keep = false;
		rc = series_get(r->s, st, run, name, 0, (int64_t)buckets * *width - 1,
				buckets, &e, &keep);
	}
	int64_t *x = malloc(buckets * sizeof *x);
	double *m = malloc(buckets * sizeof *m);
	if (rc == 0 && (!x || !m))
		rc = tend_error_set(TEND_ENOMEM, "moe buffers");
	if (rc == 0) {
		size_t n = srv_ds_means(&e->ds, x, m);
		if (first)
			*width = e->ds.width;
		jbuf_arr_open(&r->out);
		for (size_t i = 0; i < n; i++) {
			srv__num(&r->out, m[i]);
			if (first)
				jbuf_int(xs, x[i]);
		}
		jbuf_arr_close(&r->out);
	}
	series_done(r->s, e, keep && rc == 0);
	free(x);
	free(m);
	return rc;
}

static int moe_layer(srv__req *r, store *st, int64_t run, const moe_list *l,
		     int i, int j, size_t buckets)
{
	jbuf xs, *b = &r->out;
	int64_t width = 0;
	int rc = 0;
	jbuf_init(&xs);
	jbuf_arr_open(&xs);
	jbuf_obj_open(b);
	srv__kv_int(b, "layer", l->v[i].layer);
	srv__kv_int(b, "experts", j - i);
	jbuf_key(b, "load");
	jbuf_arr_open(b);
	for (int k = i; k < j && rc == 0; k++)
		rc = moe_expert(r, st, run, l->v[k].name, buckets, &width, &xs);
	jbuf_arr_close(b);
	jbuf_arr_close(&xs);
	srv__kv_int(b, "width", width);
	jbuf_key(b, "x");
	size_t len;
	const char *text = jbuf_cstr(&xs, &len);
	jbuf_raw(b, text, len);
	jbuf_obj_close(b);
	if (rc == 0 && xs.err)
		rc = xs.err;
	jbuf_free(&xs);
	return rc;
}

int srv__api_moe(srv__req *r, store *st)
{
	store_run *run = NULL;
	moe_list *l = calloc(1, sizeof *l);
	int64_t points = 200;
	jbuf *b = &r->out;
	int rc = !l ? srv__fail(r, 500, "out of memory") : 0;
	if (rc || (rc = srv__arg_int(r, "points", 1, 2000, &points)) ||
	    (rc = srv__arg_run(r, st, &run)))
		goto done;
	if (store_metric_names(st, run->id, moe_collect, l) < 0) {
		rc = srv__store_fail(r);
		goto done;
	}
	qsort(l->v, (size_t)l->n, sizeof l->v[0], moe_cmp);
	jbuf_obj_open(b);
	srv__kv_str(b, "run", run->name);
	jbuf_key(b, "layers");
	jbuf_arr_open(b);
	for (int i = 0, j; i < l->n; i = j) {
		for (j = i; j < l->n && l->v[j].layer == l->v[i].layer; j++)
			;
		if (moe_layer(r, st, run->id, l, i, j, (size_t)points) < 0) {
			rc = srv__store_fail(r);
			goto done;
		}
	}
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	rc = 200;
done:
	free(l);
	store_run_free(run);
	return rc;
}
