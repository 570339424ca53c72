/*
 * clock.h - the two clocks tend reads: monotonic for timers and durations,
 * wall for timestamps that leave the process.
 */
#ifndef TEND_CLOCK_H
#define TEND_CLOCK_H

#include <stdint.h>

/* Nanoseconds of CLOCK_MONOTONIC: only differences mean anything. */
uint64_t tend_mono_ns(void);
/* The same in seconds, with the fraction, for timers and deadlines. */
double tend_mono_s(void);

/* Seconds since the Unix epoch (CLOCK_REALTIME), with the fraction. */
double tend_wall_s(void);

#endif
