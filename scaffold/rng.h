/*
 * rng.h - the small deterministic random number generator shared by the
 * trainer (weight init) and the data loader: splitmix64 to seed, then
 * xorshift64* to draw. Same seed, same sequence, on every machine.
 *
 * The state is a plain struct so callers keep it on the stack or inside
 * their own objects; no allocation, no global state, not thread-safe (give
 * each thread its own rng, seeded with rng_derive()).
 */
#ifndef RNG_H
#define RNG_H

#include <stdint.h>

typedef struct rng {
	uint64_t s; /* never 0 after rng_seed() */
} rng;

/* One splitmix64 step: mixes x into a well-spread 64-bit value. Useful to
 * derive independent seeds (seed ^ stream id) for parallel streams. */
uint64_t rng_splitmix64(uint64_t *x);

/* Seeds r from seed (any value, 0 included). */
void rng_seed(rng *r, uint64_t seed);

/* Seeds r for stream `stream` of seed: different streams are independent,
 * so chunk i of a parallel loop can draw from rng_derive(seed, i). */
void rng_derive(rng *r, uint64_t seed, uint64_t stream);

/* Next 64 / 32 random bits. */
uint64_t rng_u64(rng *r);
uint32_t rng_u32(rng *r);

/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t rng_below(rng *r, uint64_t n);

/* Uniform float in [0, 1) with 24 random bits. */
float rng_float(rng *r);

/* Standard normal N(0,1), Box-Muller in double (one draw per call). */
float rng_normal(rng *r);

#endif
