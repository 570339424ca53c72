/*
 * mon_win.c - the small data structures every detector leans on: the
 * rolling window with an incremental median and MAD, the evidence ring,
 * the rollback records and the alarm.
 *
 * The window is the hot spot of replay (median and MAD over 128 values on
 * every row), so it never sorts: the window's values stay sorted under
 * binary search and one short move per push, the median is an index, and
 * the MAD is a binary search over the two sorted runs of deviations on
 * either side of the median.
 */
#include "mon_int.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mon__win_init(mon__win *w, int window, int history)
{
	memset(w, 0, sizeof *w);
	w->window = window;
	w->cap = window + history;
	w->steps = malloc((size_t)w->cap * sizeof *w->steps);
	w->vals = malloc((size_t)w->cap * sizeof *w->vals);
	w->sorted = malloc((size_t)window * sizeof *w->sorted);
	if (!w->steps || !w->vals || !w->sorted) {
		mon__win_free(w);
		return tend_error_set(TEND_ENOMEM, "monitors: out of memory for a window of %d",
				      w->cap);
	}
	return 0;
}

void mon__win_free(mon__win *w)
{
	free(w->steps);
	free(w->vals);
	free(w->sorted);
	w->steps = NULL;
	w->vals = NULL;
	w->sorted = NULL;
	w->n = w->ns = 0;
}

/* First index whose value is >= v (lower) or > v (upper). Branch-free
 * halving: the compiler turns the ternary into a conditional move, so the
 * unpredictable compares of noisy data cost no pipeline flushes. */
static int lower(const double *a, int n, double v)
{
	const double *base = a;
	if (n == 0)
		return 0;
	while (n > 1) {
		int half = n / 2;
		base = base[half] < v ? base + half : base;
		n -= half;
	}
	return (int)(base - a) + (*base < v);
}

static int upper(const double *a, int n, double v)
{
	const double *base = a;
	if (n == 0)
		return 0;
	while (n > 1) {
		int half = n / 2;
		base = base[half] <= v ? base + half : base;
		n -= half;
	}
	return (int)(base - a) + (*base <= v);
}

static void sorted_insert(mon__win *w, double v)
{
	int pos = upper(w->sorted, w->ns, v);
	memmove(w->sorted + pos + 1, w->sorted + pos,
		(size_t)(w->ns - pos) * sizeof *w->sorted);
	w->sorted[pos] = v;
	w->ns++;
}

/* Swaps old (in the window) for v: only the values between the two
 * positions move, one place, instead of a delete and an insert that each
 * move half the window. */
static void sorted_replace(mon__win *w, double old, double v)
{
	double *a = w->sorted;
	int p = lower(a, w->ns, old);
	if (p >= w->ns)   /* cannot happen: old is in the window; stay in bounds */
		p = w->ns - 1;
	int j = upper(a, w->ns, v);
	if (j > p) {
		memmove(a + p, a + p + 1, (size_t)(j - 1 - p) * sizeof *a);
		a[j - 1] = v;
	} else {
		memmove(a + j + 1, a + j, (size_t)(p - j) * sizeof *a);
		a[j] = v;
	}
}

static int ring_at(const mon__win *w, int i)
{
	int k = w->head + i;
	return k >= w->cap ? k - w->cap : k;
}

void mon__win_push(mon__win *w, long step, double v)
{
	double old = 0.0;
	bool full = w->ns == w->window;
	if (full)
		old = w->vals[ring_at(w, w->n - w->window)];
	if (w->n == w->cap) {
		w->head = ring_at(w, 1);
		w->n--;
	}
	int k = ring_at(w, w->n);
	w->steps[k] = step;
	w->vals[k] = v;
	w->n++;
	if (full)
		sorted_replace(w, old, v);
	else
		sorted_insert(w, v);
}

double mon__win_median(const mon__win *w)
{
	int n = w->ns;
	if (n == 0)
		return NAN;
	if (n % 2)
		return w->sorted[n / 2];
	return 0.5 * (w->sorted[n / 2 - 1] + w->sorted[n / 2]);
}

/* The median of |x - m| without sorting. Left of the median the
 * deviations m - a[lo - i] grow with i, right of it a[hi + i] - m do: two
 * sorted runs. Find by binary search how many of the t = n/2 smallest
 * deviations come from the left run; the median is then the smallest
 * deviation not taken (n odd) or its mean with the largest taken (n even).
 * O(log n), so the MAD of a 128-window costs about as much as its median. */
