/*
 * store_replay.h - reading a run's metric values in the order the trainer
 * wrote them: by attempt, then step, then metric name (in the order names
 * were first recorded). `tend replay` feeds this stream through the
 * monitors, and the run accounts (effective training time, steps lost to
 * restarts) are computed from it, so a restart shows up as a step going
 * backwards, exactly as it did when the rows arrived live.
 *
 * Kept apart from store.h until the store's owner takes it in.
 */
#ifndef STORE_REPLAY_H
#define STORE_REPLAY_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

/* The most names store_metrics_scan filters on. */
#define STORE_SCAN_MAX_NAMES 32

/* One value; name is valid during the call only. NaN comes back as the
 * quiet NaN. Return nonzero to stop the scan (the scan returns it). */
typedef int (*store_scan_cb)(int attempt, int64_t step, const char *name,
			     double value, double t, void *ud);

/* Every metric value of run (or only those whose name is in names[0..n),
 * n <= STORE_SCAN_MAX_NAMES; names unknown to the store are skipped), by
 * attempt, step and name, in one query over one snapshot. A run without
 * values calls nothing and returns 0. TEND_EINVAL when n is too large. */
int store_metrics_scan(store *s, int64_t run, const char *const *names,
		       size_t n, store_scan_cb cb, void *ud);

#endif
