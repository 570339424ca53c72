/*
 * mon_set.c - the detector set: default parameters and their validation,
 * the dispatch of each sample to every builtin detector, restarts, kind
 * names, and the helpers that build and emit incidents.
 */
#include "mon_int.h"
#include "tend.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[MON_KIND_COUNT] = {
	"nonfinite", "loss_spike", "grad_spike", "divergence", "plateau",
	"stall", "heartbeat", "throughput", "moe_imbalance", "moe_dead_expert",
	"moe_entropy_collapse", "moe_dropped", "user", "crash_oom", "crash_cuda",
	"crash_nccl", "crash_python", "crash_segfault", "crash_killed",
	"crash_other",
};

const char *mon_kind_name(mon_kind kind)
{
	if ((int)kind < 0 || kind >= MON_KIND_COUNT)
		return "unknown";
	return kind_names[kind];
}

int mon_kind_from_name(const char *name)
{
	for (int k = 0; name && k < MON_KIND_COUNT; k++)
		if (strcmp(kind_names[k], name) == 0)
			return k;
	return tend_error_set(TEND_ENOTFOUND, "monitors: no incident kind \"%s\"",
			      name ? name : "(null)");
}

const char *mon_severity_name(mon_severity sev)
{
	static const char *const names[] = {"info", "warning", "critical"};
	if ((int)sev < 0 || sev > MON_CRITICAL)
		return "unknown";
	return names[sev];
}

void mon_sample_init(mon_sample *s, mon_sample_type type, long step, double t)
{
	memset(s, 0, sizeof *s);
	s->type = type;
	s->step = step;
	s->t = t;
	s->loss = s->grad_norm = s->lr = NAN;
	s->tokens_per_s = s->step_time_s = s->val_loss = NAN;
}

/* ---- parameters -------------------------------------------------------- */

static void spike_default(mon_spike_params *sp, int patience)
{
	sp->on = true;
	sp->window = 128;      /* the 6-sigma-over-128-steps rule */
	sp->warmup = 50;
	sp->threshold = 6.0;
	sp->patience = patience;
	sp->min_scale_rel = 1e-3;
}

void mon_params_default(mon_params *p)
{
	memset(p, 0, sizeof *p);
	p->reemit_steps = 100;
	p->reemit_s = 300.0;
	p->history = 1024;
	p->nonfinite = true;
	spike_default(&p->loss_spike, 3);
	spike_default(&p->grad_spike, 2);
	p->divergence.on = true;
	p->divergence.window = 200;
	p->divergence.min_rise = 0.10;
	p->divergence.patience = 20;
	p->plateau.on = true;
	p->plateau.steps = 1000;
	p->plateau.min_improvement = 0.01;
	p->stall.on = true;
	p->stall.timeout_s = 300.0;
	p->stall.k = 10.0;
	p->stall.recent = 50;
	p->stall.startup_s = 1800.0;
	p->heartbeat.on = true;
	p->heartbeat.timeout_s = 300.0;
	p->throughput.on = true;
	p->throughput.window = 50;
	p->throughput.warmup = 20;
	p->throughput.drop_ratio = 0.5;
	p->throughput.patience = 5;
	p->moe.on = true;
	p->moe.max_over_mean = 3.0;
	p->moe.entropy_ratio = 0.5;
	p->moe.dead_share = 0.1;
	p->moe.dead_patience = 100;
	p->moe.dropped_max = 0.1;
	p->moe.patience = 10;
}

#define WMAX 65536

/* Each check names the field and the accepted range; NaN fails them all. */
#define NEED(cond, field, range, val) do { \
	if (!(cond)) \
		return tend_error_set(TEND_EINVAL, \
			"monitors: %s must be %s, got %g", field, range, (double)(val)); \
	} while (0)

