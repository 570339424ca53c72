/*
 * config.c - loading tend.yaml: the defaults first, then the file's tree
 * walked against the schema table, each value converted by its key's type
 * and checked against its range, then the checks between keys. Also the
 * freeing of what the table says a cfg owns.
 *
 * Every refusal names file:line:col, the key path and what was expected;
 * nothing is half-applied, since the caller only ever sees a complete cfg.
 */
#include "config_int.h"
#include "tend.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_CAP 256
#define WHY_CAP 512
#define MAX_FILE (1 << 20)
#define MAX_STR 4096
#define MAX_SUB 16

/* One table being filled: the main schema into a cfg, or an item's keys
 * into one item of a map list. marks/set record where each key was set. */
typedef struct level {
	const cfg_key *tab;
	void *base;
	yaml_mark_t *marks;
	bool *set;
} level;

/* A list field of any item type: the layout of every { T *v; size_t n; }. */
typedef struct anylist {
	void *v;
	size_t n;
} anylist;

static char empty_text[1];
static const cfg__node null_node = {.kind = CFG__SCALAR, .text = empty_text, .plain = true};

static int walk_map(const cfg__ctx *x, const level *lv, const cfg__node *map,
		    const char *rel, const char *disp);

/* strdup through our malloc, so that tests that fail allocations reach it. */
static char *copy_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	return d ? memcpy(d, s, n) : NULL;
}

/* --- messages ----------------------------------------------------------- */

static int vfail(const cfg__ctx *x, yaml_mark_t m, const char *path,
		 const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (path && *path)
		return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: %s: %s", x->name,
				      m.line + 1, m.column + 1, path, msg);
	return tend_error_set(TEND_EINVAL, "%s:%zu:%zu: %s", x->name,
			      m.line + 1, m.column + 1, msg);
}

int cfg__fail(const cfg__ctx *x, yaml_mark_t m, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail(x, m, path, fmt, ap);
	va_end(ap);
	return rc;
}

int cfg__fail_keys(const cfg__ctx *x, const char *path, const char *other,
		   const char *fmt, ...)
{
	int a = cfg__key_index(path), b = other ? cfg__key_index(other) : -1;
	bool a_set = x->set && a >= 0 && x->set[a];
	bool b_set = x->set && b >= 0 && x->set[b];
	yaml_mark_t m = a_set ? x->marks[a] : (yaml_mark_t){0, 0, 0};
	const char *at = path;
	va_list ap;

	if (b_set && (!a_set || x->marks[b].index > m.index)) {
		m = x->marks[b];
		at = other;
	}
	va_start(ap, fmt);
	int rc = vfail(x, m, at, fmt, ap);
	va_end(ap);
	return rc;
}

/* A scalar quoted for a message: cut at 40 bytes (not inside a UTF-8
 * sequence), control characters shown as '?', secrets cut to 3 bytes. */
static void quote_text(char *buf, size_t cap, const char *s)
{
	size_t keep = cfg__looks_secret(s) ? 3 : 40, n = strlen(s), o = 0;
	if (n > keep) {
		n = keep;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < n && o + 6 < cap; i++)
		buf[o++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (n < strlen(s) && o + 6 < cap)
		o += (size_t)snprintf(buf + o, cap - o, "...");
	buf[o++] = '"';
	buf[o] = '\0';
}

static void describe(char *buf, size_t cap, const cfg__node *v)
{
	if (v->kind == CFG__MAP)
		snprintf(buf, cap, "a map");
	else if (v->kind == CFG__SEQ)
		snprintf(buf, cap, v->n ? "a list" : "an empty list");
	else if (cfg__is_null(v))
		snprintf(buf, cap, "nothing");
	else
		quote_text(buf, cap, v->text);
}

static int fail_expect(const cfg__ctx *x, const cfg__node *v, const char *path,
		       const char *want)
{
	char got[64];
	describe(got, sizeof got, v);
	return cfg__fail(x, v->mark, path, "expected %s, got %s", want, got);
}

static void fmt_num(char *buf, size_t cap, double v)
{
	if (v == floor(v) && fabs(v) < CFG__BIG)
		snprintf(buf, cap, "%.0f", v);
	else
		cfg__fmt_double(buf, cap, v);
}

static void join_values(char *buf, size_t cap, const char *const *vals)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; vals[i] && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", vals[i]);
}

