/*
 * propose_ctx.c - what a proposer sees about an incident, read from the
 * store: the incident and its evidence, the metric window around the onset,
 * the log tail with secrets redacted, and "memory" (past proposals for
 * incidents of the same kind, with what became of them). The scaffold's
 * files and history come from propose_repo.c. Each part is rendered once,
 * as JSON and where it reads better as text, when the context is built.
 */
#include "propose_int.h"
#include "tend.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_LINE_MAX 1000 /* bytes of one log line shown */
#define MEMORY_DIFF_MAX 2000

int prop__take(char **out, jbuf *b)
{
	if (b->err) {
		jbuf_free(b);
		return tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
	}
	*out = b->buf ? b->buf : strdup("");
	jbuf_init(b);
	return *out ? 0 : tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
}

void prop__tadd(prop__text *t, const char *s, size_t n)
{
	if (t->err)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = realloc(t->s, cap);
		if (!p) {
			t->err = TEND_ENOMEM;
			return;
		}
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = '\0';
}

void prop__tputs(prop__text *t, const char *s)
{
	prop__tadd(t, s, strlen(s));
}

void prop__tprintf(prop__text *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		prop__tadd(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int prop__ttake(char **out, prop__text *t)
{
	if (t->err) {
		free(t->s);
		*t = (prop__text){0};
		return tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
	}
	*out = t->s ? t->s : strdup("");
	*t = (prop__text){0};
	return *out ? 0 : tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
}

static void jstr_or_null(jbuf *b, const char *key, const char *s)
{
	jbuf_key(b, key);
	if (s)
		jbuf_str(b, s);
	else
		jbuf_null(b);
}

/* A number, or a string for NaN and the infinities (JSON has none). */
static void jnum_any(jbuf *b, double v)
{
	if (isnan(v))
		jbuf_str(b, "NaN");
	else if (isinf(v))
		jbuf_str(b, v > 0 ? "Infinity" : "-Infinity");
	else
		jbuf_num(b, v);
}

/* ---- the incident ---------------------------------------------------------- */

static int incident_part(prop_ctx *c, const store_incident *i)
{
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "id");
	jbuf_int(&b, i->id);
	jbuf_key(&b, "run_id");
	jbuf_int(&b, i->run_id);
	jstr_or_null(&b, "kind", i->kind);
	jstr_or_null(&b, "severity", i->severity);
	jstr_or_null(&b, "signature", i->signature);
	jbuf_key(&b, "onset_step");
	jbuf_int(&b, i->onset_step);
	jbuf_key(&b, "last_step");
	jbuf_int(&b, i->last_step);
	jbuf_key(&b, "count");
	jbuf_int(&b, i->count);
	jstr_or_null(&b, "state", i->state);
	jstr_or_null(&b, "summary", i->summary);
	jbuf_obj_close(&b);
	int rc = prop__take(&c->incident_json, &b);
	if (rc < 0)
		return rc;
	/* Evidence is JSON from the monitors; shown as it is when it parses
	 * strictly, else as a string, so the context stays valid JSON. */
	json_doc *doc = NULL;
	const char *ev = i->evidence ? i->evidence : "null";
	jbuf_init(&b);
	if (json_parse(&doc, ev, strlen(ev), NULL) == 0)
		jbuf_raw(&b, ev, strlen(ev));
	else
		jbuf_str(&b, ev);
	json_doc_free(doc);
	tend_error_clear();
	return prop__take(&c->evidence_json, &b);
}

/* ---- the metric window --------------------------------------------------- */

typedef struct series {
	int64_t onset, last, n_want;
	double *vals;            /* finite values in the window, for the stats */
	size_t n, cap, nonfinite;
	int64_t bstep[256], astep[256];
	double bval[256], aval[256];
	size_t nb, na, bhead;
} series;

static int series_cb(int64_t step, int attempt, double v, double t, void *ud)
{
	(void)attempt;
	(void)t;
	series *s = ud;
	if (step > s->last)
		return 1;
	if (step < s->onset) {
		size_t k = (s->bhead + s->nb) % (size_t)s->n_want;
		if (s->nb == (size_t)s->n_want)
			s->bhead = (s->bhead + 1) % (size_t)s->n_want;
		else
			s->nb++;
		s->bstep[k] = step;
		s->bval[k] = v;
	} else if (s->na < (size_t)s->n_want) {
		s->astep[s->na] = step;
		s->aval[s->na++] = v;
	}
	if (!isfinite(v)) {
		s->nonfinite++;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *p = realloc(s->vals, cap * sizeof *p);
		if (!p)
			return TEND_ENOMEM;
		s->vals = p;
		s->cap = cap;
	}
	s->vals[s->n++] = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void series_json(jbuf *b, series *s)
{
	jbuf_obj_open(b);
	jbuf_key(b, "n");
	jbuf_int(b, (int64_t)(s->n + s->nonfinite));
	jbuf_key(b, "nonfinite");
	jbuf_int(b, (int64_t)s->nonfinite);
	qsort(s->vals, s->n, sizeof *s->vals, cmp_double);
	const char *names[] = {"min", "median", "max"};
	double v[3] = {NAN, NAN, NAN};
	if (s->n) {
		v[0] = s->vals[0];
		v[1] = s->n % 2 ? s->vals[s->n / 2]
				: 0.5 * (s->vals[s->n / 2 - 1] + s->vals[s->n / 2]);
		v[2] = s->vals[s->n - 1];
	}
	for (int i = 0; i < 3; i++) {
		jbuf_key(b, names[i]);
		if (s->n)
			jbuf_num(b, v[i]);
		else
			jbuf_null(b);
	}
	jbuf_key(b, "before");
	jbuf_arr_open(b);
	for (size_t i = 0; i < s->nb; i++) {
		size_t k = (s->bhead + i) % (size_t)s->n_want;
		jbuf_arr_open(b);
		jbuf_int(b, s->bstep[k]);
		jnum_any(b, s->bval[k]);
		jbuf_arr_close(b);
	}
	jbuf_arr_close(b);
	jbuf_key(b, "after");
	jbuf_arr_open(b);
	for (size_t i = 0; i < s->na; i++) {
		jbuf_arr_open(b);
		jbuf_int(b, s->astep[i]);
		jnum_any(b, s->aval[i]);
		jbuf_arr_close(b);
	}
	jbuf_arr_close(b);
	jbuf_obj_close(b);
}

/* One series into b under its name: null when the run never recorded it. */
static int series_part(jbuf *b, store *st, const store_incident *i,
		       const char *name, const prop_ctx_opts *o)
{
	series *s = calloc(1, sizeof *s);
	if (!s)
		return tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
	s->onset = i->onset_step;
	s->last = i->onset_step + o->window_steps;
	s->n_want = o->metric_values;
	int64_t since = i->onset_step > o->window_steps ? i->onset_step - o->window_steps : 0;
	int rc = store_metrics_read(st, i->run_id, name, since, series_cb, s);
	jbuf_key(b, name);
	if (rc == TEND_ENOTFOUND) {
		jbuf_null(b);
		rc = 0;
		tend_error_clear();
	} else if (rc >= 0) {
		series_json(b, s);
		rc = 0;
	} else if (rc == TEND_ENOMEM) {
		tend_error_set(rc, "proposal context: out of memory");
	}
	free(s->vals);
	free(s);
	return rc;
}

static int metrics_part(prop_ctx *c, store *st, const store_incident *i,
			const prop_ctx_opts *o)
{
	char names[7][64] = {"loss", "grad_norm", "lr", "tokens_per_s"};
	int n = 4, layer = -1, rc = 0;
	/* A router incident names its layer ("moe_imbalance:layer1"); show that
	 * layer's router figures too. */
	const char *l = i->signature ? strstr(i->signature, ":layer") : NULL;
	if (i->kind && !strncmp(i->kind, "moe_", 4) && l && sscanf(l, ":layer%d", &layer) == 1) {
		const char *moe[] = {"max_over_mean", "entropy", "dropped"};
		for (int k = 0; k < 3; k++)
			snprintf(names[n++], sizeof names[0], "moe.%d.%s", layer, moe[k]);
	}
	jbuf b;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	jbuf_key(&b, "onset_step");
	jbuf_int(&b, i->onset_step);
	jbuf_key(&b, "from_step");
	jbuf_int(&b, i->onset_step > o->window_steps ? i->onset_step - o->window_steps : 0);
	jbuf_key(&b, "to_step");
	jbuf_int(&b, i->onset_step + o->window_steps);
	jbuf_key(&b, "series");
	jbuf_obj_open(&b);
	for (int k = 0; k < n && rc == 0; k++)
		rc = series_part(&b, st, i, names[k], o);
	jbuf_obj_close(&b);
	jbuf_obj_close(&b);
	if (rc < 0) {
		jbuf_free(&b);
		return rc;
	}
	return prop__take(&c->metrics_json, &b);
}

/* ---- the log tail ---------------------------------------------------------- */

typedef struct log_ring {
	char **line;
	store_stream *stream;
	size_t cap, n, head;
} log_ring;

static int log_cb(const store_log *l, void *ud)
{
	log_ring *r = ud;
	if (l->stream != STORE_STDOUT && l->stream != STORE_STDERR)
		return 0;
	size_t k = (r->head + r->n) % r->cap;
	if (r->n == r->cap) {
		free(r->line[r->head]);
		r->line[r->head] = NULL;
		r->head = (r->head + 1) % r->cap;
	} else {
		r->n++;
	}
	size_t len = l->len > LOG_LINE_MAX ? LOG_LINE_MAX : l->len;
	while (len && (l->line[len - 1] == '\n' || l->line[len - 1] == '\r'))
		len--;
	r->stream[k] = l->stream;
	if (!(r->line[k] = strndup(l->line, len)))
		return tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
	return 0;
}

/* Redacts the lines kept (only the tail: a run may log millions). */
static int logs_redact(log_ring *r)
{
	for (size_t i = 0; i < r->n; i++) {
		size_t k = (r->head + i) % r->cap;
		char *red = NULL;
		int rc = prop_redact(&red, r->line[k], strlen(r->line[k]));
		if (rc < 0)
			return rc;
		free(r->line[k]);
		r->line[k] = red;
		/* A secret of ours in a shape the rules miss is caught by value. */
		if ((rc = prop__scrub_env(&r->line[k])) < 0)
			return rc;
	}
	return 0;
}

static int logs_render(prop_ctx *c, const log_ring *r)
{
	jbuf b;
	prop__text t = {0};
	jbuf_init(&b);
	jbuf_arr_open(&b);
	for (size_t i = 0; i < r->n; i++) {
		size_t k = (r->head + i) % r->cap;
		const char *name = r->stream[k] == STORE_STDOUT ? "stdout" : "stderr";
		jbuf_obj_open(&b);
		jbuf_key(&b, "stream");
		jbuf_str(&b, name);
		jbuf_key(&b, "line");
		jbuf_str(&b, r->line[k]);
		jbuf_obj_close(&b);
		prop__tputs(&t, name);
		prop__tputs(&t, " | ");
		prop__tputs(&t, r->line[k]);
		prop__tputs(&t, "\n");
	}
	jbuf_arr_close(&b);
	if (r->n == 0)
		prop__tputs(&t, "(no output)\n");
	int rc = prop__take(&c->logs_json, &b);
	if (rc == 0)
		rc = prop__ttake(&c->logs_text, &t);
	free(t.s);
	return rc;
}

static int logs_part(prop_ctx *c, store *st, int64_t run, int lines)
{
	log_ring r = {.cap = (size_t)lines};
	int rc = TEND_ENOMEM;
	r.line = calloc(r.cap, sizeof *r.line);
	r.stream = calloc(r.cap, sizeof *r.stream);
	if (!r.line || !r.stream) {
		tend_error_set(rc, "proposal context: out of memory");
		goto done;
	}
	if ((rc = store_logs_read(st, run, 0, log_cb, &r)) < 0 || (rc = logs_redact(&r)) < 0)
		goto done;
	rc = logs_render(c, &r);
done:
	for (size_t i = 0; r.line && i < r.cap; i++)
		free(r.line[i]);
	free(r.line);
	free(r.stream);
	return rc;
}

/* ---- memory: past proposals of the same kind ------------------------------ */

typedef struct mem {
	store *st;
	const char *kind;
	int64_t *inc;      /* incidents of that kind, oldest first */
	size_t ninc, cap;
	store_proposal **p; /* their proposals, oldest first, last `want` kept */
	const char **sig;
	size_t np, want;
} mem;

static int mem_incident_cb(const store_incident *i, void *ud)
{
	mem *m = ud;
	if (!i->kind || strcmp(i->kind, m->kind) != 0)
		return 0;
	if (m->ninc == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		int64_t *p = realloc(m->inc, cap * sizeof *p);
		if (!p)
			return TEND_ENOMEM;
		m->inc = p;
		m->cap = cap;
	}
	m->inc[m->ninc++] = i->id;
	return 0;
}

static int mem_proposal_cb(const store_proposal *p, void *ud)
{
	mem *m = ud;
	store_proposal *copy = NULL;
	int rc = store_proposal_get(m->st, &copy, p->id);
	if (rc < 0)
		return rc;
	if (m->np == m->want) {
		store_proposal_free(m->p[0]);
		memmove(m->p, m->p + 1, (m->want - 1) * sizeof *m->p);
		m->np--;
	}
	m->p[m->np++] = copy;
	return 0;
}

static int mem_eval_cb(const store_evaluation *e, void *ud)
{
	jbuf *b = ud;
	jbuf_obj_open(b);
	jstr_or_null(b, "stage", e->stage);
	jstr_or_null(b, "state", e->state);
	jstr_or_null(b, "verdict", e->verdict);
	jstr_or_null(b, "reason", e->reason);
	jbuf_obj_close(b);
	return 0;
}

static int mem_entry(jbuf *b, store *st, const store_proposal *p)
{
	jbuf_obj_open(b);
	jbuf_key(b, "incident_id");
	jbuf_int(b, p->incident_id);
	jbuf_key(b, "proposal_id");
	jbuf_int(b, p->id);
	jstr_or_null(b, "proposer", p->proposer);
	jstr_or_null(b, "model", p->model);
	jstr_or_null(b, "state", p->state);
	jstr_or_null(b, "diagnosis", p->diagnosis);
	jbuf_key(b, "confidence");
	if (p->confidence >= 0)
		jbuf_num(b, p->confidence);
	else
		jbuf_null(b);
	jstr_or_null(b, "reject_reason", p->reject_reason);
	jbuf_key(b, "diff");
	if (!p->diff)
		jbuf_null(b);
	else if (strlen(p->diff) > MEMORY_DIFF_MAX)
		jbuf_strn(b, p->diff, MEMORY_DIFF_MAX);
	else
		jbuf_str(b, p->diff);
	jbuf_key(b, "evaluations");
	jbuf_arr_open(b);
	int rc = store_evaluation_list(st, p->id, mem_eval_cb, b);
	jbuf_arr_close(b);
	jbuf_obj_close(b);
	return rc;
}

static int memory_part(prop_ctx *c, store *st, const char *kind, int want)
{
	mem m = {.st = st, .kind = kind, .want = (size_t)want};
	jbuf b;
	int rc;
	jbuf_init(&b);
	m.p = calloc(m.want, sizeof *m.p);
	if (!m.p) {
		rc = tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
		goto done;
	}
	if ((rc = store_incident_list(st, 0, NULL, mem_incident_cb, &m)) < 0)
		goto done;
	for (size_t i = 0; i < m.ninc && rc == 0; i++)
		rc = store_proposal_list(st, m.inc[i], mem_proposal_cb, &m);
	if (rc < 0)
		goto done;
	jbuf_arr_open(&b);
	for (size_t i = 0; i < m.np && rc == 0; i++)
		rc = mem_entry(&b, st, m.p[i]);
	jbuf_arr_close(&b);
	if (rc == 0)
		rc = prop__take(&c->memory_json, &b);
done:
	if (rc == TEND_ENOMEM)
		tend_error_set(rc, "proposal context: out of memory");
	for (size_t i = 0; i < m.np; i++)
		store_proposal_free(m.p[i]);
	free(m.p);
	free(m.inc);
	jbuf_free(&b);
	return rc;
}

/* ---- the whole ------------------------------------------------------------- */

static void opts_fill(prop_ctx_opts *o, const prop_ctx_opts *in)
{
	static const char *const def_allowed[] = {"*.lua", "prompts/*.md"};
	if (in)
		*o = *in;
	else
		memset(o, 0, sizeof *o);
	if (!o->rev)
		o->rev = "main";
	if (!o->allowed || o->n_allowed == 0) {
		o->allowed = def_allowed;
		o->n_allowed = 2;
	}
	if (o->metric_values <= 0 || o->metric_values > 256)
		o->metric_values = o->metric_values > 256 ? 256 : 16;
	if (o->window_steps <= 0)
		o->window_steps = 1000;
	if (o->log_lines <= 0)
		o->log_lines = 50;
	if (o->history <= 0)
		o->history = 10;
	if (o->memory <= 0)
		o->memory = 10;
}

int prop_ctx_build(prop_ctx **out, store *st, patch_repo *repo,
		   int64_t incident_id, const prop_ctx_opts *in)
{
	prop_ctx_opts o;
	store_incident *i = NULL;
	prop_ctx *c = NULL;
	int rc;
	*out = NULL;
	opts_fill(&o, in);
	if ((rc = store_incident_get(st, &i, incident_id)) < 0)
		return rc;
	if (!(c = calloc(1, sizeof *c)) || !(c->kind = strdup(i->kind ? i->kind : ""))) {
		rc = tend_error_set(TEND_ENOMEM, "proposal context: out of memory");
		goto done;
	}
	c->incident_id = i->id;
	c->run_id = i->run_id;
	c->onset_step = i->onset_step;
	if ((rc = incident_part(c, i)) < 0 || (rc = metrics_part(c, st, i, &o)) < 0 ||
	    (rc = logs_part(c, st, i->run_id, o.log_lines)) < 0 ||
	    (rc = memory_part(c, st, c->kind, o.memory)) < 0 ||
	    (rc = prop__ctx_repo(c, repo, &o)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	if (rc < 0)
		tend_error_wrap(rc, "context for incident %lld", (long long)incident_id);
	store_incident_free(i);
	prop_ctx_free(c);
	return rc;
}

void prop_ctx_free(prop_ctx *c)
{
	if (!c)
		return;
	char *s[] = {c->kind, c->incident_json, c->evidence_json, c->metrics_json,
		     c->logs_json, c->files_json, c->history_json, c->memory_json,
		     c->logs_text, c->files_text, c->history_text};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		free(s[i]);
	for (size_t i = 0; i < c->nfiles; i++) {
		free(c->files[i].path);
		free(c->files[i].text);
	}
	free(c->files);
	free(c);
}

int prop_ctx_json(const prop_ctx *c, jbuf *b)
{
	const char *keys[] = {"incident", "evidence", "metrics", "logs", "files",
			      "history", "memory"};
	const char *vals[] = {c->incident_json, c->evidence_json, c->metrics_json,
			      c->logs_json, c->files_json, c->history_json, c->memory_json};
	jbuf_obj_open(b);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		jbuf_key(b, keys[i]);
		jbuf_raw(b, vals[i], strlen(vals[i]));
	}
	return jbuf_obj_close(b);
}

const char *prop_ctx_section(const prop_ctx *c, const char *name)
{
	const char *keys[] = {"incident", "evidence", "metrics", "logs", "files",
			      "history", "memory", "schema"};
	const char *vals[] = {c->incident_json, c->evidence_json, c->metrics_json,
			      c->logs_text, c->files_text, c->history_text,
			      c->memory_json, prop_schema_text()};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strcmp(name, keys[i]))
			return vals[i];
	return NULL;
}

const char *prop_ctx_kind(const prop_ctx *c)
{
	return c->kind;
}
