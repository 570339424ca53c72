/*
 * launch.h - starting a trainer as a supervised child: its own process
 * group (so a signal reaches every process it spawned), a scrubbed
 * environment (no API key or token reaches generated or third-party code),
 * stdout and stderr appended to files the supervisor tails.
 *
 * Output goes to files rather than pipes so that a trainer outlives a
 * supervisor killed with SIGKILL: a restarted supervisor adopts it and
 * reads on from the committed offsets.
 */
#ifndef LAUNCH_H
#define LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct launch_spec {
	const char *const *argv;        /* argv[0] is looked up on PATH */
	const char *cwd;                /* NULL = inherit */
	const char *stdout_path;        /* appended; created 0644 */
	const char *stderr_path;
	const char *const *passthrough; /* extra variable names let through */
	const char *const *extra;       /* "NAME=value" set for the child */
	bool inherit_env;               /* tend's own helpers (never a trainer):
					 * keep the whole environment */
	int nice;                       /* > 0: lower the child's priority */
	int keep_fd;                    /* > 2: a descriptor the child keeps;
					 * every other one above 2 is closed */
} launch_spec;

/* Forks and execs; the child leads a new process group whose id is its
 * pid. An exec failure is reported back through a close-on-exec pipe, so
 * a bad command is an error here, not a mysterious exit 127 later. */
int launch_start(pid_t *out_pid, const launch_spec *spec);

/* True when the variable name looks like a secret (KEY, TOKEN, SECRET,
 * PASSWORD, CREDENTIAL, ... in any case), whatever the allowlist says. */
bool launch_is_secret_name(const char *name);

/* Builds the child's environment from env: the allowlisted names (PATH,
 * HOME, LANG, LC_*, TZ, TMPDIR, CUDA_*, NCCL_*, OMP_*, ...), the names in
 * passthrough, then extra; secret-looking names are always dropped.
 * *out is a NULL-terminated array owned by the caller (launch_env_free). */
int launch_env_build(char ***out, char *const *env,
		     const char *const *passthrough, const char *const *extra);
void launch_env_free(char **env);

/* Sends sig to the child's whole process group; 0, or TEND_ENOTFOUND when
 * the group is gone. */
int launch_signal(pid_t pgid, int sig);

/* True while a process with this pid exists (for adopted trainers, which
 * are not our children and cannot be waited for). */
bool launch_alive(pid_t pid);

#endif