/* "an integer >= 8", "a number between 0 and 1", "a list of strings with
 * at least 1 item": what a key wants, for messages. */
static void expectation(char *buf, size_t cap, const cfg_key *k)
{
	static const char *const what[] = {
		[CFG_INT] = "an integer", [CFG_FLOAT] = "a number",
		[CFG_DURATION] = "a duration", [CFG_BOOL] = "true or false",
		[CFG_STRING] = "a string", [CFG_STRLIST] = "a list of strings",
		[CFG_MAPLIST] = "a list of maps",
	};
	char lo[32], hi[32], vals[256];
	fmt_num(lo, sizeof lo, k->min);
	fmt_num(hi, sizeof hi, k->max);
	if (k->values)
		join_values(vals, sizeof vals, k->values);
	switch (k->type) {
	case CFG_INT:
	case CFG_FLOAT:
	case CFG_DURATION:
		if (k->max >= CFG__BIG)
			snprintf(buf, cap, "%s >= %s", what[k->type], lo);
		else
			snprintf(buf, cap, "%s between %s and %s", what[k->type], lo, hi);
		if (k->type == CFG_DURATION)
			strncat(buf, " (seconds, or 500ms, 30s, 5m, 2h)", cap - strlen(buf) - 1);
		return;
	case CFG_ENUM:
		snprintf(buf, cap, "one of %s", vals);
		return;
	case CFG_ENUMSET:
		snprintf(buf, cap, "a list of %s", vals);
		break;
	default:
		snprintf(buf, cap, "%s", what[k->type]);
		break;
	}
	if (k->type == CFG_STRLIST || k->type == CFG_ENUMSET || k->type == CFG_MAPLIST) {
		size_t o = strlen(buf);
		if (k->min > 0)
			snprintf(buf + o, cap - o, " with at least %s item%s", lo,
				 k->min == 1 ? "" : "s");
	}
}

static int fail_want(const cfg__ctx *x, const cfg_key *k, const cfg__node *v,
		     const char *path)
{
	char want[400];
	expectation(want, sizeof want, k);
	return fail_expect(x, v, path, want);
}

/* A check hook's refusal. "expected ..." texts get ", got ..." added. */
static int run_check(const cfg__ctx *x, const cfg_key *k, const void *val,
		     const cfg__node *v, const char *path)
{
	char why[WHY_CAP];
	if (!k->check || !k->check(val, why, sizeof why))
		return 0;
	if (!strncmp(why, "expected ", 9)) {
		char got[64];
		describe(got, sizeof got, v);
		return cfg__fail(x, v->mark, path, "%s, got %s", why, got);
	}
	return cfg__fail(x, v->mark, path, "%s", why);
}

/* --- scalars ------------------------------------------------------------ */

static bool to_int(const char *s, int64_t *out, double *as_double)
{
	const char *p = s + (*s == '-' || *s == '+');
	if (!isdigit((unsigned char)*p) || strspn(p, "0123456789") != strlen(p))
		return false;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno == ERANGE)
		return false;
	*out = v;
	*as_double = (double)v;
	return true;
}

static bool to_float(const char *s, double *out)
{
	char *end;
	if (!*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return *end == '\0' && errno != ERANGE && isfinite(*out);
}

/* Seconds: a number alone, or with one unit: ms, s, m, h. */
static bool to_duration(const char *s, double *out)
{
	static const struct { const char *unit; double mult; } units[] = {
		{"", 1}, {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600},
	};
	char *end;
	if (!*s || isspace((unsigned char)*s))
		return false;
	double v = strtod(s, &end);
	if (end == s || !isfinite(v))
		return false;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(end, units[i].unit)) {
			*out = v * units[i].mult;
			return true;
		}
	return false;
}

static int set_number(const cfg__ctx *x, const cfg_key *k, void *field,
		      const cfg__node *v, const char *path)
{
	int64_t i = 0;
	double d = 0;
	bool ok = v->kind == CFG__SCALAR &&
		(k->type == CFG_INT ? to_int(v->text, &i, &d) :
		 k->type == CFG_FLOAT ? to_float(v->text, &d) : to_duration(v->text, &d));
	if (!ok || d < k->min || d > k->max)
		return fail_want(x, k, v, path);
	if (k->type == CFG_INT)
		*(int64_t *)field = i;
	else
		*(double *)field = d;
	return run_check(x, k, field, v, path);
}

