/*
 * mon_trend.c - divergence and plateau, both read off the rolling median of
 * the training loss over divergence.window samples.
 *
 * The median of 200 noisy values moves about a tenth of the noise's sigma,
 * so rules on it ignore noise, single spikes and short bumps:
 *   divergence: the median stays above its lowest value so far by more
 *               than min_rise (relative) for `patience` samples;
 *   plateau:    the median has not gone below (1 - min_improvement) x the
 *               reference (the median at the last real improvement) for
 *               plateau.steps steps, and no divergence is under way.
 *               Info only: a flattening loss is news, not a fault.
 * Both keep records of their marks so that after a rollback the minimum
 * and the reference are those that held at the restart step.
 */
#include "mon_int.h"

#include <math.h>
#include <string.h>

int mon__trend_init(mon__trend *tr, const mon_params *p)
{
	memset(tr, 0, sizeof *tr);
	tr->min_med = tr->ref = NAN;
	mon__alarm_init(&tr->div);
	mon__alarm_init(&tr->plat);
	return mon__win_init(&tr->win, p->divergence.window, p->history);
}

void mon__trend_free(mon__trend *tr)
{
	mon__win_free(&tr->win);
}

static void div_emit(mon_set *set, long step, double m, double limit)
{
	mon__trend *tr = &set->trend;
	mon_incident inc;
	mon__incident_init(&inc, MON_DIVERGENCE, MON_CRITICAL, tr->div.onset, step);
	inc.value = m;
	inc.baseline = tr->min_med;
	inc.threshold = limit;
	double rise = (m - tr->min_med) / fabs(tr->min_med);
	mon__summary(&inc, "loss median of the last %d steps rose to %.4g at step %ld, "
		     "%.1f%% above its minimum %.4g at step %ld (limit +%.0f%%), "
		     "for %d steps since step %ld", tr->win.ns, m, step, 100 * rise,
		     tr->min_med, tr->min_step, 100 * set->p.divergence.min_rise,
		     tr->div.hits, tr->div.onset);
	mon__ring_evidence(&tr->meds, &inc);
	mon__emit(set, &inc);
}

static void plat_emit(mon_set *set, long step, double m)
{
	mon__trend *tr = &set->trend;
	mon_incident inc;
	double impr = set->p.plateau.min_improvement;
	mon__incident_init(&inc, MON_PLATEAU, MON_INFO, tr->plat.onset, step);
	inc.value = m;
	inc.baseline = tr->ref;
	inc.threshold = tr->ref - impr * fabs(tr->ref);
	mon__summary(&inc, "loss median %.4g at step %ld has not improved by %.1f%% "
		     "on %.4g (step %ld) for %ld steps", m, step, 100 * impr, tr->ref,
		     tr->ref_step, step - tr->ref_step);
	mon__ring_evidence(&tr->meds, &inc);
	mon__emit(set, &inc);
}

static void divergence(mon_set *set, long step, double m)
{
	mon__trend *tr = &set->trend;
	/* <=: on a flat stretch the minimum's step is where the rise began */
	if (isnan(tr->min_med) || m <= tr->min_med) {
		tr->min_med = m;
		tr->min_step = step;
		mon__recs_push(&tr->min_recs, step, m);
	}
	double limit = tr->min_med + set->p.divergence.min_rise * fabs(tr->min_med);
	if (!(m > limit)) {
		mon__alarm_miss(&tr->div);
		return;
	}
	mon__alarm_hit(&tr->div, step);
	if (mon__alarm_due(&tr->div, step, set->p.divergence.patience,
			   set->p.reemit_steps))
		div_emit(set, step, m, limit);
}

static void plateau(mon_set *set, long step, double m)
{
	mon__trend *tr = &set->trend;
	const double impr = set->p.plateau.min_improvement;
	if (isnan(tr->ref) || m < tr->ref - impr * fabs(tr->ref) ||
	    step < tr->ref_step) {
		tr->ref = m;
		tr->ref_step = step;
		mon__recs_push(&tr->ref_recs, step, m);
		mon__alarm_miss(&tr->plat);
		return;
	}
	/* a rising loss is a divergence, not a plateau */
	if (step - tr->ref_step < set->p.plateau.steps || tr->div.hits > 0)
		return;
	mon__alarm_hit(&tr->plat, step);
	/* a plateau is slow news: repeat it once per plateau length at most */
	long every = set->p.plateau.steps > set->p.reemit_steps ?
		set->p.plateau.steps : set->p.reemit_steps;
	if (mon__alarm_due(&tr->plat, step, 1, every))
		plat_emit(set, step, m);
}

void mon__trend_feed(mon_set *set, long step, double loss)
{
	mon__trend *tr = &set->trend;
	mon__win_push(&tr->win, step, loss);
	if (tr->win.ns < tr->win.window)
		return;
	double m = mon__win_median(&tr->win);
	mon__ring_push(&tr->meds, step, m);
	if (set->p.divergence.on)
		divergence(set, step, m);
	if (set->p.plateau.on)
		plateau(set, step, m);
}

void mon__trend_restart(mon__trend *tr, long from_step)
{
	mon__win_rollback(&tr->win, from_step);
	mon__ring_rollback(&tr->meds, from_step);
	if (!mon__recs_rollback(&tr->min_recs, from_step, &tr->min_step, &tr->min_med))
		tr->min_med = NAN;
	if (!mon__recs_rollback(&tr->ref_recs, from_step, &tr->ref_step, &tr->ref))
		tr->ref = NAN;
	mon__alarm_init(&tr->div);
	mon__alarm_init(&tr->plat);
}
