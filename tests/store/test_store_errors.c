/*
 * test_store_errors.c - the store's error paths, driven on purpose: a
 * read-only database, paths that cannot be opened, a full disk (a file size
 * limit in a forked child), another process holding the lock, and a
 * corrupted file. Every failure must be a clean error naming the file,
 * and data committed earlier must survive.
 */
#include "store.h"
#include "tend.h"
#include "tt.h"
#include "helpers.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A store at dir/name holding one run with `values` metric values. */
static int seed(const char *name, int values)
{
	static const char *const names[] = { "loss", "acc", "lr", "gnorm" };
	char path[256];
	store *s = NULL;
	int64_t run = 0;
	int rc;

	th_path(path, sizeof path, dir, name);
	if ((rc = store_open(&s, path, STORE_CREATE)) != 0 ||
	    (rc = store_run_create(s, &run, "r1", "", "/w")) != 0 ||
	    (rc = store_batch_begin(s)) != 0)
		goto done;
	for (int i = 0; i < values && rc == 0; i++)
		rc = store_metric_put(s, run, 1, i / 4, names[i % 4], i, i);
	if (rc == 0)
		rc = store_offset_set(s, run, "metrics.jsonl", values);
	if (rc == 0)
		rc = store_batch_commit(s);
done:
	store_close(s);
	return rc;
}

static void test_readonly_file(void)
{
	char path[256];
	store *s = NULL;
	int64_t off = 0;

	TT_REQUIRE(seed("ro.db", 100) == 0);
	th_path(path, sizeof path, dir, "ro.db");
	chmod(path, 0444);
	TT_CHECK_RC(store_open(&s, path, STORE_READONLY), 0);
	TT_REQUIRE(s);
	TT_CHECK_RC(store_offset_get(s, &off, 1, "metrics.jsonl"), 0);
	TT_CHECK(off == 100);
	TT_CHECK_RC(store_batch_begin(s), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "ro.db: starting a write transaction: "
		     "attempt to write a readonly database");
	TT_CHECK_RC(store_metric_put(s, 1, 1, 1000, "loss", 1, 1), TEND_EIO);
	TT_CHECK_RC(store_audit_append(s, "tend", "x", NULL, NULL, NULL),
		    TEND_EIO);
	TT_CHECK_RC(store_integrity_check(s), 0);
	store_close(s);
	chmod(path, 0644);
}

/* A read-only directory stops a non-root user from creating the file.
 * Root ignores directory permissions, so there the check is skipped and
 * the cases below (which hold for root too) carry the weight. */
static void test_readonly_dir(void)
{
	char sub[128], path[256];
	store *s = NULL;

	th_path(sub, sizeof sub, dir, "ro-dir");
	TT_REQUIRE(mkdir(sub, 0555) == 0);
	th_path(path, sizeof path, sub, "tend.db");
	if (geteuid() != 0) {
		TT_CHECK_RC(store_open(&s, path, STORE_CREATE), TEND_EIO);
		TT_CHECK_HAS(tend_error_last(), "ro-dir/tend.db: opening: "
			     "unable to open database file (Permission denied)");
		/* A read-only file opened for writing fails at once. */
		TT_REQUIRE(seed("ro-file.db", 1) == 0);
		th_path(path, sizeof path, dir, "ro-file.db");
		chmod(path, 0444);
		TT_CHECK_RC(store_open(&s, path, 0), TEND_EIO);
		TT_CHECK_HAS(tend_error_last(), "ro-file.db: opening: "
			     "Permission denied (open it read-only to read it)");
		TT_CHECK_RC(store_open(&s, path, STORE_READONLY), 0);
		store_close(s);
	} else {
		fprintf(stderr, "note: running as root, the read-only "
			"directory case is not observable\n");
	}
	chmod(sub, 0755);
}

static void test_unopenable_paths(void)
{
	char path[256];
	store *s = NULL;

	th_path(path, sizeof path, dir, "no/such/dir/tend.db");
	TT_CHECK_RC(store_open(&s, path, STORE_CREATE), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "no/such/dir/tend.db: opening: unable "
		     "to open database file (No such file or directory)");
	TT_CHECK(s == NULL);
	TT_CHECK_RC(store_open(&s, dir, STORE_CREATE), TEND_EIO);
	snprintf(path, sizeof path, "%s: opening: unable to open database "
		 "file (Is a directory)", dir);
	TT_CHECK_STR(tend_error_last(), path);
	TT_CHECK(s == NULL);
}

