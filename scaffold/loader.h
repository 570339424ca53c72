/*
 * loader.h - the trainer's data loader: batches of token sequences from a
 * directory of llm.c shards, in an order fixed by a seed.
 *
 * A batch is B rows of T+1 consecutive tokens taken from one contiguous
 * run of B*T+1 tokens, as llm.c does: inputs[b*T+t] = run[b*T+t] and
 * targets[b*T+t] = run[b*T+t+1]. Each shard is cut into
 * (len-1)/(B*T) such runs ("slots"). For split "train" every epoch visits
 * the shards in a seeded order and each shard's slots in a seeded order;
 * "val" (and any other split) reads shards and slots in file order, so an
 * evaluation sees the same tokens every time.
 *
 * The position is a small cursor. The orders are recomputed from
 * (seed, epoch, shard), never stored, which is what makes the cursor small,
 * restoring it exact, and skipping N batches arithmetic without reading.
 */
#ifndef LOADER_H
#define LOADER_H

#include <stddef.h>
#include <stdint.h>

typedef struct loader loader;

typedef struct loader_cursor {
	uint64_t seed;    /* the root of every order (the "rng state") */
	uint64_t epoch;   /* full passes completed */
	uint64_t shard;   /* ordinal in this epoch's shard order */
	uint64_t pos;     /* batches already taken from that shard */
	uint32_t B, T;    /* the batch shape the position counts in */
	uint32_t nshards; /* how many shards the directory held */
	uint32_t reserved; /* 0: no padding, so cursors compare with memcmp */
} loader_cursor;

/* Bytes of an encoded cursor (loader_cursor_encode). */
#define LOADER_CURSOR_BYTES 48

/* Opens the shards dir/<split>_*.bin (sorted by name), checking each
 * header; tokens are checked against vocab when a shard is first read.
 * Fails (TEND_ENOTFOUND) when there is no such shard, or (TEND_EINVAL) when
 * no shard holds the B*T+1 tokens one batch needs. Free with loader_free. */
int loader_new(loader **out, const char *dir, const char *split, int B, int T,
	       int vocab, uint64_t seed);
void loader_free(loader *l);

/* Fills inputs and targets (B*T ints each) with the next batch and moves
 * on. Fails only when a shard turns out bad as it is first read. */
int loader_next(loader *l, int *inputs, int *targets);

/* Moves past the next n batches as n loader_next calls would, reading
 * nothing. */
int loader_skip(loader *l, long n);

/* Back to the first batch of epoch 0. */
void loader_reset(loader *l);

void loader_get_cursor(const loader *l, loader_cursor *out);

/* Restores a cursor from loader_get_cursor; refuses one whose B, T or
 * shard count differ from this loader's, or whose position is out of
 * range, with a message saying which. */
int loader_set_cursor(loader *l, const loader_cursor *c);

/* Batches in one epoch, and tokens in the split. */
size_t loader_batches_per_epoch(const loader *l);
size_t loader_tokens(const loader *l);
size_t loader_shard_count(const loader *l);

/* A cursor as fixed little-endian bytes (for a checkpoint's cursor blob)
 * and back; decode refuses a wrong length or version tag. */
void loader_cursor_encode(const loader_cursor *c, uint8_t out[LOADER_CURSOR_BYTES]);
int loader_cursor_decode(loader_cursor *c, const void *buf, size_t n);

#endif
