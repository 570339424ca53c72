/*
 * mon_nonfinite.c - the non-finite detector: a NaN or infinite loss, grad
 * norm, learning rate or validation loss. Critical at the first sample,
 * because the next checkpoint written would be poisoned.
 *
 * A NaN counts only when the trainer reported the field (its MON_F_* bit);
 * otherwise NaN means "absent". An infinity always counts.
 */
#include "mon_int.h"

#include <math.h>
#include <string.h>

static const char *const nf_names[MON__NF_COUNT] = {
	"loss", "grad_norm", "lr", "val_loss",
};
static const unsigned nf_bits[MON__NF_COUNT] = {
	MON_F_LOSS, MON_F_GRAD_NORM, MON_F_LR, MON_F_VAL_LOSS,
};

void mon__nonfinite_init(mon__nonfinite *nf)
{
	memset(nf, 0, sizeof *nf);
	for (int i = 0; i < MON__NF_COUNT; i++)
		mon__alarm_init(&nf->alarm[i]);
}

/* The newest finite value in the ring before the current one, for the
 * summary: "last finite 3.02 at step 411". */
static int last_finite(const mon__ring *r, long *step, double *v)
{
	for (int i = r->n - 2; i >= 0; i--) {
		int k = (r->head + i) % MON_EVIDENCE_MAX;
		if (isfinite(r->val[k])) {
			*step = r->step[k];
			*v = r->val[k];
			return 1;
		}
	}
	return 0;
}

static void nf_emit(mon_set *set, int f, long step, double v)
{
	mon__nonfinite *nf = &set->nf;
	mon_incident inc;
	long fs;
	double fv;
	mon__incident_init(&inc, MON_NONFINITE, MON_CRITICAL, nf->alarm[f].onset, step);
	mon__sig(&inc, "nonfinite:%s", nf_names[f]);
	inc.value = v;
	if (last_finite(&nf->ring[f], &fs, &fv)) {
		inc.baseline = fv;
		mon__summary(&inc, "%s is %g at step %ld (last finite %.4g at step %ld)",
			     nf_names[f], v, step, fv, fs);
	} else {
		mon__summary(&inc, "%s is %g at step %ld (no finite value before it)",
			     nf_names[f], v, step);
	}
	mon__ring_evidence(&nf->ring[f], &inc);
	mon__emit(set, &inc);
}

void mon__nonfinite_feed(mon_set *set, const mon_sample *s)
{
	const double vals[MON__NF_COUNT] = {s->loss, s->grad_norm, s->lr, s->val_loss};
	for (int f = 0; f < MON__NF_COUNT; f++) {
		double v = vals[f];
		bool reported = (s->present & nf_bits[f]) != 0;
		if (isnan(v) && !reported)
			continue;
		mon__alarm *a = &set->nf.alarm[f];
		mon__ring_push(&set->nf.ring[f], s->step, v);
		if (isfinite(v)) {
			mon__alarm_miss(a);
			continue;
		}
		mon__alarm_hit(a, s->step);
		if (mon__alarm_due(a, s->step, 1, set->p.reemit_steps))
			nf_emit(set, f, s->step, v);
	}
}

void mon__nonfinite_restart(mon__nonfinite *nf, long from_step)
{
	for (int i = 0; i < MON__NF_COUNT; i++) {
		mon__ring_rollback(&nf->ring[i], from_step);
		mon__alarm_init(&nf->alarm[i]);
	}
}
