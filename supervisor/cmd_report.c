/*
 * cmd_report.c - `tend report RUN`: a run on one screen: its accounts, its
 * incidents, and the loss over the final timeline as a sparkline with the
 * incidents' onsets marked underneath.
 */
#include "cli.h"
#include "clock.h"
#include "inspect.h"
#include "render.h"
#include "tend.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern const cli_cmd cli_report_cmd;

#define SPARK_W 60

typedef struct report {
	insp_summary sum;
	store_incident *inc;     /* copies of the run's incidents */
	size_t n_inc, cap_inc;
	int64_t *steps;          /* the loss series of the final timeline */
	double *loss;
	size_t n;
	char spark[RND_SPARK_CAP(SPARK_W)];
	char marks[SPARK_W + 1]; /* kind initials under the sparkline */
	int cols;
} report;

static int keep_incident(const store_incident *i, void *ud)
{
	report *r = ud;
	if (r->n_inc == r->cap_inc) {
		size_t cap = r->cap_inc ? 2 * r->cap_inc : 8;
		store_incident *v = realloc(r->inc, cap * sizeof *v);
		if (!v)
			return tend_error_set(TEND_ENOMEM, "report: out of memory");
		r->inc = v;
		r->cap_inc = cap;
	}
	store_incident *c = &r->inc[r->n_inc];
	*c = *i;
	/* The listing's strings live only during the call. */
	c->kind = strdup(i->kind);
	c->severity = strdup(i->severity);
	c->signature = strdup(i->signature);
	c->state = strdup(i->state);
	c->summary = strdup(i->summary ? i->summary : "");
	c->evidence = i->evidence ? strdup(i->evidence) : NULL;
	c->resolution = i->resolution ? strdup(i->resolution) : NULL;
	r->n_inc++;
	if (!c->kind || !c->severity || !c->signature || !c->state || !c->summary)
		return tend_error_set(TEND_ENOMEM, "report: out of memory");
	return 0;
}

static void report_free(report *r)
{
	for (size_t i = 0; i < r->n_inc; i++) {
		store_incident *c = &r->inc[i];
		free((char *)c->kind);
		free((char *)c->severity);
		free((char *)c->signature);
		free((char *)c->state);
		free((char *)c->summary);
		free((char *)c->evidence);
		free((char *)c->resolution);
	}
	free(r->inc);
	free(r->steps);
	free(r->loss);
}

/* The loss series out of the timeline. */
static int take_loss(report *r, const insp_timeline *tl)
{
	r->steps = malloc((tl->n ? tl->n : 1) * sizeof *r->steps);
	r->loss = malloc((tl->n ? tl->n : 1) * sizeof *r->loss);
	if (!r->steps || !r->loss)
		return tend_error_set(TEND_ENOMEM, "report: out of memory");
	for (size_t i = 0; i < tl->n; i++)
		if (tl->p[i].have & (1u << INSP_LOSS)) {
			r->steps[r->n] = tl->p[i].step;
			r->loss[r->n++] = tl->p[i].v[INSP_LOSS];
		}
	return 0;
}

/* The sparkline, and each incident's kind initial under the column where
 * its onset step falls ('*' where kinds share a column). */
static void draw(report *r)
{
	r->cols = rnd_sparkline(r->spark, sizeof r->spark, r->loss, r->n, SPARK_W);
	if (r->cols < 0)
		r->cols = 0;
	memset(r->marks, ' ', (size_t)r->cols);
	r->marks[r->cols] = '\0';
	for (size_t k = 0; k < r->n_inc && r->cols > 0; k++) {
		size_t i = 0;
		while (i + 1 < r->n && r->steps[i] < r->inc[k].onset_step)
			i++;
		int c = rnd_spark_col(i, r->n, SPARK_W);
		char m = r->inc[k].kind[0];
		r->marks[c] = r->marks[c] == ' ' || r->marks[c] == m ? m : '*';
	}
	/* Trailing blanks say nothing. */
	for (int c = r->cols - 1; c >= 0 && r->marks[c] == ' '; c--)
		r->marks[c] = '\0';
}

static int gather(report *r, store *s, const store_run *run)
{
	insp_timeline tl;
	int rc = insp_timeline_read(s, run->id, &tl);
	if (rc < 0)
		return rc;
	if ((rc = insp_summarize(s, run, &tl, tend_wall_s(), &r->sum)) == 0 &&
	    (rc = take_loss(r, &tl)) == 0)
		rc = store_incident_list(s, run->id, NULL, keep_incident, r);
	insp_timeline_free(&tl);
	if (rc == 0)
		draw(r);
	return rc;
}

static void series_range(const report *r, double *lo, double *hi)
{
	*lo = INFINITY;
	*hi = -INFINITY;
	for (size_t i = 0; i < r->n; i++)
		if (isfinite(r->loss[i])) {
			*lo = r->loss[i] < *lo ? r->loss[i] : *lo;
			*hi = r->loss[i] > *hi ? r->loss[i] : *hi;
		}
	if (*lo > *hi)
		*lo = *hi = NAN;
}

static void print_incidents(const report *r)
{
	printf("incidents   %zu (%d open)\n", r->n_inc, r->sum.open_incidents);
	for (size_t k = 0; k < r->n_inc; k++) {
		const store_incident *i = &r->inc[k];
		printf("  #%lld %s (%s) steps %lld..%lld x%lld, %s: %s\n", (long long)i->id,
		       i->kind, i->severity, (long long)i->onset_step,
		       (long long)i->last_step, (long long)i->count, i->state, i->summary);
	}
}

