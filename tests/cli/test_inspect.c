/*
 * test_inspect.c - the inspection commands (runs, status, metrics, logs,
 * incidents, incident, report, replay, attach) run as the real `tend`
 * binary (TEND_BIN) in a workspace made by `tend init`, whose store this
 * program fills through the store API with a realistic run: two attempts
 * with a rollback between them, NaN losses, evaluations, logs of every
 * stream, incidents with evidence. Checks output, exit codes, JSON that
 * json_parse accepts, following a run that changes underneath, Ctrl-C,
 * and that docs/cli.md documents every command `tend help` lists.
 */
#include "json.h"
#include "store.h"
#include "tend.h"
#include "tt.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64], ws[128];
static const char *bin;

#define T0 1764460800.0 /* 2025-11-30 00:00:00 UTC */

/* ---- running tend ------------------------------------------------------ */

typedef struct result {
	int status; /* exit code; -1 killed by a signal; -2 timed out */
	char *out, *err;
} result;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb"), *m;
	char *buf = NULL;
	size_t len = 0;
	int ch;
	m = open_memstream(&buf, &len);
	while (f && (ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(m);
	if (f)
		fclose(f);
	return buf;
}

static void result_free(result *r)
{
	free(r->out);
	free(r->err);
}

/* Starts tend with argv[1..] in the workspace (found from the current
 * directory), output to files named by tag under tmpdir. */
static pid_t spawn(const char *tag, const char *dir, const char **argv)
{
	char out[128], err[128];
	snprintf(out, sizeof out, "%s/%s.out", tmpdir, tag);
	snprintf(err, sizeof err, "%s/%s.err", tmpdir, tag);
	argv[0] = bin;
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 || chdir(dir) < 0)
			_exit(126);
		unsetenv("TEND_WORKSPACE");
		setenv("TZ", "UTC", 1);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static result finish(const char *tag, pid_t pid, int timeout_ms)
{
	char out[128], err[128];
	result r = {-2, NULL, NULL};
	int st;
	for (int waited = 0; pid > 0; waited += 10) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			break;
		}
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	snprintf(out, sizeof out, "%s/%s.out", tmpdir, tag);
	snprintf(err, sizeof err, "%s/%s.err", tmpdir, tag);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

/* Runs `tend ARGS...` (NULL-ended) in dir and waits up to 20 s. */
static result run_in(const char *dir, ...)
{
	const char *argv[24] = {NULL};
	int n = 1;
	va_list ap;
	va_start(ap, dir);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return finish("fg", spawn("fg", dir, argv), 20000);
}

#define run(...) run_in(ws, __VA_ARGS__, NULL)

/* Parses text as one JSON document; NULL (and a failed check) if not. */
static json_doc *parse(const char *text)
{
	json_doc *doc = NULL;
	int rc = json_parse(&doc, text ? text : "", text ? strlen(text) : 0, NULL);
	if (rc < 0)
		fprintf(stderr, "not JSON (%s): %s\n", tend_error_last(), text ? text : "");
	return doc;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- a realistic store -------------------------------------------------- */

static store *st;
static int64_t r1, r2, r3;

static double loss_at(int64_t step)
{
	return 2 + 3 * exp(-(double)step / 50);
}

static void put_step(int64_t run, int attempt, int64_t step, double loss)
{
	double t = T0 + (double)step * 0.5;
	store_metric_put(st, run, attempt, step, "loss", loss, t);
	store_metric_put(st, run, attempt, step, "step_time_s", 0.5, t);
	store_metric_put(st, run, attempt, step, "tokens_per_s", 1000 + (double)step, t);
	store_metric_put(st, run, attempt, step, "grad_norm", 1.0, t);
	store_metric_put(st, run, attempt, step, "lr", 3e-4, t);
	if (step % 20 == 0)
		store_metric_put(st, run, attempt, step, "val_loss", loss_at(step) + 0.1, t);
}

static void put_log(int64_t run, int attempt, store_stream s, const char *line)
{
	store_log_put(st, run, attempt, T0 + 1.25, s, line, strlen(line));
}

static void put_incident(int64_t run, int64_t onset, const char *evidence)
{
	store_incident in = {
		.run_id = run, .kind = "nonfinite", .severity = "critical",
		.signature = "nonfinite:loss", .onset_step = onset,
		.first_t = T0 + (double)onset * 0.5, .evidence = evidence,
		.summary = "loss is NaN",
	};
	int64_t id;
	int fresh;
	TT_CHECK_RC(store_incident_upsert(st, &id, &fresh, &in), 0);
}

/* r1: attempt 1 runs steps 1..80 (NaN loss at 70), is rolled back to the
 * checkpoint at 60, attempt 2 runs 61..120 (NaN loss at 100). Final
 * timeline 1..120, 20 steps lost, 120 x 0.5 s productive in 100 s wall. */
static void fill_r1(void)
{
	int n;
	TT_CHECK_RC(store_run_create(st, &r1, "r1", "run:\n  steps: 120\n", ws), 0);
	store_run_set_started(st, r1, 4242, T0);
	store_attempt_begin(st, &n, r1, "start", NULL, STORE_NONE, 4243, T0);
	store_batch_begin(st);
	for (int64_t s = 1; s <= 80; s++)
		put_step(r1, 1, s, s == 70 ? NAN : loss_at(s));
	store_batch_commit(st);
	put_log(r1, 1, STORE_STDOUT, "step 1 loss 4.94");
	put_log(r1, 1, STORE_STDERR, "warning: slow data loader");
	put_log(r1, 1, STORE_MALFORMED, "truncated JSON: {\"step\":5");
	put_incident(r1, 70, "{\"value\":null,\"baseline\":2.9,\"threshold\":0,"
		     "\"steps\":[68,69,70],\"values\":[2.9,2.9,null]}");
	store_incident_resolve(st, 1, T0 + 36, "rolled back to step 60");
	store_event_put(st, r1, 1, T0 + 40, 80, "rollback", "nonfinite: roll back", NULL);
	put_log(r1, 1, STORE_EVENT, "rollback to step 60");
	store_attempt_end(st, r1, 1, 0, STORE_NONE, T0 + 40);
	store_attempt_begin(st, &n, r1, "nonfinite", "ckpt-60.bin", 60, 4244, T0 + 41);
	store_batch_begin(st);
	for (int64_t s = 61; s <= 120; s++)
		put_step(r1, 2, s, s == 100 ? NAN : loss_at(s));
	store_batch_commit(st);
	put_incident(r1, 100, "{\"value\":null,\"baseline\":2.4,\"threshold\":0,"
		     "\"steps\":[95,96,97,98,99,100],"
		     "\"values\":[2.47,2.44,2.43,2.42,2.40,null]}");
	store_run_set_state(st, r1, "finished");
	store_run_set_ended(st, r1, 0, T0 + 100);
}

static void fill(void)
{
	char path[192];
	int64_t empty;
	int n;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	TT_CHECK_RC(store_open(&st, path, 0), 0);
	fill_r1();
	TT_CHECK_RC(store_run_create(st, &empty, "empty", "", ws), 0);
	TT_CHECK_RC(store_run_create(st, &r3, "r3", "", ws), 0);
	store_run_set_state(st, r3, "running");
	/* r2, the newest, is running: 10 of 50 steps so far. */
	TT_CHECK_RC(store_run_create(st, &r2, "r2", "run:\n  steps: 50\n", ws), 0);
	store_run_set_state(st, r2, "running");
	store_run_set_started(st, r2, 4245, (double)time(NULL) - 20);
	store_attempt_begin(st, &n, r2, "start", NULL, STORE_NONE, 4246, T0);
	for (int64_t s = 1; s <= 10; s++)
		put_step(r2, 1, s, loss_at(s));
}

/* ---- commands ----------------------------------------------------------- */

static void test_help_and_docs(void)
{
	result r = run("help");
	char path[512], *doc;
	snprintf(path, sizeof path, "%s/docs/cli.md", getenv("TEND_SOURCE_ROOT"));
	doc = slurp(path);
	TT_CHECK(r.status == 0);
	TT_REQUIRE(doc && r.out);
	const char *p = strstr(r.out, "Commands:\n");
	TT_REQUIRE(p);
	int found = 0;
	for (p = strchr(p, '\n') + 1; strncmp(p, "  ", 2) == 0; p = strchr(p, '\n') + 1) {
		char name[64], head[96];
		if (sscanf(p, " %63s", name) != 1)
			break;
		snprintf(head, sizeof head, "\n## tend %s\n", name);
		if (!strstr(doc, head))
			fprintf(stderr, "docs/cli.md has no \"## tend %s\" section\n", name);
		TT_CHECK(strstr(doc, head) != NULL);
		found++;
	}
	TT_CHECK(found >= 17); /* 8 before these, 9 of these */
	free(doc);
	result_free(&r);

	const char *mine[] = {"runs", "status", "metrics", "logs", "incidents",
		"incident", "report", "replay", "attach"};
	for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
		char want[64];
		r = run(mine[i], "--help");
		snprintf(want, sizeof want, "usage: tend %s", mine[i]);
		TT_CHECK(r.status == 0);
		TT_CHECK_HAS(r.out, want);
		result_free(&r);
	}
}

static void test_runs(void)
{
	result r = run("runs");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "NAME");
	TT_CHECK_HAS(r.out, "OPEN INCIDENTS");
	TT_CHECK_HAS(r.out, "r1     finished  2025-11-30 00:00:00   120");
	TT_CHECK_HAS(r.out, "60.0%");
	TT_CHECK(count_lines(r.out) == 5);
	result_free(&r);

	r = run("runs", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	TT_REQUIRE(doc);
	const json_val *a = json_root(doc), *x = json_at(a, 0);
	TT_CHECK(json_len(a) == 4);
	TT_CHECK_STR(json_str(json_get(x, "name"), NULL), "r1");
	TT_CHECK(json_num(json_get(x, "last_step")) == 120);
	TT_CHECK(json_num(json_get(x, "total_steps")) == 120);
	TT_CHECK(fabs(json_num(json_get(x, "ett")) - 0.6) < 1e-9);
	TT_CHECK(json_num(json_get(x, "lost_steps")) == 20);
	TT_CHECK(json_num(json_get(x, "attempts")) == 2);
	TT_CHECK(json_num(json_get(x, "open_incidents")) == 1);
	TT_CHECK(json_num(json_get(x, "incidents")) == 2);
	TT_CHECK(fabs(json_num(json_get(x, "last_loss")) - loss_at(120)) < 1e-12);
	TT_CHECK(fabs(json_num(json_get(x, "best_val_loss")) - loss_at(120) - 0.1) < 1e-12);
	TT_CHECK(json_type(json_get(json_at(a, 1), "last_loss")) == JSON_NULL);
	json_doc_free(doc);
	result_free(&r);

	r = run("runs", "--bogus");
	TT_CHECK(r.status == 2);
	TT_CHECK_HAS(r.err, "usage: tend runs [--json]");
	result_free(&r);
}

static void test_status(void)
{
	result r = run("status");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "supervisor  none\n");
	TT_CHECK_HAS(r.out, "run         r2 (running)\n");
	TT_CHECK_HAS(r.out, "step        10 / 50 (20.0%)\n");
	TT_CHECK_HAS(r.out, "ETA ");
	result_free(&r);

	r = run("status", "r1", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	TT_REQUIRE(doc);
	const json_val *run1 = json_get(json_root(doc), "run");
	TT_CHECK(json_type(json_get(json_root(doc), "supervisor")) == JSON_NULL);
	TT_CHECK(fabs(json_num(json_get(run1, "ett")) - 0.6) < 1e-9);
	TT_CHECK(json_num(json_get(run1, "wall_s")) == 100);
	TT_CHECK(json_num(json_get(run1, "productive_s")) == 60);
	TT_CHECK(json_type(json_get(run1, "eta_s")) == JSON_NULL);
	json_doc_free(doc);
	result_free(&r);

	r = run("status", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_STR(r.err, "tend: status: no run named 'nope' in this workspace; "
		     "`tend runs` lists them\n");
	result_free(&r);
}

/* A supervisor holding the workspace lock: status names it, and it is the
 * run status and attach show by default. */
static void test_status_supervised(void)
{
	char path[192], line[64];
	snprintf(path, sizeof path, "%s/.tend-supervisor.lock", ws);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	TT_REQUIRE(fd >= 0);
	TT_CHECK(flock(fd, LOCK_EX) == 0);
	int n = snprintf(line, sizeof line, "%d r1\n", (int)getpid());
	TT_CHECK(write(fd, line, (size_t)n) == n);

	result r = run("status");
	char want[96];
	snprintf(want, sizeof want, "supervisor  running (pid %d, run r1)\n", (int)getpid());
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, want);
	TT_CHECK_HAS(r.out, "run         r1 (finished)\n");
	TT_CHECK_HAS(r.out, "ETT         60.0% (productive 1m00s of 1m40s wall)\n");
	TT_CHECK_HAS(r.out, "lost        20 steps in 1 restart\n");
	TT_CHECK_HAS(r.out, "incidents   1 open (2 in all)\n");
	result_free(&r);

	r = run("status", "--json");
	json_doc *doc = parse(r.out);
	const json_val *sup = json_get(json_root(doc), "supervisor");
	TT_CHECK(json_num(json_get(sup, "pid")) == getpid());
	TT_CHECK_STR(json_str(json_get(sup, "run"), NULL), "r1");
	json_doc_free(doc);
	result_free(&r);
	close(fd);
	unlink(path);
}

static void test_metrics(void)
{
	result r = run("metrics", "r1");
	TT_CHECK(r.status == 0);
	TT_CHECK_STR(r.out, "grad_norm\nloss\nlr\nstep_time_s\ntokens_per_s\nval_loss\n");
	result_free(&r);

	r = run("metrics", "r1", "--name", "loss");
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 140); /* 80 + 60: steps 61..80 twice */
	TT_CHECK(r.out && strncmp(r.out, "1\t4.9405", 8) == 0);
	TT_CHECK_HAS(r.out, "\n70\tnan\n");
	TT_CHECK_HAS(r.out, "\n100\tnan\n");
	result_free(&r);

	r = run("metrics", "r1", "--name", "loss", "--since", "118", "--json");
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 3);
	json_doc *doc = NULL;
	/* JSON lines: the whole is not one document, each line is. */
	TT_CHECK(json_parse(&doc, r.out ? r.out : "", r.out ? strlen(r.out) : 0, NULL) < 0);
	char *nl = r.out ? strchr(r.out, '\n') : NULL;
	if (nl)
		*nl = '\0';
	doc = parse(r.out);
	TT_CHECK(json_num(json_get(json_root(doc), "step")) == 118);
	TT_CHECK(json_num(json_get(json_root(doc), "attempt")) == 2);
	TT_CHECK(json_num(json_get(json_root(doc), "value")) == loss_at(118));
	json_doc_free(doc);
	result_free(&r);

	r = run("metrics", "r1", "--name", "loss", "--since", "100", "--json");
	nl = r.out ? strchr(r.out, '\n') : NULL;
	if (nl)
		*nl = '\0';
	doc = parse(r.out);
	TT_CHECK(json_type(json_get(json_root(doc), "value")) == JSON_NULL);
	json_doc_free(doc);
	result_free(&r);

	r = run("metrics", "r1", "--json");
	doc = parse(r.out);
	TT_CHECK(json_len(json_root(doc)) == 6);
	json_doc_free(doc);
	result_free(&r);
}