static int set_bool(const cfg__ctx *x, const cfg_key *k, void *field,
		    const cfg__node *v, const char *path)
{
	static const char *const yes[] = {"true", "True", "TRUE"};
	static const char *const no[] = {"false", "False", "FALSE"};
	for (size_t i = 0; v->kind == CFG__SCALAR && v->plain && i < 3; i++) {
		if (!strcmp(v->text, yes[i]) || !strcmp(v->text, no[i])) {
			*(bool *)field = !strcmp(v->text, yes[i]);
			return 0;
		}
	}
	return fail_want(x, k, v, path);
}

/* The validated text of a string value: "" for null. */
static int string_value(const cfg__ctx *x, const cfg_key *k, const cfg__node *v,
			const char *path, const char **out)
{
	if (v->kind != CFG__SCALAR)
		return fail_expect(x, v, path, "a string");
	if (strlen(v->text) != v->len)
		return cfg__fail(x, v->mark, path, "a NUL character inside a string");
	if (v->len > MAX_STR)
		return cfg__fail(x, v->mark, path, "a string longer than %d bytes", MAX_STR);
	if (cfg__looks_secret(v->text)) {
		char got[64];
		quote_text(got, sizeof got, v->text);
		return cfg__fail(x, v->mark, path, "this looks like a secret (%s); "
			"secrets do not belong in tend.yaml: put it in an environment "
			"variable and name that variable in proposer.api_key_env", got);
	}
	*out = cfg__is_null(v) ? "" : v->text;
	return run_check(x, k, *out, v, path);
}

static int set_string(const cfg__ctx *x, const cfg_key *k, void *field,
		      const cfg__node *v, const char *path)
{
	const char *s;
	int rc = string_value(x, k, v, path, &s);
	if (rc < 0)
		return rc;
	char *copy = copy_str(s);
	if (!copy)
		return tend_error_set(TEND_ENOMEM, "out of memory reading config");
	free(*(char **)field);
	*(char **)field = copy;
	return 0;
}

static int enum_index(const cfg_key *k, const cfg__node *v)
{
	for (int i = 0; v->kind == CFG__SCALAR && k->values[i]; i++)
		if (!strcmp(v->text, k->values[i]))
			return i;
	return -1;
}

static int set_enum(const cfg__ctx *x, const cfg_key *k, void *field,
		    const cfg__node *v, const char *path)
{
	int i = enum_index(k, v);
	if (i < 0)
		return fail_want(x, k, v, path);
	*(int *)field = i;
	return 0;
}

/* --- lists -------------------------------------------------------------- */

static int plain_ok(const cfg__ctx *x, const cfg__node *n, const char *path)
{
	if (n->kind == CFG__ALIAS || n->anchored)
		return cfg__fail(x, n->mark, path, "anchors and aliases are not "
				 "allowed; write the value out in full");
	if (n->tagged)
		return cfg__fail(x, n->mark, path, "tags are not allowed; write a plain value");
	return 0;
}

/* The items of a list value (null is an empty list), count checked. */
static int list_items(const cfg__ctx *x, const cfg_key *k, const cfg__node *v,
		      const char *path, size_t *n)
{
	if (!cfg__is_null(v) && v->kind != CFG__SEQ)
		return fail_want(x, k, v, path);
	*n = v->kind == CFG__SEQ ? v->n : 0;
	if (*n < k->min)
		return fail_want(x, k, v, path);
	if (*n > k->max)
		return cfg__fail(x, v->mark, path, "expected at most %.0f items, got %zu",
				 k->max, *n);
	return 0;
}

