/*
 * gate.c - judging a candidate against its baseline, one row per gate, so
 * that a reviewer sees every figure and bound, not only the verdict.
 */
#include "gate.h"
#include "sha256.h"
#include "tend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static gate_row *row(gate_verdict *v, const char *name)
{
	gate_row *r = &v->rows[v->n < GATE_MAX_ROWS ? v->n++ : GATE_MAX_ROWS - 1];
	memset(r, 0, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", name);
	return r;
}

static void fmt(char *buf, size_t cap, double x)
{
	if (isnan(x))
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, "%.4g", x);
}

static void fail(gate_verdict *v, gate_row *r, const char *why)
{
	r->pass = false;
	v->pass = false;
	size_t n = strlen(v->reason);
	snprintf(v->reason + n, sizeof v->reason - n, "%s%s", n ? "; " : "", why);
}

static void gate_completed(gate_verdict *v, const gate_figures *b, const gate_figures *c)
{
	gate_row *r = row(v, "completed");
	snprintf(r->baseline, sizeof r->baseline, "%ld/%ld", b->steps, b->steps_wanted);
	snprintf(r->candidate, sizeof r->candidate, "%ld/%ld%s", c->steps, c->steps_wanted,
		 c->timed_out ? " (timeout)" : c->crashed ? " (crashed)" : "");
	snprintf(r->bound, sizeof r->bound, "all steps, no timeout, no crash");
	r->pass = true;
	if (c->timed_out)
		fail(v, r, "candidate timed out");
	else if (c->crashed || c->steps < c->steps_wanted)
		fail(v, r, "candidate did not complete its steps");
	else if (b->timed_out || b->crashed || b->steps < b->steps_wanted)
		fail(v, r, "baseline did not complete: no comparison");
}

static void gate_incidents(gate_verdict *v, const cfg_gates *g, const gate_figures *b,
			   const gate_figures *c)
{
	if (!g->require_no_incident)
		return;
	gate_row *r = row(v, "no_incident");
	snprintf(r->baseline, sizeof r->baseline, "%d", b->incidents);
	snprintf(r->candidate, sizeof r->candidate, "%d", c->incidents);
	snprintf(r->bound, sizeof r->bound, "0 warning or critical incidents");
	r->pass = true;
	if (c->incidents > 0)
		fail(v, r, "candidate raised incidents");
}

static void gate_val_loss(gate_verdict *v, const cfg_gates *g, const gate_figures *b,
			  const gate_figures *c, double noise_sd)
{
	gate_row *r = row(v, "val_loss");
	fmt(r->baseline, sizeof r->baseline, b->val_loss);
	fmt(r->candidate, sizeof r->candidate, c->val_loss);
	r->pass = true;
	if (!isfinite(c->val_loss)) {
		snprintf(r->bound, sizeof r->bound, "finite");
		fail(v, r, "candidate validation loss missing or not finite");
		return;
	}
	if (!isfinite(b->val_loss)) { /* the baseline broke where the candidate did not */
		snprintf(r->bound, sizeof r->bound, "finite (the baseline's is not)");
		return;
	}
	if (g->require_improvement) {
		double delta = fmax(g->min_delta, 2 * noise_sd);
		double limit = b->val_loss - delta;
		snprintf(r->bound, sizeof r->bound, "<= %.4g (better by max(min_delta %.3g, 2 x noise %.3g))",
			 limit, g->min_delta, noise_sd);
		if (!(c->val_loss <= limit))
			fail(v, r, "no improvement above the noise floor");
		return;
	}
	double limit = b->val_loss * (1 + g->val_loss_tolerance);
	snprintf(r->bound, sizeof r->bound, "<= %.4g (baseline x (1 + %.3g))", limit,
		 g->val_loss_tolerance);
	if (!(c->val_loss <= limit))
		fail(v, r, "validation loss worse than the baseline allows");
}

static void gate_throughput(gate_verdict *v, const cfg_gates *g, const gate_figures *b,
			    const gate_figures *c)
{
	gate_row *r = row(v, "throughput");
	fmt(r->baseline, sizeof r->baseline, b->tokens_per_s);
	fmt(r->candidate, sizeof r->candidate, c->tokens_per_s);
	double limit = b->tokens_per_s * g->throughput_ratio;
	snprintf(r->bound, sizeof r->bound, ">= %.4g (baseline x %.3g)", limit, g->throughput_ratio);
	r->pass = true;
	if (!(c->tokens_per_s >= limit))
		fail(v, r, "throughput below the bound");
}

