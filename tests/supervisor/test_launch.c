/* test_launch.c - real child processes: own process group, scrubbed
 * environment, output to files, exec failure reported, group signalling. */
#include "launch.h"
#include "tend.h"
#include "tt.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_env_scrubbed(void)
{
	char out[128];
	snprintf(out, sizeof out, "%s/env.out", dir);
	setenv("OPENAI_API_KEY", "sk-secret", 1);
	setenv("HF_TOKEN", "hf_secret", 1);
	setenv("MY_SETTING", "visible", 1);
	setenv("RANDOM_THING", "hidden", 1);
	const char *argv[] = {"env", NULL};
	const char *pass[] = {"MY_SETTING", "OPENAI_API_KEY", NULL};
	const char *extra[] = {"TEND_RUN=r1", NULL};
	launch_spec s = {.argv = argv, .stdout_path = out, .passthrough = pass, .extra = extra};
	pid_t pid;
	int st;
	TT_CHECK_RC(launch_start(&pid, &s), 0);
	TT_REQUIRE(waitpid(pid, &st, 0) == pid);
	const char *env = slurp(out);
	TT_REQUIRE(env);
	TT_CHECK(strstr(env, "MY_SETTING=visible") != NULL);
	TT_CHECK(strstr(env, "TEND_RUN=r1") != NULL);
	TT_CHECK(strstr(env, "PATH=") != NULL);
	TT_CHECK(strstr(env, "sk-secret") == NULL); /* allowlisted but secret */
	TT_CHECK(strstr(env, "hf_secret") == NULL);
	TT_CHECK(strstr(env, "RANDOM_THING") == NULL);
}

static void test_own_process_group(void)
{
	const char *argv[] = {"sh", "-c", "sleep 30 & sleep 30; exit 0", NULL};
	launch_spec s = {.argv = argv};
	pid_t pid;
	int st;
	TT_CHECK_RC(launch_start(&pid, &s), 0);
	usleep(100000);
	TT_CHECK(getpgid(pid) == pid);
	TT_CHECK(launch_alive(pid));
	TT_CHECK_RC(launch_signal(pid, SIGKILL), 0);
	TT_REQUIRE(waitpid(pid, &st, 0) == pid);
	TT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* the backgrounded grandchild got the signal too: as the subreaper we
	 * reap it, after which the group is empty */
	for (int i = 0; i < 40 && launch_signal(pid, 0) == 0; i++) {
		while (waitpid(-1, &st, WNOHANG) > 0)
			;
		usleep(25000);
	}
	TT_CHECK(launch_signal(pid, 0) == TEND_ENOTFOUND);
}

static void test_exec_failure_reported(void)
{
	const char *argv[] = {"/nonexistent/trainer", NULL};
	launch_spec s = {.argv = argv};
	pid_t pid = 0;
	TT_CHECK(launch_start(&pid, &s) == TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "cannot start '/nonexistent/trainer'");
	TT_CHECK_HAS(tend_error_last(), "No such file or directory");
}

static void test_stderr_to_file(void)
{
	char err[128];
	snprintf(err, sizeof err, "%s/err.out", dir);
	const char *argv[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
	launch_spec s = {.argv = argv, .stderr_path = err};
	pid_t pid;
	int st;
	TT_CHECK_RC(launch_start(&pid, &s), 0);
	TT_REQUIRE(waitpid(pid, &st, 0) == pid);
	TT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	TT_CHECK_STR(slurp(err), "oops\n");
}

/* Only the descriptor asked for reaches the child; others the parent
 * holds without close-on-exec (as libcurl's sockets are) do not. */
static void test_only_kept_fd_inherited(void)
{
	char out[128], script[256];
	snprintf(out, sizeof out, "%s/fds.out", dir);
	int stray = open("/dev/null", O_RDONLY), keep = open("/dev/null", O_RDONLY);
	TT_REQUIRE(stray > 2 && keep > 2);
	snprintf(script, sizeof script, "for f in 0 1 2 %d %d; do [ -e /proc/$$/fd/$f ] && "
		 "echo \"open $f\"; done; true", stray, keep);
	const char *argv[] = {"sh", "-c", script, NULL};
	launch_spec s = {.argv = argv, .stdout_path = out, .keep_fd = keep};
	pid_t pid;
	int st;
	TT_REQUIRE(launch_start(&pid, &s) == 0);
	TT_REQUIRE(waitpid(pid, &st, 0) == pid);
	char want[128];
	snprintf(want, sizeof want, "open 0\nopen 1\nopen 2\nopen %d\n", keep);
	TT_CHECK_STR(slurp(out), want);
	close(stray);
	close(keep);
}

static void test_secret_names(void)
{
	TT_CHECK(launch_is_secret_name("OPENAI_API_KEY"));
	TT_CHECK(launch_is_secret_name("github_token"));
	TT_CHECK(launch_is_secret_name("DB_PASSWORD=x"));
	TT_CHECK(!launch_is_secret_name("CUDA_VISIBLE_DEVICES"));
	TT_CHECK(!launch_is_secret_name("PATH"));
}

int main(void)
{
	strcpy(dir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	TT_RUN(test_env_scrubbed);
	TT_RUN(test_own_process_group);
	TT_RUN(test_exec_failure_reported);
	TT_RUN(test_stderr_to_file);
	TT_RUN(test_only_kept_fd_inherited);
	TT_RUN(test_secret_names);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TT_DONE();
}