static void test_metrics_errors(void)
{
	result r = run("metrics", "nope", "--name", "loss");
	TT_CHECK(r.status == 1);
	TT_CHECK_STR(r.err, "tend: metrics: no run named 'nope' in this workspace; "
		     "`tend runs` lists them\n");
	result_free(&r);

	r = run("metrics", "r1", "--name", "bogus");
	TT_CHECK(r.status == 1);
	TT_CHECK_STR(r.err, "tend: metrics: run r1 has no metric named 'bogus'; "
		     "`tend metrics r1` lists them\n");
	result_free(&r);

	const char *bad[][4] = {
		{"metrics", NULL}, {"metrics", "r1", "--since", "abc"},
		{"metrics", "r1", "--follow", NULL}, {"metrics", "r1", "r2", NULL},
		{"metrics", "r1", "--nope", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *argv[6] = {NULL, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
		r = finish("fg", spawn("fg", ws, argv), 20000);
		TT_CHECK(r.status == 2);
		TT_CHECK(r.err && *r.err);
		TT_CHECK_STR(r.out, "");
		result_free(&r);
	}
}

static void test_logs(void)
{
	result r = run("logs", "r1");
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 4);
	TT_CHECK_HAS(r.out, "2025-11-30 00:00:01.250 stdout    step 1 loss 4.94\n");
	TT_CHECK_HAS(r.out, "2025-11-30 00:00:01.250 stderr    warning: slow data loader\n");
	TT_CHECK_HAS(r.out, " malformed truncated JSON: {\"step\":5\n");
	TT_CHECK_HAS(r.out, " event     rollback to step 60\n");
	result_free(&r);

	r = run("logs", "r1", "--stream", "stderr", "--json");
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 1);
	json_doc *doc = parse(r.out);
	TT_CHECK_STR(json_str(json_get(json_root(doc), "line"), NULL),
		     "warning: slow data loader");
	TT_CHECK_STR(json_str(json_get(json_root(doc), "stream"), NULL), "stderr");
	json_doc_free(doc);
	result_free(&r);

	r = run("logs", "r1", "--stream", "stdin");
	TT_CHECK(r.status == 2);
	TT_CHECK_STR(r.err, "tend logs: --stream: expected stdout, stderr, event or "
		     "malformed, got 'stdin'\n");
	result_free(&r);

	r = run("logs", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_HAS(r.err, "no run named 'nope'");
	result_free(&r);
}

static void test_incidents(void)
{
	result r = run("incidents");
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 3);
	TT_CHECK_HAS(r.out, "ID  RUN  KIND       SEVERITY  STATE     ONSET  LAST  COUNT  SUMMARY\n");
	TT_CHECK_HAS(r.out, " 1  r1   nonfinite  critical  resolved     70    70      1  loss is NaN\n");
	result_free(&r);

	r = run("incidents", "r1", "--state", "open", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	const json_val *a = json_root(doc);
	TT_CHECK(json_len(a) == 1);
	TT_CHECK(json_num(json_get(json_at(a, 0), "onset_step")) == 100);
	TT_CHECK(json_type(json_get(json_at(a, 0), "evidence")) == JSON_OBJ);
	json_doc_free(doc);
	result_free(&r);

	r = run("incidents", "r2");
	TT_CHECK(r.status == 0);
	TT_CHECK_STR(r.out, "no incidents\n");
	result_free(&r);

	r = run("incidents", "--state", "closed");
	TT_CHECK(r.status == 2);
	result_free(&r);
	r = run("incidents", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_HAS(r.err, "no run named 'nope'");
	result_free(&r);
}

static void test_incident_show(void)
{
	result r = run("incident", "show", "2");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "incident    2: nonfinite (critical), open\n");
	TT_CHECK_HAS(r.out, "signature   nonfinite:loss\n");
	TT_CHECK_HAS(r.out, "onset       step 100 at 2025-11-30 00:00:50\n");
	TT_CHECK_HAS(r.out, "evidence    value NaN, baseline 2.4, threshold 0\n");
	TT_CHECK_HAS(r.out, "        95  2.47\n");
	TT_CHECK_HAS(r.out, "       100  nan\n");
	TT_CHECK_HAS(r.out, "  \u2588\u2585\u2584\u2583\u2581!\n");
	result_free(&r);

	r = run("incident", "show", "1", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	const json_val *o = json_root(doc);
	TT_CHECK_STR(json_str(json_get(o, "state"), NULL), "resolved");
	TT_CHECK_STR(json_str(json_get(o, "resolution"), NULL), "rolled back to step 60");
	TT_CHECK_STR(json_str(json_get(o, "run"), NULL), "r1");
	TT_CHECK(json_len(json_get(json_get(o, "evidence"), "steps")) == 3);
	json_doc_free(doc);
	result_free(&r);

	r = run("incident", "show", "99");
	TT_CHECK(r.status == 1);
	TT_CHECK_STR(r.err, "tend: incident show: no incident 99; `tend incidents` "
		     "lists them\n");
	result_free(&r);
	r = run("incident", "show", "x1");
	TT_CHECK(r.status == 2);
	result_free(&r);
	r = run("incident", "list");
	TT_CHECK(r.status == 2);
	TT_CHECK_HAS(r.err, "usage: tend incident show ID [--json]");
	result_free(&r);
}

static void test_report(void)
{
	result r = run("report", "r1");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "steps       120 on the final timeline; 2 attempts, 1 restart, "
		     "20 steps lost\n");
	TT_CHECK_HAS(r.out, "ETT         60.0% (productive 1m00s)\n");
	TT_CHECK_HAS(r.out, "  #1 nonfinite (critical) steps 70..70 x1, resolved: loss is NaN\n");
	TT_CHECK_HAS(r.out, "loss over steps 1..120 (min 2.2722, max 4.9406; ! = NaN or inf):\n");
	/* 120 steps in 60 columns: step 100 is in column 49 (0-based), step 70
	 * in column 34. */
	const char *sp = r.out ? strstr(r.out, "inf):\n  ") : NULL;
	TT_REQUIRE(sp);
	sp += 8;
	TT_CHECK(strncmp(sp, "\u2588", 3) == 0);
	int col = 0;
	const char *bang = NULL;
	for (const char *p = sp; *p && *p != '\n'; col++) {
		if (*p == '!' && !bang) {
			bang = p;
			TT_CHECK(col == 49);
		}
		p += (*p & 0x80) ? 3 : 1;
	}
	TT_CHECK(col == 60 && bang);
	char caret[128], marks[128];
	snprintf(caret, sizeof caret, "\n  %34s^%14s^\n", "", "");
	snprintf(marks, sizeof marks, "\n  %34sn%14sn\n  n = nonfinite\n", "", "");
	TT_CHECK_HAS(r.out, caret);
	TT_CHECK_HAS(r.out, marks);
	result_free(&r);

	r = run("report", "r1", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	const json_val *o = json_root(doc);
	TT_CHECK(json_len(json_get(o, "incident_list")) == 2);
	TT_CHECK(json_num(json_get(o, "lost_steps")) == 20);
	TT_CHECK(json_num(json_get(o, "best_val_step")) == 120);
	const char *marksj = json_str(json_get(o, "marks"), NULL);
	TT_CHECK(marksj && strlen(marksj) == 50 && marksj[34] == 'n' && marksj[49] == 'n');
	json_doc_free(doc);
	result_free(&r);

	r = run("report", "empty");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "loss        no values recorded\n");
	result_free(&r);
	r = run("report", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_HAS(r.err, "tend: report: no run named 'nope'");
	result_free(&r);
	r = run("report");
	TT_CHECK(r.status == 2);
	result_free(&r);
}

/* ---- replay ------------------------------------------------------------- */

/* A 300-step metrics file: smooth loss with a little deterministic noise,
 * an eval every 50 steps, a heartbeat, a malformed line; with faults, a
 * NaN loss at step 150 and the loss x6 at steps 220..224. */
static void write_metrics(const char *path, int faults)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	for (int s = 1; s <= 300; s++) {
		double loss = 2 + 3 * exp(-s / 80.0) + 0.02 * sin(s * 1.7);
		char ls[40];
		if (faults && s >= 220 && s <= 224)
			loss *= 6;
		snprintf(ls, sizeof ls, "%.9g", loss);
		fprintf(f, "{\"step\":%d,\"t\":%.1f,\"loss\":%s,\"grad_norm\":%.6f,"
			"\"lr\":0.0003,\"tokens_per_s\":%.3f,\"step_time_s\":0.5}\n", s,
			T0 + s, faults && s == 150 ? "NaN" : ls, 1 + 0.05 * sin(s * 2.3),
			1000 + 10 * sin(s));
		if (s % 50 == 0)
			fprintf(f, "{\"type\":\"eval\",\"step\":%d,\"val_loss\":%.6f}\n", s, loss);
	}
	fputs("{\"type\":\"heartbeat\",\"step\":300}\n{\"step\":301,\"loss\":\"x\"}\n", f);
	fclose(f);
}

static void test_replay_files(void)
{
	char clean[128], bad[128];
	snprintf(clean, sizeof clean, "%s/clean.jsonl", tmpdir);
	snprintf(bad, sizeof bad, "%s/bad.jsonl", tmpdir);
	write_metrics(clean, 0);
	write_metrics(bad, 1);

	result r = run("replay", bad);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "replayed 308 rows as 307 samples (0 restarts, 1 malformed)");
	TT_CHECK_HAS(r.out, "nonfinite");
	TT_CHECK_HAS(r.out, "loss_spike");
	result_free(&r);

	r = run("replay", bad, "--json");
	json_doc *doc = parse(r.out);
	const json_val *inc = json_get(json_root(doc), "incidents");
	int nonfinite = 0, spike = 0;
	for (size_t i = 0; i < json_len(inc); i++) {
		const char *k = json_str(json_get(json_at(inc, i), "kind"), NULL);
		int64_t onset = (int64_t)json_num(json_get(json_at(inc, i), "onset_step"));
		nonfinite += k && strcmp(k, "nonfinite") == 0 && onset == 150;
		spike += k && strcmp(k, "loss_spike") == 0 && onset >= 220 && onset <= 224;
	}
	TT_CHECK(nonfinite == 1 && spike == 1);
	TT_CHECK(json_num(json_get(json_root(doc), "malformed")) == 1);
	json_doc_free(doc);
	result_free(&r);

	r = run("replay", clean, "--json");
	TT_CHECK(r.status == 0);
	doc = parse(r.out);
	inc = json_get(json_root(doc), "incidents");
	TT_CHECK(doc != NULL);
	for (size_t i = 0; i < json_len(inc); i++) {
		const json_val *x = json_at(inc, i);
		TT_CHECK_STR(json_str(json_get(x, "kind"), NULL), "plateau");
		TT_CHECK_STR(json_str(json_get(x, "severity"), NULL), "info");
	}
	json_doc_free(doc);
	result_free(&r);

	/* The monitors' settings come from tend.yaml, or from --config. */
	char cfgp[128];
	snprintf(cfgp, sizeof cfgp, "%s/quiet.yaml", tmpdir);
	FILE *f = fopen(cfgp, "w");
	if (f) {
		fputs("monitors:\n  nonfinite:\n    enabled: false\n  loss_spike:\n"
		      "    enabled: false\n", f);
		fclose(f);
	}
	r = run("replay", bad, "--config", cfgp);
	TT_CHECK(r.status == 0);
	TT_CHECK(r.out && !strstr(r.out, "nonfinite") && !strstr(r.out, "loss_spike"));
	result_free(&r);
}

