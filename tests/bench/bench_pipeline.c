/*
 * bench_pipeline.c - what the proposal pipeline costs, next to baselines
 * measured in the same run:
 *
 *  (a) one typical proposal (a 10-line change of scaffold.lua): path
 *      rules, apply + commit on its own branch, materialize, static check
 *      (every Lua file loaded and self-tested in the sandbox); ms per
 *      proposal over 100, next to a bare libgit2 commit of an unchanged
 *      tree. Target <= 50 ms.
 *  (b) one promotion: patch_promote (merge commit, working tree forced to
 *      main) + the store's promotion row + the audit row; ms per
 *      promotion, next to the same bare commit. Target <= 50 ms.
 *  (c) the supervisor's ingest rate (metric values/s from a pre-written
 *      metrics.jsonl into the store, through a real `tend run`) with
 *      nothing else running, then while a `tend train` process (an
 *      evaluation arm) trains and a `tend propose` child waits on a model
 *      request that the test server never answers (/hang); the ratio.
 *
 * Real workspace (`tend init`), real git repository, real SQLite file,
 * real child processes. Needs TEND_BIN, TEND_SOURCE_ROOT, TEND_TEST_HTTPD.
 */
#include "audit.h"
#include "fsutil.h"
#include "gate.h"
#include "patch.h"
#include "pipe_int.h"
#include "store.h"
#include "tend.h"

#include <fcntl.h>
#include <git2.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 100
#define LINES 30000 /* metrics lines of one ingest measurement */
#define VALUES_PER_LINE 36

static const char *tend_bin;
static char root[64];

/* The pipeline's denied patterns (pipeline.c), and tend.yaml's default
 * allowed paths. */
static const char *const denied[] = {"tend.yaml", "gates*", "*.yaml", ".git*", "sandbox*"};
static const char *const allowed[] = {"scaffold.lua", "policies.lua", "monitors.lua",
				      "playbook.lua", "hooks/*.lua", "prompts/*.md"};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

static int fail(const char *what)
{
	fprintf(stderr, "bench_pipeline: %s: %s\n", what, tend_error_last());
	return -1;
}

/* ---- child processes ------------------------------------------------------ */

/* Starts `tend --workspace ws ARGS...` (ws NULL: no --workspace) with its
 * output in log. */
