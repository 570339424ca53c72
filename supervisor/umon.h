/*
 * umon.h - user monitors: detectors written in Lua in the workspace's
 * scaffold (monitors.lua), run in the sandbox on each batch of metric
 * samples, alongside the builtin detectors and feeding the same incident
 * path. Model-writable like every scaffold file, so what they return is
 * validated before it becomes an incident.
 */
#ifndef UMON_H
#define UMON_H

#include "mon.h"

typedef struct umon umon;

#define UMON_BATCH_MAX 4096   /* samples kept for one check() call */
#define UMON_INCIDENTS_MAX 16 /* incidents one call may raise */

/* Loads dir/monitors.lua into a fresh sandbox. *out is NULL (and 0 is
 * returned) when the scaffold has no monitors.lua. Errors name the file. */
int umon_open(umon **out, const char *scaffold_dir);
void umon_free(umon *u);

/* Queues one sample for the next umon_flush (the oldest are dropped past
 * UMON_BATCH_MAX). */
void umon_add(umon *u, const mon_sample *s);

/* Calls M.check(samples) on the queued samples and emits each incident it
 * returns (kind MON_USER, signature "user:<kind>" unless it gives one).
 * Returns 0, or a negative code (Lua error, budget, bad return value)
 * with the message set; the batch is dropped either way. */
int umon_flush(umon *u, mon_emit_fn emit, void *ud);

#endif
