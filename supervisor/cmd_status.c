/*
 * cmd_status.c - `tend status`: whether a supervisor holds the workspace,
 * and where the active (else the newest) run stands.
 */
#include "cli.h"
#include "clock.h"
#include "inspect.h"
#include "render.h"
#include "sup.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <string.h>

extern const cli_cmd cli_status_cmd;

static void print_steps(const insp_summary *s)
{
	if (s->last_step < 0) {
		printf("step        - (no step recorded yet)\n");
		return;
	}
	printf("step        %lld", (long long)s->last_step);
	if (s->total_steps > 0)
		printf(" / %lld (%.1f%%)", (long long)s->total_steps,
		       100.0 * (double)s->last_step / (double)s->total_steps);
	putchar('\n');
}

static void print_text(const store_run *r, const insp_summary *s)
{
	char a[32], b[32], c[32];
	printf("run         %s (%s)\n", r->name, r->state);
	print_steps(s);
	printf("loss        %s\n", rnd_num(a, sizeof a, s->last_loss, 6, 1));
	printf("tokens/s    %s\n", rnd_num(a, sizeof a, s->tokens_per_s, 6, 1));
	printf("ETA         %s\n", rnd_duration(a, sizeof a, s->eta_s));
	printf("ETT         %s (productive %s of %s wall)\n",
	       rnd_percent(a, sizeof a, s->ett),
	       rnd_duration(b, sizeof b, s->productive_s),
	       rnd_duration(c, sizeof c, s->wall_s));
	printf("lost        %ld steps in %d restart%s\n", s->lost_steps, s->restarts,
	       s->restarts == 1 ? "" : "s");
	printf("incidents   %d open (%d in all)\n", s->open_incidents, s->incidents);
}

static int print_json(int pid, const char *held, const store_run *r,
		      const insp_summary *s)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "supervisor");
	if (pid > 0) {
		jbuf_obj_open(&b);
		jbuf_key(&b, "pid");
		jbuf_int(&b, pid);
		jbuf_key(&b, "run");
		jbuf_str(&b, held);
		jbuf_obj_close(&b);
	} else {
		jbuf_null(&b);
	}
	jbuf_key(&b, "run");
	if (r) {
		jbuf_obj_open(&b);
		insp_summary_json(&b, r, s);
		jbuf_obj_close(&b);
	} else {
		jbuf_null(&b);
	}
	jbuf_obj_close(&b);
	int rc = rnd_json_out(stdout, &b);
	jbuf_free(&b);
	return rc;
}

/* The run to show: the one named, else the supervisor's, else the newest.
 * *r stays NULL (and 0 is returned) when the workspace has no runs. */
static int pick(store *s, const char *ws, const char *name, store_run **r)
{
	int rc;
	*r = NULL;
	if (name)
		return insp_run(s, name, r);
	rc = insp_default_run(s, ws, r);
	return rc == TEND_ENOTFOUND ? 0 : rc;
}

static int cmd_status(int argc, char **argv)
{
	static const struct option lo[] = {{"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	char ws[PATH_MAX], held[160] = "";
	bool json = false;
	store *s = NULL;
	store_run *r = NULL;
	insp_summary sum;
	int c, rc, pid = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'j')
			return insp_usage(cli_status_cmd.help);
		json = true;
	}
	if (optind + 1 < argc)
		return insp_usage(cli_status_cmd.help);
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "status");
	sup_lock_holder(ws, &pid, held, sizeof held);
	if ((rc = pick(s, ws, optind < argc ? argv[optind] : NULL, &r)) < 0 ||
	    (r && (rc = insp_summary_of(s, r, tend_wall_s(), &sum)) < 0))
		goto done;
	if (json) {
		rc = print_json(pid, held, r, &sum);
		goto done;
	}
	if (pid > 0)
		printf("supervisor  running (pid %d, run %s)\n", pid, held);
	else
		printf("supervisor  none\n");
	if (r)
		print_text(r, &sum);
	else
		printf("run         none yet; start one with `tend run`\n");
done:
	store_run_free(r);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "status") : CLI_OK;
}

const cli_cmd cli_status_cmd = {
	"status", "show the supervisor and where the current run stands",
	"usage: tend status [RUN] [--json]\n\n"
	"Says whether a supervisor holds the workspace (its pid and run), then\n"
	"for RUN (default: the supervised run, else the newest) its state,\n"
	"step / total, loss, tokens/s, ETA, effective training time (ETT:\n"
	"step_time_s summed over the steps that stay on the final timeline,\n"
	"over the run's wall time), steps lost to restarts, and incidents.\n\n"
	"  --json   one JSON object {\"supervisor\": {...}|null, \"run\": {...}|null}\n",
	cmd_status,
};
