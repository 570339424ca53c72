/* test_sha256.c - SHA-256 against the FIPS 180-2 examples, streaming in
 * every split, and sha256_file. */
#include "fsutil.h"
#include "sha256.h"
#include "tend.h"
#include "tt.h"

#include <stdlib.h>
#include <string.h>

static void test_fips_vectors(void)
{
	char hex[65];
	sha256_hex("abc", 3, hex);
	TT_CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, hex);
	TT_CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256_hex(m448, strlen(m448), hex);
	TT_CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
			   "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	sha256_hex(m896, strlen(m896), hex);
	TT_CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void)
{
	char chunk[1000], hex[65];
	uint8_t d[32];
	sha256_ctx c;
	memset(chunk, 'a', sizeof chunk);
	sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sha256_update(&c, chunk, sizeof chunk);
	sha256_final(&c, d);
	sha256_to_hex(d, hex);
	TT_CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Feeding the same message in two pieces, at every split point and around
 * the 55/56/64-byte padding edges, gives the one-shot digest. */
static void test_streaming_splits(void)
{
	char msg[200], want[65], got[65];
	uint8_t d[32];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof msg; len += (len < 130 ? 1 : 17)) {
		sha256_hex(msg, len, want);
		for (size_t cut = 0; cut <= len; cut += 5) {
			sha256_ctx c;
			sha256_init(&c);
			sha256_update(&c, msg, cut);
			sha256_update(&c, msg + cut, len - cut);
			sha256_final(&c, d);
			sha256_to_hex(d, got);
			TT_CHECK(strcmp(got, want) == 0);
		}
	}
	sha256_hex(msg, 55, got);
	TT_CHECK(strcmp(got, want) != 0);
}

static void test_file(void)
{
	char dir[] = "/tmp/tend-test-XXXXXX", path[128], hex[65];
	TT_REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/f", dir);
	TT_CHECK_RC(fsu_write_atomic(path, "abc", 3, 0644), 0);
	TT_CHECK_RC(sha256_file(hex, path), 0);
	TT_CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	snprintf(path, sizeof path, "%s/missing", dir);
	TT_CHECK_RC(sha256_file(hex, path), TEND_ENOTFOUND);
	char want[200];
	snprintf(want, sizeof want, "open %s: No such file or directory", path);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(sha256_file(hex, dir), TEND_EIO);
	snprintf(want, sizeof want, "read %s: Is a directory", dir);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(fsu_rm_rf(dir), 0);
}

int main(void)
{
	TT_RUN(test_fips_vectors);
	TT_RUN(test_million_a);
	TT_RUN(test_streaming_splits);
	TT_RUN(test_file);
	/* again on the portable rounds (the runs above used the SHA extensions
	 * where this CPU has them) */
	sha256__force_portable(1);
	TT_RUN(test_fips_vectors);
	TT_RUN(test_million_a);
	TT_RUN(test_streaming_splits);
	sha256__force_portable(0);
	return TT_DONE();
}
