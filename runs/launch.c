/*
 * launch.c - fork/exec of a trainer into its own process group with a
 * scrubbed environment. See launch.h for why output goes to files.
 */
#include "launch.h"
#include "tend.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const allow_exact[] = {
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR",
	"TERM", "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX",
	NULL,
};
static const char *const allow_prefix[] = {
	"LC_", "CUDA_", "NCCL_", "OMP_", "OPENBLAS_", "MKL_", "NVIDIA_",
	"ASAN_", "UBSAN_", "TEND_", NULL,
};
static const char *const secret_words[] = {
	"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH",
	"COOKIE", "SESSION", "PRIVATE", NULL,
};

bool launch_is_secret_name(const char *name)
{
	char up[256];
	size_t i;
	for (i = 0; name[i] && name[i] != '=' && i + 1 < sizeof up; i++)
		up[i] = (char)toupper((unsigned char)name[i]);
	up[i] = '\0';
	for (const char *const *w = secret_words; *w; w++)
		if (strstr(up, *w))
			return true;
	return false;
}

static bool name_is(const char *var, const char *name)
{
	size_t n = strlen(name);
	return strncmp(var, name, n) == 0 && var[n] == '=';
}

static bool allowed(const char *var, const char *const *passthrough)
{
	for (const char *const *a = allow_exact; *a; a++)
		if (name_is(var, *a))
			return true;
	for (const char *const *a = allow_prefix; *a; a++)
		if (strncmp(var, *a, strlen(*a)) == 0)
			return true;
	for (const char *const *a = passthrough; a && *a; a++)
		if (name_is(var, *a))
			return true;
	return false;
}

static size_t count(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* Copies env (all of it, or only what is allowed and not secret) and
 * then extra into a new NULL-terminated array. */
static int env_copy(char ***out, char *const *env, bool scrub,
		    const char *const *passthrough, const char *const *extra)
{
	size_t cap = count((const char *const *)env) + count(extra) + 1, n = 0;
	char **e = calloc(cap, sizeof *e);
	if (!e)
		return tend_error_set(TEND_ENOMEM, "environment: out of memory");
	for (size_t i = 0; env && env[i]; i++) {
		if (scrub && (!allowed(env[i], passthrough) || launch_is_secret_name(env[i])))
			continue;
		if (!(e[n++] = strdup(env[i])))
			goto oom;
	}
	for (size_t i = 0; extra && extra[i]; i++)
		if (!(e[n++] = strdup(extra[i])))
			goto oom;
	*out = e;
	return 0;
oom:
	launch_env_free(e);
	return tend_error_set(TEND_ENOMEM, "environment: out of memory");
}

int launch_env_build(char ***out, char *const *env,
		     const char *const *passthrough, const char *const *extra)
{
	return env_copy(out, env, true, passthrough, extra);
}

void launch_env_free(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}

/* Marks every descriptor above 2 close-on-exec but keep: what the parent
 * holds (libcurl's sockets, the store, pipes) is none of the child's
 * business, and a trainer holding them would keep them alive. */
static void close_others_on_exec(int keep)
{
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (keep > 2)
		fcntl(keep, F_SETFD, 0);
}

/* In the child: never returns. Reports errno through errfd on failure. */
static void child_exec(const launch_spec *s, char **env, int errfd)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	setpgid(0, 0);
	if (s->nice > 0 && setpriority(PRIO_PROCESS, 0, s->nice) < 0)
		goto fail;
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull >= 0)
		dup2(devnull, 0);
	int fo = s->stdout_path ? open(s->stdout_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 1;
	int fe = s->stderr_path ? open(s->stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 2;
	if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 ||
	    (s->cwd && chdir(s->cwd) < 0))
		goto fail;
	close_others_on_exec(s->keep_fd);
	execvpe(s->argv[0], (char *const *)s->argv, env);
fail:;
	int e = errno;
	ssize_t w = write(errfd, &e, sizeof e);
	(void)w;
	_exit(127);
}

int launch_start(pid_t *out_pid, const launch_spec *s)
{
	extern char **environ;
	char **env = NULL;
	int p[2] = {-1, -1}, rc, err = 0;
	if (!s->argv || !s->argv[0])
		return tend_error_set(TEND_EINVAL, "launch: empty command");
	if ((rc = env_copy(&env, environ, !s->inherit_env, s->passthrough, s->extra)) < 0)
		return rc;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = tend_error_os("launch: pipe");
		goto done;
	}
	pid_t pid = fork();
	if (pid < 0) {
		rc = tend_error_os("launch: fork");
		goto done;
	}
	if (pid == 0)
		child_exec(s, env, p[1]);
	setpgid(pid, pid); /* both sides, so no race with an early kill */
	close(p[1]);
	p[1] = -1;
	if (read(p[0], &err, sizeof err) == (ssize_t)sizeof err) {
		errno = err;
		rc = tend_error_os("launch: cannot start '%s'", s->argv[0]);
		int st;
		(void)waitpid(pid, &st, 0);
		goto done;
	}
	*out_pid = pid;
	rc = 0;
done:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	launch_env_free(env);
	return rc;
}

int launch_signal(pid_t pgid, int sig)
{
	if (pgid <= 1)
		return tend_error_set(TEND_EINVAL, "launch: refusing to signal group %d", (int)pgid);
	if (kill(-pgid, sig) < 0) {
		if (errno == ESRCH)
			return tend_error_set(TEND_ENOTFOUND, "process group %d is gone", (int)pgid);
		return tend_error_os("kill process group %d", (int)pgid);
	}
	return 0;
}

bool launch_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}