static void gate_wall(gate_verdict *v, const cfg_gates *g, const gate_figures *c)
{
	gate_row *r = row(v, "wall_time");
	snprintf(r->baseline, sizeof r->baseline, "-");
	fmt(r->candidate, sizeof r->candidate, c->wall_s);
	snprintf(r->bound, sizeof r->bound, "<= %.0f s", g->max_wall_s);
	r->pass = true;
	if (!(c->wall_s <= g->max_wall_s))
		fail(v, r, "over the wall-clock budget");
}

void gate_judge(gate_verdict *out, const cfg_gates *g, const gate_figures *base,
		const gate_figures *cand, double noise_sd)
{
	memset(out, 0, sizeof *out);
	out->pass = true;
	gate_completed(out, base, cand);
	gate_incidents(out, g, base, cand);
	gate_val_loss(out, g, base, cand, noise_sd);
	gate_throughput(out, g, base, cand);
	gate_wall(out, g, cand);
	if (out->pass)
		snprintf(out->reason, sizeof out->reason, "every gate passed");
}

void gate_judge_replay(gate_verdict *out, const gate_replay *r)
{
	memset(out, 0, sizeof *out);
	out->pass = true;
	gate_row *f = row(out, "real_found");
	snprintf(f->baseline, sizeof f->baseline, "%d/%d", r->found_base, r->real);
	snprintf(f->candidate, sizeof f->candidate, "%d/%d", r->found_cand, r->real);
	snprintf(f->bound, sizeof f->bound, "every incident labelled real, in %d runs", r->runs);
	f->pass = true;
	if (r->found_cand < r->real)
		fail(out, f, "the candidate's monitors miss an incident labelled real");
	gate_row *p = row(out, "false_pos");
	snprintf(p->baseline, sizeof p->baseline, "%d", r->fp_base);
	snprintf(p->candidate, sizeof p->candidate, "%d", r->fp_cand);
	snprintf(p->bound, sizeof p->bound, "<= %d on %d clean runs", r->fp_base, r->clean_runs);
	p->pass = true;
	if (r->fp_cand > r->fp_base)
		fail(out, p, "more false positives on clean runs");
	if (out->pass)
		snprintf(out->reason, sizeof out->reason, "every gate passed");
}

int gate_rules_hash(const cfg *c, char out[65])
{
	char h[3][65], all[3 * 65];
	int rc;
	if ((rc = cfg_section_hash(c, "gates", h[0])) < 0 ||
	    (rc = cfg_section_hash(c, "evaluation", h[1])) < 0 ||
	    (rc = cfg_section_hash(c, "proposer.allowed_paths", h[2])) < 0)
		return rc;
	snprintf(all, sizeof all, "%s%s%s", h[0], h[1], h[2]);
	sha256_hex(all, strlen(all), out);
	return 0;
}

int gate_verdict_json(const gate_verdict *v, jbuf *b)
{
	jbuf_obj_open(b);
	jbuf_key(b, "pass");
	jbuf_bool(b, v->pass);
	jbuf_key(b, "reason");
	jbuf_str(b, v->reason);
	jbuf_key(b, "rows");
	jbuf_arr_open(b);
	for (int i = 0; i < v->n; i++) {
		const gate_row *r = &v->rows[i];
		jbuf_obj_open(b);
		jbuf_key(b, "name");
		jbuf_str(b, r->name);
		jbuf_key(b, "baseline");
		jbuf_str(b, r->baseline);
		jbuf_key(b, "candidate");
		jbuf_str(b, r->candidate);
		jbuf_key(b, "bound");
		jbuf_str(b, r->bound);
		jbuf_key(b, "pass");
		jbuf_bool(b, r->pass);
		jbuf_obj_close(b);
	}
	jbuf_arr_close(b);
	return jbuf_obj_close(b);
}

/* Strict JSON has no NaN: a figure that is not finite is null. */
static void num(jbuf *b, const char *key, double x)
{
	jbuf_key(b, key);
	if (isfinite(x))
		jbuf_num(b, x);
	else
		jbuf_null(b);
}

int gate_figures_json(const gate_figures *f, jbuf *b)
{
	jbuf_obj_open(b);
	num(b, "val_loss", f->val_loss);
	num(b, "loss_tail", f->loss_tail);
	num(b, "tokens_per_s", f->tokens_per_s);
	num(b, "wall_s", f->wall_s);
	jbuf_key(b, "steps");
	jbuf_int(b, f->steps);
	jbuf_key(b, "steps_wanted");
	jbuf_int(b, f->steps_wanted);
	jbuf_key(b, "incidents");
	jbuf_int(b, f->incidents);
	jbuf_key(b, "timed_out");
	jbuf_bool(b, f->timed_out);
	jbuf_key(b, "crashed");
	jbuf_bool(b, f->crashed);
	return jbuf_obj_close(b);
}
