/*
 * test_shard.c - llm.c token shards: round trip, and every kind of bad
 * file refused with its exact message.
 */
#include "shard.h"
#include "tdata.h"
#include "tend.h"
#include "tt.h"

#include <dirent.h>
#include <stdint.h>

/* Writes a raw shard file: header fields h0..h2, then n tokens. */
static void raw_shard(const char *path, int32_t h0, int32_t h1, int32_t h2,
		      const uint16_t *tok, size_t n)
{
	int32_t hdr[256] = {h0, h1, h2};
	FILE *f = fopen(path, "wb");
	fwrite(hdr, sizeof hdr, 1, f);
	fwrite(tok, 2, n, f);
	fclose(f);
}

static void test_round_trip(void)
{
	uint16_t tok[1000];
	shard *s = NULL;
	for (int i = 0; i < 1000; i++)
		tok[i] = (uint16_t)(i * 7919 % 256);
	const char *p = td_path("rt.bin");
	TT_CHECK_RC(shard_write(p, tok, 1000), 0);
	size_t n = 0;
	TT_CHECK_RC(shard_peek(p, &n), 0);
	TT_CHECK(n == 1000);
	TT_CHECK_RC(shard_open(&s, p, 256), 0);
	TT_REQUIRE(s);
	TT_CHECK(shard_len(s) == 1000);
	TT_CHECK(memcmp(shard_tokens(s), tok, sizeof tok) == 0);
	shard_free(s);

	/* The bytes are exactly llm.c's layout. */
	size_t len;
	char *raw = td_read(p, &len);
	TT_REQUIRE(raw);
	int32_t h[3];
	memcpy(h, raw, sizeof h);
	TT_CHECK(len == 1024 + 2000);
	TT_CHECK(h[0] == 20240520 && h[1] == 1 && h[2] == 1000);
	TT_CHECK(memcmp(raw + 1024, tok, sizeof tok) == 0);
	free(raw);
}

static void test_wide_vocab_and_empty(void)
{
	uint16_t tok[3] = {0, 50256, 65535};
	shard *s = NULL;
	const char *p = td_path("wide.bin");
	TT_CHECK_RC(shard_write(p, tok, 3), 0);
	TT_CHECK_RC(shard_open(&s, p, 65536), 0);
	TT_CHECK(s && shard_tokens(s)[2] == 65535);
	shard_free(s);
	s = NULL;
	TT_CHECK_RC(shard_open(&s, p, 50257), TEND_EINVAL);
	TT_CHECK(s == NULL);

	p = td_path("empty.bin");
	TT_CHECK_RC(shard_write(p, NULL, 0), 0);
	TT_CHECK_RC(shard_open(&s, p, 256), 0);
	TT_CHECK(s && shard_len(s) == 0 && shard_tokens(s) == NULL);
	shard_free(s);
}

static void test_no_temp_left(void)
{
	uint16_t tok[4] = {1, 2, 3, 4};
	TT_CHECK_RC(shard_write(td_path("t.bin"), tok, 4), 0);
	TT_CHECK_RC(shard_write(td_path("t.bin"), tok, 2), 0); /* replaces */
	size_t n;
	TT_CHECK_RC(shard_peek(td_path("t.bin"), &n), 0);
	TT_CHECK(n == 2);
	DIR *d = opendir(td_dir);
	struct dirent *e;
	int temps = 0;
	while ((e = readdir(d)))
		temps += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	TT_CHECK(temps == 0);
	/* A directory that does not exist is reported, not crashed on. */
	TT_CHECK_RC(shard_write(td_path("nope/x.bin"), tok, 4), TEND_EIO);
}

static void test_bad_magic(void)
{
	uint16_t tok[10] = {0};
	shard *s = NULL;
	char want[600];
	const char *p = td_path("magic.bin");
	raw_shard(p, 12345, 1, 10, tok, 10);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: bad magic 12345 (want 20240520): not an "
		 "llm.c token shard", p);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK(s == NULL);
}

static void test_bad_version(void)
{
	uint16_t tok[10] = {0};
	shard *s = NULL;
	char want[600];
	const char *p = td_path("version.bin");
	raw_shard(p, 20240520, 2, 10, tok, 10);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: version 2 is not supported (want 1)", p);
	TT_CHECK_STR(tend_error_last(), want);
}

static void test_wrong_size(void)
{
	static uint16_t tok[3000];
	shard *s = NULL;
	char want[600];
	const char *p = td_path("size.bin");
	/* 5000 bytes: header + 1988 tokens, but the header claims 3000. */
	raw_shard(p, 20240520, 1, 3000, tok, (5000 - 1024) / 2);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: size 5000 bytes, header says 3000 "
		 "tokens (want 7024 bytes)", p);
	TT_CHECK_STR(tend_error_last(), want);

	/* Longer than the header says is as wrong as shorter. */
	raw_shard(p, 20240520, 1, 10, tok, 11);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: size 1046 bytes, header says 10 "
		 "tokens (want 1044 bytes)", p);
	TT_CHECK_STR(tend_error_last(), want);

	/* Cut inside the header. */
	TT_CHECK(td_write(p, tok, 100) == 0);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: size 100 bytes, too small for the "
		 "1024-byte header: not an llm.c token shard", p);
	TT_CHECK_STR(tend_error_last(), want);
	size_t n;
	TT_CHECK_RC(shard_peek(p, &n), TEND_EINVAL);
	TT_CHECK(s == NULL);
}

static void test_token_outside_vocab(void)
{
	uint16_t tok[40] = {0};
	shard *s = NULL;
	char want[600];
	const char *p = td_path("vocab.bin");
	tok[17] = 300;
	tok[30] = 400;
	TT_CHECK_RC(shard_write(p, tok, 40), 0);
	TT_CHECK_RC(shard_open(&s, p, 256), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: token 300 at index 17 is outside the "
		 "vocabulary (256)", p);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK(s == NULL);
	TT_CHECK_RC(shard_open(&s, p, 512), 0);
	shard_free(s);
}

static void test_missing_and_odd(void)
{
	shard *s = NULL;
	TT_CHECK_RC(shard_open(&s, td_path("absent.bin"), 256), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "absent.bin: No such file or directory");
	TT_CHECK_RC(shard_open(&s, td_dir, 256), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "not a regular file");
	uint16_t tok[1] = {0};
	TT_CHECK_RC(shard_write(td_path("v.bin"), tok, 1), 0);
	TT_CHECK_RC(shard_open(&s, td_path("v.bin"), 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "vocabulary 0 is outside 1..65536");
	/* A negative count in the header. */
	raw_shard(td_path("neg.bin"), 20240520, 1, -5, tok, 0);
	TT_CHECK_RC(shard_open(&s, td_path("neg.bin"), 256), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "negative token count -5");
}

int main(void)
{
	td_mkdtemp();
	TT_RUN(test_round_trip);
	TT_RUN(test_wide_vocab_and_empty);
	TT_RUN(test_no_temp_left);
	TT_RUN(test_bad_magic);
	TT_RUN(test_bad_version);
	TT_RUN(test_wrong_size);
	TT_RUN(test_token_outside_vocab);
	TT_RUN(test_missing_and_odd);
	td_rmtree(td_dir);
	return TT_DONE();
}
