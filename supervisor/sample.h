/*
 * sample.h - turning metric (name, value) pairs, as a metrics line or a
 * store row carries them, into the monitors' mon_sample. Shared by live
 * ingest and by `tend replay`, so both feed the detectors identically.
 */
#ifndef SAMPLE_H
#define SAMPLE_H

#include "mon.h"

#define SMP_MAX_LAYERS 32

typedef struct smp {
	mon_sample s;
	mon_moe_layer layers[SMP_MAX_LAYERS];
	double loads[SMP_MAX_LAYERS][MON_MOE_MAX_EXPERTS];
} smp;

/* Starts a sample of type at step; t is monotonic seconds (NaN: none). */
void smp_begin(smp *b, mon_sample_type type, long step, double t);

/* Adds one metric by its protocol name: loss, grad_norm, lr, tokens_per_s,
 * step_time_s, val_loss, moe.L.load.E, moe.L.max_over_mean, moe.L.entropy,
 * moe.L.dropped, moe.L.tokens, moe.L.top_k. Other names are ignored. */
void smp_put(smp *b, const char *name, double value);

/* The finished sample (points into b). */
const mon_sample *smp_sample(smp *b);

#endif