/* Child side of the full-disk test: writes under a file size limit and
 * reports what failed through fd. */
static void full_disk_child(const char *path, int fd)
{
	struct rlimit lim = { 256 * 1024, 256 * 1024 };
	store *s = NULL;
	char msg[1024];
	int rc, small;

	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	rc = store_open(&s, path, 0);
	/* A small batch still fits... */
	small = rc ? rc : store_metric_put(s, 1, 2, 999999, "loss", 7, 7);
	/* ...a big one does not: the error must come back, not a crash. */
	if (rc == 0 && small == 0 && (rc = store_batch_begin(s)) == 0) {
		for (int i = 0; i < 200000 && rc == 0; i++)
			rc = store_metric_put(s, 1, 3, i, "big", i, i);
		if (rc == 0)
			rc = store_offset_set(s, 1, "metrics.jsonl", 1 << 30);
		if (rc == 0)
			rc = store_batch_commit(s);
		store_batch_rollback(s);
	}
	snprintf(msg, sizeof msg, "%d %d %s", small, rc, tend_error_last());
	if (write(fd, msg, strlen(msg)) < 0)
		_exit(3);
	store_close(s);
	_exit(0);
}

static void test_full_disk(void)
{
	char path[256], msg[1024] = "";
	int fds[2], status = 0, small = 1, rc = 1, off_msg = 0;
	int64_t off = 0;
	store *s = NULL;
	pid_t pid;
	ssize_t n;

	TT_REQUIRE(seed("full.db", 4000) == 0);
	th_path(path, sizeof path, dir, "full.db");
	TT_REQUIRE(pipe(fds) == 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		full_disk_child(path, fds[1]);
	}
	close(fds[1]);
	n = read(fds[0], msg, sizeof msg - 1);
	close(fds[0]);
	msg[n > 0 ? n : 0] = '\0';
	TT_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		 WEXITSTATUS(status) == 0);
	TT_REQUIRE(sscanf(msg, "%d %d %n", &small, &rc, &off_msg) == 2);
	TT_CHECK(small == 0);
	TT_CHECK(rc == TEND_EIO);
	TT_CHECK(strncmp(msg + off_msg, path, strlen(path)) == 0);
	TT_CHECK_HAS(msg + off_msg, "(File too large)");
	fprintf(stderr, "full disk reported: %s\n", msg + off_msg);

	/* Everything committed before the failure is there, nothing after. */
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	TT_CHECK_RC(store_integrity_check(s), 0);
	TT_CHECK_RC(store_offset_get(s, &off, 1, "metrics.jsonl"), 0);
	TT_CHECK(off == 4000);
	store_close(s);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics") == 4001);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics "
			    "WHERE attempt = 3") == 0);
}

static void test_locked_open(void)
{
	char path[256], want[512];
	sqlite3 *db = NULL;
	store *s = NULL;
	double t0;

	th_path(path, sizeof path, dir, "locked-open.db");
	TT_REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
	TT_REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE; CREATE TABLE x (a);",
				NULL, NULL, NULL) == SQLITE_OK);
	t0 = now_s();
	TT_CHECK_RC(store_open_ex(&s, path, STORE_CREATE, 150), TEND_EBUSY);
	TT_CHECK(now_s() - t0 >= 0.14);
	snprintf(want, sizeof want, "%s: database is locked (another tend "
		 "process holds it)", path);
	TT_CHECK_STR(tend_error_last(), want);
	TT_CHECK(s == NULL);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	TT_CHECK_RC(store_open_ex(&s, path, STORE_CREATE, 150), 0);
	store_close(s);
}

