/*
 * sup_life.c - a run's lifecycle as an explicit table of state x event ->
 * action (CONVENTIONS: no flags spread over code), and starting and
 * stopping the trainer process.
 *
 *              EXIT        RECOVER     GIVEUP      STOP        STOP_NOW    GRACE       BACKOFF
 *  RUNNING     exited      term(rst)   term(give)  int(stop)   kill(stop)  -           -
 *  STOPPING    stopped     -           intent=give intent=stop kill,stop   kill        -
 *  BACKOFF     -           -           give_up     to_stopped  to_stopped  -           restart
 *  DONE/STOPPED/FAILED: every event is ignored.
 *  In STOPPING a stop turns a restart's intent into stop (a give-up stands).
 */
#include "sup_int.h"
#include "cli.h"
#include "clock.h"
#include "launch.h"
#include "tend.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*sup_action)(sup *s);

static const char *const state_names[SUP_NSTATES] = {
	"running", "stopping", "backoff", "finished", "stopped", "failed",
};

const char *sup__state_name(sup_state st)
{
	return st < SUP_NSTATES ? state_names[st] : "?";
}

static void set_state(sup *s, sup_state st)
{
	s->state = st;
	store_run_set_state(s->st, s->run_id, state_names[st]);
	if (st == SUP_DONE || st == SUP_STOPPED || st == SUP_FAILED)
		ev_stop(s->loop);
}

static long grace_fired(ev_loop *l, void *ud)
{
	(void)l;
	sup *s = ud;
	s->grace_timer = 0;
	sup__dispatch(s, SUP_EV_GRACE);
	return EV_TIMER_STOP;
}

/* Asks the trainer to end with sig and arms the SIGKILL grace timer. */
static void signal_trainer(sup *s, int sig, sup_intent intent)
{
	s->intent = intent;
	if (s->pid > 0)
		launch_signal(s->pid, sig);
	set_state(s, SUP_STOPPING);
	if (!s->grace_timer)
		ev_timer_add(s->loop, (long)(s->cfg->recovery.term_grace_s * 1000), grace_fired,
			     s, &s->grace_timer);
}

static void a_term_restart(sup *s) { signal_trainer(s, SIGTERM, SUP_INTENT_RESTART); }
static void a_term_giveup(sup *s) { signal_trainer(s, SIGTERM, SUP_INTENT_GIVEUP); }
/* SIGINT: the trainer writes a checkpoint, then exits. */
static void a_int_stop(sup *s) { signal_trainer(s, SIGINT, SUP_INTENT_STOP); }

static void a_kill(sup *s)
{
	if (s->pid > 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "trainer did not exit within %.0f s: SIGKILL",
			 s->cfg->recovery.term_grace_s);
		sup__event(s, s->last_step, "kill", msg);
		launch_signal(s->pid, SIGKILL);
	}
}

static void a_kill_stop(sup *s)
{
	signal_trainer(s, SIGKILL, SUP_INTENT_STOP);
}

static void a_intent_giveup(sup *s) { s->intent = SUP_INTENT_GIVEUP; }

/* A stop while the trainer ends for a restart (a rollback) wins: once it has
 * exited the run is stopped, not restarted. It keeps the SIGTERM it got, so
 * it writes no checkpoint of the state it was being stopped for. */
static void a_intent_stop(sup *s)
{
	if (s->intent == SUP_INTENT_RESTART)
		s->intent = SUP_INTENT_STOP;
}

static void a_kill_intent_stop(sup *s)
{
	a_intent_stop(s);
	if (s->pid > 0) {
		sup__event(s, s->last_step, "kill", "stop now requested while the trainer was "
			   "stopping: SIGKILL");
		launch_signal(s->pid, SIGKILL);
	}
}

static void give_up(sup *s, const char *why)
{
	char text[512];
	sup__event(s, s->last_step, "giveup", why);
	snprintf(text, sizeof text, "tend: run %s gave up at step %ld: %s", s->name,
		 s->last_step, why);
	alert_post(s->alerts, CFG_EVENT_GIVEUP, s->name, text, ev_now(s->loop));
	set_state(s, SUP_FAILED);
}

static void a_give_up(sup *s) { give_up(s, s->next.reason[0] ? s->next.reason : "policy"); }
static void a_to_stopped(sup *s) { set_state(s, SUP_STOPPED); }

static long backoff_fired(ev_loop *l, void *ud)
{
	(void)l;
	sup_event ev = SUP_EV_BACKOFF;
	sup__dispatch(ud, ev);
	return EV_TIMER_STOP;
}

static void restart_now(sup *s)
{
	if (sup__start_trainer(s) < 0)
		give_up(s, tend_error_last());
}

/* Counts the restart and starts the trainer, after a backoff for crashes:
 * initial x 2^(n-1), capped. */
