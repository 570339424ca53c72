/*
 * eval.h - A/B evaluation of a scaffold candidate: real trainer processes,
 * each resuming from the same good checkpoint with the same data order and
 * seed, one per arm (baseline, candidate, and baseline repeats on shifted
 * data windows for the noise floor), run side by side under one wall-clock
 * budget, then measured from their metrics files.
 */
#ifndef EVAL_H
#define EVAL_H

#include "gate.h"
#include "mon.h"
#include "store.h"

#include <stdbool.h>

typedef struct eval_arm eval_arm;

struct eval_arm {
	const char *name;         /* "baseline", "candidate", "noise-1", ... */
	const char *scaffold_dir; /* the scaffold this arm runs */
	long extra_skip;          /* batches skipped after resuming (noise arms) */
};

/* Told about progress every half second: for each of the n arms its name,
 * last step and loss; target is the step every arm runs to. */
typedef void (*eval_progress_fn)(int n, const eval_arm *arms, const long *step,
				 const double *loss, long target, void *ud);

typedef struct eval_spec {
	const char *trainer_exe;  /* the in-tree trainer (tend-train) the arms run */
	const char *workspace;
	const char *dir;          /* arms run in DIR/<arm name>/ */
	const char *checkpoint;   /* resume point, shared read-only by all arms */
	const char *data_dir;     /* the live run's data (same tokens for all) */
	long from_step, steps;    /* each arm runs steps from_step+1..from_step+steps */
	double max_wall_s;        /* one budget for all arms; a timeout fails */
	int threads;              /* per arm; 0 = let the trainer choose */
	const mon_params *mon;    /* for counting incidents in each arm */
	eval_progress_fn progress;
	void *ud;
} eval_spec;

/* Runs the n arms concurrently and fills out[i] for arm i. Returns 0 when
 * every arm was measured (each may still have failed: see its figures),
 * or a negative code when the arms could not be started. */
int eval_run(gate_figures *out, const eval_spec *spec, const eval_arm *arms, int n);

/* Measures one finished arm from its metrics file. */
int eval_measure(gate_figures *out, const char *metrics_path, long steps_wanted,
		 const mon_params *mon);

/* Copies a metrics file into the store as run run_id (one transaction),
 * so evaluation runs are recorded like any run. */
int eval_ingest(store *st, int64_t run_id, const char *metrics_path);

#endif
