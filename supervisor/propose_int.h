/*
 * propose_int.h - what the propose*.c files share and nobody else sees:
 * the context object and the helpers between the proposers.
 */
#ifndef PROPOSE_INT_H
#define PROPOSE_INT_H

#include "propose.h"

#include <stdbool.h>

/* One scaffold file as the context shows it. */
typedef struct prop__file {
	char *path;
	char *text; /* NUL-terminated */
	size_t len;
	bool cut;   /* shown shortened: the builtin may not edit it */
} prop__file;

struct prop_ctx {
	int64_t incident_id, run_id, onset_step;
	char *kind;
	/* JSON renderings, each one valid JSON value */
	char *incident_json, *evidence_json, *metrics_json, *logs_json;
	char *files_json, *history_json, *memory_json;
	/* text renderings for the prompt placeholders */
	char *logs_text, *files_text, *history_text;
	prop__file *files;
	size_t nfiles;
};

/* A growable text buffer for the prompt renderings (jbuf writes JSON and
 * puts commas between values). The first failure is sticky. */
typedef struct prop__text {
	char *s;
	size_t len, cap;
	int err;
} prop__text;

void prop__tadd(prop__text *t, const char *s, size_t n);
void prop__tputs(prop__text *t, const char *s);
void prop__tprintf(prop__text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Moves the text into *out ("" when empty) or fails with TEND_ENOMEM. */
int prop__ttake(char **out, prop__text *t);

/* Moves b's text into *out (the jbuf is left empty); TEND_ENOMEM if b
 * failed on the way. */
int prop__take(char **out, jbuf *b);

/* Fills the history (patch_log of rev) and the files (rev's tree) parts. */
int prop__ctx_repo(prop_ctx *c, patch_repo *repo, const prop_ctx_opts *o);

/* The builtin proposer: playbook.lua from scaffold_dir. */
int prop__builtin(prop_result *out, const prop_ctx *ctx, const char *scaffold_dir);

/* The model proposers (cfg->kind openai or anthropic). */
int prop__model(prop_result *out, const cfg_proposer *cfg, const prop_ctx *ctx,
		const char *scaffold_dir, prop_budget *budget);

/* Replaces every occurrence of secret (when at least 8 bytes) in the
 * malloc()ed string *s by "[REDACTED]"; returns 0 or TEND_ENOMEM. */
int prop__scrub(char **s, const char *secret);

/* prop__scrub for the value of every environment variable named like a
 * secret (OPENAI_API_KEY, HF_TOKEN, DB_PASSWORD, ...). */
int prop__scrub_env(char **s);

/* Counts UTF-8 code points of a valid UTF-8 string. */
size_t prop__utf8_chars(const char *s, size_t len);

#endif
