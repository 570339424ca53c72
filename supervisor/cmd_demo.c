/*
 * cmd_demo.c - `tend demo`: the whole loop in about two minutes on a
 * laptop-class CPU. A tiny MoE model trains under the supervisor with a
 * poisoned data window injected; the supervisor detects the NaN and rolls
 * back past the window; the builtin proposer proposes a scaffold patch
 * that steps over the window; the patch is evaluated on its own branch
 * against main from the same checkpoint, data and seed; it passes the
 * gates and is promoted; the trainer reloads the scaffold and finishes;
 * `tend audit verify` checks the trail.
 */
#include "audit.h"
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "patch.h"
#include "store.h"
#include "sup.h"
#include "tend.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char demo_config[] =
	"# tend demo workspace: a tiny MoE model with a poisoned data window.\n"
	"version: 1\n"
	"run:\n"
	"  steps: 400\n"
	"  eval_every: 100\n"
	"  checkpoint_every: 25\n"
	"  keep_last: 12\n"
	"  keep_every: 100\n"
	"  seed: 1337\n"
	"trainer:\n"
	"  layers: 2\n"
	"  d_model: 64\n"
	"  heads: 4\n"
	"  context: 64\n"
	"  moe_every: 1\n"
	"  experts: 4\n"
	"  top_k: 2\n"
	"  capacity_factor: 2.0\n"
	"  batch: 8\n"
	"  threads: 1\n"
	"  data: synthetic\n"
	"  inject: [\"nan@200\"]   # a poisoned batch at step 200\n"
	"monitors:\n"
	"  loss_spike: {window: 32, warmup: 16, zscore: 8.0, patience: 3}\n"
	"  grad_spike: {window: 32, warmup: 16, zscore: 8.0, patience: 3}\n"
	"  divergence: {window: 50}\n"
	"  plateau: {enabled: false}\n"
	"  stall: {timeout_s: 60}\n"
	"  heartbeat: {timeout_s: 60}\n"
	"  throughput: {window: 20, drop_ratio: 0.15, patience: 20}\n"
	"recovery:\n"
	"  rollback_steps: 25\n"
	"  skip_batches: 40\n"
	"  cooldown_steps: 20\n"
	"  term_grace_s: 3\n"
	"  backoff_initial_s: 0.5\n"
	"proposer:\n"
	"  kind: builtin\n"
	"  auto: true\n"
	"evaluation:\n"
	"  steps: 60\n"
	"  seeds: 1\n"
	"  noise_runs: 1\n"
	"  max_wall_s: 240\n"
	"gates:\n"
	"  require_no_incident: true\n"
	"  val_loss_tolerance: 0.05\n"
	"  throughput_ratio: 0.6\n"
	"  max_wall_s: 240\n"
	"  human_approval: false\n";

static int count_promotion(const store_promotion *p, void *ud)
{
	(void)p;
	(*(int *)ud)++;
	return 0;
}

static int incident_line(const store_incident *i, void *ud)
{
	(void)ud;
	printf("    incident %lld  %-12s step %-5lld %s\n", (long long)i->id, i->kind,
	       (long long)i->onset_step, i->summary);
	return 0;
}

static int gate_table(const store_evaluation *e, void *ud)
{
	(void)ud;
	printf("      evaluation %lld from the same checkpoint, data and seed: %s\n",
	       (long long)e->id, e->verdict ? e->verdict : "-");
	cli_print_gate_table(e->figures);
	return 0;
}

static int proposal_line(const store_proposal *p, void *ud)
{
	printf("    proposal %lld  %-12s %.70s\n", (long long)p->id, p->state, p->diagnosis);
	if (p->reject_reason && *p->reject_reason)
		printf("                 (%s)\n", p->reject_reason);
	if (!strcmp(p->state, "promoted"))
		store_evaluation_list(ud, p->id, gate_table, NULL);
	return 0;
}

static int event_line(const store_event *e, void *ud)
{
	(void)ud;
	static const char *const shown[] = {"rollback", "restart", "skip", "lower_lr",
					    "scaffold_reload", "giveup", NULL};
	for (const char *const *k = shown; *k; k++)
		if (e->kind && !strcmp(e->kind, *k))
			printf("    step %-5lld %-15s %s\n", (long long)e->step, e->kind, e->reason);
	return 0;
}

