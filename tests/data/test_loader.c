/*
 * test_loader.c - the data loader over real shard files: batch contents,
 * coverage of an epoch, determinism per seed, cursor save/restore, skip(N)
 * against N nexts, the val split's fixed order, and the errors.
 *
 * Every token is its global position (vocab 65536), so a batch's first
 * token says exactly which run of which shard it came from.
 */
#include "loader.h"
#include "shard.h"
#include "tdata.h"
#include "tend.h"
#include "tt.h"

#include <stdint.h>

enum { B = 2, T = 16, PER = B * T, V = 65536 };
static const size_t lens[3] = {2000, 3000, 1500}; /* train shards */
static size_t starts[3];
static const char *data_dir;

static void write_shard(const char *name, size_t first, size_t n)
{
	uint16_t *tok = malloc(n * sizeof *tok);
	for (size_t i = 0; i < n; i++)
		tok[i] = (uint16_t)(first + i);
	if (shard_write(td_path("d/%s", name), tok, n) < 0)
		fprintf(stderr, "setup: %s\n", tend_error_last());
	free(tok);
}

static void setup(void)
{
	mkdir(td_path("d"), 0755);
	size_t at = 0;
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof name, "train_%03d.bin", i);
		starts[i] = at;
		write_shard(name, at, lens[i]);
		at += lens[i];
	}
	write_shard("val_000.bin", 10000, 1000);
	write_shard("val_001.bin", 20000, 10); /* too short for a batch: skipped */
	data_dir = td_path("d");
}

static size_t per_epoch(void)
{
	size_t n = 0;
	for (int i = 0; i < 3; i++)
		n += (lens[i] - 1) / PER;
	return n;
}

/* Next batch; returns its first input token (its identity), or -1. */
static long next_id(loader *l, int *in, int *tg)
{
	if (loader_next(l, in, tg) < 0)
		return -1;
	return in[0];
}

static void test_batch_shape(void)
{
	loader *l = NULL;
	int in[PER], tg[PER];
	TT_CHECK_RC(loader_new(&l, data_dir, "train", B, T, V, 7), 0);
	TT_REQUIRE(l);
	TT_CHECK(loader_batches_per_epoch(l) == per_epoch());
	TT_CHECK(loader_tokens(l) == 6500);
	TT_CHECK(loader_shard_count(l) == 3);
	for (int k = 0; k < 300; k++) {
		TT_REQUIRE(loader_next(l, in, tg) == 0);
		/* One contiguous run: consecutive tokens, targets shifted by one. */
		for (int i = 0; i < PER; i++) {
			TT_REQUIRE(in[i] == in[0] + i);
			TT_REQUIRE(tg[i] == in[i] + 1);
		}
		/* ...inside one shard, starting on a slot boundary. */
		int s = in[0] >= (int)starts[2] ? 2 : in[0] >= (int)starts[1];
		size_t off = (size_t)in[0] - starts[s];
		TT_CHECK(off % PER == 0);
		TT_CHECK(off + PER + 1 <= lens[s]);
	}
	loader_free(l);
}

static void test_epoch_covers_each_slot_once(void)
{
	loader *l = NULL;
	int in[PER], tg[PER];
	static unsigned char seen[6500];
	static long order[2][201];
	TT_CHECK_RC(loader_new(&l, data_dir, "train", B, T, V, 11), 0);
	TT_REQUIRE(l);
	TT_REQUIRE(per_epoch() == 201);
	for (int epoch = 0; epoch < 2; epoch++) {
		memset(seen, 0, sizeof seen);
		long sorted = 1, prev = -1;
		for (size_t k = 0; k < per_epoch(); k++) {
			long id = next_id(l, in, tg);
			TT_REQUIRE(id >= 0);
			seen[id]++;
			sorted &= id > prev;
			prev = id;
			order[epoch][k] = id;
		}
		size_t once = 0;
		for (int i = 0; i < 6500; i++)
			once += seen[i] == 1;
		TT_CHECK(once == per_epoch());
		TT_CHECK(!sorted); /* train is shuffled */
		loader_cursor c;
		loader_get_cursor(l, &c);
		TT_CHECK(c.epoch == (uint64_t)epoch + 1 && c.pos == 0);
	}
	/* Each epoch has its own order. */
	TT_CHECK(memcmp(order[0], order[1], sizeof order[0]) != 0);
	loader_free(l);
}

