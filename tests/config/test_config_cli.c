/*
 * test_config_cli.c - `tend config` run as a real child process (the binary
 * in TEND_BIN): exit codes, the exact error text on stderr, the printout,
 * and finding the workspace from the current directory.
 */
#include "config.h"
#include "json.h"
#include "tend.h"
#include "tt.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[64];
static const char *bin;

typedef struct result {
	int status; /* exit code, or -1 when it did not exit normally */
	char *out, *err;
} result;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int ch;
	while (f && (ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(m);
	if (f)
		fclose(f);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return;
	}
	fputs(text, f);
	fclose(f);
}

/* Runs tend with argv (NULL-ended) in dir, TEND_WORKSPACE set to ws or
 * removed; stdout and stderr go through files under tmpdir. */
static result run(const char *dir, const char *ws, ...)
{
	const char *argv[16] = {bin};
	char out[128], err[128];
	int n = 1;
	va_list ap;
	va_start(ap, ws);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	snprintf(out, sizeof out, "%s/stdout", tmpdir);
	snprintf(err, sizeof err, "%s/stderr", tmpdir);

	result r = {-1, NULL, NULL};
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 || chdir(dir) < 0)
			_exit(126);
		if (ws)
			setenv("TEND_WORKSPACE", ws, 1);
		else
			unsetenv("TEND_WORKSPACE");
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
		r.status = WEXITSTATUS(st);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

static void result_free(result *r)
{
	free(r->out);
	free(r->err);
}

static char ws[128], good[160], bad[160];

static void setup(void)
{
	char sub[192];
	snprintf(ws, sizeof ws, "%s/ws", tmpdir);
	snprintf(sub, sizeof sub, "%s/ws/runs", tmpdir);
	mkdir(ws, 0700);
	mkdir(sub, 0700);
	snprintf(good, sizeof good, "%s/tend.yaml", ws);
	write_file(good, "run:\n  steps: 5000\ntrainer:\n  device: cpu\n");
	snprintf(bad, sizeof bad, "%s/bad.yaml", tmpdir);
	write_file(bad, "# a comment\nrun:\n  steps: abc\n");
}

static void test_check_file(void)
{
	result r = run(tmpdir, NULL, "config", "check", "--config", good, NULL);
	char first[256];
	snprintf(first, sizeof first, "# %s: ok; the settings in effect:\n", good);
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strncmp(r.out, first, strlen(first)));
	TT_CHECK_HAS(r.out, "\nrun:\n  command: []\n  steps: 5000\n");
	TT_CHECK_HAS(r.out, "  device: cpu\n");
	TT_CHECK_HAS(r.out, "  listen: \"127.0.0.1:8765\"\n");
	TT_CHECK_STR(r.err, "");

	/* What it prints is itself a config that gives the same settings. */
	char printed[160];
	cfg *a = NULL, *b = NULL;
	snprintf(printed, sizeof printed, "%s/printed.yaml", tmpdir);
	write_file(printed, r.out ? r.out : "");
	TT_CHECK_RC(cfg_load(&a, printed), 0);
	TT_CHECK_RC(cfg_load(&b, good), 0);
	TT_CHECK(a && b && cfg_equal(a, b));
	cfg_free(a);
	cfg_free(b);
	result_free(&r);
}

static void test_check_json(void)
{
	result r = run(tmpdir, NULL, "config", "check", "--json", "--config", good, NULL);
	json_doc *doc = NULL;
	TT_CHECK(r.status == 0);
	TT_REQUIRE(r.out);
	TT_CHECK_RC(json_parse(&doc, r.out, strlen(r.out), NULL), 0);
	const json_val *root = json_root(doc);
	TT_CHECK(json_num(json_get(json_get(root, "run"), "steps")) == 5000);
	TT_CHECK_STR(json_str(json_get(json_get(root, "trainer"), "device"), NULL), "cpu");
	TT_CHECK(json_num(json_get(json_get(json_get(root, "monitors"), "loss_spike"),
				   "window")) == 128);
	TT_CHECK(json_type(json_get(json_get(root, "gates"), "human_approval")) == JSON_BOOL);
	json_doc_free(doc);
	result_free(&r);
}

