/*
 * mon_spike.c - the loss and grad-norm spike detectors: a robust z-score
 * of each value against the median and MAD of the previous `window`
 * values, one-sided (only rises are spikes), confirmed by `patience`
 * consecutive hits.
 *
 * Median and MAD instead of mean and standard deviation so that the spike
 * itself (and earlier spikes still in the window) do not inflate the scale
 * it is measured with. Every finite value enters the window, hits too: the
 * median tolerates up to half the window being outliers, and a level that
 * persists longer than that is a divergence, not a spike.
 */
#include "mon_int.h"

#include <math.h>
#include <stdio.h>

/* MAD -> standard deviation for normally distributed values. */
#define MAD_TO_SIGMA 1.4826

int mon__spike_init(mon__spike *sp, const mon_spike_params *p, mon_kind kind,
		    const char *metric, int history)
{
	sp->p = p;
	sp->kind = kind;
	sp->metric = metric;
	mon__alarm_init(&sp->alarm);
	return mon__win_init(&sp->win, p->window, history);
}

void mon__spike_free(mon__spike *sp)
{
	mon__win_free(&sp->win);
}

static void spike_emit(mon_set *set, mon__spike *sp, long step, double v,
		       double med, double sigma, int n)
{
	const mon_spike_params *p = sp->p;
	mon_incident inc;
	mon__incident_init(&inc, sp->kind, MON_WARNING, sp->alarm.onset, step);
	inc.value = v;
	inc.baseline = med;
	inc.threshold = med + p->threshold * sigma;
	int len = snprintf(inc.summary, sizeof inc.summary,
		"%s %.4g at step %ld is %.1f robust sigmas above the median %.4g "
		"of the last %d steps", sp->metric, v, step, (v - med) / sigma, med, n);
	if (sp->alarm.hits > 1 && len > 0 && (size_t)len < sizeof inc.summary)
		snprintf(inc.summary + len, sizeof inc.summary - (size_t)len,
			 " (%d in a row since step %ld)", sp->alarm.hits, sp->alarm.onset);
	mon__win_evidence(&sp->win, &inc);
	mon__emit(set, &inc);
}

void mon__spike_feed(mon_set *set, mon__spike *sp, long step, double v)
{
	const mon_spike_params *p = sp->p;
	double med = 0, sigma = 0;
	int n = sp->win.ns;
	bool hit = false;
	if (n >= p->warmup) {
		med = mon__win_median(&sp->win);
		sigma = MAD_TO_SIGMA * mon__win_mad(&sp->win, med);
		/* a floor, so that a flat or quantised series does not turn a
		 * rounding step into infinitely many sigmas */
		double floor = p->min_scale_rel * fabs(med);
		if (sigma < floor)
			sigma = floor;
		if (sigma < 1e-12)
			sigma = 1e-12;
		hit = v - med >= p->threshold * sigma;
	}
	/* the z-score compares with the window before this value; then it joins */
	mon__win_push(&sp->win, step, v);
	if (!hit) {
		mon__alarm_miss(&sp->alarm);
		return;
	}
	mon__alarm_hit(&sp->alarm, step);
	if (mon__alarm_due(&sp->alarm, step, p->patience, set->p.reemit_steps))
		spike_emit(set, sp, step, v, med, sigma, n);
}

void mon__spike_restart(mon__spike *sp, long from_step)
{
	mon__win_rollback(&sp->win, from_step);
	mon__alarm_init(&sp->alarm);
}
