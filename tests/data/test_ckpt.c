/*
 * test_ckpt.c - checkpoint files: bit-exact round trip; every damaged file
 * refused (a flipped byte anywhere, a cut at many offsets, wrong magic, a
 * newer version, trailing bytes) and a mismatched model config named; a
 * writer SIGKILLed at random moments never damages the previous
 * checkpoint; listing, latest-good and retention over a real directory.
 */
#include "ckpt.h"
#include "tdata.h"
#include "tend.h"
#include "tt.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

static const char *config = "n_layer=12\nn_head=12\nn_embd=768\nvocab=50257\n";

/* Arbitrary bit patterns, NaNs and denormals included. */
static void fill(float *x, size_t n, uint32_t seed)
{
	uint32_t s = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		memcpy(&x[i], &s, 4);
	}
}

/* Writes a checkpoint with sections "a" (na floats, pattern seed) and "b"
 * (17 floats, pattern seed + 1). */
static int make(const char *path, long step, size_t na, uint32_t seed)
{
	float *a = malloc((na + 1) * sizeof *a), b[17];
	ckpt_writer *w = NULL;
	fill(a, na, seed);
	fill(b, 17, seed + 1);
	int rc = ckpt_writer_new(&w, step);
	if (rc == 0)
		rc = ckpt_writer_config(w, config);
	if (rc == 0)
		rc = ckpt_writer_add(w, "a", a, na);
	if (rc == 0)
		rc = ckpt_writer_add(w, "b", b, 17);
	if (rc == 0)
		rc = ckpt_write(w, path);
	ckpt_writer_free(w);
	free(a);
	return rc;
}

/* 1 when c's section "a" has na floats of pattern seed. */
static int has_pattern(const ckpt *c, size_t na, uint32_t seed)
{
	const float *got;
	size_t n;
	if (ckpt_section(c, "a", &got, &n) < 0 || n != na)
		return 0;
	float *want = malloc((na + 1) * sizeof *want);
	fill(want, na, seed);
	int ok = memcmp(got, want, na * sizeof *want) == 0;
	free(want);
	return ok;
}

