/*
 * sha256.c - SHA-256 after FIPS 180-4, section 6.2, in portable C.
 */
#include "sha256.h"
#include "tend.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, int n)
{
	return x >> n | x << (32 - n);
}

/* One round with the working variables named, so no state is moved: the
 * caller rotates the names instead (8 rounds per loop pass). */
#define ROUND(a, b, c, d, e, f, g, h, i) do { \
	uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + \
		((e & f) ^ (~e & g)) + K[i] + w[i]; \
	uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c)); \
	d += t1; \
	h = t1 + t2; \
	} while (0)

static void compress_portable(uint32_t st[8], const uint8_t *p, size_t blocks)
{
	for (; blocks--; p += 64) {
		uint32_t w[64];
		for (int i = 0; i < 16; i++)
			w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
			       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
		uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
		for (int i = 0; i < 64; i += 8) {
			ROUND(a, b, c, d, e, f, g, h, i);
			ROUND(h, a, b, c, d, e, f, g, i + 1);
			ROUND(g, h, a, b, c, d, e, f, i + 2);
			ROUND(f, g, h, a, b, c, d, e, i + 3);
			ROUND(e, f, g, h, a, b, c, d, i + 4);
			ROUND(d, e, f, g, h, a, b, c, i + 5);
			ROUND(c, d, e, f, g, h, a, b, i + 6);
			ROUND(b, c, d, e, f, g, h, a, i + 7);
		}
		st[0] += a; st[1] += b; st[2] += c; st[3] += d;
		st[4] += e; st[5] += f; st[6] += g; st[7] += h;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

/* The SHA extensions (Intel since Goldmont/Ice Lake, AMD since Zen) run a
 * round pair per instruction: checkpoints of gigabytes are hashed on save
 * and load, so this is most of a checkpoint's cost without it. */
__attribute__((target("sha,sse4.1")))
static void compress_shani(uint32_t st[8], const uint8_t *p, size_t blocks)
{
	const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1);
	__m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B);
	__m128i s0 = _mm_alignr_epi8(tmp, s1, 8);  /* ABEF */
	s1 = _mm_blend_epi16(s1, tmp, 0xF0);       /* CDGH */
	for (; blocks--; p += 64) {
		__m128i abef = s0, cdgh = s1, m[4];
		for (int i = 0; i < 4; i++)
			m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
		for (int i = 0; i < 16; i++) {
			if (i >= 4) {
				__m128i x = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
				x = _mm_add_epi32(x, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
				m[i & 3] = _mm_sha256msg2_epu32(x, m[(i + 3) & 3]);
			}
			__m128i msg = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
			s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
			s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(msg, 0x0E));
		}
		s0 = _mm_add_epi32(s0, abef);
		s1 = _mm_add_epi32(s1, cdgh);
	}
	tmp = _mm_shuffle_epi32(s0, 0x1B);         /* FEBA */
	s1 = _mm_shuffle_epi32(s1, 0xB1);          /* DCHG */
	_mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(tmp, s1, 0xF0)); /* DCBA */
	_mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(s1, tmp, 8));    /* HGFE */
}

static int have_shani(void)
{
	static int cached = -1;
	unsigned a, b, c, d;
	if (cached >= 0)
		return cached;
	cached = 0;
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) &&
	    __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)))
		cached = 1;
	return cached;
}
#else
static int have_shani(void) { return 0; }
static void compress_shani(uint32_t st[8], const uint8_t *p, size_t blocks)
{
	compress_portable(st, p, blocks);
}
#endif

static int force_portable;

void sha256__force_portable(int on)
{
	force_portable = on;
}

static void compress(uint32_t h[8], const uint8_t *p, size_t blocks)
{
	if (!force_portable && have_shani())
		compress_shani(h, p, blocks);
	else
		compress_portable(h, p, blocks);
}

void sha256_init(sha256_ctx *c)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(c->h, h0, sizeof h0);
	c->bytes = 0;
	c->used = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	c->bytes += len;
	if (c->used) {
		size_t n = 64 - c->used < len ? 64 - c->used : len;
		memcpy(c->block + c->used, p, n);
		c->used += n;
		p += n;
		len -= n;
		if (c->used < 64)
			return;
		compress(c->h, c->block, 1);
		c->used = 0;
	}
	if (len >= 64) {
		compress(c->h, p, len / 64);
		p += len / 64 * 64;
		len %= 64;
	}
	memcpy(c->block, p, len);
	c->used = len;
}

void sha256_final(sha256_ctx *c, uint8_t out[32])
{
	uint64_t bits = c->bytes * 8;
	c->block[c->used++] = 0x80;
	if (c->used > 56) {
		memset(c->block + c->used, 0, 64 - c->used);
		compress(c->h, c->block, 1);
		c->used = 0;
	}
	memset(c->block + c->used, 0, 56 - c->used);
	for (int i = 0; i < 8; i++)
		c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	compress(c->h, c->block, 1);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(c->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c->h[i];
	}
}

void sha256_to_hex(const uint8_t digest[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[64] = '\0';
}

void sha256_hex(const void *buf, size_t len, char out[65])
{
	sha256_ctx c;
	uint8_t d[32];
	sha256_init(&c);
	sha256_update(&c, buf, len);
	sha256_final(&c, d);
	sha256_to_hex(d, out);
}

int sha256_file(char out[65], const char *path)
{
	uint8_t buf[1 << 16], d[32];
	sha256_ctx c;
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int code = errno == ENOENT ? TEND_ENOTFOUND : TEND_EIO;
		return tend_error_set(code, "open %s: %s", path, strerror(errno));
	}
	sha256_init(&c);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tend_error_os("read %s", path);
			goto done;
		}
		if (n == 0)
			break;
		sha256_update(&c, buf, (size_t)n);
	}
	sha256_final(&c, d);
	sha256_to_hex(d, out);
done:
	close(fd);
	return rc;
}