static int spike_check(const mon_spike_params *sp, const char *name)
{
	char f[48];
	snprintf(f, sizeof f, "%s.window", name);
	NEED(sp->window >= 3 && sp->window <= WMAX, f, "in 3..65536", sp->window);
	snprintf(f, sizeof f, "%s.warmup", name);
	NEED(sp->warmup >= 3 && sp->warmup <= sp->window, f, "in 3..window", sp->warmup);
	snprintf(f, sizeof f, "%s.threshold", name);
	NEED(sp->threshold > 0 && isfinite(sp->threshold), f, "> 0", sp->threshold);
	snprintf(f, sizeof f, "%s.patience", name);
	NEED(sp->patience >= 1, f, ">= 1", sp->patience);
	snprintf(f, sizeof f, "%s.min_scale_rel", name);
	NEED(sp->min_scale_rel >= 0 && isfinite(sp->min_scale_rel), f, ">= 0",
	     sp->min_scale_rel);
	return 0;
}

static int trend_live_check(const mon_params *p)
{
	NEED(p->divergence.window >= 1 && p->divergence.window <= WMAX,
	     "divergence.window", "in 1..65536", p->divergence.window);
	NEED(p->divergence.min_rise > 0 && isfinite(p->divergence.min_rise),
	     "divergence.min_rise", "> 0", p->divergence.min_rise);
	NEED(p->divergence.patience >= 1, "divergence.patience", ">= 1",
	     p->divergence.patience);
	NEED(p->plateau.steps >= 1, "plateau.steps", ">= 1", (double)p->plateau.steps);
	NEED(p->plateau.min_improvement >= 0 && p->plateau.min_improvement < 1,
	     "plateau.min_improvement", "in [0, 1)", p->plateau.min_improvement);
	NEED(p->stall.timeout_s > 0 && isfinite(p->stall.timeout_s), "stall.timeout_s",
	     "> 0", p->stall.timeout_s);
	NEED(p->stall.k >= 0 && isfinite(p->stall.k), "stall.k", ">= 0", p->stall.k);
	NEED(p->stall.recent >= 1 && p->stall.recent <= WMAX, "stall.recent",
	     "in 1..65536", p->stall.recent);
	NEED(p->stall.startup_s > 0 && isfinite(p->stall.startup_s), "stall.startup_s",
	     "> 0", p->stall.startup_s);
	NEED(p->heartbeat.timeout_s > 0 && isfinite(p->heartbeat.timeout_s),
	     "heartbeat.timeout_s", "> 0", p->heartbeat.timeout_s);
	return 0;
}

static int tput_moe_check(const mon_params *p)
{
	NEED(p->throughput.window >= 1 && p->throughput.window <= WMAX,
	     "throughput.window", "in 1..65536", p->throughput.window);
	NEED(p->throughput.warmup >= 1 && p->throughput.warmup <= p->throughput.window,
	     "throughput.warmup", "in 1..window", p->throughput.warmup);
	NEED(p->throughput.drop_ratio > 0 && p->throughput.drop_ratio < 1,
	     "throughput.drop_ratio", "in (0, 1)", p->throughput.drop_ratio);
	NEED(p->throughput.patience >= 1, "throughput.patience", ">= 1",
	     p->throughput.patience);
	NEED(p->moe.max_over_mean > 1 && isfinite(p->moe.max_over_mean),
	     "moe.max_over_mean", "> 1", p->moe.max_over_mean);
	NEED(p->moe.entropy_ratio > 0 && p->moe.entropy_ratio < 1,
	     "moe.entropy_ratio", "in (0, 1)", p->moe.entropy_ratio);
	NEED(p->moe.dead_share >= 0 && p->moe.dead_share < 1, "moe.dead_share",
	     "in [0, 1)", p->moe.dead_share);
	NEED(p->moe.dead_patience >= 1, "moe.dead_patience", ">= 1",
	     p->moe.dead_patience);
	NEED(p->moe.dropped_max >= 0 && p->moe.dropped_max <= 1, "moe.dropped_max",
	     "in [0, 1]", p->moe.dropped_max);
	NEED(p->moe.patience >= 1, "moe.patience", ">= 1", p->moe.patience);
	return 0;
}

