/*
 * scf.h - the scaffold host: the Lua scaffold the trainer steers by.
 *
 * A scaffold is a directory of Lua files (the checked-out scaffold git
 * repository). Its entry, scaffold.lua, returns a table S that speaks
 * scaffold API 1 (docs/lua-api.md): S.api, S.config, S.lr, S.clip,
 * S.coeffs, S.on_step and optionally S.selftest. The files run in one lsb
 * sandbox; import("name") loads name.lua from the same directory.
 *
 * Every call validates what Lua returns and answers a bad value with
 * TEND_EINVAL and a message naming the function. Errors from Lua carry its
 * message and traceback; budget and deadline give TEND_ETIMEOUT, the heap
 * cap TEND_ENOMEM (see lsb.h). After a failed call the scaffold stays
 * usable.
 */
#ifndef SCF_H
#define SCF_H

#include "lsb.h"

#include <stdbool.h>

#define SCF_API 1             /* the scaffold API this host speaks */
#define SCF_FILE_MAX (1 << 20) /* bytes per Lua file */

typedef struct scf scf;

/* One MoE layer's router health for a step. */
typedef struct scf_moe {
	double max_over_mean; /* busiest expert's tokens over the mean */
	double entropy;       /* router entropy over experts, nats */
	double dropped;       /* fraction of routed tokens over capacity */
} scf_moe;

/* What one training step measured; S.on_step sees it as a table. */
typedef struct scf_metrics {
	long step;
	double loss, grad_norm, lr, tokens_per_s, step_time_s;
	bool has_val_loss; /* val_loss is nil in Lua unless set */
	double val_loss;
	const scf_moe *moe; /* n_moe layers, in model order */
	int n_moe;
} scf_metrics;

/* What S.on_step asked for; all zero when it returned nil. */
typedef struct scf_actions {
	long skip;        /* skip the next N batches */
	bool checkpoint;  /* write a checkpoint now */
	bool stop;        /* stop the run cleanly */
	char reason[256]; /* why, for the log (truncated) */
} scf_actions;

/* Loads dir/scaffold.lua into a fresh sandbox (lim NULL = lsb defaults)
 * and validates it: S.api == SCF_API, S.config a table, the functions
 * present, S.selftest (when present) returning true. Returns 0,
 * TEND_ENOTFOUND (no scaffold.lua), TEND_EINVAL (with file and line where
 * Lua knows them), TEND_ETIMEOUT or TEND_ENOMEM. Free with scf_free. */
int scf_open(scf **out, const char *dir, const lsb_limits *lim);

/* Accepts NULL. */
void scf_free(scf *f);

/* Loads the directory again into a fresh sandbox and swaps it in. On
 * failure the old scaffold stays in place, fully working, and the error
 * (as scf_open's) is returned. */
int scf_reload(scf *f);

/* *out = S.lr(step, total): a finite number >= 0. */
int scf_lr(scf *f, long step, long total, double *out);

/* *out = S.clip(step): the gradient-norm clip, finite and >= 0 (0 = none). */
int scf_clip(scf *f, long step, double *out);

/* S.coeffs(step) -> {aux=, z=}: the MoE load-balancing and router z-loss
 * coefficients, finite and >= 0. */
int scf_coeffs(scf *f, long step, double *aux, double *z);

/* Calls S.on_step(m) and parses its answer into *out (zeroed first). An
 * actions table with an unknown key or a bad value is refused. */
int scf_on_step(scf *f, const scf_metrics *m, scf_actions *out);

/* *out = S.config[key] when it is a number, def when it is nil; another
 * type is TEND_EINVAL. */
int scf_config_num(scf *f, const char *key, double def, double *out);

/* Where print() in the scaffold goes, for this and every reloaded state;
 * NULL keeps it in the sandbox's buffer (lsb_output). */
void scf_set_print(scf *f, lsb_print_fn fn, void *ud);

/* The directory the scaffold was opened from. */
const char *scf_dir(const scf *f);

/* The sandbox now in use (replaced by a successful scf_reload). */
lsb *scf_sandbox(scf *f);

#endif
