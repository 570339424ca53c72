/*
 * cmd_metrics.c - `tend metrics RUN`: the names of a run's metrics, or one
 * metric's (step, value) rows, optionally following the store as the run
 * goes on.
 */
#include "cli.h"
#include "inspect.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

extern const cli_cmd cli_metrics_cmd;

#define POLL_MS 200

/* Following: a poll prints the rows past the watermark, the newest row
 * (in attempt, step order) that earlier polls printed. Rows of an older
 * attempt never come later, and an attempt writes its steps in order. */
typedef struct follow {
	bool json;
	int wm_attempt;   /* 0: print every row */
	int64_t wm_step;
	int hi_attempt;   /* the newest row printed so far */
	int64_t hi_step;
} follow;

static int print_name(const char *name, void *ud)
{
	jbuf *b = ud;
	if (b)
		return jbuf_str(b, name);
	puts(name);
	return 0;
}

static int list_names(store *s, int64_t run, bool json)
{
	jbuf b;
	int rc;
	jbuf_init(&b);
	jbuf_arr_open(&b);
	rc = store_metric_names(s, run, print_name, json ? &b : NULL);
	if (rc == 0 && json) {
		jbuf_arr_close(&b);
		rc = rnd_json_out(stdout, &b);
	}
	jbuf_free(&b);
	return rc;
}

static int print_row(int64_t step, int attempt, double v, double t, void *ud)
{
	follow *f = ud;
	char num[40];
	if (f->wm_attempt > 0 && (attempt < f->wm_attempt ||
				  (attempt == f->wm_attempt && step <= f->wm_step)))
		return 0;
	if (attempt > f->hi_attempt) {
		f->hi_attempt = attempt;
		f->hi_step = step;
	} else if (attempt == f->hi_attempt && step > f->hi_step) {
		f->hi_step = step;
	}
	if (!f->json) {
		printf("%lld\t%s\n", (long long)step, rnd_exact(num, sizeof num, v));
		return 0;
	}
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "step");
	jbuf_int(&b, step);
	jbuf_key(&b, "attempt");
	jbuf_int(&b, attempt);
	jbuf_key(&b, "value");
	rnd_json_num(&b, v);
	jbuf_key(&b, "t");
	rnd_json_num(&b, t);
	jbuf_obj_close(&b);
	int rc = rnd_json_out(stdout, &b);
	jbuf_free(&b);
	return rc;
}

typedef struct lowest {
	int after;        /* attempts above this one are new */
	int64_t from;     /* the lowest step a new attempt resumed from */
} lowest;

static int new_attempt(const store_attempt *a, void *ud)
{
	lowest *l = ud;
	if (a->n > l->after) {
		int64_t from = a->from_step >= 0 ? a->from_step : 0;
		l->from = from < l->from ? from : l->from;
	}
	return 0;
}

/* Where the next poll must start reading: after the newest printed step,
 * or lower when a newer attempt resumed from an earlier checkpoint. */
static int64_t next_since(store *s, int64_t run, const follow *f)
{
	lowest l = {f->wm_attempt, f->wm_step + 1};
	if (store_attempt_list(s, run, new_attempt, &l) < 0)
		return 0;
	return l.from;
}

static int run_state(store *s, int64_t run, bool *terminal)
{
	store_run *r = NULL;
	int rc = store_run_get(s, &r, run);
	if (rc == 0)
		*terminal = insp_terminal(r->state);
	store_run_free(r);
	return rc;
}

static int follow_rows(store *s, int64_t run, const char *name, int64_t since,
		       follow *f)
{
	int rc = 0;
	bool done = false;
	insp_catch_sigint();
	while (!insp_interrupted()) {
		/* Read the state first: rows that land after it are picked
		 * up by one more round. */
		if ((rc = run_state(s, run, &done)) < 0)
			return rc;
		rc = store_metrics_read(s, run, name, since, print_row, f);
		if (rc < 0 && rc != TEND_ENOTFOUND) /* a name not recorded yet */
			return rc;
		fflush(stdout);
		if (done)
			return 0;
		f->wm_attempt = f->hi_attempt;
		f->wm_step = f->hi_step;
		insp_sleep_ms(POLL_MS);
		if (f->wm_attempt > 0)
			since = next_since(s, run, f);
	}
	return 0;
}

typedef struct opts {
	const char *name;
	int64_t since;
	bool follow, json;
} opts;

static int parse(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{"name", 1, 0, 'n'}, {"since", 1, 0, 's'}, {"follow", 0, 0, 'f'},
		{"json", 0, 0, 'j'}, {0, 0, 0, 0},
	};
	char *end;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'n': o->name = optarg; break;
		case 'f': o->follow = true; break;
		case 'j': o->json = true; break;
		case 's':
			o->since = strtoll(optarg, &end, 10);
			if (end == optarg || *end || o->since < 0) {
				fprintf(stderr, "tend metrics: --since: expected a step "
					"(an integer >= 0), got '%s'\n", optarg);
				return CLI_USAGE;
			}
			break;
		default: return insp_usage(cli_metrics_cmd.help);
		}
	}
	if (optind + 1 != argc || (o->follow && !o->name))
		return insp_usage(cli_metrics_cmd.help);
	return 0;
}

static int cmd_metrics(int argc, char **argv)
{
	char ws[PATH_MAX];
	opts o = {0};
	store *s = NULL;
	store_run *r = NULL;
	follow f = {0};
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc;
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "metrics");
	if ((rc = insp_run(s, argv[optind], &r)) < 0)
		goto done;
	f.json = o.json;
	if (!o.name)
		rc = list_names(s, r->id, o.json);
	else if (o.follow)
		rc = follow_rows(s, r->id, o.name, o.since, &f);
	else if ((rc = store_metrics_read(s, r->id, o.name, o.since, print_row, &f)) ==
		 TEND_ENOTFOUND)
		tend_error_set(rc, "run %s has no metric named '%s'; `tend metrics %s` "
			       "lists them", r->name, o.name, r->name);
done:
	store_run_free(r);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "metrics") : CLI_OK;
}

const cli_cmd cli_metrics_cmd = {
	"metrics", "list a run's metrics, or print one metric's values",
	"usage: tend metrics RUN [--name NAME] [--since STEP] [--follow] [--json]\n\n"
	"Without --name, lists the names of the metrics RUN recorded. With it,\n"
	"prints one row per recorded value: step, a tab, the value (NaN as nan).\n"
	"A step that a restart repeated comes once per attempt.\n\n"
	"  --name NAME   the metric (loss, grad_norm, moe.0.load.3, ...)\n"
	"  --since STEP  only steps >= STEP\n"
	"  --follow      keep polling the store (every 200 ms) for new values\n"
	"                until the run is finished, stopped or failed, or Ctrl-C\n"
	"  --json        JSON lines {\"step\",\"attempt\",\"value\",\"t\"} (NaN as\n"
	"                null, infinities as \"inf\"/\"-inf\"); names as an array\n",
	cmd_metrics,
};
