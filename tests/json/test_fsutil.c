/* test_fsutil.c - atomic writes (including a filling disk), bounded reads,
 * mkdir -p, rm -rf, path joining, and the clocks, on a real temp dir. */
#include "clock.h"
#include "fsutil.h"
#include "tend.h"
#include "tt.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/tend-test-XXXXXX";

static const char *at(const char *name)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

/* Number of entries in d other than . and .. */
static int entries(const char *d)
{
	DIR *dp = opendir(d);
	int n = 0;
	if (!dp)
		return -1;
	for (struct dirent *e; (e = readdir(dp));)
		n += e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, ".."));
	closedir(dp);
	return n;
}

static void test_write_atomic(void)
{
	const char *p = at("state.json");
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	TT_CHECK_RC(fsu_write_atomic(p, "first", 5, 0640), 0);
	TT_CHECK_RC(fsu_write_atomic(p, "second", 6, 0600), 0);
	TT_CHECK_RC(fsu_read_file(&data, &len, p, 100), 0);
	TT_CHECK(len == 6 && data && strcmp(data, "second") == 0);
	free(data);
	TT_CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
	TT_CHECK_RC(fsu_write_atomic(p, "", 0, 0644), 0);
	TT_CHECK(stat(p, &st) == 0 && st.st_size == 0 && (st.st_mode & 07777) == 0644);
	TT_CHECK(entries(dir) == 1); /* no temp files left */
	TT_CHECK_RC(fsu_write_atomic("", "x", 1, 0644), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "not a file path: \"\"");
	TT_CHECK_RC(fsu_write_atomic(at("d/"), "x", 1, 0644), TEND_EINVAL);
	unlink(p);
}

static void test_write_atomic_failures(void)
{
	char want[512];
	/* the target is a directory: the rename fails, the dir stays */
	const char *d = at("adir");
	TT_REQUIRE(mkdir(d, 0755) == 0);
	TT_CHECK_RC(fsu_write_atomic(d, "x", 1, 0644), TEND_EIO);
	snprintf(want, sizeof want, " to %s: Is a directory", d);
	TT_CHECK_HAS(tend_error_last(), want);
	TT_CHECK(entries(dir) == 1 && entries(d) == 0);
	rmdir(d);
	/* no such directory */
	TT_CHECK_RC(fsu_write_atomic(at("no/f"), "x", 1, 0644), TEND_EIO);
	snprintf(want, sizeof want, "create a temp file for %s: No such file or directory",
		 at("no/f"));
	TT_CHECK_STR(tend_error_last(), want);
}

/* A file size limit makes write() fail part way, as a full disk does: the
 * old content must survive and the temp file must go. */
static void test_write_atomic_disk_full(void)
{
	const char *p = at("big");
	struct rlimit old, small = {4096, 0};
	char *data = NULL, *big = calloc(1, 100000);
	size_t len;
	TT_REQUIRE(big);
	TT_CHECK_RC(fsu_write_atomic(p, "old", 3, 0644), 0);
	TT_REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
	small.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	TT_REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = fsu_write_atomic(p, big, 100000, 0644);
	setrlimit(RLIMIT_FSIZE, &old);
	TT_CHECK(rc == TEND_EIO);
	char want[512];
	snprintf(want, sizeof want, "write %s: File too large", p);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(fsu_read_file(&data, &len, p, 100), 0);
	TT_CHECK(len == 3 && data && memcmp(data, "old", 3) == 0);
	TT_CHECK(entries(dir) == 1);
	free(data);
	free(big);
	unlink(p);
}

static void test_read_file(void)
{
	const char *p = at("r");
	char *data = (char *)1, want[512];
	size_t len = 0;
	TT_CHECK_RC(fsu_read_file(&data, &len, at("missing"), 10), TEND_ENOTFOUND);
	TT_CHECK(data == NULL);
	snprintf(want, sizeof want, "open %s: No such file or directory", at("missing"));
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(fsu_write_atomic(p, "hello", 5, 0644), 0);
	TT_CHECK_RC(fsu_read_file(&data, &len, p, 5), 0);
	TT_CHECK(len == 5 && strcmp(data, "hello") == 0);
	free(data);
	TT_CHECK_RC(fsu_read_file(&data, NULL, p, 4), TEND_EINVAL);
	snprintf(want, sizeof want, "%s: file is larger than 4 bytes", p);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(fsu_read_file(&data, &len, dir, 4), TEND_EIO);
	snprintf(want, sizeof want, "read %s: Is a directory", dir);
	TT_CHECK_STR(tend_error_last(), want);
	/* /proc files report size 0: the limit still holds while reading */
	TT_CHECK_RC(fsu_read_file(&data, &len, "/proc/self/status", 1 << 20), 0);
	TT_CHECK(data && len > 100 && strncmp(data, "Name:", 5) == 0 && data[len] == '\0');
	free(data);
	TT_CHECK_RC(fsu_read_file(&data, &len, "/proc/self/status", 50), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "/proc/self/status: file is larger than 50 bytes");
	unlink(p);
}

