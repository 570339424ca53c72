/*
 * config_print.c - everything that writes a cfg out, driven by the schema:
 * the commented default file, the effective settings as YAML or JSON, and
 * the canonical text behind section hashes and cfg_equal.
 *
 * The YAML written here is itself a valid tend.yaml (tests read it back),
 * and the nesting comes from the key paths' order in the table.
 */
#include "config_int.h"
#include "sha256.h"
#include "tend.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

void cfg__fmt_double(char *buf, size_t cap, double v)
{
	if (v == floor(v) && fabs(v) < CFG__BIG) {
		snprintf(buf, cap, "%.1f", v); /* "300.0", never "3e+02" */
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, cap, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!strpbrk(buf, ".eEn"))
		strncat(buf, ".0", cap - strlen(buf) - 1);
}

/* A character YAML would not read back from a double-quoted string as it
 * was (C0 and C1 controls, DEL, U+2028 and U+2029): its code point, with *pp
 * moved to its last byte; else 0. */
static unsigned escaped(const unsigned char **pp)
{
	const unsigned char *p = *pp;
	if (*p < 0x20 || *p == 0x7f)
		return *p;
	if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
		*pp += 1;
		return p[1];
	}
	if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
		*pp += 2;
		return 0x2000 | (p[2] & 0x3f);
	}
	return 0;
}

/* JSON escapes are a subset of YAML's double-quoted ones, so one writer
 * serves both. */
void cfg__put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned cp;
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if ((cp = escaped(&p)))
			fprintf(f, "\\u%04x", cp);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void put_name(FILE *f, const char *name, cfg__style st)
{
	if (st == CFG__JSON)
		cfg__put_str(f, name);
	else
		fputs(name, f);
}

static void put_enum(FILE *f, const cfg_key *k, int i, cfg__style st)
{
	int n = 0;
	while (k->values[n])
		n++;
	if (i >= 0 && i < n)
		put_name(f, k->values[i], st);
	else
		fprintf(f, "%d", i);
}

static void put_list(FILE *f, const cfg_key *k, const void *p, cfg__style st)
{
	const char *sep = st == CFG__JSON ? "," : ", ";
	bool first = true;
	fputc('[', f);
	if (k->type == CFG_STRLIST) {
		const cfg_strlist *l = p;
		for (size_t i = 0; i < l->n; i++, first = false) {
			fputs(first ? "" : sep, f);
			cfg__put_str(f, l->v[i]);
		}
	} else {
		unsigned bits = *(const unsigned *)p;
		for (int i = 0; k->values[i]; i++) {
			if (!(bits & 1u << i))
				continue;
			fputs(first ? "" : sep, f);
			put_name(f, k->values[i], st);
			first = false;
		}
	}
	fputc(']', f);
}

void cfg__put_value(FILE *f, const cfg_key *k, const void *base, cfg__style st)
{
	const void *p = (const char *)base + k->offset;
	char num[40];
	size_t n;
	switch (k->type) {
	case CFG_INT:
		fprintf(f, "%" PRId64, *(const int64_t *)p);
		break;
	case CFG_FLOAT:
	case CFG_DURATION:
		cfg__fmt_double(num, sizeof num, *(const double *)p);
		n = strlen(num); /* durations read better as "300" than "300.0" */
		if (k->type == CFG_DURATION && n > 2 && !strcmp(num + n - 2, ".0"))
			num[n - 2] = '\0';
		fputs(num, f);
		break;
	case CFG_BOOL:
		fputs(*(const bool *)p ? "true" : "false", f);
		break;
	case CFG_STRING:
		cfg__put_str(f, *(char *const *)p ? *(char *const *)p : "");
		break;
	case CFG_ENUM:
		put_enum(f, k, *(const int *)p, st);
		break;
	case CFG_STRLIST:
	case CFG_ENUMSET:
		put_list(f, k, p, st);
		break;
	case CFG_MAPLIST:
		break;
	}
}

