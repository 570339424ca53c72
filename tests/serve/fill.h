/*
 * fill.h - a workspace for the dashboard tests, made through the real
 * store and patcher APIs (no demo needed): a finished baseline run with a
 * loss spike and a NaN (two incidents), a candidate run, a live run, an
 * approvable proposal (a real branch in the scaffold repository, an
 * evaluation that passed under the workspace's current gates), an older
 * promoted proposal with its promotion, a rejected one, and audit rows.
 * Optionally a run "big" with N loss values.
 *
 * The workspace must exist already (`tend init`). Every function returns 0
 * or -1 after printing what failed.
 */
#ifndef SERVE_TEST_FILL_H
#define SERVE_TEST_FILL_H

#include "config.h"
#include "gate.h"
#include "patch.h"
#include "store.h"
#include "tend.h"

#include <git2.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FILL_STEPS 2000       /* of the baseline run */
#define FILL_SPIKE_STEP 700
#define FILL_NAN_STEP 1500
#define FILL_PROMO_STEP 1200  /* where the old promotion lands on baseline */

static inline int fill_fail(const char *what)
{
	fprintf(stderr, "fill: %s: %s\n", what, tend_error_last());
	return -1;
}

static inline double fill_loss(int64_t step, double scale)
{
	return scale * (4.0 * exp(-(double)step / 600.0) + 1.6) +
	       0.02 * sin((double)step * 0.37);
}

/* One step's metrics. */
static inline int fill_step(store *s, int64_t run, int64_t step, double t, double scale,
		     bool spike, bool nan)
{
	double loss = nan ? NAN : spike ? 9.5 : fill_loss(step, scale);
	double lr = 3e-4 * (step < 100 ? (double)(step + 1) / 100.0 :
		    0.5 * (1 + cos(M_PI * (double)step / (FILL_STEPS * 1.2))));
	int rc = store_metric_put(s, run, 1, step, "loss", loss, t);
	rc = rc ? rc : store_metric_put(s, run, 1, step, "lr", lr, t);
	rc = rc ? rc : store_metric_put(s, run, 1, step, "grad_norm",
					spike ? 41.0 : 0.8 + 0.1 * sin((double)step), t);
	rc = rc ? rc : store_metric_put(s, run, 1, step, "tokens_per_s",
					120000 + 3000 * sin((double)step / 50.0), t);
	rc = rc ? rc : store_metric_put(s, run, 1, step, "step_time_s", 0.45, t);
	if (!rc && step % 100 == 0)
		rc = store_metric_put(s, run, 1, step, "val_loss",
				      fill_loss(step, scale) + 0.05, t);
	for (int l = 0; !rc && l < 2 && step % 10 == 0; l++)
		for (int e = 0; !rc && e < 4; e++) {
			char name[32];
			/* expert 0 of layer 1 hogs tokens after the spike */
			double load = l == 1 && step > FILL_SPIKE_STEP
				? (e == 0 ? 0.55 : 0.15) : 0.25 + 0.02 * (e - 1.5);
			snprintf(name, sizeof name, "moe.%d.load.%d", l, e);
			rc = store_metric_put(s, run, 1, step, name, load, t);
		}
	return rc;
}

static const char fill_config[] = "run:\n  steps: 2000\n";

/* A run with steps [0, steps), one value per step every 0.5 s from t0. */
static inline int fill_run(store *s, int64_t *id, const char *name, const char *state,
		    double t0, int64_t steps, double scale, bool faults, bool ended)
{
	int n = 0, rc;
	if (store_run_create(s, id, name, fill_config, "/nonexistent") < 0 ||
	    store_run_set_started(s, *id, 4242, t0) < 0 ||
	    store_attempt_begin(s, &n, *id, "start", NULL, STORE_NONE, 4242, t0) < 0 ||
	    store_batch_begin(s) < 0)
		return fill_fail(name);
	for (int64_t i = 0; i < steps; i++)
		if ((rc = fill_step(s, *id, i, t0 + 0.5 * (double)i, scale,
				    faults && i == FILL_SPIKE_STEP,
				    faults && i == FILL_NAN_STEP)) < 0) {
			store_batch_rollback(s);
			return fill_fail(name);
		}
	if (store_batch_commit(s) < 0 || store_run_set_state(s, *id, state) < 0 ||
	    (ended && store_run_set_ended(s, *id, 0, t0 + 0.5 * (double)steps + 1) < 0) ||
	    (ended && store_attempt_end(s, *id, 1, 0, STORE_NONE,
					t0 + 0.5 * (double)steps + 1) < 0))
		return fill_fail(name);
	return 0;
}