static void test_round_trip(void)
{
	static float big[100003], small[1] = {-0.0f};
	uint8_t rng[40], cursor[48];
	ckpt_writer *w = NULL;
	ckpt *c = NULL;
	const char *p = td_path("rt.bin");
	fill(big, 100003, 1);
	for (int i = 0; i < 40; i++)
		rng[i] = (uint8_t)(i * 37);
	memset(cursor, 0xab, sizeof cursor);
	TT_CHECK_RC(ckpt_writer_new(&w, 300), 0);
	TT_REQUIRE(w);
	TT_CHECK_RC(ckpt_writer_config(w, config), 0);
	TT_CHECK_RC(ckpt_writer_meta(w, "lr", "0.0006"), 0);
	TT_CHECK_RC(ckpt_writer_meta(w, "run", "demo run"), 0);
	TT_CHECK_RC(ckpt_writer_rng(w, rng, sizeof rng), 0);
	TT_CHECK_RC(ckpt_writer_cursor(w, cursor, sizeof cursor), 0);
	TT_CHECK_RC(ckpt_writer_commit(w, "0123456789abcdef0123456789abcdef01234567"), 0);
	TT_CHECK_RC(ckpt_writer_add(w, "params", big, 100003), 0);
	TT_CHECK_RC(ckpt_writer_add(w, "empty", NULL, 0), 0);
	TT_CHECK_RC(ckpt_writer_add(w, "one", small, 1), 0);
	TT_CHECK_RC(ckpt_write(w, p), 0);
	ckpt_writer_free(w);

	TT_CHECK_RC(ckpt_open(&c, p), 0);
	TT_REQUIRE(c);
	TT_CHECK(ckpt_step(c) == 300);
	TT_CHECK(ckpt_section_count(c) == 3);
	TT_CHECK_STR(ckpt_section_name(c, 0), "params");
	TT_CHECK_STR(ckpt_section_name(c, 2), "one");
	TT_CHECK(ckpt_section_name(c, 3) == NULL);
	const float *d;
	size_t n;
	TT_CHECK_RC(ckpt_section(c, "params", &d, &n), 0);
	TT_CHECK(n == 100003 && memcmp(d, big, sizeof big) == 0);
	TT_CHECK(((uintptr_t)d & 63) == 0);
	TT_CHECK_RC(ckpt_section(c, "empty", &d, &n), 0);
	TT_CHECK(n == 0);
	TT_CHECK_RC(ckpt_section(c, "one", &d, &n), 0);
	TT_CHECK(n == 1 && memcmp(d, small, 4) == 0);
	TT_CHECK_RC(ckpt_section(c, "nope", &d, &n), TEND_ENOTFOUND);
	TT_CHECK_STR(ckpt_meta(c, "lr"), "0.0006");
	TT_CHECK_STR(ckpt_meta(c, "run"), "demo run");
	TT_CHECK(ckpt_meta(c, "n_layer") == NULL);
	TT_CHECK_STR(ckpt_config_get(c, "n_embd"), "768");
	TT_CHECK_STR(ckpt_config(c), config);
	TT_CHECK_STR(ckpt_commit(c), "0123456789abcdef0123456789abcdef01234567");
	const void *blob = ckpt_rng(c, &n);
	TT_CHECK(n == sizeof rng && memcmp(blob, rng, n) == 0);
	blob = ckpt_cursor(c, &n);
	TT_CHECK(n == sizeof cursor && memcmp(blob, cursor, n) == 0);

	float copy[1];
	TT_CHECK_RC(ckpt_section_copy(c, "one", copy, 1), 0);
	TT_CHECK(memcmp(copy, small, 4) == 0);
	TT_CHECK_RC(ckpt_section_copy(c, "one", copy, 2), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "section one holds 1 floats, the model wants 2");
	ckpt_free(c);

	/* Writing the same state again gives the same bytes. */
	size_t n1, n2;
	TT_CHECK(make(td_path("x1.bin"), 5, 1000, 3) == 0);
	TT_CHECK(make(td_path("x2.bin"), 5, 1000, 3) == 0);
	char *b1 = td_read(td_path("x1.bin"), &n1), *b2 = td_read(td_path("x2.bin"), &n2);
	TT_CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
	free(b1);
	free(b2);
}

