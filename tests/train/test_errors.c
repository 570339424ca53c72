/*
 * test_errors.c - bad inputs to `tend train` end in one clear line on
 * stderr naming the file or spec, and exit status 2 for bad input
 * (TEND_EINVAL) or 1 for anything else, as cmd_train.c maps them: a
 * corrupt, truncated, missing or mismatched checkpoint for --resume, a bad
 * shard, an unknown or malformed --inject spec, a scaffold that fails its
 * selftest or is missing.
 */
#include "ttrain.h"

/* Runs with args and checks the exit code and that stderr holds want
 * (which starts "tend train: ..."). */
static void fails_with(const char *tag, const char *const *args, int code, const char *want)
{
	int rc = tr_run(tag, args);
	char *err = tr_read(tr_path("%s.err", tag));
	TT_CHECK(rc == code);
	TT_CHECK_HAS(err, want);
	if (rc != code || !err || !strstr(err, want))
		fprintf(stderr, "%s: exit %d, stderr: %s\n", tag, rc, err ? err : "(none)");
	free(err);
}

/* A good checkpoint of step 5, made once. */
static const char *good_ckpt(void)
{
	const char *path = tr_path("good/checkpoints/ckpt-00000005.bin");
	if (!fsu_exists(path)) {
		const char *a[] = {"--run-dir", tr_path("good"), "--steps", "5", "--eval-every", "0",
			"--checkpoint-every", "5", NULL};
		tr_run("good", a);
	}
	return path;
}

static void copy_with(const char *from, const char *to, size_t keep, long flip_at)
{
	size_t n = 0;
	char *buf = NULL;
	TT_REQUIRE(fsu_read_file(&buf, &n, from, 64u << 20) == 0);
	if (flip_at >= 0 && (size_t)flip_at < n)
		buf[flip_at] ^= 0x55;
	TT_CHECK(fsu_write_atomic(to, buf, keep < n ? keep : n, 0644) == 0);
	free(buf);
}

static void test_corrupt_checkpoint(void)
{
	const char *bad = tr_path("bad.bin");
	copy_with(good_ckpt(), bad, SIZE_MAX, 5000);
	const char *a[] = {"--run-dir", tr_path("r1"), "--resume", bad, NULL};
	char want[600];
	snprintf(want, sizeof want, "tend train: resume: %s: checksum mismatch: file is corrupt\n",
		 bad);
	fails_with("corrupt", a, 2, want);
}

static void test_truncated_checkpoint(void)
{
	const char *bad = tr_path("short.bin");
	copy_with(good_ckpt(), bad, 100, -1);
	const char *a[] = {"--run-dir", tr_path("r2"), "--resume", bad, NULL};
	char want[600];
	snprintf(want, sizeof want, "tend train: resume: %s: truncated (100 bytes", bad);
	fails_with("short", a, 2, want);
}

static void test_missing_checkpoint(void)
{
	const char *a[] = {"--run-dir", tr_path("r3"), "--resume", tr_path("none.bin"), NULL};
	char want[600];
	snprintf(want, sizeof want, "tend train: resume: %s: no such checkpoint\n",
		 tr_path("none.bin"));
	fails_with("missing", a, 1, want);
}

static void test_checkpoint_of_another_model(void)
{
	good_ckpt();
	const char *a[] = {"--run-dir", tr_path("good"), "--resume", "latest", "--steps", "6",
		"--d-model", "64", NULL};
	fails_with("mismatch", a, 2, "/checkpoints/ckpt-00000005.bin: model config differs: "
		   "d_model is 32 in the checkpoint, 64 now\n");
}

static void test_bad_shard(void)
{
	const char *dir = tr_path("shards");
	char junk[3000];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 131 + 7);
	fsu_mkdir_p(dir, 0755);
	TT_REQUIRE(fsu_write_atomic(tr_path("shards/train_000.bin"), junk, sizeof junk, 0644) == 0);
	TT_REQUIRE(fsu_write_atomic(tr_path("shards/val_000.bin"), junk, sizeof junk, 0644) == 0);
	const char *a[] = {"--run-dir", tr_path("r4"), "--data", dir, NULL};
	char want[600];
	snprintf(want, sizeof want, "tend train: %s/train_000.bin: bad magic", dir);
	fails_with("shard", a, 2, want);
	fails_with("shard", a, 2, "not an llm.c token shard\n");
}

