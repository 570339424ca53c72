/*
 * test_report_lost.c - the steps lost that `tend report` (and every command
 * that reads a run's accounts) shows agree with what the supervisor counts
 * when it starts an attempt resumed from a checkpoint: the steps from the
 * last step row it saw back to the attempt's from_step. The store is
 * filled through the store API as a supervisor fills it (attempts with
 * their from_step, metric rows, the rollback events), in a workspace made
 * by the real `tend init`, and read back by the real binary (TEND_BIN).
 * The cases are the ones where the rows alone mislead: a crash one step
 * after the checkpoint, an evaluation logged at the resume step, an
 * attempt that crashed before its first step, an attempt that has just
 * started, and rows written out of order.
 */
#include "json.h"
#include "store.h"
#include "tend.h"
#include "tt.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 1764460800.0

static char tmpdir[64], ws[128];
static const char *bin;
static store *st;

/* ---- running tend ------------------------------------------------------ */

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

/* Runs `tend a1 a2 a3` in dir (a3 may be NULL); its stdout, or NULL when it
 * did not exit 0. */
static char *tend(const char *dir, const char *a1, const char *a2, const char *a3)
{
	char out[128];
	snprintf(out, sizeof out, "%s/out", tmpdir);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_WRONLY);
		if (fd < 0 || nul < 0 || dup2(fd, 1) < 0 || dup2(nul, 2) < 0 || chdir(dir) < 0)
			_exit(126);
		unsetenv("TEND_WORKSPACE");
		execl(bin, bin, a1, a2, a3, (char *)NULL);
		_exit(127);
	}
	int status = -1;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "tend %s %s: exit status %d\n", a1, a2 ? a2 : "", status);
		return NULL;
	}
	return slurp(out);
}

/* `tend report NAME --json`: its lost_steps, restarts and last_step. */
typedef struct figures {
	long long lost, restarts, last_step;
} figures;

static figures report_json(const char *name)
{
	figures f = {-1, -1, -1};
	char *out = tend(ws, "report", name, "--json");
	json_doc *doc = NULL;
	if (out && json_parse(&doc, out, strlen(out), NULL) == 0) {
		const json_val *o = json_root(doc);
		f.lost = (long long)json_num(json_get(o, "lost_steps"));
		f.restarts = (long long)json_num(json_get(o, "restarts"));
		f.last_step = (long long)json_num(json_get(o, "last_step"));
	}
	json_doc_free(doc);
	free(out);
	return f;
}

/* ---- a store as the supervisor fills it -------------------------------- */

static int64_t new_run(const char *name)
{
	int64_t id = 0;
	TT_CHECK_RC(store_run_create(st, &id, name, "run:\n  steps: 120\n", ws), 0);
	store_run_set_started(st, id, 4242, T0);
	return id;
}

/* An attempt: fresh (from < 0) or resumed from the checkpoint at from. */
static int attempt(int64_t run, int64_t from)
{
	int n = 0;
	char ckpt[64];
	snprintf(ckpt, sizeof ckpt, "ckpt-%08lld.bin", (long long)from);
	TT_CHECK_RC(store_attempt_begin(st, &n, run, from < 0 ? "start" : "nonfinite: roll back",
					from < 0 ? NULL : ckpt, from < 0 ? STORE_NONE : from,
					4243, T0), 0);
	return n;
}

/* A step line's rows, as on_step_line writes them. */
static void step_rows(int64_t run, int n, int64_t step)
{
	double t = T0 + (double)step * 0.5;
	store_metric_put(st, run, n, step, "loss", 3.0 - (double)step / 100, t);
	store_metric_put(st, run, n, step, "step_time_s", 0.5, t);
	store_metric_put(st, run, n, step, "tokens_per_s", 1000, t);
	store_metric_put(st, run, n, step, "grad_norm", 1.0, t);
}

static void steps(int64_t run, int n, int64_t first, int64_t last)
{
	store_batch_begin(st);
	for (int64_t s = first; s <= last; s++)
		step_rows(run, n, s);
	store_batch_commit(st);
}

static void finish(int64_t run, const char *state)
{
	store_run_set_state(st, run, state);
	if (strcmp(state, "running") != 0)
		store_run_set_ended(st, run, 0, T0 + 100);
}

/* ---- cases -------------------------------------------------------------- */

/* The trainer wrote step 61 and crashed; restarted from the checkpoint at
 * 60 it does step 61 again: the supervisor counts 1 lost step (61 - 60),
 * though no row goes backwards. */
static void test_crash_after_checkpoint(void)
{
	int64_t r = new_run("edge");
	int n = attempt(r, -1);
	steps(r, n, 1, 61);
	n = attempt(r, 60);
	steps(r, n, 61, 120);
	finish(r, "finished");
	figures f = report_json("edge");
	TT_CHECK(f.lost == 1);
	TT_CHECK(f.restarts == 1);
	TT_CHECK(f.last_step == 120);
	char *out = tend(ws, "report", "edge", NULL);
	TT_CHECK_HAS(out, "steps       120 on the final timeline; 2 attempts, 1 restart, "
		     "1 steps lost\n");
	free(out);
}

