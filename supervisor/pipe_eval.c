/*
 * pipe_eval.c - evaluating a branched proposal against main, judging it by
 * the gates, and promoting or rolling back through the audited path.
 */
#include "pipe_int.h"
#include "cli.h"
#include "audit.h"
#include "ckpt.h"
#include "eval.h"
#include "fsutil.h"
#include "gate.h"
#include "json.h"
#include "replay.h"
#include "sup_int.h"
#include "umon.h"
#include "tend.h"

#include <git2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct eval_plan {
	char dir[PATH_MAX];
	char ckpt[PATH_MAX];
	char data[PATH_MAX];
	char base_dir[PATH_MAX + 32], cand_dir[PATH_MAX + 32];
	long from_step;
	int64_t run_id;
} eval_plan;

/* Writes main's and the candidate's scaffold trees into the proposal's
 * evaluation folder, fresh. */
static int materialize(pipe_ws *w, const store_proposal *p, eval_plan *pl)
{
	int rc;
	snprintf(pl->dir, sizeof pl->dir, "%s/runs/proposal-%lld", w->ws, (long long)p->id);
	snprintf(pl->base_dir, sizeof pl->base_dir, "%s/scaffold-main", pl->dir);
	snprintf(pl->cand_dir, sizeof pl->cand_dir, "%s/scaffold-candidate", pl->dir);
	fsu_rm_rf(pl->base_dir);
	fsu_rm_rf(pl->cand_dir);
	if ((rc = fsu_mkdir_p(pl->dir, 0755)) < 0 ||
	    (rc = patch_materialize(w->repo, "main", pl->base_dir)) < 0)
		return rc;
	return patch_materialize(w->repo, p->branch, pl->cand_dir);
}

/* The same good checkpoint the recovery would roll back to: the newest one
 * before the incident's onset whose checksum verifies. */
static int plan(pipe_ws *w, const store_proposal *p, eval_plan *pl)
{
	store_incident *inc = NULL;
	store_run *run = NULL;
	int rc;
	long onset = LONG_MAX;
	memset(pl, 0, sizeof *pl);
	if (p->incident_id > 0 && (rc = store_incident_get(w->st, &inc, p->incident_id)) == 0) {
		onset = inc->onset_step > 0 ? (long)inc->onset_step : LONG_MAX;
		pl->run_id = inc->run_id;
		store_run_get(w->st, &run, inc->run_id);
	}
	store_incident_free(inc);
	if (run && run->workdir) {
		char cdir[PATH_MAX + 16];
		snprintf(cdir, sizeof cdir, "%s/checkpoints", run->workdir);
		if (ckpt_latest_good(cdir, onset, pl->ckpt, sizeof pl->ckpt) == 0) {
			ckpt *c = NULL;
			if (ckpt_open(&c, pl->ckpt) == 0)
				pl->from_step = ckpt_step(c);
			ckpt_free(c);
		}
		if (!strcmp(w->cfg->trainer.data, "synthetic"))
			snprintf(pl->data, sizeof pl->data, "%s/data", run->workdir);
	}
	store_run_free(run);
	if (!pl->data[0])
		snprintf(pl->data, sizeof pl->data, "%s", w->cfg->trainer.data);
	return materialize(w, p, pl);
}

static void progress(int n, const eval_arm *arms, const long *step, const double *loss,
		     long target, void *ud)
{
	static int ticks;
	pipe_ws *w = ud;
	if (!w->o->log)
		return;
	bool tty = isatty(fileno(w->o->log));
	if (!tty && ticks++ % 20) /* a log file gets a line every 10 s */
		return;
	fprintf(w->o->log, "%s[tend] evaluating to step %ld:", tty ? "\r\033[K" : "", target);
	for (int i = 0; i < n; i++)
		fprintf(w->o->log, " %s %ld (loss %.4f)%s", arms[i].name, step[i], loss[i],
			i + 1 < n ? "," : "");
	fputs(tty ? "" : "\n", w->o->log);
	fflush(w->o->log);
}

