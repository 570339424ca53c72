/*
 * mon_moe.c - the Mixture-of-Experts router detectors, per layer:
 *   moe_imbalance:        max/mean expert load above min(bound, (1+E)/2),
 *                         the bound capped halfway between perfect balance
 *                         (1) and total collapse (E) so small E can trip it;
 *   moe_entropy_collapse: routing entropy below entropy_ratio x ln E, or
 *                         the entropy of the load below
 *                         ln k + entropy_ratio x (ln E - ln k);
 *   moe_dropped:          dropped tokens above dropped_max of those routed;
 *   moe_dead_expert:      an expert under dead_share x its fair share 1/E
 *                         for dead_patience samples.
 * With top-k routing each token goes to k distinct experts, so no expert
 * gets more than 1/k of the load: max/mean is at most E/k and the load's
 * entropy at least ln k. A collapse onto k experts reaches both limits;
 * for small E/k (4 experts, top-2: max/mean 2.0) healthy early routing
 * comes close to the max/mean limit too (docs/monitors.md), but not to
 * the entropy one, so the load's entropy, measured from ln k, is what
 * catches it within the patience. Derived figures come from the load array
 * when the trainer did not send them (the entropy then is that of the mean
 * load, which is at least the mean per-token router entropy). A dead
 * expert is not reported while its layer is imbalanced or collapsed: that
 * incident already says it.
 */
#include "mon_int.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void layer_free(mon__moe_layer *l)
{
	if (l)
		free(l->share_hist);
	free(l);
}

void mon__moe_free(mon__moe *m)
{
	for (int i = 0; i < m->n_layers; i++)
		layer_free(m->layers[i]);
	free(m->layers);
	m->layers = NULL;
	m->n_layers = 0;
}

/* (Re)builds the state of one layer for E experts. */
static int layer_reset(mon__moe_layer *l, int E)
{
	free(l->share_hist);
	memset(l, 0, sizeof *l);
	l->n_experts = E;
	mon__alarm_init(&l->imb);
	mon__alarm_init(&l->col);
	mon__alarm_init(&l->drp);
	for (int e = 0; e < MON_MOE_MAX_EXPERTS; e++)
		mon__alarm_init(&l->dead[e]);
	if (E == 0)
		return 0;
	l->share_hist = malloc((size_t)E * MON_EVIDENCE_MAX * sizeof *l->share_hist);
	if (!l->share_hist) {
		l->n_experts = -1;   /* rebuilt on the next sample */
		return tend_error_set(TEND_ENOMEM, "monitors: out of memory for MoE state");
	}
	return 0;
}

static int ensure_layers(mon__moe *m, int n)
{
	if (n <= m->n_layers)
		return 0;
	mon__moe_layer **nl = realloc(m->layers, (size_t)n * sizeof *nl);
	if (!nl)
		return tend_error_set(TEND_ENOMEM, "monitors: out of memory for MoE state");
	m->layers = nl;
	for (; m->n_layers < n; m->n_layers++) {
		nl[m->n_layers] = calloc(1, sizeof **nl);
		if (!nl[m->n_layers])
			return tend_error_set(TEND_ENOMEM, "monitors: out of memory for MoE state");
		nl[m->n_layers]->n_experts = -1;   /* built on first use */
	}
	return 0;
}

/* Figures of one layer for one step, NaN where unknown. */
typedef struct moe_fig {
	int E, k;                /* k: experts per token, 1 when not reported */
	bool have_share;
	double share[MON_MOE_MAX_EXPERTS];
	double mom, ent, drop;   /* ent: as sent, else of the load */
	double lent;             /* the entropy of the load */
} moe_fig;

static void figures(moe_fig *f, const mon_moe_layer *in)
{
	double sum = 0.0, mx = 0.0;
	f->E = in->n_experts;
	f->k = in->top_k >= 1 && in->top_k <= f->E ? in->top_k : 1;
	f->have_share = in->load != NULL && f->E > 0;
	for (int e = 0; f->have_share && e < f->E; e++) {
		double v = in->load[e];
		if (!(v >= 0) || isinf(v))
			f->have_share = false;
		sum += v;
	}
	f->have_share = f->have_share && sum > 0;
	double ent = 0.0;
	for (int e = 0; f->have_share && e < f->E; e++) {
		double s = in->load[e] / sum;
		f->share[e] = s;
		if (s > mx)
			mx = s;
		if (s > 0)
			ent -= s * log(s);
	}
	f->lent = f->have_share ? ent : NAN;
	f->mom = isfinite(in->max_over_mean) ? in->max_over_mean :
		f->have_share ? mx * f->E : NAN;
	f->ent = isfinite(in->entropy) ? in->entropy : f->lent;
	f->drop = !isfinite(in->dropped) ? NAN :
		isfinite(in->tokens) && in->tokens > 0 ? in->dropped / in->tokens :
		in->dropped;
}

