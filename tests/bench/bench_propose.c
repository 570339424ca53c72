/* bench_propose.c - what building a proposal context and asking the builtin
 * playbook cost on a long run: 200,000 steps of 3 metrics and 200,000 log
 * lines in a real store, a scaffold repository seeded from lua/. The
 * context reads the whole log to find its tail, so its time is shown next
 * to a bare store_logs_read of the same run (the floor it cannot beat). */
#include "patch.h"
#include "propose.h"
#include "store.h"
#include "tend.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STEPS 200000
#define LINES 200000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s; (void)f; (void)w;
	return remove(p);
}

static int count_cb(const store_log *l, void *ud)
{
	(void)l;
	(*(long *)ud)++;
	return 0;
}

static int fill(store *st, int64_t run)
{
	char line[96];
	int rc = store_batch_begin(st);
	for (int s = 0; s < STEPS && rc == 0; s++) {
		rc = store_metric_put(st, run, 1, s, "loss", 3.0 - 1e-6 * s, s);
		rc = rc ? rc : store_metric_put(st, run, 1, s, "grad_norm", 1.0, s);
		rc = rc ? rc : store_metric_put(st, run, 1, s, "lr", 3e-4, s);
	}
	for (int i = 0; i < LINES && rc == 0; i++) {
		int n = snprintf(line, sizeof line, "step %d loss 2.9 tokens_per_s=48000 token=abc%d", i, i);
		rc = store_log_put(st, run, 1, i, STORE_STDOUT, line, (size_t)n);
	}
	return rc ? rc : store_batch_commit(st);
}

int main(void)
{
	char dir[64] = "/tmp/tend-bench-XXXXXX", db[128], scaf[128], lua[512];
	const char *root = getenv("TEND_SOURCE_ROOT");
	store *st = NULL;
	patch_repo *repo = NULL;
	prop_ctx *ctx = NULL;
	int64_t run, inc;
	int fresh, rc = 1;
	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof db, "%s/tend.db", dir);
	snprintf(scaf, sizeof scaf, "%s/scaffold", dir);
	snprintf(lua, sizeof lua, "%s/lua", root ? root : ".");
	store_incident in = {.kind = "loss_spike", .severity = "warning", .signature = "loss_spike",
			     .onset_step = STEPS / 2, .summary = "spike", .evidence = "{}"};
	if (store_open(&st, db, STORE_CREATE) < 0 || store_run_create(st, &run, "r", "{}", dir) < 0 ||
	    fill(st, run) < 0 || patch_repo_init(&repo, scaf, lua, NULL) < 0)
		goto done;
	in.run_id = run;
	if (store_incident_upsert(st, &inc, &fresh, &in) < 0)
		goto done;
	long n = 0;
	double t0 = now();
	store_logs_read(st, run, 0, count_cb, &n);
	double t_read = now() - t0;
	t0 = now();
	if (prop_ctx_build(&ctx, st, repo, inc, NULL) < 0)
		goto done;
	double t_ctx = now() - t0;
	cfg_proposer cfg = {.kind = CFG_PROPOSER_BUILTIN};
	prop_result r;
	t0 = now();
	if (prop_ask(&r, &cfg, ctx, scaf, NULL) < 0)
		goto done;
	double t_ask = now() - t0;
	prop_result_free(&r);
	printf("log read (floor, %ld lines):  %8.1f ms\n", n, t_read * 1e3);
	printf("prop_ctx_build:                 %8.1f ms  (%.2fx the log read)\n", t_ctx * 1e3,
	       t_ctx / t_read);
	printf("prop_ask builtin:               %8.1f ms  (%.2f%% of the context build)\n",
	       t_ask * 1e3, 100.0 * t_ask / t_ctx);
	rc = 0;
done:
	if (rc)
		fprintf(stderr, "bench_propose: %s\n", tend_error_last());
	prop_ctx_free(ctx);
	patch_repo_free(repo);
	store_close(st);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
