/*
 * propose.h - the proposers: from an incident to a proposed patch of the
 * Lua scaffold. docs/proposals.md describes what the model sees, the
 * response schema, every rejection reason and the builtin playbook.
 *
 * Three steps, each usable alone:
 *   prop_ctx_build()      gathers what a proposer sees: the incident and its
 *                         evidence, the metric window around the onset, the
 *                         log tail (secrets redacted), the scaffold files at
 *                         main, main's recent history, and past proposals for
 *                         incidents of the same kind with their outcomes;
 *   prop_ask()            asks the configured proposer (the offline builtin
 *                         playbook, an OpenAI-compatible server, Anthropic);
 *   prop_parse_response() checks a model's answer strictly.
 * A proposal comes back as a prop_result whose diff is a unified diff; the
 * patcher validates its paths and applies it. Nothing here writes to the
 * store or the repository. The API key is read from the environment at the
 * moment of the request and is never logged, stored, put in the context or
 * in an error message.
 */
#ifndef PROPOSE_H
#define PROPOSE_H

#include "config.h"
#include "json.h"
#include "patch.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* Bounds on what a response may hold (prop_parse_response). */
#define PROP_DIAGNOSIS_MAX 4000       /* characters (UTF-8 code points) */
#define PROP_RATIONALE_MAX 4000
#define PROP_EFFECT_MAX 2000
#define PROP_DIFF_MAX (64 * 1024)     /* bytes */
#define PROP_MAX_ATTEMPTS 3           /* HTTP attempts per request (429, 5xx) */

/* ---- the context ---------------------------------------------------------- */

typedef struct prop_ctx prop_ctx;

/* What prop_ctx_build gathers; NULL or a zero field takes the default. */
typedef struct prop_ctx_opts {
	const char *rev;             /* scaffold revision shown; "main" */
	/* Globs of the files shown (patch.h's rules); NULL: the top-level
	 * Lua files and the Markdown files in prompts/. */
	const char *const *allowed;
	size_t n_allowed;
	int metric_values;           /* values before / after the onset; 16 */
	int64_t window_steps;        /* min/median/max over onset +- this; 1000 */
	int log_lines;               /* stdout/stderr lines of the tail; 50 */
	int history;                 /* commits of rev shown; 10 */
	int memory;                  /* past proposals of the same kind; 10 */
} prop_ctx_opts;

/* Builds the context for incident_id from the store st and the scaffold
 * repository repo. Returns 0 and *out (free with prop_ctx_free),
 * TEND_ENOTFOUND (no such incident, or rev does not resolve), TEND_ENOMEM,
 * or a store / patcher error. Files over 256 KiB, or past 1 MiB in all,
 * are shown cut with a note. */
int prop_ctx_build(prop_ctx **out, store *st, patch_repo *repo,
		   int64_t incident_id, const prop_ctx_opts *o);

/* Accepts NULL. */
void prop_ctx_free(prop_ctx *c);

/* Writes the context as one JSON object (the schema is in
 * docs/proposals.md): {"incident", "evidence", "metrics", "logs", "files",
 * "history", "memory"}. Returns 0 or the jbuf's error. */
int prop_ctx_json(const prop_ctx *c, jbuf *out);

/* The text a prompt placeholder {{name}} is replaced with ("incident",
 * "evidence", "metrics", "logs", "files", "history", "memory", "schema"),
 * or NULL for an unknown name. Owned by c. */
const char *prop_ctx_section(const prop_ctx *c, const char *name);

/* The incident's kind ("loss_spike", ...). Owned by c. */
const char *prop_ctx_kind(const prop_ctx *c);

/* ---- secrets -------------------------------------------------------------- */

/* Copies text[0..len) into *out (NUL-terminated, free()) with everything
 * that looks like a secret replaced by "[REDACTED]": sk-/ghp_/xoxb-/hf_
 * style tokens, AWS access key ids, "Bearer <token>", the value after a
 * name ending in key, token, secret, password, passwd, pwd, credential(s)
 * or auth(orization) followed by '=' or ':', a long token after such a
 * name and a space, user:password@ in URLs, and PEM private key lines.
 * Returns 0 or TEND_ENOMEM. */