/* One rule's reading of one layer at one step: what it compares, with
 * what, and the series that is its evidence. */
typedef struct moe_check {
	mon_kind kind;
	mon_severity sev;
	bool hit;
	double v, limit;
	const mon__ring *ev;
	const moe_fig *f;
	bool of_load;            /* entropy: the load's, against its floor */
} moe_check;

static void summarize(mon_incident *inc, const mon_set *set, const moe_check *c,
		      const mon__alarm *a, int layer, long step)
{
	double r = set->p.moe.entropy_ratio;
	if (c->kind == MON_MOE_IMBALANCE)
		mon__summary(inc, "layer %d: max/mean expert load %.2f at step %ld is above "
			     "%.2f for %d steps since step %ld", layer, c->v, step, c->limit,
			     a->hits, a->onset);
	else if (c->kind == MON_MOE_ENTROPY_COLLAPSE && c->of_load)
		mon__summary(inc, "layer %d: entropy of the expert load %.3g nats at step %ld "
			     "is below %.3g (ln k + %.2f x (ln E - ln k), E = %d, top-%d) for %d "
			     "steps since step %ld", layer, c->v, step, c->limit, r, c->f->E,
			     c->f->k, a->hits, a->onset);
	else if (c->kind == MON_MOE_ENTROPY_COLLAPSE)
		mon__summary(inc, "layer %d: routing entropy %.3g nats at step %ld is below "
			     "%.3g (%.2f x log E) for %d steps since step %ld", layer, c->v, step,
			     c->limit, r, a->hits, a->onset);
	else
		mon__summary(inc, "layer %d: %.1f%% of tokens dropped at step %ld (limit "
			     "%.1f%%) for %d steps since step %ld", layer, 100 * c->v, step,
			     100 * c->limit, a->hits, a->onset);
}

static void emit_layer(mon_set *set, const moe_check *c, const mon__alarm *a,
		       int layer, long step)
{
	mon_incident inc;
	mon__incident_init(&inc, c->kind, c->sev, a->onset, step);
	mon__sig(&inc, "%s:layer%d", mon_kind_name(c->kind), layer);
	inc.value = c->v;
	inc.threshold = c->limit;
	summarize(&inc, set, c, a, layer, step);
	mon__ring_evidence(c->ev, &inc);
	mon__emit(set, &inc);
}

static void emit_dead(mon_set *set, const mon__moe_layer *l, int layer, int e,
		      long step, double share)
{
	const mon__alarm *a = &l->dead[e];
	double fair = 1.0 / l->n_experts, limit = set->p.moe.dead_share * fair;
	mon_incident inc;
	mon__incident_init(&inc, MON_MOE_DEAD_EXPERT, MON_WARNING, a->onset, step);
	mon__sig(&inc, "moe_dead_expert:layer%d:expert%d", layer, e);
	inc.value = share;
	inc.baseline = fair;
	inc.threshold = limit;
	mon__summary(&inc, "layer %d expert %d got %.2f%% of tokens at step %ld (fair share "
		     "%.2f%%, dead below %.2f%%) for %d steps since step %ld", layer, e,
		     100 * share, step, 100 * fair, 100 * limit, a->hits, a->onset);
	for (int i = 0; i < l->hist_n; i++) {
		int k = (l->hist_head + i) % MON_EVIDENCE_MAX;
		inc.ev_step[i] = l->hist_step[k];
		inc.ev_value[i] = l->share_hist[(size_t)k * l->n_experts + e];
	}
	inc.n_evidence = l->hist_n;
	mon__emit(set, &inc);
}

/* Tests c on alarm a and emits through emit_layer when due. */
static void check(mon_set *set, mon__alarm *a, const moe_check *c, int layer,
		  long step)
{
	if (!c->hit) {
		mon__alarm_miss(a);
		return;
	}
	mon__alarm_hit(a, step);
	if (mon__alarm_due(a, step, set->p.moe.patience, set->p.reemit_steps))
		emit_layer(set, c, a, layer, step);
}