static void restart(sup *s)
{
	double now = ev_now(s->loop);
	s->restarts[s->n_restarts++ % 64] = now;
	s->recoveries++;
	if (!s->next.backoff) {
		s->backoff_n = 0;
		restart_now(s);
		return;
	}
	double d = s->cfg->recovery.backoff_initial_s * pow(2, s->backoff_n++);
	if (d > s->cfg->recovery.backoff_max_s)
		d = s->cfg->recovery.backoff_max_s;
	char msg[128];
	snprintf(msg, sizeof msg, "restarting in %.1f s", d);
	sup__event(s, s->last_step, "backoff", msg);
	set_state(s, SUP_BACKOFF);
	ev_timer_add(s->loop, (long)(d * 1000), backoff_fired, s, NULL);
}

static void a_restart(sup *s) { restart_now(s); }

void sup__restart(sup *s) { restart(s); }
void sup__giveup(sup *s, const char *why) { give_up(s, why); }

static void end_attempt(sup *s, int status)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
	store_attempt_end(s->st, s->run_id, s->attempt, code, sig, tend_wall_s());
	s->pid = 0;
	s->adopted = false;
	if (s->grace_timer) {
		ev_timer_del(s->loop, s->grace_timer);
		s->grace_timer = 0;
	}
}

/* The trainer has exited after a stop was asked for: what the stop was for. */
static void after_stop(sup *s)
{
	switch (s->intent) {
	case SUP_INTENT_RESTART:
		s->intent = SUP_INTENT_NONE;
		set_state(s, SUP_RUNNING);
		restart(s);
		break;
	case SUP_INTENT_GIVEUP:
		give_up(s, s->next.reason);
		break;
	default:
		set_state(s, SUP_STOPPED);
	}
}

/* The trainer exited on its own, while running. */
static void a_exited(sup *s)
{
	int st = s->exit_status;
	sup__ingest(s); /* its last lines first */
	end_attempt(s, st);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && s->finished) {
		store_run_set_ended(s->st, s->run_id, 0, tend_wall_s());
		set_state(s, SUP_DONE);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		set_state(s, SUP_STOPPED); /* the scaffold asked to stop */
		return;
	}
	sup__on_child_exit(s, st); /* classify: a crash incident, then policy */
	if (s->state == SUP_STOPPING) /* a policy acted on its last lines: this is that stop */
		after_stop(s);
	else if (s->state == SUP_RUNNING && s->pid == 0)
		give_up(s, "the trainer exited and no policy restarted it");
}

/* The trainer exited after we asked it to. */
static void a_stopped(sup *s)
{
	sup__ingest(s);
	end_attempt(s, s->exit_status);
	after_stop(s);
}

static const sup_action table[SUP_NSTATES][SUP_NEVENTS] = {
	[SUP_RUNNING] = {
		[SUP_EV_EXIT] = a_exited, [SUP_EV_RECOVER] = a_term_restart,
		[SUP_EV_GIVEUP] = a_term_giveup, [SUP_EV_STOP] = a_int_stop,
		[SUP_EV_STOP_NOW] = a_kill_stop,
	},
	[SUP_STOPPING] = {
		[SUP_EV_EXIT] = a_stopped, [SUP_EV_GIVEUP] = a_intent_giveup,
		[SUP_EV_STOP] = a_intent_stop, [SUP_EV_STOP_NOW] = a_kill_intent_stop,
		[SUP_EV_GRACE] = a_kill,
	},
	[SUP_BACKOFF] = {
		[SUP_EV_GIVEUP] = a_give_up, [SUP_EV_STOP] = a_to_stopped,
		[SUP_EV_STOP_NOW] = a_to_stopped, [SUP_EV_BACKOFF] = a_restart,
	},
};

void sup__dispatch(sup *s, sup_event ev)
{
	if (s->state >= SUP_DONE || ev >= SUP_NEVENTS)
		return;
	sup_action a = table[s->state][ev];
	if (a)
		a(s);
}

/* ---- starting the trainer ---------------------------------------------- */

#define ARGV_MAX 64

typedef struct argv_buf {
	const char *v[ARGV_MAX + 1];
	int n;
	char store[16][PATH_MAX];
	int ns;
} argv_buf;