static inline int fill_incidents(store *s, int64_t run, double t0, int64_t ids[2])
{
	int fresh = 0;
	store_incident spike = {
		.run_id = run, .kind = "spike", .severity = "critical",
		.signature = "spike:loss", .onset_step = FILL_SPIKE_STEP,
		.first_t = t0 + 0.5 * FILL_SPIKE_STEP,
		.summary = "loss jumped to 9.5 (z-score 41 over a 64-step window)",
		.evidence = "{\"metric\":\"loss\",\"value\":9.5,\"zscore\":41.2,"
			    "\"window\":64,\"mean\":2.41,\"sd\":0.17}",
	};
	store_incident nan = {
		.run_id = run, .kind = "nonfinite", .severity = "critical",
		.signature = "nonfinite:loss", .onset_step = FILL_NAN_STEP,
		.first_t = t0 + 0.5 * FILL_NAN_STEP,
		.summary = "loss is NaN", .evidence = "{\"metric\":\"loss\",\"value\":null}",
	};
	if (store_incident_upsert(s, &ids[0], &fresh, &spike) < 0 ||
	    store_incident_upsert(s, &ids[1], &fresh, &nan) < 0)
		return fill_fail("incidents");
	return 0;
}

/* A diff against the scaffold's main: edits the first line of
 * scaffold.lua and adds one. */
static inline char *fill_diff(patch_repo *repo)
{
	char *text = NULL, *out = NULL;
	if (patch_read_blob(&text, NULL, repo, "main", "scaffold.lua") < 0)
		return NULL;
	size_t l1 = strcspn(text, "\n");
	size_t cap = 2 * l1 + 512;
	if ((out = malloc(cap)))
		snprintf(out, cap,
			 "diff --git a/scaffold.lua b/scaffold.lua\n"
			 "--- a/scaffold.lua\n+++ b/scaffold.lua\n"
			 "@@ -1 +1,2 @@\n-%.*s\n+%.*s (tuned)\n"
			 "+-- halve the peak learning rate after the spike at step 700\n",
			 (int)l1, text, (int)l1, text);
	free(text);
	return out;
}

static const char fill_figures_fmt[] =
	"{\"from_step\":600,\"checkpoint\":\"checkpoints/step600.bin\","
	"\"baseline\":{\"val_loss\":2.31,\"loss_tail\":2.28,\"tokens_per_s\":120500,"
	"\"wall_s\":410,\"steps\":400,\"steps_wanted\":400,\"incidents\":1,"
	"\"timed_out\":false,\"crashed\":false},"
	"\"candidate\":{\"val_loss\":2.22,\"loss_tail\":2.19,\"tokens_per_s\":119800,"
	"\"wall_s\":405,\"steps\":400,\"steps_wanted\":400,\"incidents\":0,"
	"\"timed_out\":false,\"crashed\":false},\"noise\":[],\"noise_sd\":0.01,"
	"\"verdict\":{\"pass\":true,\"reason\":\"every gate passed\",\"rows\":["
	"{\"name\":\"no_incident\",\"baseline\":\"1\",\"candidate\":\"0\",\"bound\":\"0\",\"pass\":true},"
	"{\"name\":\"val_loss\",\"baseline\":\"2.31\",\"candidate\":\"2.22\","
	"\"bound\":\"<= 2.3331 (+1%%)\",\"pass\":true},"
	"{\"name\":\"throughput\",\"baseline\":\"120500\",\"candidate\":\"119800\","
	"\"bound\":\">= 0.95x\",\"pass\":true}]}}";

