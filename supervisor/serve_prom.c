/*
 * serve_prom.c - GET /metrics: the workspace's figures in the Prometheus
 * text exposition format (version 0.0.4), for people who already scrape
 * into Grafana. Per run: step, loss, tokens/s, effective training time,
 * open incidents; per proposal state: how many. docs/serve.md lists them.
 */
#include "serve_int.h"
#include "tend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prom_run {
	const store_run *r;
	insp_summary m;
} prom_run;

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void value(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else
		fprintf(f, "%.17g", v);
}

typedef double (*prom_get)(const prom_run *p);

static double get_step(const prom_run *p) { return (double)p->m.last_step; }
static double get_loss(const prom_run *p) { return p->m.last_loss; }
static double get_tps(const prom_run *p) { return p->m.tokens_per_s; }
static double get_ett(const prom_run *p) { return p->m.ett; }
static double get_prod(const prom_run *p) { return p->m.productive_s; }
static double get_wall(const prom_run *p) { return p->m.wall_s; }
static double get_open(const prom_run *p) { return p->m.open_incidents; }
static double get_restarts(const prom_run *p) { return p->m.restarts; }

static const struct {
	const char *name, *help;
	prom_get get;
} families[] = {
	{"tend_run_step", "Last training step the run recorded.", get_step},
	{"tend_run_loss", "Newest training loss.", get_loss},
	{"tend_run_tokens_per_second", "Newest training throughput.", get_tps},
	{"tend_run_effective_training_ratio",
	 "Productive step time over wall time since the run started (0..1).", get_ett},
	{"tend_run_productive_seconds", "Sum of step times on the final timeline.", get_prod},
	{"tend_run_wall_seconds", "Wall time since the run started (to its end).", get_wall},
	{"tend_run_open_incidents", "Incidents of the run still open.", get_open},
	{"tend_run_restarts", "Restarts of the run's trainer.", get_restarts},
};

static void write_runs(FILE *f, const prom_run *p, size_t n)
{
	fputs("# HELP tend_run_info A run and its lifecycle state (always 1).\n"
	      "# TYPE tend_run_info gauge\n", f);
	for (size_t i = 0; i < n; i++) {
		fputs("tend_run_info{run=\"", f);
		label(f, p[i].r->name);
		fputs("\",state=\"", f);
		label(f, p[i].r->state);
		fputs("\"} 1\n", f);
	}
	for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", families[k].name,
			families[k].help, families[k].name);
		for (size_t i = 0; i < n; i++) {
			fprintf(f, "%s{run=\"", families[k].name);
			label(f, p[i].r->name);
			fputs("\"} ", f);
			value(f, families[k].get(&p[i]));
			fputc('\n', f);
		}
	}
}

#define STATES_MAX 32

typedef struct states {
	char name[STATES_MAX][64];
	int64_t count[STATES_MAX];
	int n;
} states;

static int count_state(const store_proposal *p, void *ud)
{
	states *s = ud;
	int i;
	for (i = 0; i < s->n && strcmp(s->name[i], p->state); i++)
		;
	if (i == s->n) {
		if (s->n == STATES_MAX)
			return 0; /* more states than anyone uses: drop the rest */
		snprintf(s->name[s->n++], 64, "%s", p->state);
	}
	s->count[i]++;
	return 0;
}

static int count_open(const store_incident *i, void *ud)
{
	(void)i;
	(*(int64_t *)ud)++;
	return 0;
}

static int write_workspace(FILE *f, store *st)
{
	states s = {0};
	int64_t open = 0;
	int rc;
	if ((rc = store_proposal_list(st, 0, count_state, &s)) < 0 ||
	    (rc = store_incident_list(st, 0, "open", count_open, &open)) < 0)
		return rc;
	fputs("# HELP tend_proposals Proposals by lifecycle state.\n"
	      "# TYPE tend_proposals gauge\n", f);
	for (int i = 0; i < s.n; i++) {
		fputs("tend_proposals{state=\"", f);
		label(f, s.name[i]);
		fprintf(f, "\"} %lld\n", (long long)s.count[i]);
	}
	fprintf(f, "# HELP tend_open_incidents Open incidents over all runs.\n"
		"# TYPE tend_open_incidents gauge\ntend_open_incidents %lld\n",
		(long long)open);
	return 0;
}

int srv__prometheus(srv__req *r, store *st)
{
	store_run *runs = NULL;
	prom_run *p = NULL;
	size_t n = 0, len = 0;
	char *text = NULL;
	FILE *f = NULL;
	int rc = store_run_list(st, &runs, &n);
	if (rc < 0 || !(p = calloc(n ? n : 1, sizeof *p)) ||
	    !(f = open_memstream(&text, &len))) {
		rc = srv__fail(r, 500, "%s", rc < 0 ? tend_error_last() : "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		p[i].r = &runs[i];
		if (srv__summary_of(r->s, st, &runs[i], &p[i].m) < 0) {
			rc = srv__fail(r, 500, "%s", tend_error_last());
			goto done;
		}
	}
	write_runs(f, p, n);
	if (write_workspace(f, st) < 0) {
		rc = srv__fail(r, 500, "%s", tend_error_last());
		goto done;
	}
	fclose(f);
	f = NULL;
	jbuf_reset(&r->out);
	jbuf_raw(&r->out, text, len);
	r->ctype = "text/plain; version=0.0.4; charset=utf-8";
	rc = 200;
done:
	if (f)
		fclose(f);
	free(text);
	free(p);
	store_run_list_free(runs, n);
	return rc;
}