/* The scaffold's Lua monitors run in replay too, from --scaffold. */
static void test_replay_lua(void)
{
	char dir[128], path[160], bad[128];
	snprintf(dir, sizeof dir, "%s/scaffold2", tmpdir);
	snprintf(path, sizeof path, "%s/monitors.lua", dir);
	snprintf(bad, sizeof bad, "%s/bad.jsonl", tmpdir);
	mkdir(dir, 0700);
	FILE *f = fopen(path, "w");
	TT_REQUIRE(f);
	fputs("local M = {}\n"
	      "function M.check(samples)\n"
	      "  for _, s in ipairs(samples) do\n"
	      "    if s.loss and s.loss > 10 then\n"
	      "      return {{kind = \"big_loss\", severity = \"warning\", step = s.step,\n"
	      "               summary = \"loss over 10\"}}\n"
	      "    end\n"
	      "  end\n"
	      "end\n"
	      "return M\n", f);
	fclose(f);
	result r = run("replay", bad, "--scaffold", dir);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "user:big_loss");
	TT_CHECK_HAS(r.out, "user:big_loss: loss over 10");
	result_free(&r);

	f = fopen(path, "w");
	TT_REQUIRE(f);
	fputs("local M = {}\nfunction M.check(s) error('boom') end\nreturn M\n", f);
	fclose(f);
	r = run("replay", bad, "--scaffold", dir);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.err, "tend replay: 2 calls of monitors.lua failed; the first: ");
	TT_CHECK_HAS(r.err, "boom");
	TT_CHECK_HAS(r.out, "loss_spike"); /* the builtin detectors still ran */
	result_free(&r);
}

