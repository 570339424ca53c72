/*
 * pipeline.h - incident -> proposal -> branch -> evaluation -> gates ->
 * promotion, every step recorded in the store and the audit log. Used by
 * `tend propose`, `tend proposal approve|reject`, `tend rollback` and the
 * supervisor (which runs `tend propose` as a child, so none of this ever
 * blocks its loop).
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct pipe_opts {
	const char *ws;   /* absolute workspace path */
	bool evaluate;    /* run the A/B evaluation after a valid proposal */
	bool promote;     /* promote a passing candidate when no human must approve */
	FILE *log;        /* progress lines; NULL = quiet */
} pipe_opts;

/* Asks the configured proposer about incident, validates the answer,
 * commits it on its own branch, checks it statically and (opts) evaluates
 * and promotes it. *out_id is the proposal's id (0 when none was made).
 * Returns 0 when the proposal went as far as it could (a rejection is a
 * recorded outcome, not an error), or a negative code when the pipeline
 * itself failed. */
int pipe_propose(int64_t *out_id, const pipe_opts *o, int64_t incident);

/* Evaluates a branched proposal against main (A/B, gates). */
int pipe_evaluate(const pipe_opts *o, int64_t proposal);

/* Merges a proposal whose evaluation passed into main, if the gates are
 * unchanged and, where tend.yaml asks, a human approved (approved_by is
 * the approver, or "gates" for an automatic promotion). Writes the merge
 * commit id into merged (41 bytes) when not NULL. */
int pipe_promote(const pipe_opts *o, int64_t proposal, const char *approved_by, char *merged);

/* Rejects a proposal by a human decision, with a reason. */
int pipe_reject(const pipe_opts *o, int64_t proposal, const char *who, const char *reason);

/* Reverts a promotion commit on main through the audited path. */
int pipe_rollback(const pipe_opts *o, const char *commit, const char *reason, char out[41]);

/* Records that the gates in tend.yaml changed deliberately (audited). */
int pipe_accept_gates(const pipe_opts *o, const char *who, const char *reason);

#endif