static void strlist_free(cfg_strlist *l)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int set_strlist(const cfg__ctx *x, const cfg_key *k, void *field,
		       const cfg__node *v, const char *path)
{
	cfg_strlist nl = {0};
	size_t n;
	int rc = list_items(x, k, v, path, &n);
	if (rc < 0)
		return rc;
	if (!(nl.v = calloc(n + 1, sizeof *nl.v)))
		return tend_error_set(TEND_ENOMEM, "out of memory reading config");
	for (size_t i = 0; i < n; i++) {
		const cfg__node *it = v->kids[i];
		char ip[PATH_CAP];
		const char *s;
		snprintf(ip, sizeof ip, "%s[%zu]", path, i);
		if ((rc = plain_ok(x, it, ip)) < 0)
			goto done;
		if (cfg__is_null(it)) {
			rc = fail_expect(x, it, ip, "a string");
			goto done;
		}
		if ((rc = string_value(x, k, it, ip, &s)) < 0)
			goto done;
		if (!(nl.v[nl.n] = copy_str(s))) {
			rc = tend_error_set(TEND_ENOMEM, "out of memory reading config");
			goto done;
		}
		nl.n++;
	}
	strlist_free(field);
	*(cfg_strlist *)field = nl;
	nl.v = NULL;
done:
	strlist_free(&nl);
	return rc;
}

static int set_enumset(const cfg__ctx *x, const cfg_key *k, void *field,
		       const cfg__node *v, const char *path)
{
	unsigned bits = 0;
	size_t n;
	int rc = list_items(x, k, v, path, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char ip[PATH_CAP];
		snprintf(ip, sizeof ip, "%s[%zu]", path, i);
		int e = enum_index(k, v->kids[i]);
		if ((rc = plain_ok(x, v->kids[i], ip)) == 0 && e < 0) {
			char vals[256], want[300];
			join_values(vals, sizeof vals, k->values);
			snprintf(want, sizeof want, "one of %s", vals);
			rc = fail_expect(x, v->kids[i], ip, want);
		}
		bits |= e >= 0 ? 1u << e : 0;
	}
	if (rc == 0)
		*(unsigned *)field = bits;
	return rc;
}

static void free_fields(const cfg_key *tab, void *base);

static void maplist_free(const cfg_key *k, anylist *l)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		free_fields(k->sub, (char *)l->v + i * k->sub_size);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int apply_defaults(const cfg_key *tab, void *base);

/* One item of a map list: its defaults, then its keys, then the required. */
static int set_item(const cfg__ctx *x, const cfg_key *k, void *item,
		    const cfg__node *v, const char *path)
{
	yaml_mark_t marks[MAX_SUB];
	bool set[MAX_SUB] = {0};
	level lv = {k->sub, item, marks, set};
	int rc;

	if ((rc = plain_ok(x, v, path)) < 0)
		return rc;
	if (v->kind != CFG__MAP)
		return fail_expect(x, v, path, "a map");
	if ((rc = walk_map(x, &lv, v, "", path)) < 0)
		return rc;
	for (int i = 0; k->sub[i].path; i++)
		if ((k->sub[i].flags & CFG_F_REQUIRED) && !set[i])
			return cfg__fail(x, v->mark, path, "missing the required key \"%s\"",
					 k->sub[i].path);
	return 0;
}

static int set_maplist(const cfg__ctx *x, const cfg_key *k, void *field,
		       const cfg__node *v, const char *path)
{
	anylist nl = {0}, old;
	size_t n;
	int rc = list_items(x, k, v, path, &n);
	if (rc < 0)
		return rc;
	if (!(nl.v = calloc(n ? n : 1, k->sub_size)))
		return tend_error_set(TEND_ENOMEM, "out of memory reading config");
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_CAP];
		void *item = (char *)nl.v + i * k->sub_size;
		snprintf(ip, sizeof ip, "%s[%zu]", path, i);
		nl.n++; /* from here on item owns what it holds */
		if ((rc = apply_defaults(k->sub, item)) < 0 ||
		    (rc = set_item(x, k, item, v->kids[i], ip)) < 0)
			goto done;
	}
	memcpy(&old, field, sizeof old);
	maplist_free(k, &old);
	memcpy(field, &nl, sizeof nl);
	nl.v = NULL;
done:
	maplist_free(k, &nl);
	return rc;
}

/* --- the walk ----------------------------------------------------------- */