static void test_determinism(void)
{
	loader *a = NULL, *b = NULL, *c = NULL;
	int ia[PER], ta[PER], ib[PER], tb[PER];
	TT_CHECK_RC(loader_new(&a, data_dir, "train", B, T, V, 42), 0);
	TT_CHECK_RC(loader_new(&b, data_dir, "train", B, T, V, 42), 0);
	TT_CHECK_RC(loader_new(&c, data_dir, "train", B, T, V, 43), 0);
	TT_REQUIRE(a && b && c);
	int same = 1, differs = 0;
	for (int k = 0; k < 450; k++) { /* over two epochs */
		loader_next(a, ia, ta);
		loader_next(b, ib, tb);
		same &= memcmp(ia, ib, sizeof ia) == 0 && memcmp(ta, tb, sizeof ta) == 0;
		differs |= next_id(c, ib, tb) != ia[0];
	}
	TT_CHECK(same);
	TT_CHECK(differs);
	loader_free(a);
	loader_free(b);
	loader_free(c);
}

static void test_cursor_restore(void)
{
	loader *a = NULL, *b = NULL;
	int ia[PER], ta[PER], ib[PER], tb[PER];
	uint8_t bytes[LOADER_CURSOR_BYTES];
	loader_cursor cur, back;
	TT_CHECK_RC(loader_new(&a, data_dir, "train", B, T, V, 5), 0);
	TT_CHECK_RC(loader_new(&b, data_dir, "train", B, T, V, 999), 0);
	TT_REQUIRE(a && b);
	for (int k = 0; k < 137; k++)
		loader_next(a, ia, ta);
	loader_get_cursor(a, &cur);
	loader_cursor_encode(&cur, bytes);
	TT_CHECK_RC(loader_cursor_decode(&back, bytes, sizeof bytes), 0);
	TT_CHECK(memcmp(&back, &cur, sizeof cur) == 0);
	TT_CHECK_RC(loader_set_cursor(b, &back), 0); /* the cursor's seed wins */
	int same = 1;
	for (int k = 0; k < 300; k++) {
		loader_next(a, ia, ta);
		loader_next(b, ib, tb);
		same &= memcmp(ia, ib, sizeof ia) == 0 && memcmp(ta, tb, sizeof ta) == 0;
	}
	TT_CHECK(same);
	TT_CHECK_RC(loader_cursor_decode(&back, bytes, sizeof bytes - 1), TEND_EINVAL);
	bytes[0] = 'X';
	TT_CHECK_RC(loader_cursor_decode(&back, bytes, sizeof bytes), TEND_EINVAL);
	loader_free(a);
	loader_free(b);
}

static void test_skip_equals_nexts(void)
{
	static const long ns[] = {0, 1, 5, 62, 63, 155, 200, 201, 202, 450, 1234};
	int ia[PER], ta[PER], ib[PER], tb[PER];
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		for (int pre = 0; pre < 2; pre++) {
			loader *a = NULL, *b = NULL;
			loader_new(&a, data_dir, "train", B, T, V, 3);
			loader_new(&b, data_dir, "train", B, T, V, 3);
			TT_REQUIRE(a && b);
			for (int k = 0; k < pre * 77; k++) { /* start mid-epoch too */
				loader_next(a, ia, ta);
				loader_next(b, ib, tb);
			}
			for (long k = 0; k < ns[i]; k++)
				loader_next(a, ia, ta);
			TT_CHECK_RC(loader_skip(b, ns[i]), 0);
			loader_cursor ca, cb;
			loader_get_cursor(a, &ca);
			loader_get_cursor(b, &cb);
			TT_CHECK(memcmp(&ca, &cb, sizeof ca) == 0);
			loader_next(a, ia, ta);
			loader_next(b, ib, tb);
			if (memcmp(ia, ib, sizeof ia) != 0)
				fprintf(stderr, "skip %ld (pre %d) differs\n", ns[i], pre);
			TT_CHECK(memcmp(ia, ib, sizeof ia) == 0);
			loader_free(a);
			loader_free(b);
		}
	}
	loader *l = NULL;
	loader_new(&l, data_dir, "train", B, T, V, 3);
	TT_CHECK_RC(loader_skip(l, -1), TEND_EINVAL);
	loader_free(l);
}