static void test_replay_run(void)
{
	result r = run("replay", "r1", "--json");
	TT_CHECK(r.status == 0);
	json_doc *doc = parse(r.out);
	const json_val *o = json_root(doc), *inc = json_get(o, "incidents");
	TT_CHECK(json_num(json_get(o, "rows")) == 140 * 5 + 7);
	TT_CHECK(json_num(json_get(o, "restarts")) == 1);
	TT_CHECK(json_num(json_get(o, "samples")) == 140 + 7);
	TT_REQUIRE(json_len(inc) >= 1);
	TT_CHECK_STR(json_str(json_get(json_at(inc, 0), "kind"), NULL), "nonfinite");
	TT_CHECK(json_num(json_get(json_at(inc, 0), "onset_step")) == 70);
	TT_CHECK(json_num(json_get(json_at(inc, 0), "count")) == 2);
	TT_CHECK(json_num(json_get(json_at(inc, 0), "last_step")) == 100);
	json_doc_free(doc);
	result_free(&r);

	r = run("replay", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_STR(r.err, "tend: replay: no run named 'nope' in this workspace; "
		     "`tend runs` lists them\n");
	result_free(&r);
	r = run("replay");
	TT_CHECK(r.status == 2);
	result_free(&r);
	/* Outside a workspace a file still replays, with the defaults. */
	char bad[128];
	snprintf(bad, sizeof bad, "%s/bad.jsonl", tmpdir);
	r = run_in(tmpdir, "replay", bad, NULL);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "loss_spike");
	result_free(&r);
	r = run_in(tmpdir, "replay", "r1", NULL);
	TT_CHECK(r.status == 2);
	TT_CHECK_HAS(r.err, "tend: replay r1: no such file, and no workspace");
	result_free(&r);
}