static void indent(FILE *f, int depth)
{
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

static size_t maplist_len(const cfg_key *k, const void *base)
{
	struct { const void *v; size_t n; } l;
	memcpy(&l, (const char *)base + k->offset, sizeof l);
	return l.n;
}

/* A map list: a JSON array of objects, or a YAML block list of maps. */
static void put_maplist(FILE *f, const cfg_key *k, const void *base, cfg__style st,
			int depth)
{
	struct { const char *v; size_t n; } l;
	memcpy(&l, (const char *)base + k->offset, sizeof l);
	if (l.n == 0 || st == CFG__JSON)
		fputc('[', f);
	for (size_t i = 0; i < l.n; i++) {
		const void *item = l.v + i * k->sub_size;
		fputs(st == CFG__JSON ? (i ? ",{" : "{") : "\n", f);
		for (const cfg_key *s = k->sub; s->path; s++) {
			if (st == CFG__JSON) {
				fprintf(f, "%s\"%s\":", s == k->sub ? "" : ",", s->path);
			} else {
				indent(f, depth + 1);
				fprintf(f, "%s%s: ", s == k->sub ? "- " : "  ", s->path);
			}
			cfg__put_value(f, s, item, st);
			if (st == CFG__YAML && s[1].path)
				fputc('\n', f);
		}
		if (st == CFG__JSON)
			fputc('}', f);
	}
	if (l.n == 0 || st == CFG__JSON)
		fputc(']', f);
}

/* Writes key paths in table order as nested YAML or JSON sections. */
typedef struct emitter {
	FILE *f;
	cfg__style st;
	bool docs;                  /* doc comments, for the default file */
	const char *open[MAX_DEPTH]; /* names of the open sections */
	size_t lens[MAX_DEPTH];
	int depth;
	bool first;                 /* JSON: nothing yet at this depth */
} emitter;

static void doc_comment(emitter *e, const cfg_key *k, int depth, const char *lead)
{
	char vals[256] = "";
	if (k->values) {
		size_t o = 0;
		for (int i = 0; k->values[i]; i++)
			o += (size_t)snprintf(vals + o, sizeof vals - o, "%s%s", i ? ", " :
				k->type == CFG_ENUM ? " One of: " : " Any of: ", k->values[i]);
		strncat(vals, ".", sizeof vals - strlen(vals) - 1);
	}
	indent(e->f, depth);
	fprintf(e->f, "#%s %s%s", lead, k->doc, vals);
}

static void sub_docs(emitter *e, const cfg_key *k, int depth)
{
	indent(e->f, depth);
	fputs("# Each item:\n", e->f);
	for (const cfg_key *s = k->sub; s->path; s++) {
		char lead[64];
		snprintf(lead, sizeof lead, "   %s:", s->path);
		doc_comment(e, s, depth, lead);
		if (!(s->flags & CFG_F_REQUIRED))
			fprintf(e->f, " Default: %s", s->def);
		fputc('\n', e->f);
	}
}

static void open_section(emitter *e, const char *name, size_t len)
{
	if (e->st == CFG__JSON) {
		fprintf(e->f, "%s\"%.*s\":{", e->first ? "" : ",", (int)len, name);
		e->first = true;
	} else {
		if (e->depth == 0) {
			char top[64];
			snprintf(top, sizeof top, "%.*s", (int)len, name);
			const char *doc = cfg__section_doc(top);
			fputc('\n', e->f);
			if (e->docs && doc)
				fprintf(e->f, "# %s\n", doc);
		}
		indent(e->f, e->depth);
		fprintf(e->f, "%.*s:\n", (int)len, name);
	}
	e->open[e->depth] = name;
	e->lens[e->depth++] = len;
}

static void close_to(emitter *e, int depth)
{
	while (e->depth > depth) {
		if (e->st == CFG__JSON)
			fputc('}', e->f);
		e->depth--;
		e->first = false;
	}
}

static void emit_key(emitter *e, const cfg_key *k, const void *base)
{
	const char *c[MAX_DEPTH + 1];
	size_t cl[MAX_DEPTH + 1];
	int n = 0, common = 0;
	for (const char *p = k->path; n <= MAX_DEPTH; p += cl[n++] + 1) {
		c[n] = p;
		cl[n] = strcspn(p, ".");
		if (!p[cl[n]]) {
			n++;
			break;
		}
	}
	while (common < e->depth && common < n - 1 && e->lens[common] == cl[common] &&
	       !strncmp(e->open[common], c[common], cl[common]))
		common++;
	close_to(e, common);
	while (e->depth < n - 1)
		open_section(e, c[e->depth], cl[e->depth]);
	if (e->st == CFG__JSON) {
		fprintf(e->f, "%s\"%.*s\":", e->first ? "" : ",", (int)cl[n - 1], c[n - 1]);
		e->first = false;
	} else {
		if (e->docs) {
			doc_comment(e, k, e->depth, "");
			fputc('\n', e->f);
			if (k->type == CFG_MAPLIST)
				sub_docs(e, k, e->depth);
		}
		indent(e->f, e->depth);
		fprintf(e->f, "%.*s:", (int)cl[n - 1], c[n - 1]);
		if (k->type != CFG_MAPLIST || maplist_len(k, base) == 0)
			fputc(' ', e->f);
	}
	if (k->type == CFG_MAPLIST)
		put_maplist(e->f, k, base, e->st, e->depth);
	else
		cfg__put_value(e->f, k, base, e->st);
	if (e->st == CFG__YAML)
		fputc('\n', e->f);
}

static int emit_all(FILE *f, const cfg *c, cfg__style st, bool docs)
{
	emitter e = {.f = f, .st = st, .docs = docs, .first = true};
	if (st == CFG__JSON)
		fputc('{', f);
	for (const cfg_key *k = cfg_schema(); k->path; k++)
		emit_key(&e, k, c);
	close_to(&e, 0);
	fputs(st == CFG__JSON ? "}\n" : "", f);
	if (fflush(f) != 0 || ferror(f))
		return tend_error_os("writing config");
	return 0;
}

int cfg_write_default(FILE *f)
{
	cfg *c;
	int rc = cfg_defaults(&c);
	if (rc < 0)
		return rc;
	fputs("# tend.yaml - the configuration of this tend workspace.\n"
	      "# Every key is listed with its default; delete what you do not change.\n"
	      "# Durations take seconds or a unit: 500ms, 30s, 5m, 2h.\n"
	      "# Reference: docs/config.md. Check with `tend config check`.\n\n", f);
	rc = emit_all(f, c, CFG__YAML, true);
	cfg_free(c);
	return rc;
}

int cfg_print(FILE *f, const cfg *c, bool json)
{
	return emit_all(f, c, json ? CFG__JSON : CFG__YAML, false);
}

static bool in_section(const char *path, const char *sec)
{
	size_t n = strlen(sec);
	return !n || (!strncmp(path, sec, n) && (path[n] == '\0' || path[n] == '.'));
}

/* "path=value\n" per key of the section, values as JSON: a rendering that
 * changes exactly when a value does. Returns a malloc'd string or NULL. */
static char *canonical(const cfg *c, const char *sec, size_t *len, bool *any)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	*any = false;
	if (!f)
		return NULL;
	for (const cfg_key *k = cfg_schema(); k->path; k++) {
		if (!in_section(k->path, sec))
			continue;
		*any = true;
		fprintf(f, "%s=", k->path);
		if (k->type == CFG_MAPLIST)
			put_maplist(f, k, c, CFG__JSON, 0);
		else
			cfg__put_value(f, k, c, CFG__JSON);
		fputc('\n', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int cfg_section_hash(const cfg *c, const char *section, char out[65])
{
	size_t len;
	bool any;
	char *text = canonical(c, section ? section : "", &len, &any);
	if (!text)
		return tend_error_set(TEND_ENOMEM, "out of memory hashing config");
	if (!any) {
		free(text);
		return tend_error_set(TEND_ENOTFOUND, "no config section \"%s\"", section);
	}
	sha256_hex(text, len, out);
	free(text);
	return 0;
}

bool cfg_equal(const cfg *a, const cfg *b)
{
	size_t la, lb;
	bool any;
	char *ta = canonical(a, "", &la, &any), *tb = canonical(b, "", &lb, &any);
	bool eq = ta && tb && la == lb && !memcmp(ta, tb, la);
	free(ta);
	free(tb);
	return eq;
}
