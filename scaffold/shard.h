/*
 * shard.h - token shards in llm.c's format, so data prepared for llm.c
 * trains here unchanged and ours trains there.
 *
 * A shard is a 256 x int32 little-endian header (header[0] = 20240520,
 * header[1] = 1, header[2] = token count) followed by that many uint16
 * tokens. Opening one validates everything before anything is used: magic,
 * version, an exact file size, and every token below the vocabulary.
 */
#ifndef SHARD_H
#define SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 1024 /* 256 x int32 */

typedef struct shard shard;

/* Writes tok[0..n) as a shard at path, atomically (temp file, fsync,
 * rename, fsync dir). Returns 0 or a negative TEND_E* code. */
int shard_write(const char *path, const uint16_t *tok, size_t n);

/* Checks the header and the exact file size without reading the tokens;
 * stores the token count in *ntok. Cheap: one 1 KiB read and a stat. */
int shard_peek(const char *path, size_t *ntok);

/* Maps the shard at path read-only and validates it, scanning every token
 * against vocab (1..65536). On failure returns TEND_EINVAL (bad file) or
 * TEND_EIO with a message starting "<path>: ". Free with shard_free. */
int shard_open(shard **out, const char *path, int vocab);

/* The tokens, valid until shard_free; NULL when the shard is empty. */
const uint16_t *shard_tokens(const shard *s);

size_t shard_len(const shard *s);

void shard_free(shard *s);

#endif