/* ---- following ---------------------------------------------------------- */

static void test_attach_ended(void)
{
	result r = run("attach", "r1");
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "attached to run r1 (finished)\n");
	TT_CHECK_HAS(r.out, "stderr    warning: slow data loader\n");
	TT_CHECK_HAS(r.out, "r1 finished | step 120/120 | loss 2.2722 | 1120 tok/s | ETA - | "
		     "ETT 60.0% | lost 20 | incidents 1 open\n");
	result_free(&r);
	r = run("attach", "nope");
	TT_CHECK(r.status == 1);
	TT_CHECK_HAS(r.err, "no run named 'nope'");
	result_free(&r);
}

/* Ctrl-C ends a follow cleanly (exit 0) while the run goes on. */
static void test_interrupt(void)
{
	const char *cmds[][6] = {
		{NULL, "logs", "r3", "--follow", NULL},
		{NULL, "metrics", "r3", "--name", "loss", "--follow"},
		{NULL, "attach", "r3", NULL},
	};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		const char *argv[8] = {0};
		memcpy(argv, cmds[i], sizeof cmds[i]);
		pid_t pid = spawn("bg", ws, argv);
		usleep(500000);
		TT_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still following */
		kill(pid, SIGINT);
		result r = finish("bg", pid, 3000);
		TT_CHECK(r.status == 0);
		result_free(&r);
	}
}