static void test_bad_inject_specs(void)
{
	const char *a[] = {"--run-dir", tr_path("r5"), "--inject", "nan@3,boom@3", NULL};
	fails_with("inject", a, 2, "tend train: --inject: fault 'boom@3': unknown kind 'boom' "
		   "(known: nan spike gradblow hang slow crash oom collapse)\n");
	const char *b[] = {"--run-dir", tr_path("r5"), "--inject", "spike@x", NULL};
	fails_with("inject2", b, 2, "tend train: --inject: fault 'spike@x': expected "
		   "KIND@STEP[:ARG], e.g. spike@200:10\n");
	const char *c[] = {"--run-dir", tr_path("r5"), "--inject", "spike@4:-2", NULL};
	fails_with("inject3", c, 2, "tend train: --inject: fault 'spike@4:-2': argument must be "
		   "a positive number\n");
	const char *d[] = {"--run-dir", tr_path("r5"), "--inject", "crash@4:99", NULL};
	fails_with("inject4", d, 2, "tend train: --inject: fault 'crash@4:99': the signal must "
		   "be a whole number from 1 to 64\n");
	const char *e[] = {"--run-dir", tr_path("r5"), "--inject", "slow@4:0.5", NULL};
	fails_with("inject5", e, 2, "tend train: --inject: fault 'slow@4:0.5': the slowdown "
		   "must be at least 1\n");
	TT_CHECK(!fsu_exists(tr_path("r5"))); /* refused before anything is made */
}

static void test_scaffold_fails_selftest(void)
{
	const char *scf = tr_scaffold_copy("scf-bad");
	char lua[600], want[700];
	snprintf(lua, sizeof lua, "%s/scaffold.lua", scf);
	TT_REQUIRE(tr_replace(lua, "min_lr = 3e-5,", "min_lr = 1,") == 0);
	const char *a[] = {"--run-dir", tr_path("r6"), "--scaffold", scf, NULL};
	snprintf(want, sizeof want, "tend train: scaffold %s: scaffold.lua:", scf);
	fails_with("selftest", a, 2, want);
	fails_with("selftest", a, 2, ": config: need 0 <= min_lr <= lr\n");
	/* refused before the synthetic corpus is generated */
	TT_CHECK(!fsu_exists(tr_path("r6/data")));
}

static void test_scaffold_missing(void)
{
	const char *a[] = {"--run-dir", tr_path("r7"), "--scaffold", tr_path("nowhere"), NULL};
	char want[600];
	snprintf(want, sizeof want, "tend train: scaffold %s: scaffold.lua: No such file",
		 tr_path("nowhere"));
	fails_with("noscf", a, 1, want);
}

static void test_unknown_flag(void)
{
	const char *a[] = {"--run-dir", tr_path("r8"), "--stpes", "5", NULL};
	fails_with("flag", a, 2, "unrecognized option '--stpes'");
	const char *b[] = {"--run-dir", tr_path("r8"), "--steps", "-5", NULL};
	fails_with("flag2", b, 2, "tend train: --steps: expected an integer in [0, ");
}

int main(void)
{
	tr_mkdtemp();
	TT_RUN(test_corrupt_checkpoint);
	TT_RUN(test_truncated_checkpoint);
	TT_RUN(test_missing_checkpoint);
	TT_RUN(test_checkpoint_of_another_model);
	TT_RUN(test_bad_shard);
	TT_RUN(test_bad_inject_specs);
	TT_RUN(test_scaffold_fails_selftest);
	TT_RUN(test_scaffold_missing);
	TT_RUN(test_unknown_flag);
	return tr_finish();
}