static void test_check_config(void)
{
	ckpt *c = NULL;
	char want[700];
	const char *p = td_path("cfg.bin");
	TT_REQUIRE(make(p, 1, 10, 1) == 0);
	TT_CHECK_RC(ckpt_open(&c, p), 0);
	TT_REQUIRE(c);
	TT_CHECK_RC(ckpt_check_config(c, config), 0);
	TT_CHECK_RC(ckpt_check_config(c, "# same, reordered\n vocab = 50257\n\n"
		"n_embd=768\r\nn_head=12\nn_layer= 12"), 0);
	TT_CHECK_RC(ckpt_check_config(c, "n_layer=12\nn_head=16\nn_embd=768\n"
		"vocab=50257\n"), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: model config differs: n_head is 12 in "
		 "the checkpoint, 16 now", p);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(ckpt_check_config(c, "n_layer=6\nn_head=16\n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "n_layer is 12 in the checkpoint, 6 now");
	TT_CHECK_RC(ckpt_check_config(c, "n_layer=12\nn_head=12\nn_embd=768\n"),
		    TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "vocab is 50257 in the checkpoint, absent now");
	TT_CHECK_RC(ckpt_check_config(c, "n_layer=12\nn_head=12\nn_embd=768\n"
		"vocab=50257\nn_expert=8\n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "n_expert is absent in the checkpoint, 8 now");
	TT_CHECK_RC(ckpt_check_config(c, "n_layer 12\n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "line 1 has no '='");
	ckpt_free(c);
}

static void test_writer_refuses(void)
{
	ckpt_writer *w = NULL;
	float x[2] = {0};
	TT_CHECK_RC(ckpt_writer_new(&w, 1), 0);
	TT_REQUIRE(w);
	TT_CHECK_RC(ckpt_writer_add(w, "x", x, 2), 0);
	TT_CHECK_RC(ckpt_writer_add(w, "x", x, 2), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "section x added twice");
	TT_CHECK_RC(ckpt_writer_add(w, "", x, 2), TEND_EINVAL);
	TT_CHECK_RC(ckpt_writer_add(w, "y", NULL, 2), TEND_EINVAL);
	TT_CHECK_RC(ckpt_writer_config(w, "a=1\na=2\n"), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "key a appears twice");
	TT_CHECK_RC(ckpt_writer_config(w, "just words\n"), TEND_EINVAL);
	TT_CHECK_RC(ckpt_writer_meta(w, "a=b", "c"), TEND_EINVAL);
	TT_CHECK_RC(ckpt_writer_meta(w, "k", "two\nlines"), TEND_EINVAL);
	/* A directory that does not exist: an error, and nothing written. */
	TT_CHECK_RC(ckpt_write(w, td_path("absent/ckpt.bin")), TEND_EIO);
	ckpt_writer_free(w);
	ckpt_writer_free(NULL);
	ckpt_free(NULL);
}

/* Writes a damaged copy of src to dst: cut at len, or byte at flip ^= 0x40.
 * It goes through a new file renamed over dst, as a replaced (not edited)
 * file is what ckpt_retain's trust in its own writes must notice. */
static void damaged(const char *dst, const char *src, size_t len, long flip)
{
	char tmp[700];
	size_t n = 0;
	char *b = td_read(src, &n);
	if (!b)
		return;
	if (flip >= 0)
		b[flip] ^= 0x40;
	snprintf(tmp, sizeof tmp, "%s.new", dst);
	td_write(tmp, b, len < n ? len : n);
	rename(tmp, dst);
	free(b);
}

static void test_flipped_bytes_refused(void)
{
	ckpt *c = NULL;
	char want[700];
	const char *p = td_path("good.bin"), *bad = td_path("flip.bin");
	TT_REQUIRE(make(p, 7, 3000, 2) == 0);
	size_t size;
	free(td_read(p, &size));
	damaged(bad, p, SIZE_MAX, (long)size / 2);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: checksum mismatch: file is corrupt", bad);
	TT_CHECK_STR(tend_error_last(), want);
	int refused = 0, tried = 0;
	for (size_t off = 0; off < size; off += off < 128 ? 1 : 97) {
		damaged(bad, p, SIZE_MAX, (long)off);
		tried++;
		refused += ckpt_open(&c, bad) < 0;
		TT_CHECK(c == NULL);
	}
	damaged(bad, p, SIZE_MAX, (long)size - 1); /* the digest itself */
	refused += ckpt_open(&c, bad) < 0;
	TT_CHECK(refused == tried + 1);
	TT_CHECK_RC(ckpt_open(&c, p), 0);
	ckpt_free(c);
}

static void test_truncated_refused(void)
{
	ckpt *c = NULL;
	char want[700];
	const char *p = td_path("good.bin"), *bad = td_path("cut.bin");
	TT_REQUIRE(make(p, 7, 3000, 2) == 0);
	size_t size;
	free(td_read(p, &size));
	damaged(bad, p, 1234, -1);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: truncated (1234 bytes, header needs %zu)",
		 bad, size);
	TT_CHECK_STR(tend_error_last(), want);
	damaged(bad, p, 40, -1);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: truncated (40 bytes, header needs 64)", bad);
	TT_CHECK_STR(tend_error_last(), want);
	size_t cuts[] = {0, 1, 7, 8, 63, 64, 65, 100, 127, 128, 129, 191, 192,
			 size / 3, size / 2, size - 33, size - 32, size - 31, size - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		damaged(bad, p, cuts[i], -1);
		int rc = ckpt_open(&c, bad);
		TT_CHECK(rc == TEND_EINVAL && c == NULL);
		if (cuts[i] >= 8)
			TT_CHECK_HAS(tend_error_last(), "truncated (");
	}
	for (size_t cut = 0; cut < size; cut += 151) {
		damaged(bad, p, cut, -1);
		TT_CHECK(ckpt_open(&c, bad) == TEND_EINVAL);
	}
	/* Bytes past the end are as wrong as bytes missing. */
	size_t n;
	char *b = td_read(p, &n);
	b = realloc(b, n + 1);
	b[n] = 0;
	td_write(bad, b, n + 1);
	free(b);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "trailing bytes, file is corrupt");
}

static void test_magic_and_version(void)
{
	ckpt *c = NULL;
	char want[700];
	const char *p = td_path("good.bin"), *bad = td_path("hdr.bin");
	TT_REQUIRE(make(p, 7, 100, 2) == 0);
	size_t n;
	char *b = td_read(p, &n);
	b[0] = 'X';
	td_write(bad, b, n);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: not a tend checkpoint (bad magic)", bad);
	TT_CHECK_STR(tend_error_last(), want);
	b[0] = 'T';
	b[8] = 9; /* format version 9 */
	td_write(bad, b, n);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EVERSION);
	snprintf(want, sizeof want, "%s: format version 9 is newer than this "
		 "tend (knows 1)", bad);
	TT_CHECK_STR(tend_error_last(), want);
	b[8] = 0;
	td_write(bad, b, n);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	free(b);
	TT_CHECK_RC(ckpt_open(&c, td_path("none.bin")), TEND_ENOTFOUND);
	TT_CHECK_RC(ckpt_open(&c, td_dir), TEND_EINVAL);
	td_write(bad, "shard?", 6);
	TT_CHECK_RC(ckpt_open(&c, bad), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "truncated (6 bytes, header needs 64)");
}

enum { CRASH_FLOATS = 1 << 19 }; /* 2 MiB: a write takes a while */

/* Child: writes step 2 over and over until killed. */
static void crash_child(const char *path)
{
	for (;;)
		if (make(path, 2, CRASH_FLOATS, 22) < 0)
			_exit(3);
}

static void test_crash_during_write(void)
{
	char dir[600], same[600], next[600], good[600];
	snprintf(dir, sizeof dir, "%s", td_path("crash"));
	mkdir(dir, 0755);
	ckpt_path(same, sizeof same, dir, 1);
	ckpt_path(next, sizeof next, dir, 2);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	TT_REQUIRE(make(same, 1, CRASH_FLOATS, 11) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Kill within two write times, so some kills land after a rename,
	 * but within 0.6 s so that a slow (sanitizer) build stays quick. */
	long window_us = 2 * ((t1.tv_sec - t0.tv_sec) * 1000000L +
			      (t1.tv_nsec - t0.tv_nsec) / 1000) + 1000;
	window_us = window_us < 600000 ? window_us : 600000;
	srand((unsigned)t1.tv_nsec);
	int saw_new = 0;
	for (int round = 0; round < 6; round++) {
		/* Even rounds replace the same file, odd ones write a new one. */
		const char *target = round % 2 ? next : same;
		unlink(next);
		pid_t pid = fork();
		if (pid == 0)
			crash_child(target);
		TT_REQUIRE(pid > 0);
		usleep((useconds_t)(rand() % window_us));
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		TT_CHECK(WIFSIGNALED(st)); /* it was still writing, not failed */

		ckpt *c = NULL;
		TT_CHECK_RC(ckpt_open(&c, same), 0);
		TT_REQUIRE(c);
		long step = ckpt_step(c);
		TT_CHECK(step == 1 || step == 2);
		TT_CHECK(has_pattern(c, CRASH_FLOATS, step == 1 ? 11 : 22));
		saw_new += round % 2 == 0 && step == 2;
		ckpt_free(c);
		TT_CHECK_RC(ckpt_latest_good(dir, LONG_MAX, good, sizeof good), 0);
		if (td_exists(next))
			TT_CHECK_STR(good, next);
	}
	fprintf(stderr, "crash rounds (kill within %ld ms): the replaced file "
		"held the new state %d times of 3\n", window_us / 1000, saw_new);
	/* The killed writers' temp files go at the next retention pass. */
	int deleted = -1;
	TT_CHECK_RC(ckpt_retain(dir, 5, 0, &deleted), 0);
	TT_CHECK(deleted == 0);
	DIR *d = opendir(dir);
	struct dirent *e;
	int temps = 0;
	while ((e = readdir(d)))
		temps += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	TT_CHECK(temps == 0);
}

static int steps_in(const char *dir, long *out, int cap)
{
	ckpt_entry *v;
	size_t n;
	if (ckpt_list(dir, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n && (int)i < cap; i++)
		out[i] = v[i].step;
	free(v);
	return (int)n;
}

static void test_list_and_retention(void)
{
	char dir[600], path[600];
	long s[32];
	int deleted;
	snprintf(dir, sizeof dir, "%s", td_path("ret"));
	mkdir(dir, 0755);
	for (long step = 100; step <= 1000; step += 100) {
		ckpt_path(path, sizeof path, dir, step);
		TT_REQUIRE(make(path, step, 10, (uint32_t)step) == 0);
	}
	td_write(td_path("ret/ckpt-12x.bin"), "x", 1);
	td_write(td_path("ret/notes.txt"), "x", 1);
	td_write(td_path("ret/.ckpt-00000005.bin.tmp.99999999"), "x", 1);
	td_write(td_path("ret/.ckpt-00000006.bin.tmp.1"), "x", 1); /* pid 1 lives */
	TT_CHECK(steps_in(dir, s, 32) == 10);
	TT_CHECK(s[0] == 1000 && s[9] == 100);
	TT_CHECK_STR(path, td_path("ret/ckpt-00001000.bin"));

	TT_CHECK_RC(ckpt_retain(dir, 3, 500, &deleted), 0);
	TT_CHECK(deleted == 6);
	TT_CHECK(steps_in(dir, s, 32) == 4);
	TT_CHECK(s[0] == 1000 && s[1] == 900 && s[2] == 800 && s[3] == 500);
	TT_CHECK(td_exists(td_path("ret/notes.txt")));
	TT_CHECK(!td_exists(td_path("ret/.ckpt-00000005.bin.tmp.99999999")));
	TT_CHECK(td_exists(td_path("ret/.ckpt-00000006.bin.tmp.1")));

	/* The two newest are bad: the newest stays (it is the newest), and
	 * so does 1000, the only good one left after it. */
	td_write(td_path("ret/ckpt-00001100.bin"), "garbage", 7);
	ckpt_path(path, sizeof path, dir, 1200);
	TT_CHECK_RC(make(path, 1200, 10, 1), 0);
	damaged(path, path, SIZE_MAX, 100);
	char good[600];
	TT_CHECK_RC(ckpt_latest_good(dir, LONG_MAX, good, sizeof good), 0);
	TT_CHECK_STR(good, td_path("ret/ckpt-00001000.bin"));
	TT_CHECK_RC(ckpt_latest_good(dir, 1000, good, sizeof good), 0);
	TT_CHECK_STR(good, td_path("ret/ckpt-00000900.bin"));
	TT_CHECK_RC(ckpt_retain(dir, 1, 0, &deleted), 0);
	TT_CHECK(deleted == 4);
	TT_CHECK(steps_in(dir, s, 32) == 2);
	TT_CHECK(s[0] == 1200 && s[1] == 1000);
	TT_CHECK_RC(ckpt_latest_good(dir, 1000, good, sizeof good), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "no good checkpoint before step 1000 (0 checked)");
	TT_CHECK_RC(ckpt_latest_good(dir, 1100, good, sizeof good), 0);

	/* Nothing good at all: nothing beyond the rules is kept, nothing breaks. */
	TT_CHECK(steps_in(td_path("missing"), s, 32) == 0);
	TT_CHECK_RC(ckpt_retain(td_path("missing"), 1, 0, &deleted), 0);
	TT_CHECK(deleted == 0);
}

int main(void)
{
	td_mkdtemp();
	TT_RUN(test_round_trip);
	TT_RUN(test_check_config);
	TT_RUN(test_writer_refuses);
	TT_RUN(test_flipped_bytes_refused);
	TT_RUN(test_truncated_refused);
	TT_RUN(test_magic_and_version);
	TT_RUN(test_crash_during_write);
	TT_RUN(test_list_and_retention);
	td_rmtree(td_dir);
	return TT_DONE();
}