/* metrics --follow on r2 while it goes on, restarts and finishes. */
static void test_follow(void)
{
	const char *argv[] = {NULL, "metrics", "r2", "--name", "loss", "--follow", NULL};
	const char *largv[] = {NULL, "logs", "r2", "--follow", NULL};
	pid_t pid = spawn("follow", ws, argv);
	pid_t lpid = spawn("lfollow", ws, largv);
	int n;
	usleep(400000);
	for (int64_t s = 11; s <= 15; s++)
		put_step(r2, 1, s, loss_at(s));
	put_log(r2, 1, STORE_STDOUT, "before the restart");
	usleep(400000);
	store_attempt_begin(st, &n, r2, "crash", "ckpt-12.bin", 12, 4247, T0 + 9);
	for (int64_t s = 13; s <= 16; s++)
		put_step(r2, 2, s, 1.0);
	put_log(r2, 2, STORE_STDOUT, "after the restart");
	store_run_set_state(st, r2, "finished");

	result r = finish("follow", pid, 5000);
	TT_CHECK(r.status == 0);
	TT_CHECK(count_lines(r.out) == 19);
	TT_CHECK_HAS(r.out, "\n15\t");
	TT_CHECK_HAS(r.out, "\n13\t1\n14\t1\n15\t1\n16\t1\n");
	result_free(&r);
	r = finish("lfollow", lpid, 5000);
	TT_CHECK(r.status == 0);
	TT_CHECK_HAS(r.out, "stdout    before the restart\n");
	TT_CHECK_HAS(r.out, "stdout    after the restart\n");
	result_free(&r);
}

