/*
 * sup_policy.c - from incident to action. Incidents are folded into the
 * store by signature; each one the policy has not acted on within the
 * cooldown goes to the scaffold's policies.lua (in the sandbox), whose
 * answer is validated and carried out: live (skip batches, lower the LR,
 * through RUN_DIR/control and SIGUSR1) or by stopping and restarting the
 * trainer (roll back, restart, give up).
 */
#include "sup_int.h"
#include "clock.h"
#include "fsutil.h"
#include "launch.h"
#include "tend.h"

#include <lauxlib.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int sup__mon_params(mon_params *p, const cfg *c)
{
	const cfg_monitors *m = &c->monitors;
	mon_params_default(p);
	p->nonfinite = m->nonfinite.enabled;
	const cfg_spike *in[2] = {&m->loss_spike, &m->grad_spike};
	mon_spike_params *out[2] = {&p->loss_spike, &p->grad_spike};
	for (int i = 0; i < 2; i++) {
		out[i]->on = in[i]->enabled;
		out[i]->window = (int)in[i]->window;
		out[i]->threshold = in[i]->zscore;
		out[i]->warmup = (int)in[i]->warmup;
		out[i]->patience = (int)in[i]->patience;
	}
	p->divergence.on = m->divergence.enabled;
	p->divergence.window = (int)m->divergence.window;
	p->divergence.min_rise = m->divergence.min_rise;
	p->plateau.on = m->plateau.enabled;
	p->plateau.steps = m->plateau.window;
	p->plateau.min_improvement = m->plateau.min_improvement;
	p->stall.on = m->stall.enabled;
	p->stall.timeout_s = m->stall.timeout_s;
	p->stall.k = m->stall.slow_factor;
	p->heartbeat.on = m->heartbeat.enabled;
	p->heartbeat.timeout_s = m->heartbeat.timeout_s;
	p->throughput.on = m->throughput.enabled;
	p->throughput.window = (int)m->throughput.window;
	p->throughput.drop_ratio = m->throughput.drop_ratio;
	p->throughput.patience = (int)m->throughput.patience;
	/* tend.yaml has no throughput warm-up: the detector's default (20)
	 * would refuse any window under it, which the config allows. */
	if (p->throughput.warmup > p->throughput.window)
		p->throughput.warmup = p->throughput.window;
	p->moe.on = m->moe.enabled;
	p->moe.max_over_mean = m->moe.max_over_mean;
	p->moe.dead_share = m->moe.dead_fraction;
	p->moe.entropy_ratio = m->moe.min_entropy_ratio;
	p->moe.dropped_max = m->moe.dropped_fraction;
	return 0;
}

int sup__incident_emit(const mon_incident *inc, void *ud)
{
	sup *s = ud;
	char ev[16384];
	int64_t id;
	int is_new = 0;
	if (mon_incident_evidence_json(ev, sizeof ev, inc) < 0)
		strcpy(ev, "{}");
	store_incident in = {
		.run_id = s->run_id, .kind = mon_kind_name(inc->kind),
		.severity = mon_severity_name(inc->severity), .signature = inc->signature,
		.onset_step = inc->onset_step >= 0 ? inc->onset_step : s->last_step,
		.first_t = tend_wall_s(), .summary = inc->summary, .evidence = ev,
	};
	int rc = store_incident_upsert(s->st, &id, &is_new, &in);
	if (rc < 0)
		return rc;
	if (s->n_pending < SUP_PENDING)
		s->pending[s->n_pending++] = (sup_pending){id, *inc};
	if (is_new)
		sup__propose_queue(s, id, inc);
	return 0;
}

/* ---- the Lua policies ---------------------------------------------------- */

int sup__policy_open(sup *s)
{
	char path[PATH_MAX + 32], *src = NULL;
	size_t len;
	int rc;
	snprintf(path, sizeof path, "%s/scaffold/policies.lua", s->ws);
	if ((rc = fsu_read_file(&src, &len, path, 1 << 20)) < 0)
		return tend_error_wrap(rc, "recovery policies");
	if ((rc = lsb_new(&s->policy, NULL)) < 0 ||
	    (rc = lsb_load(s->policy, "policies.lua", src, len)) < 0) {
		free(src);
		return tend_error_wrap(rc, "%s", path);
	}
	free(src);
	lua_State *L = lsb_state(s->policy);
	if (lua_gettop(L) < 1 || !lua_istable(L, -1)) {
		return tend_error_set(TEND_EINVAL, "%s: must return a table with decide()", path);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "tend.policies");
	lua_settop(L, 0);
	return 0;
}

typedef struct decision {
	char action[16];
	long skip;
	double lr_scale;
	char reason[256];
} decision;

