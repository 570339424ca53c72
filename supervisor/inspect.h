/*
 * inspect.h - what the inspection commands (`tend runs`, `status`,
 * `metrics`, `logs`, `incidents`, `report`, `replay`, `attach`) share:
 * the workspace's store opened read-only, runs found by name, and a run's
 * final timeline with its accounts, computed by the live supervisor's
 * rules so that `tend status` after a run agrees with its status line.
 *
 * The final timeline: rows are taken in the order the trainer wrote them
 * (attempt, then step). Each attempt that resumed from a checkpoint (its
 * from_step in the attempts table, whether or not it wrote a row) drops
 * every step after from_step from the timeline before its rows go on, and
 * loses, as the supervisor counts it when it starts the attempt, the steps
 * from the last step row seen (evaluations do not count) back to
 * from_step. So each step keeps the value of the highest attempt that
 * recorded it, steps an abandoned attempt ran past its successor's resume
 * point do not count, and the steps lost follow from the attempts, not
 * from where the rows happen to go backwards (an evaluation logged at the
 * resume step, a crash one step after a checkpoint). Rows of an attempt
 * with no record fall back to that: a step going backwards is a restart
 * from the step before.
 */
#ifndef INSPECT_H
#define INSPECT_H

#include "json.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Opens WS/tend.db read-only for the workspace cli_workspace finds; its
 * path goes into ws (cap bytes). A store from an older tend is migrated
 * first (opened for writing) unless a supervisor holds the workspace.
 * Free with store_close. 0, or the code of cli_workspace (TEND_ENOTFOUND:
 * no workspace) or of store_open. */
int insp_open(store **out, char *ws, size_t cap);

/* The run named name, or TEND_ENOTFOUND "no run named 'NAME' in this
 * workspace; `tend runs` lists them". Free with store_run_free. */
int insp_run(store *s, const char *name, store_run **out);

/* The run meant when none is named: the one a supervisor holds, else the
 * newest. TEND_ENOTFOUND when the workspace has no runs. */
int insp_default_run(store *s, const char *ws, store_run **out);

/* True for "finished", "stopped" and "failed": the run will not change. */
bool insp_terminal(const char *state);

/* The series the accounts read, in insp_point.v and .have bits. */
enum { INSP_LOSS, INSP_STEP_TIME, INSP_TOKENS, INSP_VAL_LOSS, INSP_NSERIES };

typedef struct insp_point {
	int64_t step;
	unsigned have;              /* bit k: series k was recorded */
	double v[INSP_NSERIES];     /* NaN where not recorded (or NaN) */
} insp_point;

typedef struct insp_timeline {
	insp_point *p;              /* by step, increasing */
	size_t n, cap;
	long lost_steps;            /* steps dropped by restarts */
	int rewinds;                /* restarts that lost steps */
	int last_attempt;           /* 0 when no row */
} insp_timeline;

/* Reads run's final timeline (one query, see store_replay.h). Free with
 * insp_timeline_free. 0 or a store error. */
int insp_timeline_read(store *s, int64_t run, insp_timeline *tl);
void insp_timeline_free(insp_timeline *tl);

typedef struct insp_summary {
	int64_t last_step;          /* -1 before the first step */
	int64_t total_steps;        /* run.steps of the run's config; -1 unknown */
	double last_loss, tokens_per_s;   /* the newest recorded; NaN none */
	double best_val_loss;       /* the lowest finite val_loss; NaN none */
	int64_t best_val_step;
	double productive_s;        /* step_time_s summed over the timeline */
	double wall_s;              /* started .. ended (or now); NaN never started */
	double ett;                 /* productive_s / wall_s; NaN when no wall */
	double eta_s;               /* NaN unless running with a known total */
	long lost_steps;
	int attempts, restarts;     /* restarts = attempts - 1 */
	int incidents, open_incidents;
} insp_summary;

/* The accounts of r from its timeline, at wall time now. */
int insp_summarize(store *s, const store_run *r, const insp_timeline *tl,
		   double now, insp_summary *out);

/* Opens nothing: reads the timeline and summarizes in one call. */
int insp_summary_of(store *s, const store_run *r, double now,
		    insp_summary *out);

/* ---- output ----------------------------------------------------------- */

/* Writes r's identity and s's figures as members of the JSON object open
 * in b: name, state, started_t, ended_t, last_step, total_steps, ... (see
 * docs/cli.md); NaN as null. */
int insp_summary_json(jbuf *b, const store_run *r, const insp_summary *s);

/* Writes every field of incident i as members of the JSON object open in
 * b, with run (the run's name) and evidence as a JSON value. */
int insp_incident_json(jbuf *b, const store_incident *i, const char *run);

/* One status line: "r1 running | step 120/2000 | loss 4.123 | 1005 tok/s
 * | ETA 31m05s | ETT 85.2% | lost 40 | incidents 1 open". */
void insp_status_line(char *out, size_t cap, const store_run *r,
		      const insp_summary *s);

/* Prints a log line as "YYYY-mm-dd HH:MM:SS.mmm STREAM    LINE\n". */
void insp_print_log(FILE *f, const store_log *l);

/* "stdout", "stderr", "event", "malformed". */
const char *insp_stream_name(store_stream s);

/* Prints the first paragraph of a command's help (its usage lines) to
 * stderr; returns CLI_USAGE. */
int insp_usage(const char *help);

/* ---- following --------------------------------------------------------- */

/* From now on SIGINT sets a flag instead of killing the process, so a
 * --follow loop can end cleanly. */
void insp_catch_sigint(void);
bool insp_interrupted(void);

/* Sleeps ms milliseconds, less when SIGINT arrives. */
void insp_sleep_ms(int ms);

#endif