/* Rolled back from 80 to 60, the trainer logs an evaluation at step 60
 * before its first step: evaluations do not move the supervisor's step,
 * so 20 steps are lost, not 21, and the loss of step 60 stays on the
 * timeline. */
static void test_eval_at_resume_step(void)
{
	int64_t r = new_run("evalresume");
	int n = attempt(r, -1);
	steps(r, n, 1, 80);
	store_event_put(st, r, n, T0 + 40, 80, "rollback", "roll back to step 60 "
			"(ckpt-00000060.bin), skip 20 batches, lr scale 1; 20 steps lost", NULL);
	n = attempt(r, 60);
	store_metric_put(st, r, n, 60, "val_loss", 2.5, T0 + 41);
	steps(r, n, 61, 120);
	finish(r, "finished");
	figures f = report_json("evalresume");
	TT_CHECK(f.lost == 20);
	TT_CHECK(f.restarts == 1);
	/* All 120 step times of 0.5 s on the timeline, step 60's too. */
	char *out = tend(ws, "report", "evalresume", NULL);
	TT_CHECK_HAS(out, "loss over steps 1..120 ");
	TT_CHECK_HAS(out, "ETT         60.0% (productive 1m00s)\n");
	free(out);
}

/* Rolled back from 80 to 60 (20 lost); that attempt died before its first
 * step and the next resumed from 60 again: nothing more was lost. */
static void test_attempt_without_rows(void)
{
	int64_t r = new_run("norows");
	int n = attempt(r, -1);
	steps(r, n, 1, 80);
	attempt(r, 60);
	n = attempt(r, 60);
	steps(r, n, 61, 120);
	finish(r, "finished");
	figures f = report_json("norows");
	TT_CHECK(f.lost == 20);
	TT_CHECK(f.restarts == 2);
	TT_CHECK(f.last_step == 120);
}

/* Just rolled back from 80 to 60, the new attempt has written nothing yet:
 * the supervisor counted the 20 steps when it started it, and they are
 * off the timeline. */
static void test_just_resumed(void)
{
	int64_t r = new_run("justresumed");
	int n = attempt(r, -1);
	steps(r, n, 1, 80);
	attempt(r, 60);
	finish(r, "running");
	figures f = report_json("justresumed");
	TT_CHECK(f.lost == 20);
	TT_CHECK(f.restarts == 1);
	TT_CHECK(f.last_step == 60);
}

/* Two rollbacks, 80 -> 60 (20 lost) and 75 -> 50 (25 lost), with the rows
 * put newest attempt first and one series at a time: 45. */
static void test_rows_out_of_order(void)
{
	int64_t r = new_run("twice");
	int a1 = attempt(r, -1), a2 = attempt(r, 60), a3 = attempt(r, 50);
	static const char *const names[] = {"tokens_per_s", "step_time_s", "loss"};
	static const int64_t span[3][3] = {{0, 51, 120}, {0, 61, 75}, {0, 1, 80}};
	int att[3] = {a3, a2, a1};
	store_batch_begin(st);
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 3; i++)
			for (int64_t s = span[i][2]; s >= span[i][1]; s--)
				store_metric_put(st, r, att[i], s, names[k],
						 k == 2 ? 3.0 - (double)s / 100 : 0.5, T0);
	store_batch_commit(st);
	finish(r, "finished");
	figures f = report_json("twice");
	TT_CHECK(f.lost == 45);
	TT_CHECK(f.restarts == 2);
	TT_CHECK(f.last_step == 120);
	char *out = tend(ws, "status", "twice", NULL);
	TT_CHECK_HAS(out, "lost        45 steps in 2 restarts\n");
	free(out);
}

/* Rows of attempts with no record (a store written by hand): a step going
 * backwards is still a restart from the step before. */
static void test_no_attempt_records(void)
{
	int64_t r = new_run("bare");
	steps(r, 1, 1, 80);
	steps(r, 2, 61, 120);
	finish(r, "finished");
	figures f = report_json("bare");
	TT_CHECK(f.lost == 20);
	TT_CHECK(f.last_step == 120);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	char path[192];
	bin = getenv("TEND_BIN");
	if (!bin) {
		fprintf(stderr, "TEND_BIN must be set\n");
		return 77;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/tend-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(ws, sizeof ws, "%s/ws", tmpdir);
	char *out = tend(tmpdir, "init", ws, NULL);
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if (!out || store_open(&st, path, 0) < 0) {
		fprintf(stderr, "tend init or store_open failed: %s\n", tend_error_last());
		free(out);
		return 1;
	}
	free(out);

	TT_RUN(test_crash_after_checkpoint);
	TT_RUN(test_eval_at_resume_step);
	TT_RUN(test_attempt_without_rows);
	TT_RUN(test_just_resumed);
	TT_RUN(test_rows_out_of_order);
	TT_RUN(test_no_attempt_records);

	store_close(st);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TT_DONE();
}