/* The approvable proposal: a real branch and a passed evaluation. */
static inline int fill_proposal(store *s, const char *ws, int64_t incident, int64_t base,
			 int64_t cand, int64_t *out_id)
{
	char path[4096], gates[65], figures[2048], commit[GIT_OID_HEXSZ + 1];
	patch_repo *repo = NULL;
	cfg *c = NULL;
	git_oid oid;
	int64_t ev = 0;
	char *diff = NULL;
	int rc = -1;
	snprintf(path, sizeof path, "%s/scaffold", ws);
	if (patch_repo_open(&repo, path) < 0 || !(diff = fill_diff(repo))) {
		fill_fail("scaffold repository");
		goto done;
	}
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if (cfg_load(&c, path) < 0 || gate_rules_hash(c, gates) < 0) {
		fill_fail("gates hash");
		goto done;
	}
	store_proposal p = {
		.incident_id = incident, .proposer = "model", .model = "fixture-model",
		.state = "awaiting_approval", .confidence = 0.8, .diff = diff,
		.diagnosis = "the learning rate is too high for this batch size: "
			     "the loss spikes when the warmup ends",
		.rationale = "halving the peak learning rate keeps the update size "
			     "under the curvature limit seen at step 700",
		.expected_effect = "no spike; validation loss within 1% of baseline",
	};
	patch_trailer tr[] = {{"Proposal", "fixture"}};
	if (store_proposal_insert(s, out_id, &p) < 0 ||
	    patch_apply_to_branch(&oid, repo, "main", diff, strlen(diff),
				  "proposals/fixture-1", "lr cut after spike", tr, 1) < 0) {
		fill_fail("proposal");
		goto done;
	}
	git_oid_tostr(commit, sizeof commit, &oid);
	snprintf(figures, sizeof figures, fill_figures_fmt);
	store_evaluation e = {.proposal_id = *out_id, .stage = "short", .state = "running",
			      .started_t = 0};
	if (store_proposal_set_branch(s, *out_id, "proposals/fixture-1", commit) < 0 ||
	    store_evaluation_insert(s, &ev, &e) < 0 ||
	    store_evaluation_set_runs(s, ev, base, cand) < 0 ||
	    store_evaluation_finish(s, ev, "done", "pass", "every gate passed", figures,
				    gates, 0) < 0) {
		fill_fail("evaluation");
		goto done;
	}
	rc = 0;
done:
	free(diff);
	cfg_free(c);
	patch_repo_free(repo);
	return rc;
}

/* An older proposal, already promoted during the baseline run, and a
 * rejected one. */
static inline int fill_history(store *s, int64_t incident, double t0)
{
	int64_t id = 0, rej = 0, promo = 0;
	store_proposal p = {
		.incident_id = 0, .proposer = "human", .state = "promoted",
		.confidence = STORE_NONE, .diagnosis = "raise the eval frequency",
		.diff = "--- a/policies.lua\n+++ b/policies.lua\n@@ -1 +1 @@\n-a\n+b\n",
	};
	store_proposal r = {
		.incident_id = incident, .proposer = "rule", .state = "rejected",
		.confidence = 0.3, .diagnosis = "skip the bad batch",
		.diff = "--- a/policies.lua\n+++ b/policies.lua\n@@ -1 +1 @@\n-x\n+y\n",
	};
	store_promotion m = {.commit = "1111111111111111111111111111111111111111",
			     .merged_commit = "2222222222222222222222222222222222222222",
			     .approved_by = "alice", .t = t0 + 0.5 * FILL_PROMO_STEP};
	if (store_proposal_insert(s, &id, &p) < 0 ||
	    store_proposal_insert(s, &rej, &r) < 0 ||
	    store_proposal_set_state(s, rej, "rejected", "duplicates an earlier fix") < 0)
		return fill_fail("history");
	m.proposal_id = id;
	if (store_promotion_insert(s, &promo, &m) < 0 ||
	    store_audit_append(s, "tend", "incident_opened", "1",
			       "{\"kind\":\"spike\",\"run\":\"baseline\"}", NULL) < 0 ||
	    store_audit_append(s, "alice", "promote", m.merged_commit,
			       "{\"proposal\":\"1\"}", NULL) < 0 ||
	    store_audit_append(s, "alice", "proposal_rejected", "2",
			       "{\"reason\":\"duplicates an earlier fix\"}", NULL) < 0)
		return fill_fail("history");
	return 0;
}

