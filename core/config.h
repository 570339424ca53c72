/*
 * config.h - tend.yaml, read into typed structs.
 *
 * One schema table (cfg_schema()) lists every key with its type, place in
 * `cfg`, range, default and one-line doc. That table drives parsing, the
 * defaults, range checks, the commented default file `tend init` writes,
 * the effective-settings printout and the per-section hashes; docs/config.md
 * is tested against it. Nothing else knows the key names.
 *
 * `cfg` is a plain public record of nested structs, as git's option structs
 * are: read its fields directly. Strings are never NULL ("" when unset).
 * Every error names file:line:column, the key path and what was expected:
 *   tend.yaml:12:14: monitors.loss_spike.window: expected an integer >= 8, got "abc"
 */
#ifndef TEND_CONFIG_H
#define TEND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_VERSION 1

enum cfg_device { CFG_DEVICE_CPU, CFG_DEVICE_CUDA, CFG_DEVICE_AUTO };
enum cfg_proposer_kind { CFG_PROPOSER_BUILTIN, CFG_PROPOSER_OPENAI, CFG_PROPOSER_ANTHROPIC };
/* Bits of cfg_webhook.events. */
enum cfg_event {
	CFG_EVENT_INCIDENT = 1u << 0,
	CFG_EVENT_RECOVERY = 1u << 1,
	CFG_EVENT_GIVEUP = 1u << 2,
	CFG_EVENT_PROMOTION = 1u << 3,
};

/* v[n] is NULL, so that run.command.v can go straight to execvp. */
typedef struct cfg_strlist {
	char **v;
	size_t n;
} cfg_strlist;

typedef struct cfg_run {
	cfg_strlist command; /* argv; empty = the in-tree trainer */
	int64_t steps, eval_every, checkpoint_every, keep_last, keep_every, seed;
	cfg_strlist env_passthrough;
	char *metrics_file;
} cfg_run;

typedef struct cfg_trainer {
	int64_t layers, d_model, heads, context, vocab;
	int64_t moe_every, experts, top_k;
	double capacity_factor;
	int64_t batch, grad_accum;
	int device; /* enum cfg_device */
	int64_t threads;
	char *data;         /* "synthetic" or a directory of token shards */
	cfg_strlist inject; /* fault specs, "kind@step" */
} cfg_trainer;

typedef struct cfg_spike {
	bool enabled;
	int64_t window;
	double zscore;
	int64_t warmup, patience;
} cfg_spike;

typedef struct cfg_monitors {
	struct { bool enabled; } nonfinite;
	cfg_spike loss_spike, grad_spike;
	struct { bool enabled; int64_t window; double min_rise; } divergence;
	struct { bool enabled; int64_t window; double min_improvement; } plateau;
	struct { bool enabled; double timeout_s, slow_factor; } stall;
	struct { bool enabled; double timeout_s; } heartbeat;
	struct { bool enabled; int64_t window; double drop_ratio; int64_t patience; } throughput;
	struct {
		bool enabled;
		double max_over_mean, dead_fraction, min_entropy_ratio, dropped_fraction;
	} moe;
	struct { bool enabled; } lua;
} cfg_monitors;

typedef struct cfg_recovery {
	int64_t max_restarts_per_hour;
	double backoff_initial_s, backoff_max_s, term_grace_s;
	double verify_timeout_s; /* a checkpoint search's child: seconds without progress */
	int64_t rollback_steps, skip_batches, cooldown_steps;
	double lr_cut;
} cfg_recovery;

typedef struct cfg_webhook {
	char *url;
	unsigned events; /* enum cfg_event bits */
	double timeout_s;
} cfg_webhook;

typedef struct cfg_alerts {
	struct { cfg_webhook *v; size_t n; } webhooks;
	int64_t retries;
	double backoff_s;
} cfg_alerts;

typedef struct cfg_proposer {
	bool auto_propose;         /* key proposer.auto */
	cfg_strlist allowed_paths; /* globs a proposal may touch */
	int kind; /* enum cfg_proposer_kind */
	char *endpoint, *model;
	double temperature, timeout_s, deadline_s;
	char *api_key_env; /* the NAME of the variable holding the key */
	int64_t max_requests, max_tokens, max_response_bytes;
	int64_t run_max_requests, run_max_tokens; /* the budget of one run */
} cfg_proposer;

