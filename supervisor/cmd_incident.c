/*
 * cmd_incident.c - `tend incident show ID`: one incident in full, its
 * evidence (the metric window the detector saw) as a small table and a
 * sparkline, and the proposals it prompted.
 */
#include "cli.h"
#include "inspect.h"
#include "json.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const cli_cmd cli_incident_cmd;

#define SPARK_W 60

/* An evidence number: null is NaN, "inf"/"-inf" are infinities. */
static double ev_num(const json_val *v)
{
	const char *s = json_str(v, NULL);
	if (json_type(v) == JSON_NUM)
		return json_num(v);
	if (s && strcmp(s, "inf") == 0)
		return INFINITY;
	if (s && strcmp(s, "-inf") == 0)
		return -INFINITY;
	return NAN;
}

static void print_window(const json_val *steps, const json_val *vals)
{
	size_t n = json_len(vals) < json_len(steps) ? json_len(vals) : json_len(steps);
	double *v = malloc((n ? n : 1) * sizeof *v);
	char spark[RND_SPARK_CAP(SPARK_W)], num[40];
	if (!v)
		return;
	printf("  %8s  %s\n", "step", "value");
	for (size_t i = 0; i < n; i++) {
		v[i] = ev_num(json_at(vals, i));
		printf("  %8.0f  %s\n", json_num(json_at(steps, i)),
		       rnd_exact(num, sizeof num, v[i]));
	}
	if (rnd_sparkline(spark, sizeof spark, v, n, SPARK_W) > 0)
		printf("  %s\n", spark);
	free(v);
}

/* The evidence readably; text that is not the monitors' shape as is. */
static void print_evidence(const char *text)
{
	json_doc *doc = NULL;
	char a[40], b[40], c[40];
	if (!text || json_parse(&doc, text, strlen(text), NULL) < 0 ||
	    json_type(json_root(doc)) != JSON_OBJ) {
		printf("evidence    %s\n", text ? text : "-");
		json_doc_free(doc);
		return;
	}
	const json_val *r = json_root(doc);
	printf("evidence    value %s, baseline %s, threshold %s\n",
	       rnd_num(a, sizeof a, ev_num(json_get(r, "value")), 6, 0),
	       rnd_num(b, sizeof b, ev_num(json_get(r, "baseline")), 6, 0),
	       rnd_num(c, sizeof c, ev_num(json_get(r, "threshold")), 6, 0));
	if (json_len(json_get(r, "steps")) > 0)
		print_window(json_get(r, "steps"), json_get(r, "values"));
	json_doc_free(doc);
}

static int print_proposal(const store_proposal *p, void *ud)
{
	(void)ud;
	printf("  #%lld %s by %s%s%s: %s\n", (long long)p->id, p->state, p->proposer,
	       p->model ? " " : "", p->model ? p->model : "",
	       p->diagnosis ? p->diagnosis : "");
	return 0;
}

static void print_text(store *s, const store_incident *i, const char *run)
{
	char t1[32], t2[32];
	printf("incident    %lld: %s (%s), %s\n", (long long)i->id, i->kind,
	       i->severity, i->state);
	printf("run         %s\n", run);
	printf("signature   %s\n", i->signature);
	printf("onset       step %lld at %s\n", (long long)i->onset_step,
	       rnd_time(t1, sizeof t1, i->first_t));
	printf("last        step %lld at %s, %lld observation%s\n",
	       (long long)i->last_step, rnd_time(t2, sizeof t2, i->last_t),
	       (long long)i->count, i->count == 1 ? "" : "s");
	printf("summary     %s\n", i->summary ? i->summary : "");
	if (strcmp(i->state, "resolved") == 0)
		printf("resolved    %s: %s\n", rnd_time(t1, sizeof t1, i->resolved_t),
		       i->resolution ? i->resolution : "");
	print_evidence(i->evidence);
	printf("proposals\n");
	store_proposal_list(s, i->id, print_proposal, NULL);
}

