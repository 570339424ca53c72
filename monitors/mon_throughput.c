/*
 * mon_throughput.c - the throughput-drop detector: tokens/s below
 * drop_ratio x the rolling median of recent healthy samples for `patience`
 * consecutive samples.
 *
 * Hits stay out of the window, so a lasting drop (a straggler node, a
 * throttled GPU) keeps being measured against the healthy level and keeps
 * re-emitting instead of becoming the new normal. A single slow step (a
 * checkpoint save, an eval) is under patience. After a restart the first
 * `warmup` samples (compilation, cache warm-up) are not tested.
 */
#include "mon_int.h"

#include <string.h>

int mon__tput_init(mon__tput *tp, const mon_params *p)
{
	memset(tp, 0, sizeof *tp);
	mon__alarm_init(&tp->alarm);
	return mon__win_init(&tp->win, p->throughput.window, p->history);
}

void mon__tput_free(mon__tput *tp)
{
	mon__win_free(&tp->win);
}

static void tput_emit(mon_set *set, long step, double v, double med, double limit)
{
	mon__tput *tp = &set->tput;
	mon_incident inc;
	mon__incident_init(&inc, MON_THROUGHPUT, MON_WARNING, tp->alarm.onset, step);
	inc.value = v;
	inc.baseline = med;
	inc.threshold = limit;
	mon__summary(&inc, "tokens/s %.4g at step %ld is %.2f x the median %.4g of the "
		     "last %d healthy steps (limit %.2f x) for %d steps since step %ld",
		     v, step, med > 0 ? v / med : 0.0, med, tp->win.ns,
		     set->p.throughput.drop_ratio, tp->alarm.hits, tp->alarm.onset);
	mon__ring_evidence(&tp->raw, &inc);
	mon__emit(set, &inc);
}

void mon__tput_feed(mon_set *set, long step, double tps)
{
	mon__tput *tp = &set->tput;
	const mon_params *p = &set->p;
	mon__ring_push(&tp->raw, step, tps);
	if (tp->skip > 0 || tp->win.ns < p->throughput.warmup) {
		if (tp->skip > 0)
			tp->skip--;
		mon__win_push(&tp->win, step, tps);
		mon__alarm_miss(&tp->alarm);
		return;
	}
	double med = mon__win_median(&tp->win);
	double limit = p->throughput.drop_ratio * med;
	if (!(tps < limit)) {
		mon__win_push(&tp->win, step, tps);
		mon__alarm_miss(&tp->alarm);
		return;
	}
	mon__alarm_hit(&tp->alarm, step);
	if (mon__alarm_due(&tp->alarm, step, p->throughput.patience, p->reemit_steps))
		tput_emit(set, step, tps, med, limit);
}

void mon__tput_restart(mon__tput *tp, const mon_params *p, long from_step)
{
	mon__win_rollback(&tp->win, from_step);
	mon__ring_rollback(&tp->raw, from_step);
	tp->skip = p->throughput.warmup;
	mon__alarm_init(&tp->alarm);
}