static int params_check(const mon_params *p)
{
	NEED(p->reemit_steps >= 1, "reemit_steps", ">= 1", (double)p->reemit_steps);
	NEED(p->reemit_s > 0 && isfinite(p->reemit_s), "reemit_s", "> 0", p->reemit_s);
	NEED(p->history >= 0 && p->history <= 1 << 20, "history", "in 0..1048576",
	     p->history);
	int rc = spike_check(&p->loss_spike, "loss_spike");
	if (rc == 0)
		rc = spike_check(&p->grad_spike, "grad_spike");
	if (rc == 0)
		rc = trend_live_check(p);
	if (rc == 0)
		rc = tput_moe_check(p);
	return rc;
}

/* ---- the set ----------------------------------------------------------- */

int mon_set_new(mon_set **out, const mon_params *p)
{
	mon_set *set = NULL;
	int rc;
	*out = NULL;
	set = calloc(1, sizeof *set);
	if (!set)
		return tend_error_set(TEND_ENOMEM, "monitors: out of memory");
	if (p)
		set->p = *p;
	else
		mon_params_default(&set->p);
	if ((rc = params_check(&set->p)) < 0)
		goto done;
	mon__nonfinite_init(&set->nf);
	if ((rc = mon__spike_init(&set->loss, &set->p.loss_spike, MON_LOSS_SPIKE,
				  "loss", set->p.history)) < 0 ||
	    (rc = mon__spike_init(&set->grad, &set->p.grad_spike, MON_GRAD_SPIKE,
				  "grad_norm", set->p.history)) < 0 ||
	    (rc = mon__trend_init(&set->trend, &set->p)) < 0 ||
	    (rc = mon__tput_init(&set->tput, &set->p)) < 0 ||
	    (rc = mon__live_init(&set->live, &set->p)) < 0)
		goto done;
	*out = set;
	set = NULL;
done:
	mon_set_free(set);
	return rc;
}

void mon_set_free(mon_set *set)
{
	if (!set)
		return;
	mon__spike_free(&set->loss);
	mon__spike_free(&set->grad);
	mon__trend_free(&set->trend);
	mon__tput_free(&set->tput);
	mon__live_free(&set->live);
	mon__moe_free(&set->moe);
	free(set);
}

static int sample_check(const mon_sample *s)
{
	if (!s)
		return tend_error_set(TEND_EINVAL, "monitors: no sample");
	if (s->type < MON_SAMPLE_STEP || s->type > MON_SAMPLE_HEARTBEAT)
		return tend_error_set(TEND_EINVAL, "monitors: sample type %d unknown",
				      (int)s->type);
	if (s->n_moe < 0 || s->n_moe > MON_MOE_MAX_LAYERS || (s->n_moe && !s->moe))
		return tend_error_set(TEND_EINVAL,
			"monitors: step %ld: %d MoE layers (at most %d, with an array)",
			s->step, s->n_moe, MON_MOE_MAX_LAYERS);
	for (int i = 0; i < s->n_moe; i++) {
		int e = s->moe[i].n_experts;
		if (e < 0 || e > MON_MOE_MAX_EXPERTS)
			return tend_error_set(TEND_EINVAL,
				"monitors: step %ld: MoE layer %d has %d experts (at most %d)",
				s->step, s->moe[i].layer, e, MON_MOE_MAX_EXPERTS);
	}
	return 0;
}

static void begin(mon_set *set, mon_emit_fn emit, void *ud)
{
	set->emit = emit;
	set->ud = ud;
	set->emit_rc = 0;
}

static void feed_step(mon_set *set, const mon_sample *s)
{
	const mon_params *p = &set->p;
	if (isfinite(s->loss)) {
		if (p->loss_spike.on)
			mon__spike_feed(set, &set->loss, s->step, s->loss);
		if (p->divergence.on || p->plateau.on)
			mon__trend_feed(set, s->step, s->loss);
	}
	if (isfinite(s->grad_norm) && p->grad_spike.on)
		mon__spike_feed(set, &set->grad, s->step, s->grad_norm);
	if (isfinite(s->tokens_per_s) && s->tokens_per_s >= 0 && p->throughput.on)
		mon__tput_feed(set, s->step, s->tokens_per_s);
}