/* A run of n loss values (one metric), for timing the downsampler. */
static inline int fill_big(store *s, int64_t n, double t0)
{
	int64_t id = 0;
	int k = 0;
	if (store_run_create(s, &id, "big", fill_config, "/nonexistent") < 0 ||
	    store_run_set_started(s, id, 4242, t0) < 0 ||
	    store_attempt_begin(s, &k, id, "start", NULL, STORE_NONE, 4242, t0) < 0 ||
	    store_batch_begin(s) < 0)
		return fill_fail("big");
	for (int64_t i = 0; i < n; i++)
		if (store_metric_put(s, id, 1, i, "loss", fill_loss(i / 500, 1.0) +
				     (i % 100003 == 0 ? 5.0 : 0.0), t0 + 0.01 * (double)i) < 0) {
			store_batch_rollback(s);
			return fill_fail("big");
		}
	if (store_batch_commit(s) < 0 || store_run_set_state(s, id, "stopped") < 0 ||
	    store_run_set_ended(s, id, 0, t0 + 0.01 * (double)n) < 0)
		return fill_fail("big");
	return 0;
}

/* Appends steps [from, from + n) to the run "live", as a trainer would. */
static inline int fill_live_more(const char *ws, int64_t from, int64_t n)
{
	char db[4096];
	store *s = NULL;
	store_run *r = NULL;
	int rc = -1;
	snprintf(db, sizeof db, "%s/tend.db", ws);
	if (store_open(&s, db, 0) < 0 || store_run_get_by_name(s, &r, "live") < 0 ||
	    store_batch_begin(s) < 0) {
		fill_fail("live");
		goto done;
	}
	for (int64_t i = from; i < from + n; i++)
		if (fill_step(s, r->id, i, (double)time(NULL), 1.0, false, false) < 0) {
			fill_fail("live");
			store_batch_rollback(s);
			goto done;
		}
	rc = store_batch_commit(s) < 0 ? fill_fail("live") : 0;
done:
	store_run_free(r);
	store_close(s);
	return rc;
}

/* Fills the workspace ws; big > 0 adds the run "big". The proposals are
 * 1 (promoted), 2 (rejected) and 3 (approvable). */
static inline int fill_workspace(const char *ws, int64_t big)
{
	char db[4096];
	store *s = NULL;
	int64_t base = 0, cand = 0, live = 0, inc[2] = {0, 0}, prop = 0;
	double now = (double)time(NULL), t0 = now - 4000;
	int rc = -1;
	snprintf(db, sizeof db, "%s/tend.db", ws);
	if (store_open(&s, db, 0) < 0)
		return fill_fail(db);
	if (fill_run(s, &base, "baseline", "finished", t0, FILL_STEPS, 1.0, true, true) < 0 ||
	    fill_incidents(s, base, t0, inc) < 0 ||
	    store_incident_resolve(s, inc[0], t0 + 400, "restarted from step 600 "
				   "with the learning rate cut") < 0 ||
	    fill_run(s, &cand, "candidate", "finished", t0 + 1100, 1000, 0.97, false, true) < 0 ||
	    fill_run(s, &live, "live", "running", now - 60, 100, 1.0, false, false) < 0 ||
	    fill_history(s, inc[0], t0) < 0 ||
	    fill_proposal(s, ws, inc[0], base, cand, &prop) < 0 ||
	    (big > 0 && fill_big(s, big, t0) < 0))
		goto done;
	rc = 0;
done:
	store_close(s);
	return rc;
}

#endif
