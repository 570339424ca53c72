/*
 * rng.c - splitmix64 seeding and xorshift64* drawing (see rng.h).
 */
#include "rng.h"

#include <math.h>

uint64_t rng_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed)
{
	uint64_t x = seed;
	r->s = rng_splitmix64(&x);
	if (r->s == 0) /* xorshift's one fixed point */
		r->s = 0x9e3779b97f4a7c15ULL;
}

void rng_derive(rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed;
	uint64_t a = rng_splitmix64(&x);
	rng_seed(r, a ^ (stream * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
}

uint64_t rng_u64(rng *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

uint32_t rng_u32(rng *r)
{
	return (uint32_t)(rng_u64(r) >> 32);
}

uint64_t rng_below(rng *r, uint64_t n)
{
	/* Reject the top partial bucket so every value is equally likely. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rng_u64(r);
	while (x >= limit);
	return x % n;
}

float rng_float(rng *r)
{
	return (float)(rng_u64(r) >> 40) / 16777216.0f;
}

float rng_normal(rng *r)
{
	/* u1 in (0,1] so log never sees 0. */
	double u1 = ((double)(rng_u64(r) >> 11) + 1.0) / 9007199254740992.0;
	double u2 = (double)(rng_u64(r) >> 11) / 9007199254740992.0;
	return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