static void test_locked_write(void)
{
	char path[256];
	sqlite3 *db = NULL;
	store *s = NULL;
	int64_t off = -1;
	double t0;

	TT_REQUIRE(seed("locked.db", 10) == 0);
	th_path(path, sizeof path, dir, "locked.db");
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	store_set_busy_timeout(s, 100);
	TT_REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
	TT_REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE; INSERT INTO runs (name, "
				"state, created_t, config, workdir) VALUES "
				"('other', 'x', 0, '', '/');", NULL, NULL,
				NULL) == SQLITE_OK);
	t0 = now_s();
	TT_CHECK_RC(store_run_create(s, NULL, "mine", "", "/w"), TEND_EBUSY);
	TT_CHECK(now_s() - t0 >= 0.09);
	TT_CHECK_HAS(tend_error_last(), "locked.db: database is locked "
		     "(another tend process holds it)");
	TT_CHECK_RC(store_batch_begin(s), TEND_EBUSY);
	TT_CHECK_RC(store_audit_append(s, "tend", "x", NULL, NULL, NULL),
		    TEND_EBUSY);
	/* WAL: reading goes on beside the writer. */
	TT_CHECK_RC(store_offset_get(s, &off, 1, "metrics.jsonl"), 0);
	TT_CHECK(off == 10);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	TT_CHECK_RC(store_run_create(s, NULL, "mine", "", "/w"), 0);
	TT_CHECK_RC(store_audit_append(s, "tend", "x", NULL, NULL, NULL), 0);
	TT_CHECK_RC(store_audit_verify(s, NULL), 0);
	store_close(s);
}

/* A writer beside a busy one (a supervisor ingesting, which lets go of the
 * lock for a few milliseconds between batches) gets in at the first gap,
 * not after seconds of 100 ms naps. */
static void test_write_between_batches(void)
{
	char path[256];
	store *s = NULL;
	TT_REQUIRE(seed("gaps.db", 10) == 0);
	th_path(path, sizeof path, dir, "gaps.db");
	fflush(NULL);
	pid_t pid = fork();
	TT_REQUIRE(pid >= 0);
	if (pid == 0) {
		/* Holds the write lock 200 ms at a time, free for 3 ms between. */
		sqlite3 *db = NULL;
		if (sqlite3_open(path, &db) != SQLITE_OK)
			_exit(1);
		struct timespec gap = {0, 3 * 1000 * 1000}, hold = {0, 200 * 1000 * 1000};
		for (int i = 0; i < 25; i++) {
			if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
				nanosleep(&hold, NULL);
				sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			}
			nanosleep(&gap, NULL);
		}
		sqlite3_close(db);
		_exit(0);
	}
	struct timespec settle = {0, 50 * 1000 * 1000};
	nanosleep(&settle, NULL);
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	double worst = 0;
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof name, "w%d", i);
		double t0 = now_s();
		TT_CHECK_RC(store_run_create(s, NULL, name, "", "/w"), 0);
		worst = now_s() - t0 > worst ? now_s() - t0 : worst;
	}
	/* Each write waits for the current hold to end: under 200 ms, with
	 * room for a loaded machine; SQLite's own handler took seconds. */
	TT_CHECK(worst < 0.6);
	store_close(s);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_corrupt_file(void)
{
	char path[256];
	store *s = NULL;
	FILE *f;
	long size;

	TT_REQUIRE(seed("corrupt.db", 20000) == 0);
	th_path(path, sizeof path, dir, "corrupt.db");
	f = fopen(path, "r+b");
	TT_REQUIRE(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	/* Scribble over the last pages: the metrics written last, far from
	 * the schema, so the file still opens. */
	for (long pg = size - 4096 * 8; pg + 4096 <= size; pg += 4096) {
		fseek(f, pg + 8, SEEK_SET);
		for (int i = 0; i < 64; i++)
			fputc(0xa5, f);
	}
	fclose(f);
	TT_REQUIRE(store_open(&s, path, 0) == 0);
	TT_CHECK_RC(store_integrity_check(s), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "corrupt.db: integrity check failed: ");
	store_close(s);
}

int main(void)
{
	th_tmpdir(dir);
	TT_RUN(test_readonly_file);
	TT_RUN(test_readonly_dir);
	TT_RUN(test_unopenable_paths);
	TT_RUN(test_full_disk);
	TT_RUN(test_locked_open);
	TT_RUN(test_locked_write);
	TT_RUN(test_write_between_batches);
	TT_RUN(test_corrupt_file);
	th_rmtree(dir);
	return TT_DONE();
}
