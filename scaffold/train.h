/*
 * train.h - the in-tree trainer's loop: data -> model -> optimizer, steered
 * each step by the Lua scaffold, writing the metrics protocol
 * (docs/metrics.md), checkpointing atomically, resuming exactly.
 *
 * This is what `tend train` runs and what the supervisor launches as a
 * child process; it knows nothing of the supervisor.
 */
#ifndef TRAIN_H
#define TRAIN_H

#include "fault.h"
#include "gpt.h"

#include <stdint.h>

typedef struct trn_opts {
	gpt_config model;
	int batch, context, grad_accum;
	long steps;            /* total optimizer steps of the run */
	long eval_every;       /* 0 = never */
	int eval_batches;
	long checkpoint_every; /* 0 = only at the end */
	int keep_last;
	long keep_every;
	uint64_t seed;
	const char *data;      /* a directory of shards, or "synthetic" */
	const char *run_dir;   /* metrics, checkpoints/, data/ when synthetic */
	const char *metrics_file; /* name inside run_dir */
	const char *scaffold_dir; /* the Lua scaffold (scaffold.lua) */
	const char *resume;    /* a checkpoint path, "latest", or NULL */
	long skip_batches;     /* skipped once, right after start/resume */
	double lr_scale;       /* recovery's LR cut; 1 = none */
	double heartbeat_s;    /* 0 = no heartbeat thread */
	bool no_checkpoints;   /* evaluation runs: never write checkpoints */
	bool no_machine_faults;/* evaluation runs: only data faults apply */
	long stop_after;       /* stop (as if killed) after this many steps of
				* this process; 0 = never (for resume tests) */
	fault_set faults;
} trn_opts;

/* Fills the defaults: a small MoE model for CPU (the demo's), batch 8,
 * context 64, synthetic data, metrics.jsonl, checkpoint every 100. */
void trn_opts_default(trn_opts *o);

/* Trains. Returns 0 when the run finished its steps or the scaffold asked
 * to stop, or a negative code (bad options, data, checkpoint, scaffold)
 * with the message in tend_error_last(). Faults may end the process. */
int trn_run(const trn_opts *o);

/* Reads the scaffold's git commit id (HEAD of the repository at dir) into
 * out; "unknown" when dir is not a git checkout. TEND_SCAFFOLD_COMMIT in
 * the environment wins (evaluation copies are not repositories). */
void trn_scaffold_commit(const char *dir, char *out, size_t cap);

#endif