static void push_ctx(lua_State *L, sup *s, mon_kind k)
{
	const cfg_recovery *r = &s->cfg->recovery;
	double now = ev_now(s->loop);
	int recent = 0;
	for (int i = 0; i < s->n_restarts && i < 64; i++)
		recent += now - s->restarts[i] < 3600;
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, s->repeats[k]);
	lua_setfield(L, -2, "repeats");
	lua_pushinteger(L, recent);
	lua_setfield(L, -2, "restarts_last_hour");
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, r->max_restarts_per_hour);
	lua_setfield(L, -2, "max_restarts_per_hour");
	lua_pushinteger(L, r->rollback_steps);
	lua_setfield(L, -2, "rollback_steps");
	lua_pushinteger(L, r->skip_batches);
	lua_setfield(L, -2, "skip_batches");
	lua_pushnumber(L, r->lr_cut);
	lua_setfield(L, -2, "lr_cut");
	lua_pushinteger(L, r->cooldown_steps);
	lua_setfield(L, -2, "cooldown_steps");
	lua_setfield(L, -2, "recovery");
}

static void push_incident(lua_State *L, const mon_incident *inc)
{
	lua_createtable(L, 0, 6);
	lua_pushstring(L, mon_kind_name(inc->kind));
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, mon_severity_name(inc->severity));
	lua_setfield(L, -2, "severity");
	lua_pushstring(L, inc->signature);
	lua_setfield(L, -2, "signature");
	lua_pushinteger(L, inc->last_step);
	lua_setfield(L, -2, "step");
	lua_pushinteger(L, inc->onset_step);
	lua_setfield(L, -2, "onset_step");
	lua_pushstring(L, inc->summary);
	lua_setfield(L, -2, "summary");
}

static const char *const actions[] = {
	"none", "alert", "skip", "lower_lr", "rollback", "restart", "stop", NULL,
};

/* Reads and validates the table decide() returned (model-writable code:
 * nothing it says is trusted without a range check). */
static int read_decision(lua_State *L, decision *d)
{
	memset(d, 0, sizeof *d);
	d->lr_scale = 1.0;
	if (!lua_istable(L, -1))
		return tend_error_set(TEND_EINVAL, "policies.lua: decide() must return a table");
	lua_getfield(L, -1, "action");
	const char *a = lua_tostring(L, -1);
	int ok = 0;
	for (int i = 0; a && actions[i]; i++)
		ok |= strcmp(a, actions[i]) == 0;
	if (!ok) {
		lua_pop(L, 1);
		return tend_error_set(TEND_EINVAL, "policies.lua: unknown action '%s'", a ? a : "nil");
	}
	snprintf(d->action, sizeof d->action, "%s", a);
	lua_pop(L, 1);
	lua_getfield(L, -1, "skip");
	lua_Integer skip = lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "lr_scale");
	double lr = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 1.0;
	lua_pop(L, 1);
	lua_getfield(L, -1, "reason");
	snprintf(d->reason, sizeof d->reason, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
	lua_pop(L, 1);
	if (skip < 0 || skip > 1000000)
		return tend_error_set(TEND_EINVAL, "policies.lua: skip %lld out of range [0, 1000000]",
				      (long long)skip);
	if (!(lr > 0 && lr <= 1))
		return tend_error_set(TEND_EINVAL, "policies.lua: lr_scale %g out of range (0, 1]", lr);
	d->skip = (long)skip;
	d->lr_scale = lr;
	return 0;
}

static int decide(sup *s, const mon_incident *inc, decision *d)
{
	lua_State *L = lsb_state(s->policy);
	int rc;
	lua_settop(L, 0);
	lua_getfield(L, LUA_REGISTRYINDEX, "tend.policies");
	lua_getfield(L, -1, "decide");
	lua_remove(L, -2);
	push_incident(L, inc);
	push_ctx(L, s, inc->kind);
	if ((rc = lsb_call(s->policy, 2, 1)) < 0)
		return tend_error_wrap(rc, "policies.lua decide()");
	rc = read_decision(L, d);
	lua_settop(L, 0);
	return rc;
}

/* ---- carrying a decision out --------------------------------------------- */

static int write_control(sup *s, const char *text)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/control", s->run_dir);
	int rc = fsu_write_atomic(path, text, strlen(text), 0644);
	if (rc == 0 && s->pid > 0)
		rc = launch_signal(s->pid, SIGUSR1);
	return rc;
}

/* Rolling back stops the trainer now; where it resumes is found when it
 * starts again (sup_verify.c: the newest checkpoint at least rollback_steps
 * before the onset whose checksum verifies, else the newest before the
 * onset, else a fresh start), and said then by sup__rollback_event. */
static void rollback(sup *s, const mon_incident *inc, const decision *d)
{
	long onset = inc->onset_step >= 0 ? inc->onset_step : s->last_step;
	memset(&s->next, 0, sizeof s->next);
	s->next.rollback = true;
	s->next.before[0] = onset - s->cfg->recovery.rollback_steps + 1;
	s->next.before[1] = onset;
	s->next.at_step = s->last_step;
	s->next.from_step = -1;
	s->next.skip = d->skip;
	snprintf(s->next.reason, sizeof s->next.reason, "%s: %s", mon_kind_name(inc->kind), d->reason);
	s->lr_scale *= d->lr_scale;
	if (s->pid > 0)
		sup__dispatch(s, SUP_EV_RECOVER);
	else
		sup__restart(s);
}