static void test_val_in_order_and_reset(void)
{
	loader *l = NULL;
	int in[PER], tg[PER];
	TT_CHECK_RC(loader_new(&l, data_dir, "val", B, T, V, 1), 0);
	TT_REQUIRE(l);
	TT_CHECK(loader_shard_count(l) == 2);
	TT_CHECK(loader_batches_per_epoch(l) == 999 / PER);
	for (size_t k = 0; k < 999 / PER; k++)
		TT_CHECK(next_id(l, in, tg) == (long)(10000 + k * PER));
	TT_CHECK(next_id(l, in, tg) == 10000); /* epoch 2 starts over */
	loader_reset(l);
	loader_cursor c;
	loader_get_cursor(l, &c);
	TT_CHECK(c.epoch == 0 && c.shard == 0 && c.pos == 0);
	TT_CHECK(next_id(l, in, tg) == 10000);
	loader_free(l);
}

static void test_bad_cursor(void)
{
	loader *a = NULL, *b = NULL;
	loader_cursor c;
	TT_CHECK_RC(loader_new(&a, data_dir, "train", B, T, V, 1), 0);
	TT_CHECK_RC(loader_new(&b, data_dir, "train", 4, T, V, 1), 0);
	TT_REQUIRE(a && b);
	loader_get_cursor(a, &c);
	TT_CHECK_RC(loader_set_cursor(b, &c), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "loader cursor was saved with B=2 T=16, "
		     "this loader has B=4 T=16");
	c.nshards = 5;
	TT_CHECK_RC(loader_set_cursor(a, &c), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "loader cursor was saved over 5 shards, "
		     "the directory now holds 3");
	loader_get_cursor(a, &c);
	c.pos = 100000;
	TT_CHECK_RC(loader_set_cursor(a, &c), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "loader cursor: position 100000 past the");
	loader_free(a);
	loader_free(b);
}

static void test_errors(void)
{
	loader *l = NULL;
	char want[600];
	mkdir(td_path("empty"), 0755);
	TT_CHECK_RC(loader_new(&l, td_path("empty"), "train", B, T, V, 1), TEND_ENOTFOUND);
	snprintf(want, sizeof want, "%s: no train_*.bin shards", td_path("empty"));
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK(l == NULL);
	TT_CHECK_RC(loader_new(&l, td_path("absent"), "train", B, T, V, 1), TEND_EIO);
	TT_CHECK_RC(loader_new(&l, data_dir, "val", 64, 64, V, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "no shard holds the B*T+1 = 4097 tokens "
		     "one batch needs");
	TT_CHECK_RC(loader_new(&l, data_dir, "train", 0, T, V, 1), TEND_EINVAL);
	TT_CHECK_RC(loader_new(&l, data_dir, "train", B, T, 70000, 1), TEND_EINVAL);
	TT_CHECK_RC(loader_new(&l, data_dir, "../d/train", B, T, V, 1), TEND_EINVAL);

	/* A bad header is refused at open; a bad token when first read. */
	mkdir(td_path("bad"), 0755);
	uint16_t tok[200] = {0};
	tok[150] = 999;
	shard_write(td_path("bad/train_000.bin"), tok, 200);
	TT_CHECK_RC(loader_new(&l, td_path("bad"), "train", 2, 8, 256, 1), 0);
	int in[16], tg[16];
	int rc = 0;
	for (int k = 0; k < 20 && rc == 0; k++)
		rc = loader_next(l, in, tg);
	TT_CHECK(rc == TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "token 999 at index 150 is outside the "
		     "vocabulary (256)");
	loader_free(l);
	l = NULL;
	td_write(td_path("bad/train_001.bin"), "garbage", 7);
	TT_CHECK_RC(loader_new(&l, td_path("bad"), "train", 2, 8, 256, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "train_001.bin: size 7 bytes, too small");
}

int main(void)
{
	td_mkdtemp();
	setup();
	TT_RUN(test_batch_shape);
	TT_RUN(test_epoch_covers_each_slot_once);
	TT_RUN(test_determinism);
	TT_RUN(test_cursor_restore);
	TT_RUN(test_skip_equals_nexts);
	TT_RUN(test_val_in_order_and_reset);
	TT_RUN(test_bad_cursor);
	TT_RUN(test_errors);
	td_rmtree(td_dir);
	return TT_DONE();
}
