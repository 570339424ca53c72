/*
 * run_child.c - runs a command to its end with its output captured and a
 * deadline: what the dashboard's actions and `tend version` need of a
 * child. Its own process group, so a timeout kills what it started too.
 */
#include "cli.h"
#include "clock.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int spawn(pid_t *pid, char *const argv[], int out_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
	/* its own process group, so a timeout kills what it started too */
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		errno = rc;
		return tend_error_os("starting %s", argv[0]);
	}
	return 0;
}

/* Reads fd into out until EOF or the deadline; 0 or TEND_ETIMEOUT. */
static int drain(int fd, double deadline, char *out, size_t cap, size_t *len)
{
	char buf[4096];
	for (;;) {
		double left = deadline - tend_mono_s();
		if (left <= 0)
			return TEND_ETIMEOUT;
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		ssize_t got = read(fd, buf, sizeof buf);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		size_t take = (size_t)got < cap - 1 - *len ? (size_t)got : cap - 1 - *len;
		memcpy(out + *len, buf, take);
		*len += take;
	}
}

int cli_run_child(char *const argv[], double timeout_s, char *out,
		   size_t cap, int *status)
{
	int fds[2] = {-1, -1}, rc, ws = 0;
	size_t len = 0;
	pid_t pid = -1;
	out[0] = '\0';
	*status = -1;
	if (pipe2(fds, O_CLOEXEC) != 0)
		return tend_error_os("pipe");
	rc = spawn(&pid, argv, fds[1]);
	close(fds[1]);
	if (rc < 0)
		goto done;
	rc = drain(fds[0], tend_mono_s() + timeout_s, out, cap, &len);
	if (rc == TEND_ETIMEOUT) {
		kill(-pid, SIGKILL);
		rc = tend_error_set(TEND_ETIMEOUT, "%s did not finish within %.0f s "
				    "and was killed", argv[0], timeout_s);
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	out[len] = '\0';
	if (len == cap - 1 && cap > 32)
		strcpy(out + cap - 32, "\n[output cut]\n");
done:
	close(fds[0]);
	return rc;
}
