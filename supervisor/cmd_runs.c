/*
 * cmd_runs.c - `tend runs`: every run of the workspace, oldest first, with
 * its state and accounts (inspect.h says how they are computed).
 */
#include "cli.h"
#include "clock.h"
#include "inspect.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <string.h>

extern const cli_cmd cli_runs_cmd;

static int add_row(rnd_table *t, const store_run *r, const insp_summary *s)
{
	char started[32], loss[32], tps[32], ett[32];
	rnd_table_cell(t, "%s", r->name);
	rnd_table_cell(t, "%s", r->state);
	rnd_table_cell(t, "%s", rnd_time(started, sizeof started, r->started_t));
	if (s->last_step >= 0)
		rnd_table_cell(t, "%lld", (long long)s->last_step);
	else
		rnd_table_cell(t, "-");
	rnd_table_cell(t, "%s", rnd_num(loss, sizeof loss, s->last_loss, 5, 1));
	rnd_table_cell(t, "%s", rnd_num(tps, sizeof tps, s->tokens_per_s, 4, 1));
	rnd_table_cell(t, "%s", rnd_percent(ett, sizeof ett, s->ett));
	return rnd_table_cell(t, "%d", s->open_incidents);
}

static int list(store *s, const store_run *runs, size_t n, bool json)
{
	static const char *const head[] = {"NAME", "STATE", "STARTED", "STEP",
		"LOSS", "TOK/S", "ETT", "OPEN INCIDENTS"};
	rnd_table *t = NULL;
	jbuf b;
	int rc;
	jbuf_init(&b);
	if ((rc = jbuf_arr_open(&b)) < 0 || (!json && (rc = rnd_table_new(&t, 8, head,
							"lllrrrrr")) < 0))
		goto done;
	for (size_t i = 0; i < n; i++) {
		insp_summary sum;
		if ((rc = insp_summary_of(s, &runs[i], tend_wall_s(), &sum)) < 0)
			goto done;
		if (json) {
			jbuf_obj_open(&b);
			insp_summary_json(&b, &runs[i], &sum);
			rc = jbuf_obj_close(&b);
		} else {
			rc = add_row(t, &runs[i], &sum);
		}
		if (rc < 0)
			goto done;
	}
	if (json) {
		jbuf_arr_close(&b);
		rc = rnd_json_out(stdout, &b);
	} else if (n == 0) {
		puts("no runs yet; start one with `tend run`");
	} else {
		rnd_table_print(stdout, t);
	}
done:
	rnd_table_free(t);
	jbuf_free(&b);
	return rc;
}

static int cmd_runs(int argc, char **argv)
{
	static const struct option lo[] = {{"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	char ws[PATH_MAX];
	bool json = false;
	store *s = NULL;
	store_run *runs = NULL;
	size_t n = 0;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'j')
			return insp_usage(cli_runs_cmd.help);
		json = true;
	}
	if (optind < argc)
		return insp_usage(cli_runs_cmd.help);
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "runs");
	if ((rc = store_run_list(s, &runs, &n)) == 0)
		rc = list(s, runs, n, json);
	store_run_list_free(runs, n);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "runs") : CLI_OK;
}

const cli_cmd cli_runs_cmd = {
	"runs", "list the runs with their state, progress and accounts",
	"usage: tend runs [--json]\n\n"
	"Lists every run of the workspace, oldest first: its name, state, start\n"
	"time, last step, last loss, tokens/s, effective training time (ETT:\n"
	"productive step time over wall time) and open incidents.\n\n"
	"  --json   one JSON array of objects (fields in docs/cli.md)\n",
	cmd_runs,
};