static void test_check_error(void)
{
	result r = run(tmpdir, NULL, "config", "check", "--config", bad, NULL);
	char want[256];
	snprintf(want, sizeof want,
		 "%s:3:10: run.steps: expected an integer >= 1, got \"abc\"\n", bad);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, want);
	TT_CHECK_STR(r.out, "");
	result_free(&r);

	char missing[160];
	snprintf(missing, sizeof missing, "%s/none.yaml", tmpdir);
	r = run(tmpdir, NULL, "config", "check", "--json", "--config", missing, NULL);
	snprintf(want, sizeof want,
		 "%s: no such file; `tend init` writes a commented default\n", missing);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, want);
	TT_CHECK_STR(r.out, "");
	result_free(&r);
}

static void test_finds_workspace(void)
{
	char sub[192], want[256];
	snprintf(sub, sizeof sub, "%s/runs", ws);
	snprintf(want, sizeof want, "# %s: ok;", good);

	result r = run(sub, NULL, "config", "check", NULL); /* walks up from runs/ */
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strncmp(r.out, want, strlen(want)));
	result_free(&r);

	r = run("/", ws, "config", "check", NULL); /* TEND_WORKSPACE */
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strncmp(r.out, want, strlen(want)));
	result_free(&r);

	r = run(tmpdir, NULL, "--workspace", ws, "config", "check", NULL);
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strncmp(r.out, want, strlen(want)));
	result_free(&r);

	r = run(tmpdir, NULL, "config", "check", NULL); /* no tend.yaml up from here */
	TT_CHECK(r.status == 2);
	TT_CHECK_HAS(r.err, "not inside a tend workspace");
	TT_CHECK_STR(r.out, "");
	result_free(&r);

	/* A broken workspace config: the message names the file it found. */
	char broken[192], bws[160];
	snprintf(bws, sizeof bws, "%s/bws", tmpdir);
	mkdir(bws, 0700);
	snprintf(broken, sizeof broken, "%s/tend.yaml", bws);
	write_file(broken, "trainer:\n  device: gpu\n");
	r = run(bws, NULL, "config", "check", NULL);
	snprintf(want, sizeof want, "%s:2:11: trainer.device: expected one of cpu, cuda, "
		 "auto, got \"gpu\"\n", broken);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, want);
	result_free(&r);
}

static void test_default(void)
{
	result r = run(tmpdir, NULL, "config", "default", NULL);
	char path[160];
	cfg *c = NULL, *d = NULL;
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strncmp(r.out, "# tend.yaml", 11));
	snprintf(path, sizeof path, "%s/default.yaml", tmpdir);
	write_file(path, r.out ? r.out : "");
	TT_CHECK_RC(cfg_load(&c, path), 0);
	TT_CHECK_RC(cfg_defaults(&d), 0);
	TT_CHECK(c && d && cfg_equal(c, d));
	cfg_free(c);
	cfg_free(d);
	result_free(&r);
}

static void test_usage(void)
{
	result r = run(tmpdir, NULL, "config", NULL);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, "tend config: missing subcommand; see `tend config --help`\n");
	result_free(&r);
	r = run(tmpdir, NULL, "config", "check", "--verbose", NULL);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, "tend config: unknown option; see `tend config --help`\n");
	result_free(&r);
	r = run(tmpdir, NULL, "config", "check", "--config", NULL);
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, "tend config: --config needs a file; see `tend config --help`\n");
	result_free(&r);
	r = run(tmpdir, NULL, "config", "--help", NULL);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "usage: tend config check [--config FILE] [--json]");
	result_free(&r);
}

int main(void)
{
	bin = getenv("TEND_BIN");
	if (!bin || access(bin, X_OK) != 0) {
		fprintf(stderr, "TEND_BIN not set or not executable: skipped\n");
		return 77;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	setup();
	TT_RUN(test_check_file);
	TT_RUN(test_check_json);
	TT_RUN(test_check_error);
	TT_RUN(test_finds_workspace);
	TT_RUN(test_default);
	TT_RUN(test_usage);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return TT_DONE();
}