static int show(store *s, int64_t id, bool json)
{
	store_incident *i = NULL;
	store_run *r = NULL;
	int rc = store_incident_get(s, &i, id);
	if (rc == TEND_ENOTFOUND)
		rc = tend_error_set(rc, "no incident %lld; `tend incidents` lists them",
				    (long long)id);
	if (rc < 0)
		return rc;
	if (store_run_get(s, &r, i->run_id) < 0)
		r = NULL;
	if (json) {
		jbuf b;
		jbuf_init(&b);
		jbuf_obj_open(&b);
		insp_incident_json(&b, i, r ? r->name : NULL);
		jbuf_obj_close(&b);
		rc = rnd_json_out(stdout, &b);
		jbuf_free(&b);
	} else {
		print_text(s, i, r ? r->name : "?");
	}
	store_run_free(r);
	store_incident_free(i);
	return rc;
}

/* `tend incident label ID real|false`: a person's verdict, which judging a
 * patch to the monitors by replay relies on. */
static int label(int argc, char **argv)
{
	char ws[PATH_MAX], path[PATH_MAX + 16], *end;
	store *s = NULL;
	if (argc != 4 || (strcmp(argv[3], "real") && strcmp(argv[3], "false"))) {
		fprintf(stderr, "usage: tend incident label ID real|false\n");
		return CLI_USAGE;
	}
	long long id = strtoll(argv[2], &end, 10);
	if (end == argv[2] || *end || id <= 0) {
		fprintf(stderr, "tend incident label: expected an incident id, got '%s'\n", argv[2]);
		return CLI_USAGE;
	}
	if (cli_workspace(ws, sizeof ws) < 0)
		return cli_fail(CLI_USAGE, "incident label");
	snprintf(path, sizeof path, "%s/tend.db", ws);
	const char *who = getenv("USER");
	int rc = store_open(&s, path, 0);
	if (rc == 0)
		rc = store_incident_label(s, id, argv[3], who && *who ? who : "human");
	store_close(s);
	if (rc < 0)
		return cli_fail(CLI_FAIL, "incident label");
	printf("incident %lld labelled %s\n", id, argv[3]);
	return CLI_OK;
}

static int cmd_incident(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "label"))
		return label(argc, argv);
	static const struct option lo[] = {{"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	char ws[PATH_MAX], *end;
	bool json = false;
	store *s = NULL;
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'j')
			return insp_usage(cli_incident_cmd.help);
		json = true;
	}
	if (optind + 2 != argc || strcmp(argv[optind], "show") != 0)
		return insp_usage(cli_incident_cmd.help);
	long long id = strtoll(argv[optind + 1], &end, 10);
	if (end == argv[optind + 1] || *end || id <= 0) {
		fprintf(stderr, "tend incident show: expected an incident id (a "
			"positive integer), got '%s'\n", argv[optind + 1]);
		return CLI_USAGE;
	}
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "incident");
	rc = show(s, id, json);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "incident show") : CLI_OK;
}

const cli_cmd cli_incident_cmd = {
	"incident", "show one incident in full, with its evidence",
	"usage: tend incident show ID [--json]\n"
	"       tend incident label ID real|false\n\n"
	"Shows incident ID: kind, severity, state, run, signature, onset and\n"
	"last step and time, observations, summary, resolution, and its\n"
	"evidence: the figures that tripped the detector and the metric window\n"
	"it saw, as a table of (step, value) and a sparkline (! marks NaN or\n"
	"an infinity); then the proposals the incident prompted.\n\n"
	"  --json   one JSON object with every field; evidence as JSON\n\n"
	"label records whether the incident was real or a false positive: a\n"
	"patch to the monitors is judged by replaying the recorded runs, and\n"
	"must still find every incident labelled real without raising more\n"
	"false positives on clean runs. A promoted fix labels its incident real.\n",
	cmd_incident,
};