static void test_no_workspace(void)
{
	result r = run_in(tmpdir, "runs", NULL);
	TT_CHECK(r.status == 2);
	TT_CHECK_HAS(r.err, "tend: runs: not inside a tend workspace");
	result_free(&r);
}

/* ---- main ------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	bin = getenv("TEND_BIN");
	if (!bin || !getenv("TEND_SOURCE_ROOT")) {
		fprintf(stderr, "TEND_BIN and TEND_SOURCE_ROOT must be set\n");
		return 77;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(ws, sizeof ws, "%s/ws", tmpdir);
	result r = run_in(tmpdir, "init", ws, NULL);
	if (r.status != 0) {
		fprintf(stderr, "tend init failed: %s", r.err ? r.err : "");
		return 1;
	}
	result_free(&r);
	fill();

	TT_RUN(test_help_and_docs);
	TT_RUN(test_runs);
	TT_RUN(test_status);
	TT_RUN(test_status_supervised);
	TT_RUN(test_metrics);
	TT_RUN(test_metrics_errors);
	TT_RUN(test_logs);
	TT_RUN(test_incidents);
	TT_RUN(test_incident_show);
	TT_RUN(test_report);
	TT_RUN(test_replay_files);
	TT_RUN(test_replay_lua);
	TT_RUN(test_replay_run);
	TT_RUN(test_attach_ended);
	TT_RUN(test_interrupt);
	TT_RUN(test_follow);
	TT_RUN(test_no_workspace);

	store_close(st);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TT_DONE();
}
