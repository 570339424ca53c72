/*
 * mon_liveness.c - the time-based detectors, on the caller's monotonic
 * clock (samples' t and mon_tick's now; never the system clock):
 *   heartbeat: no sample of any type for heartbeat.timeout_s;
 *   stall:     samples still arrive but no step (or eval) progress for
 *              max(stall.timeout_s, k x the slowest recent gap between
 *              progress reports); before the first step the limit is
 *              stall.startup_s.
 * A silent process is reported as a lost heartbeat only: the stall rule is
 * for the process that still talks (a heartbeat thread, NCCL warnings) while
 * its training loop hangs. Gaps that were themselves reported as stalls do
 * not join the recent gaps, or one hang would raise the limit for the next.
 */
#include "mon_int.h"

#include <math.h>
#include <string.h>

int mon__live_init(mon__live *lv, const mon_params *p)
{
	memset(lv, 0, sizeof *lv);
	lv->last_any_step = -1;
	lv->progress_step = MON__NONE;
	mon__alarm_init(&lv->stall);
	mon__alarm_init(&lv->hb);
	return mon__win_init(&lv->gaps, p->stall.recent, 0);
}

void mon__live_free(mon__live *lv)
{
	mon__win_free(&lv->gaps);
}

static void start(mon__live *lv, double t)
{
	lv->started = true;
	lv->first_t = lv->last_any_t = t;
}

static void hb_emit(mon_set *set, double now)
{
	mon__live *lv = &set->live;
	mon_incident inc;
	long step = lv->last_any_step;
	mon__incident_init(&inc, MON_HEARTBEAT, MON_CRITICAL, step, step);
	inc.value = now - lv->last_any_t;
	inc.threshold = set->p.heartbeat.timeout_s;
	mon__summary(&inc, "no output of any kind for %.0f s after step %ld (limit %.0f s)",
		     inc.value, step, inc.threshold);
	mon__ring_evidence(&lv->seen, &inc);
	mon__emit(set, &inc);
}

static void stall_emit(mon_set *set, double now, double since, double limit)
{
	mon__live *lv = &set->live;
	const mon_params *p = &set->p;
	mon_incident inc;
	long step = lv->progress_step != MON__NONE ? lv->progress_step : lv->last_any_step;
	mon__incident_init(&inc, MON_STALL, MON_CRITICAL, step, step);
	inc.value = now - since;
	inc.baseline = mon__win_max(&lv->gaps);
	inc.threshold = limit;
	if (lv->have_progress)
		mon__summary(&inc, "no step progress for %.0f s after step %ld (limit %.0f s: "
			     "max of %.0f s and %g x the slowest recent step gap %.3g s)",
			     inc.value, step, limit, p->stall.timeout_s, p->stall.k,
			     lv->gaps.ns ? inc.baseline : 0.0);
	else
		mon__summary(&inc, "no first step %.0f s after the trainer started "
			     "(limit %.0f s)", inc.value, limit);
	mon__win_evidence(&lv->gaps, &inc);
	mon__emit(set, &inc);
}

void mon__live_check(mon_set *set, double now)
{
	mon__live *lv = &set->live;
	const mon_params *p = &set->p;
	if (!lv->started) {
		start(lv, now);
		return;
	}
	if (p->heartbeat.on && now - lv->last_any_t > p->heartbeat.timeout_s) {
		if (mon__alarm_due_t(&lv->hb, now, p->reemit_s))
			hb_emit(set, now);
		return;
	}
	if (!p->stall.on)
		return;
	double since = lv->have_progress ? lv->last_progress_t : lv->first_t;
	double limit = p->stall.startup_s;
	if (lv->have_progress) {
		double slow = lv->gaps.ns ? p->stall.k * mon__win_max(&lv->gaps) : 0.0;
		limit = slow > p->stall.timeout_s ? slow : p->stall.timeout_s;
	}
	if (now - since > limit) {
		lv->stalled = true;
		if (mon__alarm_due_t(&lv->stall, now, p->reemit_s))
			stall_emit(set, now, since, limit);
	}
}

static bool is_progress(const mon__live *lv, const mon_sample *s)
{
	if (s->type == MON_SAMPLE_EVAL)
		return true;
	return s->type == MON_SAMPLE_STEP &&
	       (!lv->have_progress || s->step > lv->progress_step);
}

void mon__live_feed(mon_set *set, const mon_sample *s)
{
	mon__live *lv = &set->live;
	if (!isfinite(s->t))
		return;
	if (!lv->started)
		start(lv, s->t);
	lv->last_any_t = s->t;
	lv->last_any_step = s->step;
	mon__ring_push(&lv->seen, s->step, s->t);
	if (is_progress(lv, s)) {
		if (lv->have_progress && !lv->stalled && s->type == MON_SAMPLE_STEP)
			mon__win_push(&lv->gaps, s->step, s->t - lv->last_progress_t);
		lv->have_progress = true;
		lv->last_progress_t = s->t;
		if (s->type == MON_SAMPLE_STEP)
			lv->progress_step = s->step;
		lv->stalled = false;
	}
	mon__live_check(set, s->t);
}

void mon__live_restart(mon__live *lv, long from_step)
{
	lv->started = false;
	lv->have_progress = false;
	lv->stalled = false;
	lv->progress_step = from_step;
	mon__win_clear(&lv->gaps);
	mon__ring_rollback(&lv->seen, from_step);
	mon__alarm_init(&lv->stall);
	mon__alarm_init(&lv->hb);
}
