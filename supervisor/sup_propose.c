/*
 * sup_propose.c - the supervisor's side of the self-evolving loop: each new
 * warning or critical incident (when proposer.auto is on) is handed to a
 * `tend propose` child process, one at a time, so a model request or an
 * A/B evaluation never blocks the loop. A promotion comes back as SIGHUP,
 * which the loop forwards to the trainer (scaffold reload).
 */
#include "sup_int.h"
#include "cli.h"
#include "launch.h"
#include "tend.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void start_next(sup *s)
{
	char exe[PATH_MAX], id[24], log[PATH_MAX + 16];
	if (s->propose_pid > 0 || s->n_propose == 0 || s->state != SUP_RUNNING)
		return;
	int64_t incident = s->propose_queue[0];
	memmove(s->propose_queue, s->propose_queue + 1,
		(size_t)--s->n_propose * sizeof s->propose_queue[0]);
	if (cli_self_exe(exe, sizeof exe) < 0)
		return;
	snprintf(id, sizeof id, "%lld", (long long)incident);
	snprintf(log, sizeof log, "%s/propose.log", s->run_dir);
	const char *argv[] = {exe, "--workspace", s->ws, "propose", id, NULL};
	launch_spec ls = {.argv = argv, .cwd = s->ws, .stdout_path = log, .stderr_path = log,
		.inherit_env = true};
	if (launch_start(&s->propose_pid, &ls) < 0) {
		sup__event(s, s->last_step, "propose_failed", tend_error_last());
		return;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "incident %lld: proposing a scaffold patch (pid %d, %s)",
		 (long long)incident, (int)s->propose_pid, "propose.log");
	sup__event(s, s->last_step, "propose", msg);
}

/* One proposal per cause: the NaN that makes loss, grad norm and
 * val_loss incidents at one step is one problem, asked about once. */
static bool seen_cause(sup *s, const mon_incident *inc)
{
	for (int i = 0; i < s->n_asked; i++)
		if (s->asked[i].kind == (int)inc->kind && s->asked[i].onset == inc->onset_step)
			return true;
	int slot = s->n_asked < SUP_ASKED ? s->n_asked++ : (int)(inc->onset_step % SUP_ASKED);
	s->asked[slot].kind = (int)inc->kind;
	s->asked[slot].onset = inc->onset_step;
	return false;
}

void sup__propose_queue(sup *s, int64_t incident, const mon_incident *inc)
{
	if (!s->cfg->proposer.auto_propose || inc->severity < MON_WARNING || seen_cause(s, inc))
		return;
	if (s->n_propose < (int)(sizeof s->propose_queue / sizeof s->propose_queue[0]))
		s->propose_queue[s->n_propose++] = incident;
	start_next(s);
}

bool sup__propose_reaped(sup *s, pid_t pid, int status)
{
	if (pid != s->propose_pid || pid <= 0)
		return false;
	s->propose_pid = 0;
	char msg[96];
	snprintf(msg, sizeof msg, "proposal pipeline exited with status %d",
		 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	sup__event(s, s->last_step, "propose_done", msg);
	start_next(s);
	return true;
}

void sup__propose_finish(sup *s)
{
	if (s->propose_pid <= 0)
		return;
	if (s->o->status_line)
		fprintf(stderr, "[tend] waiting for the proposal pipeline (pid %d) to finish\n",
			(int)s->propose_pid);
	int st;
	if (waitpid(s->propose_pid, &st, 0) == s->propose_pid)
		sup__propose_reaped(s, s->propose_pid, st);
	s->n_propose = 0;
}
