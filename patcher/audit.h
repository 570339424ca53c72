/*
 * audit.h - `tend audit verify`: proves that every commit on the scaffold's
 * main came through the gated path (a passing recorded evaluation and a
 * promotion, or an audited rollback), that the gates in force are the ones
 * the audit log recorded, and that the hash-chained audit log is intact.
 *
 * Audit actions written by tend (subject in parentheses):
 *   init (root commit), gates (rules hash), proposal (proposal:N),
 *   proposal_rejected (proposal:N), branch (commit), evaluation_started /
 *   evaluation_finished (evaluation:N), approve / reject (proposal:N),
 *   promote (merged commit), rollback (revert commit).
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "config.h"
#include "patch.h"
#include "store.h"

/* Called once per problem found, with a one-line description. */
typedef void (*audit_problem_fn)(const char *what, void *ud);

/* Checks everything; calls fn for each problem. Returns 0 when none was
 * found, TEND_EINVAL when some were (the message counts them), or another
 * code when the check itself could not run. */
int audit_verify(store *st, patch_repo *repo, const cfg *c, audit_problem_fn fn, void *ud);

/* Appends an audit row whose detail is built from "key", value pairs
 * (strings; NULL-terminated list). */
int audit_log(store *st, const char *actor, const char *action, const char *subject, ...)
	__attribute__((sentinel));

#endif
