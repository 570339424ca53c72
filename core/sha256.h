/*
 * sha256.h - SHA-256 (FIPS 180-4), streaming and one-shot, for checkpoint
 * and artifact digests.
 */
#ifndef TEND_SHA256_H
#define TEND_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* A hashing state; a value type, no allocation. */
typedef struct sha256_ctx {
	uint32_t h[8];
	uint64_t bytes;     /* message length so far */
	uint8_t block[64];
	size_t used;        /* bytes waiting in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
/* Writes the 32-byte digest; c must be initialised again before reuse. */
void sha256_final(sha256_ctx *c, uint8_t out[32]);

/* Lowercase hex of a digest, NUL-terminated. */
void sha256_to_hex(const uint8_t digest[32], char out[65]);

/* The lowercase hex digest of buf[0..len). */
void sha256_hex(const void *buf, size_t len, char out[65]);

/* The lowercase hex digest of a file's contents. Returns 0, or
 * TEND_ENOTFOUND / TEND_EIO with a message naming the path. */
int sha256_file(char out[65], const char *path);

/* Tests only: 1 = use the portable C rounds even where the CPU has the
 * SHA extensions, so both paths are checked against the vectors. */
void sha256__force_portable(int on);

#endif
