/*
 * config_int.h - what the config_*.c files share and nobody else uses: the
 * small YAML tree that config_yaml.c builds from libyaml's events, the load
 * context that carries file name and key positions for messages, and the
 * value formatter behind every printout.
 */
#ifndef TEND_CONFIG_INT_H
#define TEND_CONFIG_INT_H

#include "config.h"

#include <stdarg.h>
#include <yaml.h>

/* An upper bound that means "no upper bound" in the schema. */
#define CFG__BIG 1e15

typedef enum { CFG__SCALAR, CFG__SEQ, CFG__MAP, CFG__ALIAS } cfg__kind;

/* A YAML node with where it starts. A map holds 2*n kids: key, value, ... */
typedef struct cfg__node {
	cfg__kind kind;
	char *text;      /* scalars: the value, NUL-terminated */
	size_t len;
	bool plain;      /* an unquoted scalar (only those can be null) */
	bool anchored;   /* carried &anchor */
	bool tagged;     /* carried an explicit !tag */
	yaml_mark_t mark;
	struct cfg__node **kids;
	size_t n, cap;
} cfg__node;

/* Parses buf into *out (NULL for an empty stream or a null document).
 * Refuses bad UTF-8, tabs in indentation and more than one document before
 * or while asking libyaml. Returns 0, TEND_EINVAL or TEND_ENOMEM. */
int cfg__parse(cfg__node **out, const char *name, const char *buf, size_t len);
void cfg__node_free(cfg__node *n);

/* True for a plain empty, "~" or "null" scalar. */
bool cfg__is_null(const cfg__node *n);

/* Where each key of the main schema was set, for messages about keys
 * that only clash with each other. */
typedef struct cfg__ctx {
	const char *name;   /* the file, as messages name it */
	yaml_mark_t *marks; /* per cfg_schema() entry */
	bool *set;
} cfg__ctx;

/* Sets "name:line:col: path: message" and returns TEND_EINVAL. */
int cfg__fail(const cfg__ctx *x, yaml_mark_t m, const char *path,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* As cfg__fail, at the place the later of the two keys was set (the
 * second may be NULL). */
int cfg__fail_keys(const cfg__ctx *x, const char *path, const char *other,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Checks between keys (heads divide d_model, and so on). 0 or TEND_EINVAL. */
int cfg__cross_check(const cfg__ctx *x, const cfg *c);

/* Index of the main-schema key with this path, or -1. */
int cfg__key_index(const char *path);

/* One line about a top-level section for the default file, or NULL. */
const char *cfg__section_doc(const char *name);

/* True when s looks like an API key or token (a well-known prefix). */
bool cfg__looks_secret(const char *s);

typedef enum { CFG__YAML, CFG__JSON } cfg__style;

/* Writes one key's value (never a map list) in the given style. */
void cfg__put_value(FILE *f, const cfg_key *k, const void *base, cfg__style st);

/* Writes s as a double-quoted string valid in both JSON and YAML. */
void cfg__put_str(FILE *f, const char *s);

/* Shortest text that reads back as exactly v ("0.95", "6.0"). */
void cfg__fmt_double(char *buf, size_t cap, double v);

#endif