static double noise_sd(const gate_figures *f, int n)
{
	double mean = 0, ss = 0;
	int k = 0;
	for (int i = 0; i < n; i++)
		if (isfinite(f[i].val_loss)) {
			mean += f[i].val_loss;
			k++;
		}
	if (k < 2)
		return 0;
	mean /= k;
	for (int i = 0; i < n; i++)
		if (isfinite(f[i].val_loss))
			ss += (f[i].val_loss - mean) * (f[i].val_loss - mean);
	return sqrt(ss / (k - 1));
}

static char *figures_json(const gate_figures *f, int n, double sd, const gate_verdict *v,
			  const eval_plan *pl)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "from_step");
	jbuf_int(&b, pl->from_step);
	jbuf_key(&b, "checkpoint");
	jbuf_str(&b, pl->ckpt);
	jbuf_key(&b, "baseline");
	gate_figures_json(&f[0], &b);
	jbuf_key(&b, "candidate");
	gate_figures_json(&f[1], &b);
	jbuf_key(&b, "noise");
	jbuf_arr_open(&b);
	for (int i = 2; i < n; i++)
		gate_figures_json(&f[i], &b);
	jbuf_arr_close(&b);
	jbuf_key(&b, "noise_sd");
	jbuf_num(&b, sd);
	jbuf_key(&b, "verdict");
	gate_verdict_json(v, &b);
	jbuf_obj_close(&b);
	char *s = strdup(jbuf_cstr(&b, NULL));
	jbuf_free(&b);
	return s;
}

/* Records each arm as a run in the store, like any other run. */
static void record_arms(pipe_ws *w, int64_t eval_id, const eval_arm *arms, int n,
			const char *dir, int64_t *ids)
{
	for (int i = 0; i < n; i++) {
		char name[96], path[PATH_MAX + 128], wd[PATH_MAX + 96];
		snprintf(name, sizeof name, "eval-%lld-%s", (long long)eval_id, arms[i].name);
		snprintf(wd, sizeof wd, "%s/%s", dir, arms[i].name);
		snprintf(path, sizeof path, "%s/metrics.jsonl", wd);
		ids[i] = 0;
		if (store_run_create(w->st, &ids[i], name, "", wd) == 0) {
			eval_ingest(w->st, ids[i], path);
			store_run_set_state(w->st, ids[i], "finished");
		}
	}
}

static void print_table(pipe_ws *w, const gate_verdict *v)
{
	if (!w->o->log)
		return;
	if (isatty(fileno(w->o->log)))
		fprintf(w->o->log, "\r\033[K");
	pipe__say(w, "%-12s %-14s %-14s %-44s %s", "gate", "baseline", "candidate", "bound", "");
	for (int i = 0; i < v->n; i++)
		pipe__say(w, "%-12s %-14s %-14s %-44s %s", v->rows[i].name, v->rows[i].baseline,
			  v->rows[i].candidate, v->rows[i].bound, v->rows[i].pass ? "pass" : "FAIL");
}

/* Records an evaluation's verdict (store and audit) and shows its gate
 * table; takes fig. Returns 1 pass, 0 fail, or a negative code. */
static int finish(pipe_ws *w, int64_t eval_id, const gate_verdict *v, char *fig,
		  const char *gates)
{
	char ev[24];
	print_table(w, v);
	int rc = store_evaluation_finish(w->st, eval_id, "done", v->pass ? "pass" : "fail",
					 v->reason, fig ? fig : "{}", gates, 0);
	free(fig);
	snprintf(ev, sizeof ev, "evaluation:%lld", (long long)eval_id);
	audit_log(w->st, "gates", "evaluation_finished", ev, "verdict", v->pass ? "pass" : "fail",
		  "reason", v->reason, "gates_sha256", gates, (char *)NULL);
	return rc < 0 ? rc : v->pass;
}