double mon__win_mad(const mon__win *w, double m)
{
	int n = w->ns, t = n / 2;
	if (n == 0)
		return NAN;
	const double *a = w->sorted;
	int lo = (n - 1) / 2, hi = lo + 1, nl = lo + 1, nr = n - hi;
#define L(i) (m - a[lo - (i)])
#define R(i) (a[hi + (i)] - m)
	int imin = t > nr ? t - nr : 0, imax = t < nl ? t : nl, i = imin;
	while (imin <= imax) {
		i = (imin + imax) / 2;
		if (i < nl && t - i > 0 && R(t - i - 1) > L(i))
			imin = i + 1;      /* take more from the left */
		else if (i > 0 && t - i < nr && L(i - 1) > R(t - i))
			imax = i - 1;      /* take fewer */
		else
			break;
	}
	double up = INFINITY, down = -INFINITY;
	if (i < nl)
		up = L(i);
	if (t - i < nr && R(t - i) < up)
		up = R(t - i);
	if (n % 2)
		return up;
	if (i > 0)
		down = L(i - 1);
	if (t - i > 0 && R(t - i - 1) > down)
		down = R(t - i - 1);
#undef L
#undef R
	return 0.5 * (down + up);
}

double mon__win_max(const mon__win *w)
{
	return w->ns ? w->sorted[w->ns - 1] : NAN;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void mon__win_rollback(mon__win *w, long from_step)
{
	while (w->n > 0 && w->steps[ring_at(w, w->n - 1)] > from_step)
		w->n--;
	w->ns = w->n < w->window ? w->n : w->window;
	for (int i = 0; i < w->ns; i++)
		w->sorted[i] = w->vals[ring_at(w, w->n - w->ns + i)];
	qsort(w->sorted, (size_t)w->ns, sizeof *w->sorted, cmp_double);
}

void mon__win_clear(mon__win *w)
{
	w->n = w->ns = w->head = 0;
}

void mon__win_evidence(const mon__win *w, mon_incident *inc)
{
	int m = w->n < MON_EVIDENCE_MAX ? w->n : MON_EVIDENCE_MAX;
	for (int i = 0; i < m; i++) {
		int k = ring_at(w, w->n - m + i);
		inc->ev_step[i] = w->steps[k];
		inc->ev_value[i] = w->vals[k];
	}
	inc->n_evidence = m;
}

/* ---- evidence ring ----------------------------------------------------- */

void mon__ring_push(mon__ring *r, long step, double v)
{
	int k = (r->head + r->n) % MON_EVIDENCE_MAX;
	r->step[k] = step;
	r->val[k] = v;
	if (r->n < MON_EVIDENCE_MAX)
		r->n++;
	else
		r->head = (r->head + 1) % MON_EVIDENCE_MAX;
}

void mon__ring_rollback(mon__ring *r, long from_step)
{
	while (r->n > 0 && r->step[(r->head + r->n - 1) % MON_EVIDENCE_MAX] > from_step)
		r->n--;
}

void mon__ring_evidence(const mon__ring *r, mon_incident *inc)
{
	for (int i = 0; i < r->n; i++) {
		int k = (r->head + i) % MON_EVIDENCE_MAX;
		inc->ev_step[i] = r->step[k];
		inc->ev_value[i] = r->val[k];
	}
	inc->n_evidence = r->n;
}

/* ---- rollback records -------------------------------------------------- */

void mon__recs_push(mon__recs *r, long step, double v)
{
	if (r->stride < 1)
		r->stride = 1;
	if (r->seen++ % r->stride != 0)
		return;
	if (r->n == MON__RECS_MAX) {
		/* record i is mark i x stride: keeping the even ones is keeping
		 * the multiples of 2 x stride */
		int j = 0;
		for (int i = 0; i < r->n; i += 2, j++) {
			r->step[j] = r->step[i];
			r->v[j] = r->v[i];
		}
		r->n = j;
		r->stride *= 2;
		if ((r->seen - 1) % r->stride != 0)
			return;
	}
	r->step[r->n] = step;
	r->v[r->n] = v;
	r->n++;
}

bool mon__recs_rollback(mon__recs *r, long from_step, long *step, double *v)
{
	while (r->n > 0 && r->step[r->n - 1] > from_step)
		r->n--;
	if (r->n == 0)
		return false;
	*step = r->step[r->n - 1];
	*v = r->v[r->n - 1];
	return true;
}

/* ---- alarms ------------------------------------------------------------ */

void mon__alarm_init(mon__alarm *a)
{
	a->hits = 0;
	a->onset = MON__NONE;
	a->last_emit = MON__NONE;
	a->last_emit_t = NAN;
}

void mon__alarm_hit(mon__alarm *a, long step)
{
	if (a->hits == 0)
		a->onset = step;
	if (a->hits < INT_MAX)
		a->hits++;
}

void mon__alarm_miss(mon__alarm *a)
{
	a->hits = 0;
}

bool mon__alarm_due(mon__alarm *a, long step, int patience, long reemit)
{
	if (a->hits < patience)
		return false;
	if (a->last_emit != MON__NONE && step >= a->last_emit &&
	    step - a->last_emit < reemit)
		return false;
	a->last_emit = step;
	return true;
}

bool mon__alarm_due_t(mon__alarm *a, double t, double reemit_s)
{
	if (!isnan(a->last_emit_t) && t >= a->last_emit_t &&
	    t - a->last_emit_t < reemit_s)
		return false;
	a->last_emit_t = t;
	return true;
}
