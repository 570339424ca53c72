/*
 * cmd_replay.c - `tend replay RUN|FILE`: recorded metrics through a fresh
 * set of detectors configured as the workspace's tend.yaml says (the
 * mapping the supervisor uses), printing the incidents they raise. This is
 * how a change to the monitors or their settings is tried on past runs.
 */
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "inspect.h"
#include "render.h"
#include "replay.h"
#include "sup_int.h"
#include "tend.h"
#include "umon.h"

#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

extern const cli_cmd cli_replay_cmd;

typedef struct opts {
	const char *what;      /* RUN or FILE */
	const char *config;    /* --config, or NULL */
	const char *scaffold;  /* --scaffold, or NULL */
	bool json;
} opts;

static void print_text(const rpl_result *r, double secs)
{
	static const char *const head[] = {"KIND", "SEVERITY", "ONSET", "LAST",
		"COUNT", "SIGNATURE", "SUMMARY"};
	rnd_table *t = NULL;
	printf("replayed %ld rows as %ld samples (%ld restart%s, %ld malformed) in %.2f s\n",
	       r->rows, r->samples, r->restarts, r->restarts == 1 ? "" : "s",
	       r->malformed, secs);
	if (r->n == 0) {
		printf("no incidents\n");
		return;
	}
	if (rnd_table_new(&t, 7, head, "llrrrll") < 0)
		return;
	for (size_t i = 0; i < r->n; i++) {
		const rpl_incident *x = &r->v[i];
		rnd_table_cell(t, "%s", mon_kind_name(x->first.kind));
		rnd_table_cell(t, "%s", mon_severity_name(x->severity));
		rnd_table_cell(t, "%ld", x->first.onset_step);
		rnd_table_cell(t, "%ld", x->last_step);
		rnd_table_cell(t, "%ld", x->count);
		rnd_table_cell(t, "%s", x->first.signature);
		rnd_table_cell(t, "%s", x->first.summary);
	}
	rnd_table_print(stdout, t);
	rnd_table_free(t);
}

static int print_json(const rpl_result *r, const char *what, bool file, double secs)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, file ? "file" : "run");
	jbuf_str(&b, what);
	jbuf_key(&b, "rows");
	jbuf_int(&b, r->rows);
	jbuf_key(&b, "samples");
	jbuf_int(&b, r->samples);
	jbuf_key(&b, "restarts");
	jbuf_int(&b, r->restarts);
	jbuf_key(&b, "malformed");
	jbuf_int(&b, r->malformed);
	jbuf_key(&b, "seconds");
	jbuf_num(&b, secs);
	jbuf_key(&b, "incidents");
	jbuf_arr_open(&b);
	for (size_t i = 0; i < r->n; i++) {
		const rpl_incident *x = &r->v[i];
		jbuf_obj_open(&b);
		jbuf_key(&b, "kind");
		jbuf_str(&b, mon_kind_name(x->first.kind));
		jbuf_key(&b, "severity");
		jbuf_str(&b, mon_severity_name(x->severity));
		jbuf_key(&b, "signature");
		jbuf_str(&b, x->first.signature);
		jbuf_key(&b, "onset_step");
		jbuf_int(&b, x->first.onset_step);
		jbuf_key(&b, "last_step");
		jbuf_int(&b, x->last_step);
		jbuf_key(&b, "count");
		jbuf_int(&b, x->count);
		jbuf_key(&b, "summary");
		jbuf_str(&b, x->first.summary);
		jbuf_obj_close(&b);
	}
	jbuf_arr_close(&b);
	jbuf_obj_close(&b);
	int rc = rnd_json_out(stdout, &b);
	jbuf_free(&b);
	return rc;
}

/* The scaffold's Lua monitors, when the config turns them on: from
 * --scaffold, else the workspace's scaffold. */
static int user_monitors(umon **user, bool on, const opts *o, const char *ws)
{
	char dir[PATH_MAX + 16];
	*user = NULL;
	if (!on || (!o->scaffold && !ws))
		return 0;
	snprintf(dir, sizeof dir, "%s/scaffold", ws ? ws : "");
	int rc = umon_open(user, o->scaffold ? o->scaffold : dir);
	return rc < 0 ? tend_error_wrap(rc, "%s/monitors.lua",
					o->scaffold ? o->scaffold : dir) : 0;
}

/* The detectors of --config, else of the workspace's tend.yaml, else (a
 * file replayed outside any workspace) the defaults. */
