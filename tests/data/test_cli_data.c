/*
 * test_cli_data.c - `tend data prepare|synth|inspect`, run as the real
 * binary (TEND_BIN): the shards it writes hold exactly the bytes they
 * should, inspect refuses a bad shard with the precise error, and bad usage
 * exits 2.
 */
#include "loader.h"
#include "shard.h"
#include "synth.h"
#include "tdata.h"
#include "tend.h"
#include "tt.h"

static char out[1 << 16], err[1 << 14];

#define TEND(...) td_tend(out, sizeof out, err, sizeof err, \
			  (const char *const[]){__VA_ARGS__, NULL})

/* Concatenated tokens of dir/<split>_000.bin ... as bytes; NULL if a shard
 * fails to open. */
static uint8_t *read_split(const char *dir, const char *split, size_t *n)
{
	uint8_t *all = NULL;
	*n = 0;
	for (int i = 0;; i++) {
		char path[600];
		shard *s = NULL;
		snprintf(path, sizeof path, "%s/%s_%03d.bin", dir, split, i);
		if (!td_exists(path))
			return all ? all : calloc(1, 1);
		if (shard_open(&s, path, 256) < 0) {
			free(all);
			return NULL;
		}
		all = realloc(all, *n + shard_len(s) + 1);
		for (size_t k = 0; k < shard_len(s); k++)
			all[(*n)++] = (uint8_t)shard_tokens(s)[k];
		shard_free(s);
	}
}

static void test_synth(void)
{
	char dir[600];
	size_t n;
	snprintf(dir, sizeof dir, "%s", td_path("syn"));
	TT_CHECK(TEND("data", "synth", "-o", dir, "--tokens", "200000", "--seed", "3",
		      "--shard-tokens", "50000") == 0);
	TT_CHECK_HAS(out, "train: 180000 tokens in 4 shards; val: 20000 tokens in 1 shard");
	TT_CHECK_HAS(out, "unigram entropy  ");
	TT_CHECK_HAS(out, "generator floor  ");
	TT_CHECK_HAS(out, "/train_003.bin: 30000 tokens");
	uint8_t *want = malloc(200000);
	synth_generate(want, 200000, 3);
	uint8_t *train = read_split(dir, "train", &n);
	TT_CHECK(train && n == 180000 && memcmp(train, want, n) == 0);
	free(train);
	uint8_t *val = read_split(dir, "val", &n);
	TT_CHECK(val && n == 20000 && memcmp(val, want + 180000, n) == 0);
	free(val);
	free(want);

	/* The trainer's loader reads what synth wrote. */
	loader *l = NULL;
	TT_CHECK_RC(loader_new(&l, dir, "train", 4, 64, 256, 1), 0);
	TT_CHECK(l && loader_tokens(l) == 180000);
	loader_free(l);

	/* A second run into the same directory is refused. */
	TT_CHECK(TEND("data", "synth", "-o", dir, "--tokens", "1000") == 1);
	TT_CHECK_HAS(err, "already holds shards");
}

static void test_prepare(void)
{
	char dir[600], a[600], b[600];
	size_t n;
	snprintf(dir, sizeof dir, "%s", td_path("prep/out"));
	snprintf(a, sizeof a, "%s", td_path("a.txt"));
	snprintf(b, sizeof b, "%s", td_path("b.txt"));
	char ta[1000], tb[400];
	for (int i = 0; i < 1000; i++)
		ta[i] = (char)('a' + i % 26);
	for (int i = 0; i < 400; i++)
		tb[i] = (char)('0' + i % 10);
	td_write(a, ta, sizeof ta);
	td_write(b, tb, sizeof tb);
	TT_CHECK(TEND("data", "prepare", a, b, "-o", dir, "--val-fraction", "0.25",
		      "--shard-tokens", "600") == 0);
	TT_CHECK_HAS(out, "train: 1050 tokens in 2 shards; val: 350 tokens in 1 shard");
	/* The last quarter of each file is val, the rest train, in order. */
	uint8_t *train = read_split(dir, "train", &n);
	TT_CHECK(train && n == 1050 && memcmp(train, ta, 750) == 0 &&
		 memcmp(train + 750, tb, 300) == 0);
	free(train);
	uint8_t *val = read_split(dir, "val", &n);
	TT_CHECK(val && n == 350 && memcmp(val, ta + 750, 250) == 0 &&
		 memcmp(val + 250, tb + 300, 100) == 0);
	free(val);

	/* A missing input is found before anything is written. */
	char dir2[600];
	snprintf(dir2, sizeof dir2, "%s", td_path("prep2"));
	TT_CHECK(TEND("data", "prepare", a, td_path("nope.txt"), "-o", dir2) == 1);
	TT_CHECK_HAS(err, "nope.txt: No such file or directory");
	TT_CHECK(!td_exists(dir2));

	/* No val split at all. */
	TT_CHECK(TEND("data", "prepare", a, "-o", dir2, "--val-fraction", "0") == 0);
	TT_CHECK_HAS(out, "train: 1000 tokens in 1 shard; val: 0 tokens in 0 shards");
}