typedef struct cfg_evaluation {
	int64_t steps, seeds, long_steps, noise_runs;
	double max_wall_s;
} cfg_evaluation;

typedef struct cfg_gates {
	bool require_no_incident;
	double val_loss_tolerance;
	bool require_improvement;
	double min_delta, throughput_ratio, max_wall_s;
	bool human_approval;
} cfg_gates;

typedef struct cfg_serve {
	char *listen; /* "host:port" */
	bool read_only;
	char *token_file;
} cfg_serve;

typedef struct cfg {
	int64_t version;
	cfg_run run;
	cfg_trainer trainer;
	cfg_monitors monitors;
	cfg_recovery recovery;
	cfg_alerts alerts;
	cfg_proposer proposer;
	cfg_evaluation evaluation;
	cfg_gates gates;
	cfg_serve serve;
} cfg;

/* The schema. Exposed read-only so that tools and tests can walk it. */
typedef enum cfg_type {
	CFG_INT,      /* int64_t */
	CFG_FLOAT,    /* double */
	CFG_BOOL,     /* bool */
	CFG_STRING,   /* char *, never NULL */
	CFG_ENUM,     /* int, an index into values */
	CFG_STRLIST,  /* cfg_strlist */
	CFG_DURATION, /* double seconds; YAML 90, 1.5, "250ms", "30s", "5m", "2h" */
	CFG_ENUMSET,  /* unsigned, bit i set = values[i] listed */
	CFG_MAPLIST,  /* { T *v; size_t n; }, T described by sub */
} cfg_type;

enum { CFG_F_REQUIRED = 1 }; /* a key an item of a map list must have */

typedef struct cfg_key {
	const char *path;          /* "monitors.loss_spike.window" */
	cfg_type type;
	size_t offset;             /* in cfg, or in the item for sub keys */
	double min, max;           /* numbers: inclusive range; lists: item count */
	const char *def;           /* the default, as YAML text */
	const char *const *values; /* enum names, NULL-terminated */
	const struct cfg_key *sub; /* CFG_MAPLIST: the item's keys, path NULL ends */
	size_t sub_size;           /* CFG_MAPLIST: sizeof the item */
	/* Extra validation of a parsed value (for lists: of each item). Returns
	 * 0, or non-zero with "expected ..." text in why. */
	int (*check)(const void *value, char *why, size_t cap);
	unsigned flags;
	const char *doc;           /* one line */
} cfg_key;

/* The key table, ended by an entry whose path is NULL. */
const cfg_key *cfg_schema(void);

/* All defaults. Returns 0 and *out (free with cfg_free), or TEND_ENOMEM. */
int cfg_defaults(cfg **out);

/* Reads the file at path. Returns 0 and *out, TEND_ENOTFOUND when there is
 * no such file, TEND_EIO when it cannot be read, or TEND_EINVAL for anything
 * wrong inside it; the message names path:line:col and the key. An empty
 * file is valid and gives all defaults. */
int cfg_load(cfg **out, const char *path);

/* As cfg_load, from memory; name stands for the file in messages. */
int cfg_load_buf(cfg **out, const char *name, const char *buf, size_t len);

void cfg_free(cfg *c);

/* Writes the commented default tend.yaml: every key with its default, each
 * preceded by its doc comment. Returns 0 or TEND_EIO. */
int cfg_write_default(FILE *f);

/* Writes the effective settings as YAML (a valid tend.yaml) or, with json,
 * as one JSON object of nested sections. Returns 0 or TEND_EIO. */
int cfg_print(FILE *f, const cfg *c, bool json);

/* SHA-256 (hex) of a canonical rendering of one section ("gates", or a
 * deeper one such as "monitors.loss_spike"; "" or NULL for all of it).
 * Returns 0, TEND_ENOTFOUND for no such section, or TEND_ENOMEM. */
int cfg_section_hash(const cfg *c, const char *section, char out[65]);

/* True when every key has the same value in a and b. */
bool cfg_equal(const cfg *a, const cfg *b);

#endif