int prop_redact(char **out, const char *text, size_t len);

/* ---- results -------------------------------------------------------------- */

typedef struct prop_result {
	char *diagnosis;       /* 1..4000 characters */
	double confidence;     /* 0..1 */
	char *diff;            /* a unified diff, <= 64 KiB */
	char *rationale;       /* <= 4000 characters, may be "" */
	char *expected_effect; /* <= 2000 characters, may be "" */
	char proposer[16];     /* "builtin", "openai", "anthropic" */
	char model[128];       /* the model; "playbook.lua@<sha256 prefix>" */
	char prompt_sha256[65];   /* of the exact request body (builtin: the
				     context JSON the playbook saw) */
	char response_sha256[65]; /* of the exact response body (builtin: the
				     JSON text it produced) */
	long tokens_in, tokens_out; /* as the API reported them; 0 builtin */
} prop_result;

/* Frees the strings and zeroes *r. Accepts NULL and a zeroed result. */
void prop_result_free(prop_result *r);

/* Parses a model's answer: exactly one JSON object with the keys
 * diagnosis, confidence, diff, rationale, expected_effect, optionally
 * wrapped in one ```json fence. Fills the first five fields of *out (the
 * rest are left alone). Returns 0, or TEND_EINVAL with a message starting
 * "response: " (every reason is listed in docs/proposals.md), or
 * TEND_ENOMEM; on failure *out holds no strings. */
int prop_parse_response(prop_result *out, const char *text, size_t len);

/* ---- asking ---------------------------------------------------------------- */

/* What the proposer may spend across calls of prop_ask (e.g. per run or per
 * incident). A max of 0 means no limit. requests counts HTTP attempts
 * (retries too), tokens counts input + output tokens as reported. */
typedef struct prop_budget {
	int64_t max_requests, requests;
	int64_t max_tokens, tokens;
} prop_budget;

/* Sets max_requests from cfg->max_requests, no token limit, nothing used. */
void prop_budget_init(prop_budget *b, const cfg_proposer *cfg);

/* Asks the proposer cfg->kind for a patch for the incident in ctx.
 * scaffold_dir is the scaffold checkout whose playbook.lua (builtin) or
 * prompts/system.md and prompts/incident.md (models) are used; the diff is
 * against the files in ctx. budget may be NULL (no limits).
 *
 * builtin: runs PB.selftest() and PB.propose(ctx) from playbook.lua in the
 * Lua sandbox and turns its edits into a diff (libgit2).
 * openai: POST {endpoint}/chat/completions; anthropic: POST
 * {endpoint}/v1/messages; an empty endpoint means the public API.
 *
 * Returns 0 and fills *out (free with prop_result_free), or:
 *   TEND_ENOTFOUND  the playbook has no proposal for this incident (nil),
 *                   or a prompt template / playbook.lua is missing;
 *   TEND_EBUSY      the budget is spent (nothing was sent);
 *   TEND_ETIMEOUT   deadline_s passed, or the sandbox's budget ran out;
 *   TEND_EIO        the server failed (HTTP error, retries exhausted);
 *   TEND_EINVAL     a bad answer (from the model, the server or the
 *                   playbook), a bad template or config;
 *   TEND_ENOMEM.
 * On failure *out holds no strings. */
int prop_ask(prop_result *out, const cfg_proposer *cfg, const prop_ctx *ctx,
	     const char *scaffold_dir, prop_budget *budget);

/* Renders template (named name in messages) with ctx: each {{placeholder}}
 * (see prop_ctx_section) replaced. *out is free()d by the caller. Returns
 * 0, TEND_EINVAL ("NAME:LINE: unknown placeholder {{x}}") or TEND_ENOMEM. */
int prop_render(char **out, const char *name, const char *tmpl, size_t len,
		const prop_ctx *ctx);

/* The schema text {{schema}} stands for. */
const char *prop_schema_text(void);

#endif
