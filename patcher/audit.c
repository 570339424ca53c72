/*
 * audit.c - verification of the audit trail (see audit.h). The store's
 * hash chain proves rows were not edited; this file proves that what the
 * rows say matches the repository and the config.
 */
#include "audit.h"
#include "gate.h"
#include "json.h"
#include "tend.h"

#include <git2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int audit_log(store *st, const char *actor, const char *action, const char *subject, ...)
{
	jbuf b;
	va_list ap;
	jbuf_init(&b);
	jbuf_obj_open(&b);
	va_start(ap, subject);
	for (const char *k; (k = va_arg(ap, const char *));) {
		const char *v = va_arg(ap, const char *);
		jbuf_key(&b, k);
		jbuf_str(&b, v ? v : "");
	}
	va_end(ap);
	int rc = jbuf_obj_close(&b);
	if (rc == 0)
		rc = store_audit_append(st, actor, action, subject, jbuf_cstr(&b, NULL), NULL);
	jbuf_free(&b);
	return rc;
}

typedef struct row {
	char action[32];
	char subject[96];
	char gates[65];
	int64_t promotion, evaluation;
} row;

typedef struct ctx {
	store *st;
	row *rows;
	size_t n, cap;
	int problems;
	audit_problem_fn fn;
	void *ud;
	char root[GIT_OID_HEXSZ + 1];
} ctx;

static void problem(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(ctx *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	c->problems++;
	if (c->fn)
		c->fn(buf, c->ud);
}

static void str_of(const json_val *obj, const char *key, char *out, size_t cap)
{
	const char *v = NULL;
	out[0] = '\0';
	if (json_get_str(obj, key, &v) == 0)
		snprintf(out, cap, "%s", v);
}

static int collect(const store_audit_row *r, void *ud)
{
	ctx *c = ud;
	char num[32];
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		row *p = realloc(c->rows, cap * sizeof *p);
		if (!p)
			return TEND_ENOMEM;
		c->rows = p;
		c->cap = cap;
	}
	row *w = &c->rows[c->n++];
	memset(w, 0, sizeof *w);
	snprintf(w->action, sizeof w->action, "%s", r->action);
	snprintf(w->subject, sizeof w->subject, "%s", r->subject ? r->subject : "");
	json_doc *d = NULL;
	if (r->detail && json_parse(&d, r->detail, strlen(r->detail), NULL) == 0) {
		const json_val *o = json_root(d);
		str_of(o, "gates_sha256", w->gates, sizeof w->gates);
		str_of(o, "promotion", num, sizeof num);
		w->promotion = atoll(num);
		str_of(o, "evaluation", num, sizeof num);
		w->evaluation = atoll(num);
	}
	json_doc_free(d);
	return 0;
}

static const row *find(const ctx *c, const char *action, const char *subject)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->rows[i].action, action) && !strcmp(c->rows[i].subject, subject))
			return &c->rows[i];
	return NULL;
}

/* The gates hash in force: from the newest init or gates row. */
static const char *audited_gates(const ctx *c)
{
	for (size_t i = c->n; i-- > 0;)
		if (!strcmp(c->rows[i].action, "gates") || !strcmp(c->rows[i].action, "init"))
			return c->rows[i].gates;
	return NULL;
}

static void check_promotion(ctx *c, const row *r, const char *id)
{
	store_promotion *p = NULL;
	store_evaluation *e = NULL;
	if (store_promotion_get(c->st, &p, r->promotion) < 0) {
		problem(c, "commit %.12s: its promotion %lld is not in the store", id,
			(long long)r->promotion);
		return;
	}
	if (!p->merged_commit || strcmp(p->merged_commit, id) != 0)
		problem(c, "commit %.12s: promotion %lld records commit %.12s", id,
			(long long)p->id, p->merged_commit ? p->merged_commit : "(none)");
	if (store_evaluation_get(c->st, &e, p->evaluation_id) < 0)
		problem(c, "commit %.12s: evaluation %lld is not in the store", id,
			(long long)p->evaluation_id);
	else if (!e->verdict || strcmp(e->verdict, "pass") != 0)
		problem(c, "commit %.12s: evaluation %lld did not pass (verdict %s)", id,
			(long long)e->id, e->verdict ? e->verdict : "none");
	else if (!e->gates_sha256 || strcmp(e->gates_sha256, r->gates) != 0)
		problem(c, "commit %.12s: the gates changed between evaluation %lld and its "
			"promotion", id, (long long)e->id);
	store_evaluation_free(e);
	store_promotion_free(p);
}

static int check_commit(const patch_commit *pc, void *ud)
{
	ctx *c = ud;
	char id[GIT_OID_HEXSZ + 1];
	git_oid_tostr(id, sizeof id, pc->id);
	if (pc->nparents == 0) {
		if (strcmp(id, c->root) != 0)
			problem(c, "commit %.12s: a root commit the audit log does not know "
				"(init recorded %.12s)", id, c->root);
		return 0;
	}
	const row *r = find(c, "promote", id);
	if (r) {
		check_promotion(c, r, id);
		return 0;
	}
	if (find(c, "rollback", id))
		return 0;
	problem(c, "commit %.12s (\"%s\") on main did not come through a recorded, passing "
		"evaluation and promotion", id, pc->summary ? pc->summary : "");
	return 0;
}

int audit_verify(store *st, patch_repo *repo, const cfg *cf, audit_problem_fn fn, void *ud)
{
	ctx c = {.st = st, .fn = fn, .ud = ud};
	int64_t bad = 0;
	char now[65];
	int rc;
	if (store_audit_verify(st, &bad) < 0)
		problem(&c, "audit log: %s", tend_error_last());
	if ((rc = store_audit_list(st, 0, collect, &c)) < 0)
		goto done;
	const row *init = NULL;
	for (size_t i = 0; i < c.n && !init; i++)
		if (!strcmp(c.rows[i].action, "init"))
			init = &c.rows[i];
	if (!init)
		problem(&c, "audit log: no init row: this workspace's history cannot be checked");
	else
		snprintf(c.root, sizeof c.root, "%s", init->subject);
	const char *gates = audited_gates(&c);
	if ((rc = gate_rules_hash(cf, now)) < 0)
		goto done;
	if (gates && strcmp(gates, now) != 0)
		problem(&c, "gates changed: tend.yaml's gates, evaluation or allowed paths differ "
			"from the audited ones (%.12s, now %.12s); record a deliberate change "
			"with `tend audit accept-gates`", gates, now);
	if ((rc = patch_main_history(repo, check_commit, &c)) < 0)
		goto done;
	rc = c.problems ? tend_error_set(TEND_EINVAL, "audit verify: %d problem%s found",
					 c.problems, c.problems == 1 ? "" : "s") : 0;
done:
	free(c.rows);
	return rc;
}