static int judge(pipe_ws *w, const store_proposal *p, int64_t eval_id, const char *gates)
{
	eval_plan pl;
	eval_arm arms[8];
	gate_figures f[8];
	char names[8][16];
	int rc, n = 2;
	mon_params mp;
	if ((rc = plan(w, p, &pl)) < 0)
		return rc;
	arms[0] = (eval_arm){"baseline", pl.base_dir, 0};
	arms[1] = (eval_arm){"candidate", pl.cand_dir, 0};
	for (int i = 1; i < w->cfg->evaluation.noise_runs && n < 8; i++, n++) {
		snprintf(names[n], sizeof names[n], "noise-%d", i);
		arms[n] = (eval_arm){names[n], pl.base_dir, 37L * i};
	}
	sup__mon_params(&mp, w->cfg);
	/* A short run's plateau says nothing, and a grad-norm spike from a batch
	 * both arms read is not the candidate's doing when its loss stays sound:
	 * the evaluation judges the loss: its spikes, finiteness and divergence. */
	mp.plateau.on = false;
	mp.grad_spike.on = false;
	eval_spec spec = {
		.trainer_exe = NULL, .workspace = w->ws, .dir = pl.dir, .checkpoint = pl.ckpt,
		.data_dir = pl.data, .from_step = pl.from_step, .steps = w->cfg->evaluation.steps,
		.max_wall_s = w->cfg->evaluation.max_wall_s, .threads = 1, .mon = &mp,
		.progress = progress, .ud = w,
	};
	char exe[PATH_MAX];
	if ((rc = cli_trainer_exe(exe, sizeof exe)) < 0)
		return rc;
	spec.trainer_exe = exe;
	pipe__say(w, "proposal %lld: A/B from step %ld (%s), %ld steps, %d arms", (long long)p->id,
		  pl.from_step, pl.ckpt[0] ? pl.ckpt : "no checkpoint: from scratch",
		  spec.steps, n);
	if ((rc = eval_run(f, &spec, arms, n)) < 0)
		return rc;
	int64_t ids[8];
	record_arms(w, eval_id, arms, n, pl.dir, ids);
	store_evaluation_set_runs(w->st, eval_id, ids[0], ids[1]);
	gate_verdict v;
	gate_figures base[8]; /* the baseline and its repeats, not the candidate */
	base[0] = f[0];
	for (int i = 2; i < n; i++)
		base[i - 1] = f[i];
	double sd = noise_sd(base, n - 1);
	gate_judge(&v, &w->cfg->gates, &f[0], &f[1], sd);
	return finish(w, eval_id, &v, figures_json(f, n, sd, &v, &pl), gates);
}

/* ---- patches to the supervisor's own files: judged by replay ------------ */

/* True when the diff changes a file the trainer reads (scaffold.lua, or
 * anything it imports): those need an A/B training run. */
static bool touches_trainer(const char *diff)
{
	for (const char *l = diff; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "+++ b/", 6) && strncmp(l, "--- a/", 6))
			continue;
		const char *name = l + 6;
		size_t n = strcspn(name, "\n");
		static const char *const supervisor_files[] = {
			"monitors.lua", "policies.lua", "playbook.lua", "prompts/",
		};
		bool theirs = false;
		for (size_t i = 0; i < 4; i++)
			theirs |= !strncmp(name, supervisor_files[i], strlen(supervisor_files[i]));
		if (!theirs && !(n == 9 && !strncmp(name, "/dev/null", 9)))
			return true;
	}
	return false;
}

typedef struct label_ctx {
	int64_t ids[64];
	long onset[64];
	char sig[64][MON_SIG_MAX];
	int n;
} label_ctx;

static int take_real(const store_incident *i, void *ud)
{
	label_ctx *c = ud;
	if (!i->label || strcmp(i->label, "real") || c->n == 64)
		return 0;
	c->onset[c->n] = (long)i->onset_step;
	snprintf(c->sig[c->n], MON_SIG_MAX, "%s", i->signature);
	c->ids[c->n++] = i->id;
	return 0;
}

/* Replays one run with the monitors.lua of dir (fresh state per run). */
static int replay_with(rpl_result *r, pipe_ws *w, int64_t run, const char *dir,
		       const mon_params *mp)
{
	umon *u = NULL;
	int rc = w->cfg->monitors.lua.enabled ? umon_open(&u, dir) : 0;
	if (rc == 0) {
		rpl_opts ro = {.params = mp, .user = u};
		rc = rpl_store(r, w->st, run, &ro);
	}
	umon_free(u);
	return rc;
}

static int found(const rpl_result *r, const char *sig, long onset)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].first.signature, sig) &&
		    labs(r->v[i].first.onset_step - onset) <= 50)
			return 1;
	return 0;
}

static int warnings(const rpl_result *r)
{
	int n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].severity >= MON_WARNING;
	return n;
}