static void arg(argv_buf *a, const char *s)
{
	if (a->n < ARGV_MAX)
		a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static const char *argf(argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *argf(argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *dst = a->store[a->ns < 15 ? a->ns++ : 15];
	va_start(ap, fmt);
	vsnprintf(dst, PATH_MAX, fmt, ap);
	va_end(ap);
	return dst;
}

/* The in-tree trainer: tend-train beside this binary, told where and how. */
static int build_intree(sup *s, argv_buf *a)
{
	static char exe[PATH_MAX];
	int rc = cli_trainer_exe(exe, sizeof exe);
	if (rc < 0)
		return rc;
	arg(a, exe);
	arg(a, "--workspace");
	arg(a, s->ws);
	arg(a, "--run-dir");
	arg(a, s->run_dir);
	arg(a, "--scaffold");
	arg(a, argf(a, "%s/scaffold", s->ws));
	if (s->next.resume[0]) {
		arg(a, "--resume");
		arg(a, s->next.resume);
	}
	if (s->next.skip > 0) {
		arg(a, "--skip-batches");
		arg(a, argf(a, "%ld", s->next.skip));
	}
	if (s->lr_scale != 1.0) {
		arg(a, "--lr-scale");
		arg(a, argf(a, "%.6g", s->lr_scale));
	}
	if (s->o->steps > 0) {
		arg(a, "--steps");
		arg(a, argf(a, "%ld", s->o->steps));
	}
	for (const char *const *x = s->o->extra_args; x && *x; x++)
		arg(a, *x);
	return 0;
}

/* tend-train's thread settings (train_main.c), given so that it need not
 * re-execute itself to set them; a user's own choice passes through. */
static void intree_env(argv_buf *e)
{
	if (!getenv("OPENBLAS_NUM_THREADS"))
		arg(e, "OPENBLAS_NUM_THREADS=1");
	if (!getenv("OMP_WAIT_POLICY"))
		arg(e, "OMP_WAIT_POLICY=passive");
}

/* A configured command gets the same facts through TEND_* variables. */
static void build_env(sup *s, argv_buf *e)
{
	arg(e, argf(e, "TEND_RUN_DIR=%s", s->run_dir));
	arg(e, argf(e, "TEND_METRICS_FILE=%s", s->metrics_path));
	arg(e, argf(e, "TEND_RESUME=%s", s->next.resume));
	arg(e, argf(e, "TEND_SKIP_BATCHES=%ld", s->next.skip));
	arg(e, argf(e, "TEND_LR_SCALE=%.6g", s->lr_scale));
	arg(e, argf(e, "TEND_ATTEMPT=%d", s->attempt + 1));
	arg(e, argf(e, "TEND_SCAFFOLD_DIR=%s/scaffold", s->ws));
}

/* "latest" (or a rollback's target) becomes the newest good checkpoint
 * here rather than in the trainer, so the attempt records where it starts
 * and the monitors know which steps the restart repeats. Verifying hashes
 * whole checkpoints, so it runs in a child (sup_verify.c): true while it
 * does, the run waiting in backoff until its answer starts the trainer. */
static bool resolve_latest(sup *s)
{
	if (sup__verify_resolve(s) == 0)
		return false;
	if (s->state != SUP_BACKOFF)
		set_state(s, SUP_BACKOFF);
	/* BACKOFF to the table; said apart for whoever looks, since hashing a
	 * large checkpoint can take minutes. */
	store_run_set_state(s->st, s->run_id, "verifying");
	return true;
}

int sup__start_trainer(sup *s)
{
	argv_buf a = {0}, e = {0};
	pid_t pid;
	int rc;
	if (resolve_latest(s))
		return 0;
	const cfg_strlist *cmd = &s->cfg->run.command;
	if (cmd->n == 0) {
		if ((rc = build_intree(s, &a)) < 0)
			return rc;
		intree_env(&e);
	} else {
		for (size_t i = 0; i < cmd->n; i++)
			arg(&a, cmd->v[i]);
	}
	build_env(s, &e);
	launch_spec spec = {
		.argv = a.v, .cwd = s->run_dir, .stdout_path = s->out_path,
		.stderr_path = s->err_path,
		.passthrough = (const char *const *)s->cfg->run.env_passthrough.v,
		.extra = e.v,
	};
	if ((rc = sup__launch_locked(s, &pid, &spec)) < 0)
		return rc;
	s->pid = pid;
	s->finished = false;
	if (s->next.from_step >= 0) {
		/* The steps after from_step are done again: lost to the restart,
		 * and counted once even if this attempt dies before its first
		 * step and the next resumes from the same checkpoint. */
		if (s->last_step > s->next.from_step) {
			s->lost_steps += s->last_step - s->next.from_step;
			sup__account_rollback(s, s->next.from_step);
			s->last_step = s->next.from_step;
		}
		mon_reset_after_restart(s->mon, s->next.from_step);
	}
	store_attempt_begin(s->st, &s->attempt, s->run_id,
			    s->next.reason[0] ? s->next.reason : "start",
			    s->next.resume[0] ? s->next.resume : NULL, s->next.from_step,
			    pid, tend_wall_s());
	store_run_set_started(s->st, s->run_id, pid, tend_wall_s());
	char msg[PATH_MAX + 128];
	snprintf(msg, sizeof msg, "attempt %d started (pid %d)%s%s", s->attempt, (int)pid,
		 s->next.resume[0] ? ", resume " : "", s->next.resume);
	sup__event(s, s->last_step, "start", msg);
	memset(&s->next, 0, sizeof s->next);
	s->next.from_step = -1;
	set_state(s, SUP_RUNNING);
	return 0;
}