int mon_feed(mon_set *set, const mon_sample *s, mon_emit_fn emit, void *ud)
{
	int rc = sample_check(s);
	if (rc < 0)
		return rc;
	begin(set, emit, ud);
	if (s->type == MON_SAMPLE_STEP) {
		if (set->have_step && s->step < set->last_step)
			mon_reset_after_restart(set, s->step - 1);
		set->have_step = true;
		set->last_step = s->step;
	}
	if (set->p.nonfinite)
		mon__nonfinite_feed(set, s);
	if (s->type == MON_SAMPLE_STEP) {
		feed_step(set, s);
		if (s->n_moe > 0 && set->p.moe.on && (rc = mon__moe_feed(set, s)) < 0)
			return rc;
	}
	if (set->p.stall.on || set->p.heartbeat.on)
		mon__live_feed(set, s);
	return set->emit_rc;
}

int mon_tick(mon_set *set, double now, mon_emit_fn emit, void *ud)
{
	begin(set, emit, ud);
	if (isfinite(now) && (set->p.stall.on || set->p.heartbeat.on))
		mon__live_check(set, now);
	return set->emit_rc;
}

void mon_reset_after_restart(mon_set *set, long from_step)
{
	mon__nonfinite_restart(&set->nf, from_step);
	mon__spike_restart(&set->loss, from_step);
	mon__spike_restart(&set->grad, from_step);
	mon__trend_restart(&set->trend, from_step);
	mon__tput_restart(&set->tput, &set->p, from_step);
	mon__live_restart(&set->live, from_step);
	mon__moe_restart(&set->moe, from_step);
	set->last_step = from_step;
}

/* ---- incidents --------------------------------------------------------- */

void mon__incident_init(mon_incident *inc, mon_kind kind, mon_severity sev,
			long onset, long last)
{
	inc->kind = kind;
	inc->severity = sev;
	inc->onset_step = onset;
	inc->last_step = last;
	inc->value = inc->baseline = inc->threshold = NAN;
	snprintf(inc->signature, sizeof inc->signature, "%s", mon_kind_name(kind));
	inc->summary[0] = '\0';
	inc->n_evidence = 0;
}

void mon__sig(mon_incident *inc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(inc->signature, sizeof inc->signature, fmt, ap);
	va_end(ap);
}

void mon__summary(mon_incident *inc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(inc->summary, sizeof inc->summary, fmt, ap);
	va_end(ap);
}

void mon__emit(mon_set *set, const mon_incident *inc)
{
	if (!set->emit)
		return;
	int rc = set->emit(inc, set->ud);
	if (rc < 0 && set->emit_rc == 0)
		set->emit_rc = rc;
}

/* ---- evidence as JSON -------------------------------------------------- */

typedef struct jbuf {
	char *buf;
	size_t cap, len;
	bool over;
} jbuf;

static void jput(jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(jbuf *j, const char *fmt, ...)
{
	if (j->over)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= j->cap - j->len)
		j->over = true;
	else
		j->len += (size_t)n;
}

static void jnum(jbuf *j, double v)
{
	if (isnan(v))
		jput(j, "null");
	else if (isinf(v))
		jput(j, v > 0 ? "\"inf\"" : "\"-inf\"");
	else
		jput(j, "%.9g", v);
}

int mon_incident_evidence_json(char *buf, size_t cap, const mon_incident *inc)
{
	jbuf j = {buf, cap, 0, cap == 0};
	const char *keys[] = {"{\"value\":", ",\"baseline\":", ",\"threshold\":"};
	double vals[] = {inc->value, inc->baseline, inc->threshold};
	for (int k = 0; k < 3; k++) {
		jput(&j, "%s", keys[k]);
		jnum(&j, vals[k]);
	}
	jput(&j, ",\"steps\":[");
	for (int i = 0; i < inc->n_evidence; i++)
		jput(&j, "%s%ld", i ? "," : "", inc->ev_step[i]);
	jput(&j, "],\"values\":[");
	for (int i = 0; i < inc->n_evidence; i++) {
		jput(&j, "%s", i ? "," : "");
		jnum(&j, inc->ev_value[i]);
	}
	jput(&j, "]}");
	if (!j.over)
		return (int)j.len;
	if (cap >= 3)
		memcpy(buf, "{}", 3);
	return tend_error_set(TEND_EINVAL, "monitors: evidence needs more than %zu bytes",
			      cap);
}