static int replay_run(pipe_ws *w, const store_run *run, const eval_plan *pl,
		      const mon_params *mp, gate_replay *g)
{
	label_ctx lc = {.n = 0};
	rpl_result base = {0}, cand = {0};
	int rc;
	store_incident_list(w->st, run->id, NULL, take_real, &lc);
	if ((rc = replay_with(&base, w, run->id, pl->base_dir, mp)) == 0 &&
	    (rc = replay_with(&cand, w, run->id, pl->cand_dir, mp)) == 0) {
		g->runs++;
		g->real += lc.n;
		for (int i = 0; i < lc.n; i++) {
			g->found_base += found(&base, lc.sig[i], lc.onset[i]);
			g->found_cand += found(&cand, lc.sig[i], lc.onset[i]);
		}
		if (lc.n == 0) {
			g->clean_runs++;
			g->fp_base += warnings(&base);
			g->fp_cand += warnings(&cand);
		}
	}
	rpl_result_free(&base);
	rpl_result_free(&cand);
	return rc;
}

static char *replay_json(const gate_replay *g, const gate_verdict *v)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "mode");
	jbuf_str(&b, "replay");
	const char *k[] = {"runs", "real", "found_base", "found_cand", "fp_base", "fp_cand",
			   "clean_runs"};
	int val[] = {g->runs, g->real, g->found_base, g->found_cand, g->fp_base, g->fp_cand,
		     g->clean_runs};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		jbuf_key(&b, k[i]);
		jbuf_int(&b, val[i]);
	}
	jbuf_key(&b, "verdict");
	gate_verdict_json(v, &b);
	jbuf_obj_close(&b);
	char *s = strdup(jbuf_cstr(&b, NULL));
	jbuf_free(&b);
	return s;
}

/* Judges a patch to the monitors, policies, playbook or prompts by
 * replaying every recorded run (evaluation arms excepted) through the
 * baseline's and the candidate's monitors. */
static int judge_replay(pipe_ws *w, const store_proposal *p, int64_t eval_id, const char *gates)
{
	eval_plan pl;
	gate_replay g = {0};
	gate_verdict v;
	mon_params mp;
	store_run *runs = NULL;
	size_t n = 0;
	int rc;
	memset(&pl, 0, sizeof pl);
	if ((rc = materialize(w, p, &pl)) < 0 || (rc = store_run_list(w->st, &runs, &n)) < 0)
		return rc;
	sup__mon_params(&mp, w->cfg);
	pipe__say(w, "proposal %lld changes the supervisor's files: replaying %zu recorded runs",
		  (long long)p->id, n);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (strncmp(runs[i].name, "eval-", 5) != 0)
			rc = replay_run(w, &runs[i], &pl, &mp, &g);
	store_run_list_free(runs, n);
	if (rc < 0)
		return rc;
	gate_judge_replay(&v, &g);
	return finish(w, eval_id, &v, replay_json(&g, &v), gates);
}