static int configure(mon_params *mp, umon **user, const opts *o, const char *ws)
{
	char path[PATH_MAX + 16];
	cfg *c = NULL;
	int rc;
	if (!o->config && !ws) {
		mon_params_default(mp);
		return user_monitors(user, o->scaffold != NULL, o, ws);
	}
	snprintf(path, sizeof path, "%s/tend.yaml", ws ? ws : "");
	if ((rc = cfg_load(&c, o->config ? o->config : path)) == 0 &&
	    (rc = sup__mon_params(mp, c)) == 0)
		rc = user_monitors(user, c->monitors.lua.enabled, o, ws);
	cfg_free(c);
	return rc;
}

static int replay(const opts *o, bool file, const char *ws, rpl_result *res)
{
	mon_params mp;
	rpl_opts ro = {&mp, NULL};
	store *s = NULL;
	store_run *r = NULL;
	char wsbuf[PATH_MAX];
	int rc;
	if ((rc = configure(&mp, &ro.user, o, ws)) < 0)
		return cli_fail(CLI_USAGE, "replay");
	uint64_t t0 = tend_mono_ns();
	if (file) {
		rc = rpl_file(res, o->what, &ro);
	} else if ((rc = insp_open(&s, wsbuf, sizeof wsbuf)) == 0 &&
		   (rc = insp_run(s, o->what, &r)) == 0) {
		rc = rpl_store(res, s, r->id, &ro);
	}
	double secs = (double)(tend_mono_ns() - t0) / 1e9;
	umon_free(ro.user);
	store_run_free(r);
	store_close(s);
	if (rc < 0)
		return cli_fail(CLI_FAIL, "replay");
	if (res->user_errors > 0)
		fprintf(stderr, "tend replay: %ld call%s of monitors.lua failed; the first: %s\n",
			res->user_errors, res->user_errors == 1 ? "" : "s", res->user_error);
	if (o->json)
		return print_json(res, o->what, file, secs) < 0
			? cli_fail(CLI_FAIL, "replay") : CLI_OK;
	print_text(res, secs);
	return CLI_OK;
}

static int parse(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{"config", 1, 0, 'c'}, {"scaffold", 1, 0, 's'}, {"json", 0, 0, 'j'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'c')
			o->config = optarg;
		else if (c == 's')
			o->scaffold = optarg;
		else if (c == 'j')
			o->json = true;
		else
			return insp_usage(cli_replay_cmd.help);
	}
	if (optind + 1 != argc)
		return insp_usage(cli_replay_cmd.help);
	o->what = argv[optind];
	return 0;
}

static int cmd_replay(int argc, char **argv)
{
	opts o = {0};
	char ws[PATH_MAX];
	struct stat st;
	rpl_result res = {0};
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	bool file = stat(o.what, &st) == 0 && S_ISREG(st.st_mode);
	bool have_ws = cli_workspace(ws, sizeof ws) == 0;
	if (!have_ws && !file)
		return cli_fail(CLI_USAGE, "replay %s: no such file, and no workspace "
				"to find a run in", o.what);
	rc = replay(&o, file, have_ws ? ws : NULL, &res);
	rpl_result_free(&res);
	return rc;
}

const cli_cmd cli_replay_cmd = {
	"replay", "run recorded metrics through the monitors again",
	"usage: tend replay RUN|FILE [--config FILE] [--scaffold DIR] [--json]\n\n"
	"Feeds recorded metrics through a fresh set of detectors and prints the\n"
	"incidents they raise (kind, severity, onset and last step, count,\n"
	"signature, summary). FILE is a metrics.jsonl file, read with the same\n"
	"parser as live ingest (malformed lines are counted and skipped);\n"
	"otherwise RUN's values are read from the store in the order they were\n"
	"written, a restart being a step that goes backwards. The detectors are\n"
	"configured from the workspace's tend.yaml (outside a workspace, a FILE\n"
	"is replayed with the defaults), and with monitors.lua.enabled the\n"
	"scaffold's Lua monitors (monitors.lua) run too, on batches of 256\n"
	"samples. Nothing is written to the store.\n\n"
	"  --config FILE   take the monitor settings from FILE instead\n"
	"  --scaffold DIR  take monitors.lua from DIR instead of WS/scaffold\n"
	"  --json          one JSON object: rows, samples, restarts, malformed,\n"
	"                  seconds, incidents[]\n",
	cmd_replay,
};