static int set_key(const cfg__ctx *x, const level *lv, const cfg_key *k,
		   const cfg__node *v, const char *path)
{
	typedef int (*setter)(const cfg__ctx *, const cfg_key *, void *,
			      const cfg__node *, const char *);
	static const setter setters[] = {
		[CFG_INT] = set_number, [CFG_FLOAT] = set_number,
		[CFG_DURATION] = set_number, [CFG_BOOL] = set_bool,
		[CFG_STRING] = set_string, [CFG_ENUM] = set_enum,
		[CFG_STRLIST] = set_strlist, [CFG_ENUMSET] = set_enumset,
		[CFG_MAPLIST] = set_maplist,
	};
	int rc = plain_ok(x, v, path);
	if (rc < 0 || (rc = setters[k->type](x, k, (char *)lv->base + k->offset, v, path)) < 0)
		return rc;
	if (lv->set) {
		lv->set[k - lv->tab] = true;
		lv->marks[k - lv->tab] = v->mark;
	}
	return 0;
}

static const cfg_key *find_key(const cfg_key *tab, const char *path)
{
	for (; tab->path; tab++)
		if (!strcmp(tab->path, path))
			return tab;
	return NULL;
}

static bool is_section(const cfg_key *tab, const char *path)
{
	size_t n = strlen(path);
	for (; tab->path; tab++)
		if (!strncmp(tab->path, path, n) && tab->path[n] == '.')
			return true;
	return false;
}

/* Damerau-Levenshtein (optimal string alignment), case-insensitive. */
static size_t distance(const char *a, const char *b, size_t lb)
{
	size_t la = strlen(a), d[3][65], *p2 = d[0], *p1 = d[1], *cur = d[2];
	if (la > 64 || lb > 64)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		p1[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
			size_t best = p1[j - 1] + (ca != cb);
			if (p1[j] + 1 < best)
				best = p1[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && p2[j - 2] + 1 < best)
				best = p2[j - 2] + 1;
			cur[j] = best;
		}
		size_t *t = p2;
		p2 = p1;
		p1 = cur;
		cur = t;
	}
	return p1[lb];
}

/* The names directly under rel ("" for the top), each once. */
static size_t children(const cfg_key *tab, const char *rel, const char **names,
		       size_t *lens, size_t cap)
{
	size_t n = 0, rl = strlen(rel);
	for (; tab->path; tab++) {
		if (rl && (strncmp(tab->path, rel, rl) || tab->path[rl] != '.'))
			continue;
		const char *c = tab->path + (rl ? rl + 1 : 0);
		size_t cl = strcspn(c, "."), i;
		for (i = 0; i < n; i++)
			if (lens[i] == cl && !strncmp(names[i], c, cl))
				break;
		if (i == n && n < cap) {
			names[n] = c;
			lens[n++] = cl;
		}
	}
	return n;
}

/* A known key or section elsewhere with this name: "trainer.layers". */
static bool elsewhere(char *buf, size_t cap, const char *name)
{
	size_t nl = strlen(name);
	for (const cfg_key *k = cfg_schema(); k->path; k++) {
		for (const char *c = k->path; *c; c += strcspn(c, ".") + (c[strcspn(c, ".")] == '.')) {
			if (strcspn(c, ".") == nl && !strncmp(c, name, nl)) {
				snprintf(buf, cap, "%.*s", (int)(c - k->path + nl), k->path);
				return true;
			}
		}
	}
	return false;
}

static void suggest(char *buf, size_t cap, const cfg_key *tab, const char *rel,
		    const char *name)
{
	const char *names[64];
	size_t lens[64], n = children(tab, rel, names, lens, 64), best = 0, bd = 99;
	char where[PATH_CAP];

	for (size_t i = 0; i < n; i++) {
		size_t d = distance(name, names[i], lens[i]);
		if (d < bd) {
			bd = d;
			best = i;
		}
	}
	if (n && bd <= (lens[best] > 5 ? 2u : 1u)) {
		snprintf(buf, cap, "did you mean \"%.*s\"?", (int)lens[best], names[best]);
		return;
	}
	if (tab == cfg_schema() && elsewhere(where, sizeof where, name)) {
		snprintf(buf, cap, "did you mean \"%s\"?", where);
		return;
	}
	size_t o = (size_t)snprintf(buf, cap, "expected one of");
	for (size_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s %.*s", i ? "," : "",
				      (int)lens[i], names[i]);
}

