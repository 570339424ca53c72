/*
 * cmd_incidents.c - `tend incidents`: what the monitors found, for one run
 * or all of them, open or resolved. `tend incident show` (cmd_incident.c)
 * shows one in full.
 */
#include "cli.h"
#include "inspect.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

extern const cli_cmd cli_incidents_cmd;

typedef struct listing {
	store_run *runs;  /* for the names of run ids */
	size_t n_runs;
	rnd_table *t;     /* text */
	jbuf *b;          /* or JSON */
} listing;

static const char *run_name(const listing *l, int64_t id)
{
	for (size_t i = 0; i < l->n_runs; i++)
		if (l->runs[i].id == id)
			return l->runs[i].name;
	return "?";
}

static int add_row(const store_incident *i, void *ud)
{
	listing *l = ud;
	rnd_table *t = l->t;
	if (l->b) {
		jbuf_obj_open(l->b);
		insp_incident_json(l->b, i, run_name(l, i->run_id));
		return jbuf_obj_close(l->b);
	}
	rnd_table_cell(t, "%lld", (long long)i->id);
	rnd_table_cell(t, "%s", run_name(l, i->run_id));
	rnd_table_cell(t, "%s", i->kind);
	rnd_table_cell(t, "%s", i->severity);
	rnd_table_cell(t, "%s", i->state);
	rnd_table_cell(t, "%lld", (long long)i->onset_step);
	rnd_table_cell(t, "%lld", (long long)i->last_step);
	rnd_table_cell(t, "%lld", (long long)i->count);
	return rnd_table_cell(t, "%s", i->summary ? i->summary : "");
}

static int list(store *s, int64_t run, const char *state, bool json)
{
	static const char *const head[] = {"ID", "RUN", "KIND", "SEVERITY", "STATE",
		"ONSET", "LAST", "COUNT", "SUMMARY"};
	listing l = {0};
	jbuf b;
	int rc;
	jbuf_init(&b);
	if ((rc = store_run_list(s, &l.runs, &l.n_runs)) < 0 ||
	    (rc = rnd_table_new(&l.t, 9, head, "rllllrrrl")) < 0)
		goto done;
	l.b = json ? &b : NULL;
	jbuf_arr_open(&b);
	if ((rc = store_incident_list(s, run, state, add_row, &l)) < 0)
		goto done;
	if (json) {
		jbuf_arr_close(&b);
		rc = rnd_json_out(stdout, &b);
	} else if (rnd_table_rows(l.t) == 0) {
		printf("no %s%sincidents\n", state ? state : "", state ? " " : "");
	} else {
		rnd_table_print(stdout, l.t);
	}
done:
	store_run_list_free(l.runs, l.n_runs);
	rnd_table_free(l.t);
	jbuf_free(&b);
	return rc;
}

static int parse(int argc, char **argv, const char **state, bool *json)
{
	static const struct option lo[] = {
		{"state", 1, 0, 's'}, {"json", 0, 0, 'j'}, {0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'j') {
			*json = true;
		} else if (c == 's' && (strcmp(optarg, "open") == 0 ||
					strcmp(optarg, "resolved") == 0)) {
			*state = optarg;
		} else if (c == 's') {
			fprintf(stderr, "tend incidents: --state: expected open or "
				"resolved, got '%s'\n", optarg);
			return CLI_USAGE;
		} else {
			return insp_usage(cli_incidents_cmd.help);
		}
	}
	return optind + 1 < argc ? insp_usage(cli_incidents_cmd.help) : 0;
}

static int cmd_incidents(int argc, char **argv)
{
	char ws[PATH_MAX];
	const char *state = NULL;
	bool json = false;
	store *s = NULL;
	store_run *r = NULL;
	int rc = parse(argc, argv, &state, &json);
	if (rc)
		return rc;
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "incidents");
	if (optind < argc && (rc = insp_run(s, argv[optind], &r)) < 0)
		goto done;
	rc = list(s, r ? r->id : 0, state, json);
done:
	store_run_free(r);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "incidents") : CLI_OK;
}

const cli_cmd cli_incidents_cmd = {
	"incidents", "list the incidents the monitors raised",
	"usage: tend incidents [RUN] [--state open|resolved] [--json]\n\n"
	"Lists incidents, oldest first, of RUN or of every run: id, run, kind,\n"
	"severity, state, onset and last step, observations folded into it, and\n"
	"the summary of the first. `tend incident show ID` shows one in full.\n\n"
	"  --state S  only open or only resolved incidents\n"
	"  --json     one JSON array of incident objects (as `incident show`)\n",
	cmd_incidents,
};