static void test_inspect(void)
{
	char dir[600], want[800];
	snprintf(dir, sizeof dir, "%s", td_path("ins"));
	TT_CHECK(TEND("data", "synth", "-o", dir, "--tokens", "5000") == 0);
	TT_CHECK(TEND("data", "inspect", dir) == 0);
	TT_CHECK_HAS(out, "/train_000.bin: llm.c shard v1, 4500 tokens, max token ");
	TT_CHECK_HAS(out, "/val_000.bin: llm.c shard v1, 500 tokens");
	TT_CHECK_HAS(out, "2 shards, 5000 tokens, all valid");
	TT_CHECK(TEND("data", "inspect", td_path("ins/val_000.bin"), "--vocab", "256") == 0);

	/* A byte past the vocabulary; then a bad magic. */
	uint16_t tok[10] = {1, 2, 3, 4, 5, 6, 7, 300, 9, 10};
	shard_write(td_path("ins/train_001.bin"), tok, 10);
	TT_CHECK(TEND("data", "inspect", td_path("ins/train_001.bin"), "--vocab", "256") == 1);
	snprintf(want, sizeof want, "%s: token 300 at index 7 is outside the "
		 "vocabulary (256)", td_path("ins/train_001.bin"));
	TT_CHECK_HAS(err, want);
	int32_t hdr[256] = {12345, 1, 0};
	td_write(td_path("ins/val_001.bin"), hdr, sizeof hdr);
	TT_CHECK(TEND("data", "inspect", dir) == 1);
	snprintf(want, sizeof want, "%s: bad magic 12345 (want 20240520): not an "
		 "llm.c token shard", td_path("ins/val_001.bin"));
	TT_CHECK_HAS(err, want);
	TT_CHECK_HAS(err, "1 of 4 shards in");
	TT_CHECK_HAS(out, "/train_000.bin: llm.c shard v1, 4500 tokens");

	mkdir(td_path("void"), 0755);
	TT_CHECK(TEND("data", "inspect", td_path("void")) == 1);
	TT_CHECK_HAS(err, "no .bin shards");
	TT_CHECK(TEND("data", "inspect", td_path("absent")) == 1);
}

static void test_usage(void)
{
	TT_CHECK(TEND("data") == 2);
	TT_CHECK_HAS(err, "usage: tend data prepare");
	TT_CHECK(TEND("data", "bogus") == 2);
	TT_CHECK_HAS(err, "no subcommand 'bogus'");
	TT_CHECK(TEND("data", "prepare", "-o", td_path("u")) == 2);
	TT_CHECK_HAS(err, "prepare needs at least one INPUT file");
	TT_CHECK(TEND("data", "prepare", "x.txt") == 2);
	TT_CHECK(TEND("data", "synth", "-o", td_path("u"), "--val-fraction", "1") == 2);
	TT_CHECK_HAS(err, "--val-fraction wants a number in [0, 1), not 1");
	TT_CHECK(TEND("data", "synth", "-o", td_path("u"), "--tokens", "many") == 2);
	TT_CHECK(TEND("data", "synth", "-o", td_path("u"), "--shard-tokens", "0") == 2);
	TT_CHECK(TEND("data", "synth", "-o") == 2);
	TT_CHECK_HAS(err, "-o needs a value");
	TT_CHECK(TEND("data", "synth", "-o", td_path("u"), "--vocab", "5") == 2);
	TT_CHECK_HAS(err, "unknown option --vocab");
	TT_CHECK(TEND("data", "inspect") == 2);
	TT_CHECK(TEND("data", "inspect", "a", "b") == 2);
	TT_CHECK(!td_exists(td_path("u")));
	TT_CHECK(TEND("data", "--help") == 0);
	TT_CHECK_HAS(out, "tend data - ");
}

int main(void)
{
	if (!getenv("TEND_BIN")) {
		fprintf(stderr, "TEND_BIN is not set\n");
		return 1;
	}
	td_mkdtemp();
	TT_RUN(test_synth);
	TT_RUN(test_prepare);
	TT_RUN(test_inspect);
	TT_RUN(test_usage);
	td_rmtree(td_dir);
	return TT_DONE();
}
