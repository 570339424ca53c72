/*
 * cmd_run.c - `tend run` (supervise a run, in the foreground or detached),
 * `tend stop` and `tend status`.
 */
#include "cli.h"
#include "clock.h"
#include "store.h"
#include "sup.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The parent of a daemon: waits until the daemon says its trainer runs
 * ("ok\n" on the pipe) or fails (its error message, or nothing, then
 * EOF), so a refused start is an error here, not a line in a log. */
static int wait_ready(int fd, pid_t pid, const char *name)
{
	char buf[1024];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && !memchr(buf, '\n', len) &&
	       ((n = read(fd, buf + len, sizeof buf - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	buf[len] = '\0';
	close(fd);
	if (strcmp(buf, "ok\n") != 0) {
		waitpid(pid, NULL, 0);
		return tend_error_set(TEND_ERROR, "%s", len ? buf : "the supervisor exited "
				      "before its trainer started");
	}
	printf("tend: supervising run %s in the background (pid %d); "
	       "`tend status`, `tend attach`, `tend stop`\n", name, (int)pid);
	return 0;
}

/* Forks a daemon; the parent reports and returns, the child goes on with
 * *ready_fd to tell the parent how its start went. */
static int detach(const char *ws, const char *name, bool *is_child, int *ready_fd)
{
	char log[PATH_MAX];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) /* the trainer must not inherit it */
		return tend_error_os("pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return tend_error_os("fork");
	}
	if (pid > 0) {
		*is_child = false;
		close(p[1]);
		return wait_ready(p[0], pid, name);
	}
	*is_child = true;
	close(p[0]);
	*ready_fd = p[1];
	signal(SIGPIPE, SIG_IGN); /* a late error to a parent that has gone */
	setsid();
	snprintf(log, sizeof log, "%s/runs/supervisor-%s.log", ws, name);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int nul = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	if (nul >= 0) {
		dup2(nul, 0);
		close(nul);
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{"config", 1, 0, 'c'}, {"resume", 0, 0, 'r'}, {"detach", 0, 0, 'd'},
		{"steps", 1, 0, 's'}, {"no-status", 0, 0, 'q'}, {0, 0, 0, 0},
	};
	sup_opts o = {.status_line = isatty(2)};
	char ws[PATH_MAX], name[160];
	bool det = false, child = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'r': o.resume = true; break;
		case 'd': det = true; break;
		case 'q': o.status_line = false; break;
		case 's': o.steps = atol(optarg);
			if (o.steps <= 0) {
				fprintf(stderr, "tend run: --steps: expected a positive integer\n");
				return CLI_USAGE;
			}
			break;
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "usage: tend run [NAME] [options]\n");
		return CLI_USAGE;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "run");
	o.workspace = ws;
	if (optind < argc) {
		snprintf(name, sizeof name, "%s", argv[optind]);
		o.name = name;
	} else if (o.resume) {
		if (sup_latest_run(ws, name, sizeof name) < 0)
			return cli_fail(CLI_FAIL, "run --resume");
		o.name = name;
	} else {
		time_t t = time(NULL);
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(name, sizeof name, "run-%Y%m%d-%H%M%S", &tm);
		o.name = name;
	}
	if (det) {
		o.status_line = false;
		if (detach(ws, name, &child, &o.ready_fd) < 0)
			return cli_fail(CLI_FAIL, "run --detach");
		if (!child)
			return CLI_OK;
	}
	int rc = sup_run(&o);
	if (rc < 0) {
		fprintf(stderr, "tend run: %s\n", tend_error_last());
		if (o.ready_fd > 0) { /* the parent is still waiting: tell it why */
			ssize_t w = write(o.ready_fd, tend_error_last(), strlen(tend_error_last()));
			(void)w;
		}
	}
	if (o.ready_fd > 0)
		close(o.ready_fd);
	if (rc < 0)
		return rc == TEND_EINVAL ? CLI_USAGE : CLI_FAIL;
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

const cli_cmd cli_run_cmd = {
	"run", "launch a trainer and babysit it to the end",
	"usage: tend run [NAME] [--config FILE] [--steps N] [--resume] [--detach]\n\n"
	"Launches the trainer (the in-tree one, or run.command from tend.yaml) as a\n"
	"child in its own process group with a scrubbed environment, captures its\n"
	"output and metrics into the store, runs the monitors, and applies the\n"
	"recovery policies of the scaffold (policies.lua).\n\n"
	"  NAME          the run's name (default run-YYYYmmdd-HHMMSS)\n"
	"  --config FILE use FILE instead of the workspace's tend.yaml\n"
	"  --steps N     override run.steps\n"
	"  --resume      continue run NAME (default: the newest run) after a\n"
	"                supervisor crash: adopt the trainer if it still runs,\n"
	"                else restart it from the latest good checkpoint\n"
	"  --detach      run as a daemon; `tend status`, `tend attach`, `tend stop`\n"
	"  --no-status   no live status line\n",
	cmd_run,
};

static int cmd_stop(int argc, char **argv)
{
	char ws[PATH_MAX], run[160];
	int pid;
	bool now = argc > 1 && strcmp(argv[1], "--now") == 0;
	if (argc > 2 || (argc == 2 && !now)) {
		fprintf(stderr, "usage: tend stop [--now]\n");
		return CLI_USAGE;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "stop");
	sup_lock_holder(ws, &pid, run, sizeof run);
	if (pid <= 0) {
		fprintf(stderr, "tend stop: no supervisor is running in %s\n", ws);
		return CLI_FAIL;
	}
	if (kill(pid, now ? SIGUSR2 : SIGTERM) < 0) {
		tend_error_os("signal supervisor %d", pid);
		return cli_fail(CLI_FAIL, "stop");
	}
	printf("tend: asked the supervisor of run %s (pid %d) to stop%s\n", run, pid,
	       now ? " now" : " (the trainer checkpoints first)");
	for (int i = 0; i < 600; i++) { /* wait up to a minute for it to let go */
		int p;
		char r[160];
		sup_lock_holder(ws, &p, r, sizeof r);
		if (p == 0)
			return CLI_OK;
		usleep(100000);
	}
	fprintf(stderr, "tend stop: the supervisor is still running after 60 s\n");
	return CLI_FAIL;
}

const cli_cmd cli_stop_cmd = {
	"stop", "stop the supervised run (gracefully, or --now)",
	"usage: tend stop [--now]\n\n"
	"Asks the workspace's supervisor to stop its run: the trainer gets SIGINT,\n"
	"writes a checkpoint and exits (SIGKILL after recovery.term_grace_s).\n"
	"--now kills the trainer's process group at once. Waits until it stopped.\n",
	cmd_stop,
};
