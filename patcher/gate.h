/*
 * gate.h - the gates a candidate scaffold must pass to reach main. They
 * read tend.yaml's gates section, which lives outside the scaffold
 * repository and so out of the model's reach; their hash is taken when an
 * evaluation starts and checked again before promotion.
 */
#ifndef GATE_H
#define GATE_H

#include "config.h"
#include "json.h"

#include <stdbool.h>

/* What one arm of an A/B evaluation measured. NaN where unknown. */
typedef struct gate_figures {
	double val_loss;      /* validation loss at the last step */
	double loss_tail;     /* mean training loss over the last 10% of steps */
	double tokens_per_s;  /* median over the run */
	double wall_s;        /* wall time of the run */
	long steps;           /* steps completed */
	long steps_wanted;
	int incidents;        /* warning or critical incidents its metrics raise */
	bool timed_out;       /* a timeout is a failure, never a pass */
	bool crashed;         /* exited non-zero */
} gate_figures;

#define GATE_MAX_ROWS 8

typedef struct gate_row {
	char name[32];        /* "no_incident", "val_loss", ... */
	char baseline[48], candidate[48], bound[96];
	bool pass;
} gate_row;

typedef struct gate_verdict {
	bool pass;
	int n;
	gate_row rows[GATE_MAX_ROWS];
	char reason[512];     /* the failed gates, or "every gate passed" */
} gate_verdict;

/* Judges candidate against baseline. noise_sd is the standard deviation of
 * the baseline's validation loss over repeated runs (0 when not measured):
 * an improvement must exceed both min_delta and twice the noise. */
void gate_judge(gate_verdict *out, const cfg_gates *g, const gate_figures *base,
		const gate_figures *cand, double noise_sd);

/* What replaying the recorded runs through the baseline's and the
 * candidate's monitors found, for a patch to the supervisor's own files
 * (monitors.lua, policies.lua, playbook.lua, prompts). */
typedef struct gate_replay {
	int runs;                  /* runs replayed */
	int real;                  /* incidents labelled real in them */
	int found_base, found_cand; /* of those, found again by each side */
	int fp_base, fp_cand;      /* warning+ incidents on clean runs */
	int clean_runs;            /* runs with no incident labelled real */
} gate_replay;

/* Every real incident must still be found; false positives on clean runs
 * must not rise. */
void gate_judge_replay(gate_verdict *out, const gate_replay *r);

/* The hash that binds a verdict to the rules it used: SHA-256 over the
 * gates and evaluation sections and proposer.allowed_paths. */
int gate_rules_hash(const cfg *c, char out[65]);

/* Appends {"pass":..,"reason":..,"rows":[{name,baseline,candidate,bound,pass}]}. */
int gate_verdict_json(const gate_verdict *v, jbuf *b);

/* Appends the figures of one arm as a JSON object. */
int gate_figures_json(const gate_figures *f, jbuf *b);

#endif