int pipe_evaluate(const pipe_opts *o, int64_t proposal)
{
	pipe_ws w;
	store_proposal *p = NULL;
	char gates[65], subj[32], pid[24];
	int64_t eval_id = 0;
	int rc;
	if ((rc = pipe__open(&w, o)) < 0 || (rc = store_proposal_get(w.st, &p, proposal)) < 0)
		goto done;
	if (!p->branch || strcmp(p->state, "branched") != 0) {
		rc = tend_error_set(TEND_EINVAL, "proposal %lld is %s: only a branched proposal "
				    "is evaluated", (long long)proposal, p->state);
		goto done;
	}
	if ((rc = gate_rules_hash(w.cfg, gates)) < 0)
		goto done;
	bool ab = touches_trainer(p->diff);
	store_evaluation e = {.proposal_id = proposal, .stage = ab ? "short" : "replay",
		.state = "running", .gates_sha256 = gates};
	if ((rc = store_evaluation_insert(w.st, &eval_id, &e)) < 0)
		goto done;
	snprintf(subj, sizeof subj, "evaluation:%lld", (long long)eval_id);
	snprintf(pid, sizeof pid, "%lld", (long long)proposal);
	audit_log(w.st, "gates", "evaluation_started", subj, "proposal", pid, "gates_sha256", gates,
		  (char *)NULL);
	store_proposal_set_state(w.st, proposal, "evaluating", NULL);
	rc = ab ? judge(&w, p, eval_id, gates) : judge_replay(&w, p, eval_id, gates);
	if (rc < 0) {
		store_evaluation_finish(w.st, eval_id, "error", "fail", tend_error_last(), "{}",
					gates, 0);
		pipe__reject(&w, proposal, "failed", tend_error_last());
		goto done;
	}
	if (rc == 0) {
		store_evaluation *ev = NULL;
		store_evaluation_get(w.st, &ev, eval_id);
		pipe__reject(&w, proposal, "failed", ev && ev->reason ? ev->reason : "gates failed");
		store_evaluation_free(ev);
		rc = 0;
		goto done;
	}
	bool human = w.cfg->gates.human_approval;
	store_proposal_set_state(w.st, proposal, human ? "awaiting_approval" : "passed", NULL);
	pipe__say(&w, "proposal %lld passed every gate%s", (long long)proposal,
		  human ? "; approve it with `tend proposal approve` to promote it" : "");
	rc = 0;
	if (!human && o->promote) {
		store_proposal_free(p);
		pipe__close(&w);
		return pipe_promote(o, proposal, "gates", NULL);
	}
done:
	store_proposal_free(p);
	pipe__close(&w);
	return rc;
}

typedef struct last_eval {
	int64_t id;
	char verdict[16];
	char gates[65];
	char figures[4096];
} last_eval;

static int take_last(const store_evaluation *e, void *ud)
{
	last_eval *l = ud;
	l->id = e->id;
	snprintf(l->verdict, sizeof l->verdict, "%s", e->verdict ? e->verdict : "");
	snprintf(l->gates, sizeof l->gates, "%s", e->gates_sha256 ? e->gates_sha256 : "");
	snprintf(l->figures, sizeof l->figures, "%s", e->figures ? e->figures : "");
	return 0;
}

static void val_losses(const char *figures, char *base, char *cand, size_t cap)
{
	json_doc *d = NULL;
	double x;
	snprintf(base, cap, "-");
	snprintf(cand, cap, "-");
	if (json_parse(&d, figures, strlen(figures), NULL) < 0)
		return;
	const json_val *r = json_root(d);
	if (json_get_num(json_get(r, "baseline"), "val_loss", &x) == 0)
		snprintf(base, cap, "%.6g", x);
	if (json_get_num(json_get(r, "candidate"), "val_loss", &x) == 0)
		snprintf(cand, cap, "%.6g", x);
	json_doc_free(d);
}

static int check_promotable(pipe_ws *w, const store_proposal *p, const char *by, last_eval *le)
{
	char now[65];
	int rc;
	bool human = w->cfg->gates.human_approval;
	if (strcmp(p->state, "passed") && strcmp(p->state, "awaiting_approval"))
		return tend_error_set(TEND_EINVAL, "proposal %lld is %s: only a proposal whose "
				      "evaluation passed can be promoted", (long long)p->id, p->state);
	if (human && !strcmp(by, "gates"))
		return tend_error_set(TEND_EINVAL, "proposal %lld needs a human approval "
				      "(gates.human_approval)", (long long)p->id);
	if ((rc = store_evaluation_list(w->st, p->id, take_last, le)) < 0)
		return rc;
	if (strcmp(le->verdict, "pass") != 0)
		return tend_error_set(TEND_EINVAL, "proposal %lld: its last evaluation did not pass",
				      (long long)p->id);
	if ((rc = gate_rules_hash(w->cfg, now)) < 0)
		return rc;
	if (strcmp(now, le->gates) != 0)
		return tend_error_set(TEND_EINVAL, "the gates changed since evaluation %lld "
				      "(%.12s, now %.12s): evaluate again", (long long)le->id,
				      le->gates, now);
	return 0;
}

/* A fix that passed its evaluation and reached main says its incident was
 * real: replay-judged patches to the monitors must keep finding it. A
 * person's label is never overridden. */
static void label_real(pipe_ws *w, int64_t incident)
{
	store_incident *i = NULL;
	if (incident > 0 && store_incident_get(w->st, &i, incident) == 0 && !i->label)
		store_incident_label(w->st, incident, "real", "evaluation");
	store_incident_free(i);
}