static void dead_experts(mon_set *set, mon__moe_layer *l, const moe_fig *f,
			 int layer, long step, bool suppress)
{
	int k = (l->hist_head + l->hist_n) % MON_EVIDENCE_MAX;
	if (l->hist_n < MON_EVIDENCE_MAX)
		l->hist_n++;
	else
		l->hist_head = (l->hist_head + 1) % MON_EVIDENCE_MAX;
	l->hist_step[k] = step;
	double limit = set->p.moe.dead_share / f->E;
	for (int e = 0; e < f->E; e++) {
		l->share_hist[(size_t)k * f->E + e] = (float)f->share[e];
		mon__alarm *a = &l->dead[e];
		if (!(f->share[e] < limit)) {
			mon__alarm_miss(a);
			continue;
		}
		mon__alarm_hit(a, step);
		if (!suppress && mon__alarm_due(a, step, set->p.moe.dead_patience,
						set->p.reemit_steps))
			emit_dead(set, l, layer, e, step, f->share[e]);
	}
}

/* The entropy rule: the figure as sent (or of the load) under ratio x
 * ln E, or the load's own entropy under the same fraction of its range
 * from ln k, the least top-k routing can reach, to ln E. When both hit,
 * the load's reading is reported for k > 1 (for k = 1 the two floors are
 * one). With k = E nothing can collapse. */
static moe_check entropy_check(const mon_params *p, const mon__moe_layer *l,
			       const moe_fig *f)
{
	double lnE = log(f->E > 1 ? f->E : 1), lnk = log(f->k);
	double floor_sent = p->moe.entropy_ratio * lnE;
	double floor_load = f->k < f->E ? lnk + p->moe.entropy_ratio * (lnE - lnk) : -INFINITY;
	moe_check c = {MON_MOE_ENTROPY_COLLAPSE, MON_CRITICAL, false, f->ent, floor_sent,
		       &l->ent, f, false};
	if (f->E >= 2 && f->lent < floor_load && (f->k > 1 || !(f->ent < floor_sent))) {
		c.v = f->lent;
		c.limit = floor_load;
		c.ev = &l->lent;
		c.of_load = true;
	}
	c.hit = f->E >= 2 && (c.of_load || f->ent < floor_sent);
	return c;
}

static void layer_feed(mon_set *set, mon__moe_layer *l, const mon_moe_layer *in,
		       long step)
{
	const mon_params *p = &set->p;
	moe_fig f;
	figures(&f, in);
	double bound = p->moe.max_over_mean, half = 0.5 * (1 + f.E);
	if (half < bound)
		bound = half;
	if (!isnan(f.mom))
		mon__ring_push(&l->mom, step, f.mom);
	if (!isnan(f.ent))
		mon__ring_push(&l->ent, step, f.ent);
	if (!isnan(f.lent))
		mon__ring_push(&l->lent, step, f.lent);
	if (!isnan(f.drop))
		mon__ring_push(&l->drop, step, f.drop);
	moe_check imb = {MON_MOE_IMBALANCE, MON_WARNING, f.E >= 2 && f.mom > bound, f.mom,
			 bound, &l->mom, &f, false};
	moe_check col = entropy_check(p, l, &f);
	moe_check drp = {MON_MOE_DROPPED, MON_WARNING, f.drop > p->moe.dropped_max, f.drop,
			 p->moe.dropped_max, &l->drop, &f, false};
	check(set, &l->imb, &imb, in->layer, step);
	check(set, &l->col, &col, in->layer, step);
	check(set, &l->drp, &drp, in->layer, step);
	if (f.have_share)
		dead_experts(set, l, &f, in->layer, step, imb.hit || col.hit);
}

int mon__moe_feed(mon_set *set, const mon_sample *s)
{
	mon__moe *m = &set->moe;
	int rc = ensure_layers(m, s->n_moe);
	if (rc < 0)
		return rc;
	for (int i = 0; i < s->n_moe; i++) {
		mon__moe_layer *l = m->layers[i];
		if (l->n_experts != s->moe[i].n_experts &&
		    (rc = layer_reset(l, s->moe[i].n_experts)) < 0)
			return rc;
		layer_feed(set, l, &s->moe[i], s->step);
	}
	return 0;
}

void mon__moe_restart(mon__moe *m, long from_step)
{
	for (int i = 0; i < m->n_layers; i++) {
		mon__moe_layer *l = m->layers[i];
		mon__ring_rollback(&l->mom, from_step);
		mon__ring_rollback(&l->ent, from_step);
		mon__ring_rollback(&l->lent, from_step);
		mon__ring_rollback(&l->drop, from_step);
		mon__alarm_init(&l->imb);
		mon__alarm_init(&l->col);
		mon__alarm_init(&l->drp);
		for (int e = 0; e < MON_MOE_MAX_EXPERTS; e++)
			mon__alarm_init(&l->dead[e]);
		while (l->hist_n > 0 &&
		       l->hist_step[(l->hist_head + l->hist_n - 1) % MON_EVIDENCE_MAX] > from_step)
			l->hist_n--;
	}
}