static pid_t spawn(const char *ws, const char *log, const char *const *args)
{
	const char *argv[24];
	int n = 0;
	argv[n++] = tend_bin;
	if (ws) {
		argv[n++] = "--workspace";
		argv[n++] = ws;
	}
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("OMP_WAIT_POLICY", "passive", 1);
		execv(tend_bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st = 0;
	if (pid <= 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int tend_run(const char *ws, const char *const *args)
{
	char log[128];
	snprintf(log, sizeof log, "%s/tend.log", root);
	return wait_exit(spawn(ws, log, args));
}

static void kill_wait(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* ---- the workspace ---------------------------------------------------------- */

static int workspace(char *ws, size_t cap, const char *name, const char *yaml)
{
	char path[PATH_MAX + 16];
	snprintf(ws, cap, "%s/%s", root, name);
	if (tend_run(NULL, (const char *const[]){"init", ws, NULL}) != 0)
		return fprintf(stderr, "bench_pipeline: tend init %s failed\n", ws), -1;
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if (fsu_write_atomic(path, yaml, strlen(yaml), 0644) < 0)
		return fail("tend.yaml");
	return tend_run(ws, (const char *const[]){"audit", "accept-gates", "--reason", "bench",
						   NULL}) == 0 ? 0 : -1;
}

/* ---- diffs ---------------------------------------------------------------- */

/* Replaces the one occurrence of find in *text by repl (same length). */
static int edit(char *text, const char *find, const char *repl)
{
	char *p = strstr(text, find);
	if (!p || strstr(p + 1, find) || strlen(find) != strlen(repl))
		return tend_error_set(TEND_EINVAL, "\"%s\" is not in scaffold.lua exactly once",
				      find);
	memcpy(p, repl, strlen(repl));
	return 0;
}

/* Splits text into lines in place; returns the count. */
static size_t lines(char *text, char **v, size_t cap)
{
	size_t n = 0;
	for (char *p = text; *p && n < cap; n++) {
		v[n] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/* A unified diff of path from a to b, which differ in one block of
 * lines: one hunk, three lines of context. Caller frees. */
static char *unified(const char *path, const char *a, const char *b)
{
	static char *la[4096], *lb[4096];
	char *ca = strdup(a), *cb = strdup(b), *out = NULL;
	size_t na = lines(ca, la, 4096), nb = lines(cb, lb, 4096), lo = 0, ea = na, eb = nb;
	while (lo < na && lo < nb && !strcmp(la[lo], lb[lo]))
		lo++;
	while (ea > lo && eb > lo && !strcmp(la[ea - 1], lb[eb - 1]))
		ea--, eb--;
	size_t s = lo > 3 ? lo - 3 : 0, ta = ea + 3 < na ? ea + 3 : na, tb = eb + 3 < nb ? eb + 3 : nb;
	size_t cap = strlen(a) + strlen(b) + 256, k = 0;
	out = malloc(cap);
	k += (size_t)snprintf(out + k, cap - k, "--- a/%s\n+++ b/%s\n@@ -%zu,%zu +%zu,%zu @@\n",
			      path, path, s + 1, ta - s, s + 1, tb - s);
	for (size_t i = s; i < lo; i++)
		k += (size_t)snprintf(out + k, cap - k, " %s\n", la[i]);
	for (size_t i = lo; i < ea; i++)
		k += (size_t)snprintf(out + k, cap - k, "-%s\n", la[i]);
	for (size_t i = lo; i < eb; i++)
		k += (size_t)snprintf(out + k, cap - k, "+%s\n", lb[i]);
	for (size_t i = eb; i < tb; i++)
		k += (size_t)snprintf(out + k, cap - k, " %s\n", lb[i]);
	free(ca);
	free(cb);
	return out;
}

/* The diff that applies edits (pairs of find, replace) to main's scaffold.lua. */
static char *diff_of(patch_repo *r, const char *const *edits, int n)
{
	char *a = NULL, *b = NULL, *d = NULL;
	if (patch_read_blob(&a, NULL, r, "main", "scaffold.lua") < 0)
		return NULL;
	b = strdup(a);
	for (int i = 0; i < n; i++)
		if (edit(b, edits[2 * i], edits[2 * i + 1]) < 0)
			goto done;
	d = unified("scaffold.lua", a, b);
done:
	free(a);
	free(b);
	return d;
}

/* ---- the baseline: a bare commit of main's unchanged tree ------------------ */

static double bare_commit_ms(patch_repo *r, int n)
{
	git_repository *g = patch_repo_git(r);
	git_object *obj = NULL;
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_oid oid;
	double t = 0;
	if (git_revparse_single(&obj, g, "main") < 0 || git_commit_tree(&tree, (git_commit *)obj) < 0 ||
	    git_signature_now(&sig, "bench", "bench@localhost") < 0)
		goto done;
	double t0 = now();
	for (int i = 0; i < n; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "bench: unchanged tree %d\n", i);
		const git_commit *parents[] = {(git_commit *)obj};
		if (git_commit_create(&oid, g, NULL, sig, sig, NULL, msg, tree, 1, parents) < 0)
			goto done;
	}
	t = (now() - t0) * 1e3 / n;
done:
	git_signature_free(sig);
	git_tree_free(tree);
	git_object_free(obj);
	return t;
}

/* ---- (a) one proposal: validate, branch, materialize, static check --------- */

typedef struct stages {
	double validate, apply, materialize, check, all;
} stages;

static int one_proposal(patch_repo *r, const char *ws, const char *diff, int i, stages *st)
{
	char branch[64], dir[PATH_MAX];
	git_oid oid;
	patch_trailer tr[] = {{"Incident", "1"}, {"Proposal", "1"}, {"Proposer", "bench"}};
	size_t len = strlen(diff);
	snprintf(branch, sizeof branch, "proposals/bench-%d", i);
	snprintf(dir, sizeof dir, "%s/runs/proposal-%d/static", ws, i);
	double t0 = now();
	if (patch_validate_paths(diff, len, allowed, 6, denied, 5) < 0)
		return fail("patch_validate_paths");
	double t1 = now();
	if (patch_apply_to_branch(&oid, r, "main", diff, len, branch, "proposal: bench", tr, 3) < 0)
		return fail("patch_apply_to_branch");
	double t2 = now();
	if (patch_materialize(r, branch, dir) < 0)
		return fail("patch_materialize");
	double t3 = now();
	if (pipe__static_check(dir) < 0)
		return fail("pipe__static_check");
	fsu_rm_rf(dir);
	double t4 = now();
	st->validate += t1 - t0;
	st->apply += t2 - t1;
	st->materialize += t3 - t2;
	st->check += t4 - t3;
	st->all += t4 - t0;
	return 0;
}

static const char *const ten_lines[] = {
	"lr = 3e-4,", "lr = 2e-4,", "min_lr = 3e-5,", "min_lr = 2e-5,",
	"warmup = 100,", "warmup = 200,", "clip = 1.0,", "clip = 0.8,",
	"aux_coef = 1e-2,", "aux_coef = 2e-2,",
};

static int bench_propose(const char *ws)
{
	char path[PATH_MAX + 16];
	patch_repo *r = NULL;
	stages st = {0};
	int rc = -1;
	snprintf(path, sizeof path, "%s/scaffold", ws);
	if (patch_repo_open(&r, path) < 0)
		return fail("patch_repo_open");
	char *diff = diff_of(r, ten_lines, 5);
	if (!diff && fail("the 10-line diff") < 0)
		goto done;
	double base = bare_commit_ms(r, RUNS);
	for (int i = 0; i < RUNS; i++)
		if (one_proposal(r, ws, diff, i, &st) < 0)
			goto done;
	double ms = st.all * 1e3 / RUNS;
	printf("(a) proposal: validate + branch + apply + commit + materialize + static check,\n"
	       "    a 10-line change of scaffold.lua, %d runs\n", RUNS);
	printf("    %.2f ms per proposal (validate %.3f, apply+commit %.2f, materialize %.2f, "
	       "static check %.2f)\n", ms, st.validate * 1e3 / RUNS, st.apply * 1e3 / RUNS,
	       st.materialize * 1e3 / RUNS, st.check * 1e3 / RUNS);
	printf("    bare libgit2 commit of an unchanged tree: %.3f ms; ratio %.1fx\n", base,
	       ms / base);
	printf("    target <= 50 ms: %s\n", ms <= 50 ? "met" : "NOT met");
	rc = 0;
done:
	free(diff);
	patch_repo_free(r);
	return rc;
}

/* ---- (b) promotion ----------------------------------------------------------- */

/* A branched candidate whose evaluation passed: the rows pipe_promote finds. */
static int candidate(patch_repo *r, store *st, const char *gates, int i, int64_t *pid,
		     int64_t *eid, char *branch, size_t cap, char *commit)
{
	static const char *const on[] = {"clip = 1.0,", "clip = 0.5,"};
	static const char *const off[] = {"clip = 0.5,", "clip = 1.0,"};
	git_oid oid = {{0}};
	patch_trailer tr[] = {{"Proposal", "bench"}};
	char *diff = diff_of(r, i % 2 ? off : on, 1);
	int rc = diff ? 0 : -1;
	snprintf(branch, cap, "proposals/promo-%d", i);
	if (rc == 0)
		rc = patch_apply_to_branch(&oid, r, "main", diff, strlen(diff), branch,
					   "proposal: bench", tr, 1);
	git_oid_tostr(commit, GIT_OID_HEXSZ + 1, &oid);
	store_proposal p = {.proposer = "bench", .state = "passed", .diagnosis = "bench",
		.confidence = 0.5, .diff = diff};
	store_evaluation e = {.stage = "short", .state = "running", .gates_sha256 = gates};
	if (rc == 0 && (rc = store_proposal_insert(st, pid, &p)) == 0 &&
	    (rc = store_proposal_set_branch(st, *pid, branch, commit)) == 0) {
		e.proposal_id = *pid;
		if ((rc = store_evaluation_insert(st, eid, &e)) == 0)
			rc = store_evaluation_finish(st, *eid, "done", "pass", "every gate passed",
						     "{}", gates, 0);
	}
	free(diff);
	return rc;
}

/* What pipe_promote does once it has checked the candidate. */
static int promote(patch_repo *r, store *st, const char *branch, const char *commit,
		   int64_t pid, int64_t eid, const char *gates)
{
	git_oid oid;
	char merged[GIT_OID_HEXSZ + 1], ps[24], es[24], prom[24];
	int64_t promo = 0;
	snprintf(ps, sizeof ps, "%lld", (long long)pid);
	snprintf(es, sizeof es, "%lld", (long long)eid);
	patch_trailer tr[] = {{"Proposal", ps}, {"Evaluation", es}, {"Gates-SHA256", gates},
			      {"Approved-By", "gates"}};
	if (patch_promote(&oid, r, branch, "promote proposal: bench", tr, 4) < 0)
		return fail("patch_promote");
	git_oid_tostr(merged, sizeof merged, &oid);
	store_promotion pr = {.proposal_id = pid, .evaluation_id = eid, .commit = commit,
		.merged_commit = merged, .approved_by = "gates"};
	if (store_promotion_insert(st, &promo, &pr) < 0)
		return fail("store_promotion_insert");
	snprintf(prom, sizeof prom, "%lld", (long long)promo);
	if (audit_log(st, "gates", "promote", merged, "proposal", ps, "evaluation", es,
		      "promotion", prom, "gates_sha256", gates, (char *)NULL) < 0)
		return fail("audit_log");
	return store_proposal_set_state(st, pid, "promoted", NULL);
}

static int promote_all(patch_repo *r, store *st, const char *gates, double *total)
{
	for (int i = 0; i < RUNS; i++) {
		char branch[64], commit[GIT_OID_HEXSZ + 1];
		int64_t pid = 0, eid = 0;
		if (candidate(r, st, gates, i, &pid, &eid, branch, sizeof branch, commit) < 0)
			return fail("a candidate");
		double t0 = now();
		if (promote(r, st, branch, commit, pid, eid, gates) < 0)
			return -1;
		*total += now() - t0;
	}
	return 0;
}

static int bench_promote(const char *ws)
{
	char path[PATH_MAX + 16], gates[65];
	patch_repo *r = NULL;
	store *st = NULL;
	cfg *c = NULL;
	double total = 0;
	int rc = -1;
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if (cfg_load(&c, path) < 0 || gate_rules_hash(c, gates) < 0)
		return fail("tend.yaml");
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if (store_open(&st, path, 0) < 0 && fail("store_open") < 0)
		goto done;
	snprintf(path, sizeof path, "%s/scaffold", ws);
	if (patch_repo_open(&r, path) < 0 && fail("patch_repo_open") < 0)
		goto done;
	double base = bare_commit_ms(r, RUNS);
	if (promote_all(r, st, gates, &total) < 0)
		goto done;
	double ms = total * 1e3 / RUNS;
	int verified = audit_verify(st, r, c, NULL, NULL);
	printf("(b) promotion: patch_promote (merge commit, working tree to main) + promotion "
	       "row + audit row, %d runs\n", RUNS);
	printf("    %.2f ms per promotion; bare libgit2 commit %.3f ms; ratio %.1fx\n", ms, base,
	       ms / base);
	printf("    target <= 50 ms: %s; `audit verify` of the %d promotions: %s\n",
	       ms <= 50 ? "met" : "NOT met", RUNS, verified == 0 ? "ok" : tend_error_last());
	rc = verified == 0 ? 0 : -1;
done:
	patch_repo_free(r);
	store_close(st);
	cfg_free(c);
	return rc;
}

/* ---- (c) ingest while an evaluation and a model request are in flight ------ */

static size_t write_metrics(const char *path)
{
	FILE *f = fopen(path, "w");
	size_t bytes = 0;
	if (!f)
		return 0;
	for (long s = 1; s <= LINES; s++) {
		int k = fprintf(f, "{\"type\":\"step\",\"step\":%ld,\"t\":%.3f,\"loss\":%.9g,"
				"\"lr\":3e-4,\"grad_norm\":%.9g,\"tokens_per_s\":%.9g,"
				"\"step_time_s\":0.05,\"clip\":1,\"moe\":[", s, 1796000000.0 + 0.05 * s,
				6.0 / (1.0 + 0.001 * s) + 0.01 * (s % 7), 1.5 + 0.001 * (s % 13),
				120000.0 + (s % 11) * 100.0);
		for (int l = 0; l < 2; l++) {
			k += fprintf(f, "%s{\"layer\":%d,\"load\":[", l ? "," : "", l);
			for (int e = 0; e < 8; e++)
				k += fprintf(f, "%s%.5g", e ? "," : "", 0.125 + 0.001 * ((s + e) % 5));
			k += fprintf(f, "],\"max_over_mean\":1.04,\"entropy\":2.0794,\"dropped\":0,"
				     "\"tokens\":1024,\"dead\":0,\"aux_loss\":0.0101,\"z_loss\":0.0009}");
		}
		k += fprintf(f, "]}\n");
		bytes += (size_t)k;
	}
	fclose(f);
	return bytes;
}

static long long query(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
	}
	sqlite3_finalize(s);
	return v;
}

/* CPU seconds (user + system) that process pid has used so far. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the fields after the command name */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* `tend run NAME` over a pre-written metrics.jsonl; values/s from its start
 * until the store's committed offset reaches the end of the file. */
static double ingest_rate(const char *ws, const char *name, long long *rows, double *cpu)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], dbp[PATH_MAX + 16], log[PATH_MAX + 32];
	sqlite3 *db = NULL;
	snprintf(dir, sizeof dir, "%s/runs/%s", ws, name);
	snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
	snprintf(dbp, sizeof dbp, "%s/tend.db", ws);
	snprintf(log, sizeof log, "%s/run-%s.log", root, name);
	mkdir(dir, 0755);
	size_t bytes = write_metrics(path);
	if (sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	sqlite3_busy_timeout(db, 5000);
	double t0 = now(), t1 = 0;
	pid_t run = spawn(ws, log, (const char *const[]){"run", name, "--no-status", NULL});
	while (now() - t0 < 300) {
		nap(0.002);
		if (query(db, "SELECT byte_offset FROM ingest_offsets WHERE source = ?", path) ==
		    (long long)bytes) {
			t1 = now();
			*cpu = cpu_s(run);
			break;
		}
	}
	tend_run(ws, (const char *const[]){"stop", "--now", NULL});
	wait_exit(run);
	*rows = query(db, "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id "
		      "WHERE r.name = ?", name);
	sqlite3_close(db);
	if (t1 > 0)
		return (double)LINES * VALUES_PER_LINE / (t1 - t0);
	char *text = NULL;
	size_t len;
	fsu_read_file(&text, &len, log, 1 << 16);
	fprintf(stderr, "bench_pipeline: `tend run %s` did not ingest its file:\n%s\n", name,
		text ? text : "(no output)");
	free(text);
	return -1;
}

/* The incident a `tend propose` child asks the model about. */
static int seed_incident(const char *ws, int64_t *inc)
{
	char path[PATH_MAX + 16];
	store *st = NULL;
	int64_t run = 0;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	int rc = store_open(&st, path, 0);
	if (rc == 0)
		rc = store_run_create(st, &run, "seed", "", ws);
	store_incident in = {.run_id = run, .kind = "loss_spike", .severity = "warning",
		.signature = "loss_spike", .onset_step = 10, .summary = "bench", .evidence = "{}"};
	if (rc == 0)
		rc = store_incident_upsert(st, inc, NULL, &in);
	store_close(st);
	return rc < 0 ? fail("seed incident") : 0;
}

/* Starts the test server; its port, or -1. */
static int httpd(pid_t *pid, const char *dir)
{
	int p[2], port = -1;
	const char *bin = getenv("TEND_TEST_HTTPD");
	if (!bin || pipe(p) < 0)
		return -1;
	if ((*pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(bin, bin, dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *f = fdopen(p[0], "r");
	if (!f || fscanf(f, "%d", &port) != 1)
		port = -1;
	if (f)
		fclose(f);
	return port;
}

/* True once the file at path exists and is at least n bytes. */
static bool grows(const char *path, off_t n, double timeout_s)
{
	struct stat sb;
	for (double t0 = now(); now() - t0 < timeout_s; nap(0.05))
		if (stat(path, &sb) == 0 && sb.st_size >= n)
			return true;
	return false;
}

typedef struct load {
	pid_t srv, train, propose;
} load;

static int start_load(load *l, const char *ws, int64_t inc)
{
	char srv[PATH_MAX], arm[PATH_MAX + 16], log[PATH_MAX + 16], incs[24], m[PATH_MAX + 32];
	snprintf(srv, sizeof srv, "%s/srv", root);
	snprintf(arm, sizeof arm, "%s/runs/eval-arm", ws);
	snprintf(log, sizeof log, "%s/load.log", root);
	snprintf(incs, sizeof incs, "%lld", (long long)inc);
	snprintf(m, sizeof m, "%s/metrics.jsonl", arm);
	l->train = spawn(ws, log, (const char *const[]){"train", "--run-dir", arm, "--steps",
		"1000000", "--eval-every", "1000000", "--no-checkpoints", "--no-machine-faults",
		"--heartbeat", "0", "--threads", "1", NULL});
	l->propose = spawn(ws, log, (const char *const[]){"propose", incs, "--no-eval", NULL});
	snprintf(srv, sizeof srv, "%s/srv/requests.log", root);
	if (!grows(m, 1000, 60) || !grows(srv, 10, 60))
		return fprintf(stderr, "bench_pipeline: the load did not start (see %s)\n", log), -1;
	return 0;
}

static const char *ingest_yaml =
	"version: 1\n"
	"run:\n  command: [sleep, \"600\"]\n"
	"trainer: {layers: 2, d_model: 64, heads: 4, context: 64, experts: 4, top_k: 2,\n"
	"          batch: 8, threads: 1}\n"
	"proposer: {kind: openai, endpoint: \"http://127.0.0.1:%d/hang\", model: bench,\n"
	"           auto: false, timeout_s: 600, deadline_s: 600}\n";

/* One measurement: a `tend run` named name over its own metrics file. */
typedef struct phase {
	const char *name;
	double rate, cpu; /* values/s of wall time; CPU seconds of `tend run` */
	long long rows;
} phase;

static int measure(const char *ws, phase *p)
{
	p->rate = ingest_rate(ws, p->name, &p->rows, &p->cpu);
	return p->rate > 0 && p->cpu > 0 && p->rows == (long long)LINES * VALUES_PER_LINE ? 0 : -1;
}

/* ph: quiet, busy, busy with the arm at nice 10, quiet again. */
static void report(const phase *ph, bool waiting)
{
	double v = (double)LINES * VALUES_PER_LINE, quiet = (ph[0].rate + ph[3].rate) / 2;
	double quiet_cpu = 2 * v / (ph[0].cpu + ph[3].cpu);
	printf("(c) supervisor ingest, %d lines x %d values of metrics.jsonl through `tend run`\n",
	       LINES, VALUES_PER_LINE);
	printf("    nothing else running (before, after): %.0f, %.0f values/s\n", ph[0].rate,
	       ph[3].rate);
	printf("    with a `tend train` arm training and a model request hanging in a\n"
	       "    `tend propose` child (%s): %.0f values/s, ratio %.2f\n",
	       waiting ? "still waiting" : "EXITED", ph[1].rate, ph[1].rate / quiet);
	printf("    the same, the arm at nice 10: %.0f values/s, ratio %.2f\n", ph[2].rate,
	       ph[2].rate / quiet);
	printf("    values per CPU second of the supervisor: %.0f quiet, %.0f busy, %.0f nice\n"
	       "    (busy / quiet %.2f: near 1 means the wall-clock loss is CPU time that\n"
	       "    the other processes took from this machine's cores, not a wait in the loop)\n",
	       quiet_cpu, v / ph[1].cpu, v / ph[2].cpu, v / ph[1].cpu / quiet_cpu);
}

static int bench_ingest(void)
{
	char ws[PATH_MAX], yaml[1024], srv[PATH_MAX];
	load l = {0};
	phase ph[4] = {{.name = "quiet"}, {.name = "busy"}, {.name = "busy-nice"},
			 {.name = "quiet-after"}};
	int64_t inc = 0;
	int rc = -1;
	snprintf(srv, sizeof srv, "%s/srv", root);
	mkdir(srv, 0755);
	int port = httpd(&l.srv, srv);
	snprintf(yaml, sizeof yaml, ingest_yaml, port);
	if (port < 0 || workspace(ws, sizeof ws, "ingest", yaml) < 0 ||
	    seed_incident(ws, &inc) < 0 || measure(ws, &ph[0]) < 0 || start_load(&l, ws, inc) < 0 ||
	    measure(ws, &ph[1]) < 0 || setpriority(PRIO_PROCESS, (id_t)l.train, 10) < 0 ||
	    measure(ws, &ph[2]) < 0)
		goto done;
	bool waiting = waitpid(l.propose, NULL, WNOHANG) == 0;
	kill_wait(l.propose);
	kill_wait(l.train);
	l.propose = l.train = 0;
	/* Quiet before and after, so that a machine whose own load drifts
	 * shows two different quiet figures. */
	if (measure(ws, &ph[3]) < 0)
		goto done;
	report(ph, waiting);
	rc = waiting ? 0 : -1;
done:
	kill_wait(l.propose);
	kill_wait(l.train);
	kill_wait(l.srv);
	return rc;
}

/* ---- main ----------------------------------------------------------------------- */

static const char *pipe_yaml =
	"version: 1\n"
	"proposer: {kind: builtin, auto: false}\n"
	"gates: {human_approval: false}\n";

int main(void)
{
	char ws[PATH_MAX];
	int rc = 1;
	tend_bin = getenv("TEND_BIN");
	snprintf(root, sizeof root, "/tmp/tend-test-XXXXXX");
	if (!tend_bin || !mkdtemp(root)) {
		fprintf(stderr, "bench_pipeline: needs TEND_BIN and a temp dir\n");
		return 1;
	}
	git_libgit2_init();
	char day[32];
	time_t t = time(NULL);
	strftime(day, sizeof day, "%Y-%m-%d %H:%M", localtime(&t));
	double la[1] = {0};
	getloadavg(la, 1);
	printf("bench_pipeline, %s, %ld cores online, load average %.1f at the start\n", day,
	       sysconf(_SC_NPROCESSORS_ONLN), la[0]);
	if (workspace(ws, sizeof ws, "pipe", pipe_yaml) == 0 && bench_propose(ws) == 0 &&
	    bench_promote(ws) == 0 && bench_ingest() == 0)
		rc = 0;
	git_libgit2_shutdown();
	if (rc == 0)
		fsu_rm_rf(root);
	else
		fprintf(stderr, "bench_pipeline: failed; its files are in %s\n", root);
	return rc;
}