int pipe_promote(const pipe_opts *o, int64_t proposal, const char *by, char *merged_out)
{
	pipe_ws w;
	store_proposal *p = NULL;
	last_eval le = {0};
	git_oid oid;
	char merged[GIT_OID_HEXSZ + 1], pid[24], eid[24], inc[24], prom[24], msg[512];
	char vb[32], vc[32];
	int64_t promo = 0;
	int rc;
	if ((rc = pipe__open(&w, o)) < 0 || (rc = store_proposal_get(w.st, &p, proposal)) < 0 ||
	    (rc = check_promotable(&w, p, by, &le)) < 0)
		goto done;
	snprintf(pid, sizeof pid, "%lld", (long long)proposal);
	snprintf(eid, sizeof eid, "%lld", (long long)le.id);
	snprintf(inc, sizeof inc, "%lld", (long long)p->incident_id);
	val_losses(le.figures, vb, vc, sizeof vb);
	patch_trailer tr[] = {
		{"Proposal", pid}, {"Incident", inc}, {"Evaluation", eid},
		{"Val-Loss-Baseline", vb}, {"Val-Loss-Candidate", vc},
		{"Gates-SHA256", le.gates}, {"Approved-By", by},
	};
	snprintf(msg, sizeof msg, "promote proposal %lld: %.200s", (long long)proposal, p->diagnosis);
	for (char *c = msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if ((rc = patch_promote(&oid, w.repo, p->branch, msg, tr, sizeof tr / sizeof tr[0])) < 0)
		goto done;
	git_oid_tostr(merged, sizeof merged, &oid);
	store_promotion pr = {.proposal_id = proposal, .evaluation_id = le.id,
		.commit = p->commit, .merged_commit = merged, .approved_by = by};
	if ((rc = store_promotion_insert(w.st, &promo, &pr)) < 0)
		goto done;
	snprintf(prom, sizeof prom, "%lld", (long long)promo);
	if ((rc = audit_log(w.st, by, "promote", merged, "proposal", pid, "evaluation", eid,
			    "promotion", prom, "gates_sha256", le.gates, (char *)NULL)) < 0)
		goto done;
	store_proposal_set_state(w.st, proposal, "promoted", NULL);
	label_real(&w, p->incident_id);
	pipe__say(&w, "proposal %lld promoted: main is now %.12s", (long long)proposal, merged);
	if (merged_out)
		snprintf(merged_out, GIT_OID_HEXSZ + 1, "%s", merged);
	pipe__notify(&w);
done:
	store_proposal_free(p);
	pipe__close(&w);
	return rc;
}

int pipe_rollback(const pipe_opts *o, const char *commit, const char *reason, char out[41])
{
	pipe_ws w;
	git_oid oid;
	char id[GIT_OID_HEXSZ + 1], msg[256];
	int rc;
	if ((rc = pipe__open(&w, o)) < 0)
		goto done;
	snprintf(msg, sizeof msg, "rollback: revert %.12s", commit);
	patch_trailer tr[] = {{"Rollback-Reason", reason && *reason ? reason : "manual"}};
	if ((rc = patch_revert(&oid, w.repo, commit, msg, tr, 1)) < 0)
		goto done;
	git_oid_tostr(id, sizeof id, &oid);
	if ((rc = audit_log(w.st, "human", "rollback", id, "reverts", commit, "reason",
			    reason ? reason : "", (char *)NULL)) < 0)
		goto done;
	pipe__say(&w, "reverted %.12s: main is now %.12s", commit, id);
	if (out)
		snprintf(out, GIT_OID_HEXSZ + 1, "%s", id);
	pipe__notify(&w);
done:
	pipe__close(&w);
	return rc;
}

int pipe_accept_gates(const pipe_opts *o, const char *who, const char *reason)
{
	pipe_ws w;
	char h[65];
	int rc;
	if ((rc = pipe__open(&w, o)) < 0 || (rc = gate_rules_hash(w.cfg, h)) < 0)
		goto done;
	rc = audit_log(w.st, who, "gates", h, "gates_sha256", h, "reason", reason, (char *)NULL);
done:
	pipe__close(&w);
	return rc;
}