static void test_mkdir_rm(void)
{
	char want[512];
	struct stat st;
	TT_CHECK_RC(fsu_mkdir_p(at("a//b/c/"), 0755), 0);
	TT_CHECK(stat(at("a/b/c"), &st) == 0 && S_ISDIR(st.st_mode));
	TT_CHECK_RC(fsu_mkdir_p(at("a/b"), 0755), 0); /* exists: fine */
	TT_CHECK_RC(fsu_write_atomic(at("a/b/f"), "x", 1, 0644), 0);
	TT_CHECK_RC(fsu_mkdir_p(at("a/b/f/g"), 0755), TEND_EIO);
	snprintf(want, sizeof want, "mkdir %s: Not a directory", at("a/b/f"));
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK_RC(fsu_mkdir_p("", 0755), TEND_EINVAL);
	/* a symlink out of the tree: rm -rf removes the link, not the target */
	TT_CHECK_RC(fsu_mkdir_p(at("keep"), 0755), 0);
	TT_CHECK_RC(fsu_write_atomic(at("keep/k"), "k", 1, 0644), 0);
	TT_CHECK(symlink(at("keep"), at("a/b/c/link")) == 0);
	TT_CHECK(fsu_exists(at("a/b/c/link/k")));
	TT_CHECK_RC(fsu_rm_rf(at("a")), 0);
	TT_CHECK(!fsu_exists(at("a")));
	TT_CHECK(fsu_exists(at("keep/k")));
	TT_CHECK_RC(fsu_rm_rf(at("a")), 0); /* missing: fine */
	TT_CHECK_RC(fsu_rm_rf(at("keep")), 0);
	TT_CHECK_RC(fsu_rm_rf("/"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "refusing to remove \"/\"");
	TT_CHECK_RC(fsu_rm_rf("//"), TEND_EINVAL);
	TT_CHECK_RC(fsu_rm_rf(""), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "refusing to remove \"\"");
	TT_CHECK(entries(dir) == 0);
}

static void test_join(void)
{
	char out[16];
	TT_CHECK_RC(fsu_join(out, sizeof out, "a", "b"), 0);
	TT_CHECK_STR(out, "a/b");
	TT_CHECK_RC(fsu_join(out, sizeof out, "a/", "/b"), 0);
	TT_CHECK_STR(out, "a/b");
	TT_CHECK_RC(fsu_join(out, sizeof out, "/", "b"), 0);
	TT_CHECK_STR(out, "/b");
	TT_CHECK_RC(fsu_join(out, sizeof out, "", "/b"), 0);
	TT_CHECK_STR(out, "/b");
	TT_CHECK_RC(fsu_join(out, sizeof out, "runs", "r1/metrics"), 0);
	TT_CHECK_STR(out, "runs/r1/metrics");
	TT_CHECK_RC(fsu_join(out, sizeof out, "runs", "r1/metrics1"), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "path too long: runs/r1/metrics1");
	TT_CHECK_STR(out, "");
}

static void test_clocks(void)
{
	uint64_t a = tend_mono_ns();
	struct timespec ts = {0, 2000000};
	nanosleep(&ts, NULL);
	uint64_t b = tend_mono_ns();
	TT_CHECK(b - a >= 2000000 && b - a < 2000000000ull);
	double w = tend_wall_s(), now = (double)time(NULL);
	TT_CHECK(w > 1.7e9 && w >= now - 1 && w <= now + 1);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	TT_RUN(test_write_atomic);
	TT_RUN(test_write_atomic_failures);
	TT_RUN(test_write_atomic_disk_full);
	TT_RUN(test_read_file);
	TT_RUN(test_mkdir_rm);
	TT_RUN(test_join);
	TT_RUN(test_clocks);
	fsu_rm_rf(dir);
	return TT_DONE();
}