static bool secret_name(const char *name)
{
	static const char *const words[] = {"api_key", "apikey", "secret", "password",
					    "passwd", "token", "credential"};
	char low[PATH_CAP];
	size_t i;
	for (i = 0; name[i] && i < sizeof low - 1; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[i] = '\0';
	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

static int unknown_key(const cfg__ctx *x, const cfg_key *tab, const cfg__node *kn,
		       const char *rel, const char *path)
{
	char hint[1024];
	if (secret_name(kn->text))
		return cfg__fail(x, kn->mark, path, "secrets do not belong in tend.yaml; "
			"keep them in the environment (see proposer.api_key_env) or in "
			"a file (see serve.token_file)");
	suggest(hint, sizeof hint, tab, rel, kn->text);
	return cfg__fail(x, kn->mark, path, "unknown key; %s", hint);
}

/* "a.b" from "a" and "b", control characters shown as '?'. */
static void join(char *out, size_t cap, const char *a, const char *b)
{
	snprintf(out, cap, "%s%s%s", a, *a ? "." : "", b);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
}

/* The key at kids[i] of map: a plain name, no dots, not seen before. */
static int take_key(const cfg__ctx *x, const cfg__node *map, size_t i,
		    const char *disp, const char *path)
{
	const cfg__node *kn = map->kids[i];
	if (kn->kind != CFG__SCALAR || cfg__is_null(kn) || kn->anchored || kn->tagged)
		return cfg__fail(x, kn->mark, disp, "expected a key name, got %s",
			kn->kind == CFG__ALIAS || kn->anchored ? "an alias or anchor" :
			kn->tagged ? "a tagged value" : kn->kind == CFG__SCALAR ? "nothing" :
			"a collection");
	if (strchr(kn->text, '.'))
		return cfg__fail(x, kn->mark, path, "a dot in a key name; write "
				 "nested maps, one level per part");
	for (size_t j = 0; j < i; j += 2) {
		const cfg__node *o = map->kids[j];
		if (o->kind == CFG__SCALAR && !strcmp(o->text, kn->text))
			return cfg__fail(x, kn->mark, path, "duplicate key (first at "
					 "line %zu)", o->mark.line + 1);
	}
	return 0;
}

static int enter_section(const cfg__ctx *x, const level *lv, const cfg__node *v,
			 const char *rel, const char *path)
{
	int rc = plain_ok(x, v, path);
	if (rc < 0 || cfg__is_null(v))
		return rc;
	if (v->kind != CFG__MAP)
		return fail_expect(x, v, path, "a map of settings");
	return walk_map(x, lv, v, rel, path);
}

static int walk_map(const cfg__ctx *x, const level *lv, const cfg__node *map,
		    const char *rel, const char *disp)
{
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const cfg__node *kn = map->kids[i], *v = map->kids[i + 1];
		char r[PATH_CAP], d[PATH_CAP];
		const cfg_key *k;
		int rc;

		join(r, sizeof r, rel, kn->text ? kn->text : "");
		join(d, sizeof d, disp, kn->text ? kn->text : "");
		if ((rc = take_key(x, map, i, disp, d)) < 0)
			return rc;
		if ((k = find_key(lv->tab, r)))
			rc = set_key(x, lv, k, v, d);
		else if (is_section(lv->tab, r))
			rc = enter_section(x, lv, v, r, d);
		else
			rc = unknown_key(x, lv->tab, kn, rel, d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* --- defaults, load, free ----------------------------------------------- */

/* A default's YAML text as a node: lists and quoted strings go through
 * libyaml, bare scalars are taken as they are. */
static int default_node(cfg__node **out, const cfg_key *k)
{
	const char *d = k->def ? k->def : "";
	*out = NULL;
	if (*d == '[' || *d == '"' || *d == '{')
		return cfg__parse(out, "(built-in default)", d, strlen(d));
	cfg__node *n = calloc(1, sizeof *n);
	if (!n || !(n->text = copy_str(d))) {
		free(n);
		return tend_error_set(TEND_ENOMEM, "out of memory for config defaults");
	}
	n->kind = CFG__SCALAR;
	n->len = strlen(d);
	n->plain = true;
	*out = n;
	return 0;
}

static int apply_defaults(const cfg_key *tab, void *base)
{
	const cfg__ctx x = {"(built-in default)", NULL, NULL};
	const level lv = {tab, base, NULL, NULL};
	for (const cfg_key *k = tab; k->path; k++) {
		if (k->flags & CFG_F_REQUIRED)
			continue; /* no default: the item must say */
		cfg__node *n;
		int rc = default_node(&n, k);
		if (rc == 0)
			rc = set_key(&x, &lv, k, n ? n : &null_node, k->path);
		cfg__node_free(n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void free_fields(const cfg_key *tab, void *base)
{
	for (const cfg_key *k = tab; k->path; k++) {
		void *f = (char *)base + k->offset;
		if (k->type == CFG_STRING) {
			free(*(char **)f);
			*(char **)f = NULL;
		} else if (k->type == CFG_STRLIST) {
			strlist_free(f);
		} else if (k->type == CFG_MAPLIST) {
			anylist l;
			memcpy(&l, f, sizeof l);
			maplist_free(k, &l);
			memcpy(f, &l, sizeof l);
		}
	}
}

void cfg_free(cfg *c)
{
	if (!c)
		return;
	free_fields(cfg_schema(), c);
	free(c);
}

int cfg_defaults(cfg **out)
{
	cfg *c = calloc(1, sizeof *c);
	*out = NULL;
	if (!c)
		return tend_error_set(TEND_ENOMEM, "out of memory for config defaults");
	int rc = apply_defaults(cfg_schema(), c);
	if (rc < 0) {
		cfg_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int load_tree(const cfg__ctx *x, cfg *c, const cfg__node *root)
{
	const level lv = {cfg_schema(), c, x->marks, x->set};
	int rc;
	if (!root)
		return 0;
	if ((rc = plain_ok(x, root, NULL)) < 0)
		return rc;
	if (root->kind != CFG__MAP) {
		char got[64];
		describe(got, sizeof got, root);
		return cfg__fail(x, root->mark, NULL, "expected a map of sections at "
				 "the top level, got %s", got);
	}
	return walk_map(x, &lv, root, "", "");
}

int cfg_load_buf(cfg **out, const char *name, const char *buf, size_t len)
{
	size_t nkeys = 0;
	cfg *c = NULL;
	cfg__node *root = NULL;
	int rc;

	*out = NULL;
	while (cfg_schema()[nkeys].path)
		nkeys++;
	cfg__ctx x = {name ? name : "(config)", calloc(nkeys, sizeof(yaml_mark_t)),
		      calloc(nkeys, sizeof(bool))};
	if (!x.marks || !x.set) {
		rc = tend_error_set(TEND_ENOMEM, "out of memory reading config");
		goto done;
	}
	if ((rc = cfg_defaults(&c)) < 0 || (rc = cfg__parse(&root, x.name, buf, len)) < 0 ||
	    (rc = load_tree(&x, c, root)) < 0 || (rc = cfg__cross_check(&x, c)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	cfg_free(c);
	cfg__node_free(root);
	free(x.marks);
	free(x.set);
	return rc;
}

/* The whole file, at most MAX_FILE bytes; works on pipes too. */
static int read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	size_t cap = 4096, n = 0;
	char *buf = NULL;
	int rc = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		if (errno == ENOENT)
			return tend_error_set(TEND_ENOTFOUND, "%s: no such file; "
				"`tend init` writes a commented default", path);
		return tend_error_os("%s", path);
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = tend_error_set(TEND_EINVAL, "%s: a directory, not a config file", path);
		goto done;
	}
	for (;;) {
		if (n == cap || !buf) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				rc = tend_error_set(TEND_ENOMEM, "%s: out of memory", path);
				goto done;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n > MAX_FILE) {
			rc = tend_error_set(TEND_EINVAL, "%s: larger than %d bytes; "
				"that is not a config file", path, MAX_FILE);
			goto done;
		}
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = tend_error_os("%s", path);
		goto done;
	}
	*out = buf;
	*len = n;
	buf = NULL;
done:
	free(buf);
	fclose(f);
	return rc;
}

int cfg_load(cfg **out, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	*out = NULL;
	int rc = read_file(path, &buf, &len);
	if (rc == 0)
		rc = cfg_load_buf(out, path, buf, len);
	free(buf);
	return rc;
}