static void print_legend(const report *r)
{
	const char *shown[32];
	int n = 0;
	printf("  ");
	for (size_t k = 0; k < r->n_inc && n < 32; k++) {
		const char *kind = r->inc[k].kind;
		int j = 0;
		while (j < n && strcmp(shown[j], kind) != 0)
			j++;
		if (j < n)
			continue;
		printf("%s%c = %s", n ? ", " : "", kind[0], kind);
		shown[n++] = kind;
	}
	putchar('\n');
}

static void print_curve(const report *r)
{
	char a[32], b[32];
	double lo, hi;
	if (r->n == 0) {
		printf("loss        no values recorded\n");
		return;
	}
	series_range(r, &lo, &hi);
	printf("loss over steps %lld..%lld (min %s, max %s; ! = NaN or inf):\n",
	       (long long)r->steps[0], (long long)r->steps[r->n - 1],
	       rnd_num(a, sizeof a, lo, 5, 1), rnd_num(b, sizeof b, hi, 5, 1));
	printf("  %s\n", r->spark);
	if (r->marks[0] == '\0')
		return;
	printf("  ");
	for (const char *m = r->marks; *m; m++)
		putchar(*m == ' ' ? ' ' : '^');
	printf("\n  %s\n", r->marks);
	print_legend(r);
}

static void print_text(const report *r, const store_run *run)
{
	const insp_summary *s = &r->sum;
	char a[32], b[32], c[32];
	printf("run         %s (%s)\n", run->name, run->state);
	printf("steps       %lld on the final timeline; %d attempt%s, %d restart%s, "
	       "%ld steps lost\n", (long long)(s->last_step < 0 ? 0 : s->last_step),
	       s->attempts, s->attempts == 1 ? "" : "s", s->restarts,
	       s->restarts == 1 ? "" : "s", s->lost_steps);
	printf("final loss  %s\n", rnd_num(a, sizeof a, s->last_loss, 6, 1));
	if (s->best_val_step >= 0)
		printf("best val    %s at step %lld\n",
		       rnd_num(a, sizeof a, s->best_val_loss, 6, 1),
		       (long long)s->best_val_step);
	else
		printf("best val    -\n");
	printf("wall time   %s (%s .. %s)\n", rnd_duration(a, sizeof a, s->wall_s),
	       rnd_time(b, sizeof b, run->started_t), rnd_time(c, sizeof c, run->ended_t));
	printf("ETT         %s (productive %s)\n", rnd_percent(a, sizeof a, s->ett),
	       rnd_duration(b, sizeof b, s->productive_s));
	print_incidents(r);
	print_curve(r);
}

static int print_json(const report *r, const store_run *run)
{
	double lo, hi;
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	insp_summary_json(&b, run, &r->sum);
	series_range(r, &lo, &hi);
	jbuf_key(&b, "loss_min");
	rnd_json_num(&b, lo);
	jbuf_key(&b, "loss_max");
	rnd_json_num(&b, hi);
	jbuf_key(&b, "sparkline");
	jbuf_str(&b, r->spark);
	jbuf_key(&b, "marks");
	jbuf_str(&b, r->marks);
	jbuf_key(&b, "incident_list");
	jbuf_arr_open(&b);
	for (size_t k = 0; k < r->n_inc; k++) {
		jbuf_obj_open(&b);
		insp_incident_json(&b, &r->inc[k], run->name);
		jbuf_obj_close(&b);
	}
	jbuf_arr_close(&b);
	jbuf_obj_close(&b);
	int rc = rnd_json_out(stdout, &b);
	jbuf_free(&b);
	return rc;
}

static int cmd_report(int argc, char **argv)
{
	static const struct option lo[] = {{"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	char ws[PATH_MAX];
	bool json = false;
	store *s = NULL;
	store_run *run = NULL;
	report r = {0};
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'j')
			return insp_usage(cli_report_cmd.help);
		json = true;
	}
	if (optind + 1 != argc)
		return insp_usage(cli_report_cmd.help);
	if ((rc = insp_open(&s, ws, sizeof ws)) < 0)
		return cli_fail(rc == TEND_ENOTFOUND ? CLI_USAGE : CLI_FAIL, "report");
	if ((rc = insp_run(s, argv[optind], &run)) == 0 && (rc = gather(&r, s, run)) == 0) {
		if (json)
			rc = print_json(&r, run);
		else
			print_text(&r, run);
	}
	report_free(&r);
	store_run_free(run);
	store_close(s);
	return rc < 0 ? cli_fail(CLI_FAIL, "report") : CLI_OK;
}

const cli_cmd cli_report_cmd = {
	"report", "summarize a run: accounts, incidents, loss sparkline",
	"usage: tend report RUN [--json]\n\n"
	"Summarizes RUN: steps, final loss, best validation loss, wall time,\n"
	"effective training time, attempts and restarts, steps lost, its\n"
	"incidents with their steps, and the loss over the final timeline as a\n"
	"sparkline (about 60 columns, each the mean of its steps; ! marks NaN or\n"
	"an infinity) with each incident's onset marked underneath by the\n"
	"initial of its kind (* where kinds share a column).\n\n"
	"  --json   one JSON object: the run's figures (as `tend runs --json`),\n"
	"           loss_min, loss_max, sparkline, marks, incident_list\n",
	cmd_report,
};
