/*
 * replay.h - recorded metrics through a fresh detector set: a run's rows
 * from the store, or a metrics.jsonl file read with mline_parse. Samples
 * are built by sample.h exactly as live ingest builds them, rows in the
 * order the trainer wrote them (attempt, then step), so a restart reaches
 * the monitors as the step going backwards that it was. `tend replay`
 * prints the result; a change to the monitors is tested by replaying.
 *
 * Time-based checks (stall, heartbeat) run on the recorded times: before
 * each sample, the detectors are ticked at that sample's time. The
 * scaffold's Lua monitors, when given, see the samples in batches of
 * RPL_USER_BATCH (live, a batch is what one ingest round read).
 */
#ifndef REPLAY_H
#define REPLAY_H

#include "mon.h"
#include "store.h"
#include "umon.h"

#include <stddef.h>

/* One incident: observations with the same signature folded together, as
 * the store folds them into an open incident. */
typedef struct rpl_incident {
	mon_incident first;      /* the first observation, as emitted */
	mon_severity severity;   /* the highest seen */
	long last_step;          /* of the newest observation */
	long count;              /* observations */
} rpl_incident;

#define RPL_USER_BATCH 256

/* What to replay with. */
typedef struct rpl_opts {
	const mon_params *params; /* the builtin detectors'; NULL: defaults */
	umon *user;               /* the scaffold's Lua monitors, or NULL */
} rpl_opts;

typedef struct rpl_result {
	rpl_incident *v;         /* in order of first observation */
	size_t n, cap;
	long rows;               /* store rows, or lines of the file */
	long samples;            /* samples fed to the monitors */
	long restarts;           /* steps that went backwards */
	long malformed;          /* file lines mline_parse refused */
	long user_errors;        /* Lua monitor calls that failed */
	char user_error[256];    /* the first failure's message */
} rpl_result;

/* Replays run's metric values from the store with the detectors of o
 * (NULL: the builtin ones with their defaults). Fills out (free with
 * rpl_result_free, also after an error). 0, TEND_EINVAL for bad
 * parameters, or a store error. A failing Lua monitor is counted, as live
 * ingest records it and goes on. */
int rpl_store(rpl_result *out, store *s, int64_t run, const rpl_opts *o);

/* The same for the metrics file at path; malformed lines are counted and
 * skipped as live ingest skips them. TEND_EIO when the file cannot be
 * read. */
int rpl_file(rpl_result *out, const char *path, const rpl_opts *o);

void rpl_result_free(rpl_result *r);

#endif