static void problem(const char *what, void *ud)
{
	(void)ud;
	printf("    FAIL %s\n", what);
}

static int summary(const char *ws, double secs)
{
	char path[PATH_MAX + 16];
	store *st = NULL;
	cfg *c = NULL;
	patch_repo *repo = NULL;
	store_run *r = NULL;
	int rc, promos = 0;
	snprintf(path, sizeof path, "%s/tend.db", ws);
	if ((rc = store_open(&st, path, STORE_READONLY)) < 0 ||
	    (rc = store_run_get_by_name(st, &r, "demo")) < 0)
		goto done;
	printf("\n== tend demo: %s in %.0f s ==\n", r->state, secs);
	puts("  what the monitors saw:");
	store_incident_list(st, r->id, NULL, incident_line, NULL);
	puts("  what recovery did:");
	store_events_read(st, r->id, 0, event_line, NULL);
	puts("  what the proposer proposed:");
	store_proposal_list(st, 0, proposal_line, st);
	store_promotion_list(st, 0, count_promotion, &promos);
	printf("  promotions to main: %d\n", promos);
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	if ((rc = cfg_load(&c, path)) < 0)
		goto done;
	snprintf(path, sizeof path, "%s/scaffold", ws);
	if ((rc = patch_repo_open(&repo, path)) < 0)
		goto done;
	rc = audit_verify(st, repo, c, problem, NULL);
	printf("  tend audit verify: %s\n", rc == 0 ? "ok" : tend_error_last());
	printf("\nExplore it:\n  cd %s\n  tend report demo\n  tend incidents\n"
	       "  tend proposal show 1\n  tend audit\n", ws);
	if (rc == 0 && (strcmp(r->state, "finished") != 0 || promos == 0))
		rc = tend_error_set(TEND_ERROR, "the demo did not %s",
				    promos ? "finish its run" : "promote a patch");
done:
	store_run_free(r);
	patch_repo_free(repo);
	cfg_free(c);
	store_close(st);
	return rc;
}

static int cmd_demo(int argc, char **argv)
{
	char ws[PATH_MAX], dir[] = "/tmp/tend-demo-XXXXXX";
	if (argc > 1) {
		fprintf(stderr, "usage: tend demo\n");
		return CLI_USAGE;
	}
	(void)argv;
	if (cli_workspace(ws, sizeof ws) < 0) {
		if (!mkdtemp(dir) || cli_init_workspace(dir, demo_config, ws, sizeof ws) < 0)
			return cli_fail(CLI_FAIL, "demo: workspace");
		printf("tend demo: a throwaway workspace in %s\n", ws);
	} else {
		printf("tend demo: using the workspace %s\n", ws);
	}
	puts("Training a tiny MoE model (2 layers, 4 experts, top-2) with a poisoned\n"
	     "batch at step 200; watch the supervisor recover and the scaffold evolve.\n");
	fflush(stdout);
	double t0 = tend_wall_s();
	sup_opts o = {.workspace = ws, .name = "demo", .status_line = isatty(2),
		.print_events = true};
	int rc = sup_run(&o);
	if (rc < 0)
		return cli_fail(CLI_FAIL, "demo");
	if (summary(ws, tend_wall_s() - t0) < 0)
		return cli_fail(CLI_FAIL, "demo");
	return CLI_OK;
}

const cli_cmd cli_demo_cmd = {
	"demo", "the whole loop on a tiny model, in a throwaway workspace",
	"usage: tend demo\n\n"
	"Outside a workspace, creates one under /tmp and trains a tiny MoE model\n"
	"there with a poisoned batch injected at step 200. The supervisor detects\n"
	"the NaN and rolls back past it; the builtin proposer proposes a scaffold\n"
	"patch; the patch is evaluated on its own branch against main from the\n"
	"same checkpoint, data and seed; it passes the gates and is promoted; the\n"
	"trainer reloads the scaffold; `tend audit verify` checks the trail.\n"
	"Inside a workspace, runs the same loop there with its own settings.\n",
	cmd_demo,
};