void sup__rollback_event(sup *s)
{
	const sup_restart *r = &s->next;
	char msg[PATH_MAX + 256];
	snprintf(msg, sizeof msg, "roll back to step %ld (%s), skip %ld batches, lr scale %g; "
		 "%ld steps lost", r->from_step, r->resume[0] ? r->resume : "no good checkpoint: "
		 "fresh start", r->skip, s->lr_scale, r->at_step - r->from_step);
	sup__event(s, r->at_step, "rollback", msg);
}

static void restart_latest(sup *s, const mon_incident *inc, const decision *d, bool crash)
{
	memset(&s->next, 0, sizeof s->next);
	strcpy(s->next.resume, "latest");
	s->next.from_step = -1;
	s->next.backoff = crash;
	snprintf(s->next.reason, sizeof s->next.reason, "%s: %s", mon_kind_name(inc->kind), d->reason);
	sup__event(s, s->last_step, "restart", s->next.reason);
	if (s->pid > 0)
		sup__dispatch(s, SUP_EV_RECOVER);
	else
		sup__restart(s);
}

static void carry_out(sup *s, const sup_pending *p, const decision *d)
{
	const mon_incident *inc = &p->inc;
	char buf[128];
	bool crash = inc->kind >= MON_CRASH_OOM;
	if (strcmp(d->action, "skip") == 0) {
		snprintf(buf, sizeof buf, "skip=%ld\n", d->skip);
		write_control(s, buf);
		sup__event(s, s->last_step, "skip", d->reason);
	} else if (strcmp(d->action, "lower_lr") == 0) {
		s->lr_scale *= d->lr_scale;
		snprintf(buf, sizeof buf, "lr_scale=%.6g\n", s->lr_scale);
		write_control(s, buf);
		sup__event(s, s->last_step, "lower_lr", d->reason);
	} else if (strcmp(d->action, "rollback") == 0) {
		rollback(s, inc, d);
	} else if (strcmp(d->action, "restart") == 0) {
		restart_latest(s, inc, d, crash);
	} else if (strcmp(d->action, "stop") == 0) {
		snprintf(s->next.reason, sizeof s->next.reason, "%s: %s", mon_kind_name(inc->kind),
			 d->reason);
		if (s->pid > 0)
			sup__dispatch(s, SUP_EV_GIVEUP);
		else
			sup__giveup(s, s->next.reason);
		return;
	} else {
		return; /* none / alert: the alert below is all */
	}
	snprintf(buf, sizeof buf, "recovery:%s", inc->signature);
	char text[1024];
	snprintf(text, sizeof text, "tend: run %s: %s -> %s (%s)", s->name, inc->summary,
		 d->action, d->reason);
	alert_post(s->alerts, CFG_EVENT_RECOVERY, buf, text, ev_now(s->loop));
}

/* True when the policy already acted on this kind within the cooldown. */
static bool cooling(sup *s, const mon_incident *inc)
{
	long cd = s->cfg->recovery.cooldown_steps;
	long last = s->acted_step[inc->kind];
	bool crash = inc->kind >= MON_CRASH_OOM;
	if (crash || last < 0)
		return false;
	/* A condition that began long after the last action starts again on
	 * the first rung; one that persists (a re-emission keeps its onset)
	 * climbs, however long it has lasted. */
	long onset = inc->onset_step >= 0 ? inc->onset_step : inc->last_step;
	if (onset - last > 10 * cd)
		s->repeats[inc->kind] = 0;
	return inc->last_step >= last && inc->last_step - last < cd;
}

void sup__policy_run(sup *s)
{
	int n = s->n_pending;
	s->n_pending = 0;
	for (int i = 0; i < n && s->state == SUP_RUNNING; i++) {
		sup_pending *p = &s->pending[i];
		decision d;
		char text[1024];
		snprintf(text, sizeof text, "tend: run %s: %s", s->name, p->inc.summary);
		alert_post(s->alerts, CFG_EVENT_INCIDENT, p->inc.signature, text, ev_now(s->loop));
		if (cooling(s, &p->inc))
			continue;
		if (decide(s, &p->inc, &d) < 0) {
			sup__event(s, s->last_step, "policy_error", tend_error_last());
			continue;
		}
		s->acted_step[p->inc.kind] = p->inc.last_step;
		s->repeats[p->inc.kind]++;
		char msg[600];
		snprintf(msg, sizeof msg, "incident %lld %s -> %s: %s", (long long)p->incident,
			 p->inc.signature, d.action, d.reason);
		sup__event(s, p->inc.last_step, "policy", msg);
		carry_out(s, p, &d);
	}
}

void sup__on_child_exit(sup *s, int status)
{
	const char *lines[SUP_RING];
	size_t n = 0;
	mon_incident inc;
	for (int i = 0; i < SUP_RING; i++) {
		const char *l = s->ring[(s->ring_pos + i) % SUP_RING];
		if (l)
			lines[n++] = l;
	}
	if (mon_classify_exit(&inc, status, lines, n) != 1)
		return;
	inc.onset_step = inc.last_step = s->last_step;
	if (sup__incident_emit(&inc, s) == 0)
		sup__policy_run(s);
}
