/*
 * test_e2e_wake.c - how the supervisor learns of new lines: woken by the
 * write through inotify, or, where inotify cannot be had, by polling every
 * 20 ms. Either way an incident is committed at once and plain rows within
 * the commit period. The "trainer" is `sleep`; this process writes the
 * metrics lines itself. Polling is forced for real: this process takes
 * every inotify instance the user may have before the supervisor starts.
 */
#include "e2e.h"
#include "tt.h"

#include <dirent.h>
#include <errno.h>
#include <sys/inotify.h>

static const char policy[] =
	"local P = {api = 1}\n"
	"function P.decide(inc, ctx) return {action = \"alert\", reason = \"test\"} end\n"
	"return P\n";

/* Polls a count query until it reaches want or max_s passes. */
static long long wait_count(sqlite3 *db, const char *sql, long long want, double max_s)
{
	double t0 = e2e_now();
	long long n = 0;
	while ((n = e2e_int(db, sql)) < want && e2e_now() - t0 < max_s)
		e2e_sleep(0.005);
	return n;
}

/* A workspace whose "trainer" is `sleep` and whose policy only alerts,
 * with its run directory made: this process writes the run's files. */
static int sleep_workspace(char *ws, size_t cap, const char *name)
{
	char path[PATH_MAX + 64];
	e2e_cfg c = {.run = "  command: [sleep, \"600\"]\n"};
	if (e2e_workspace(ws, cap, name, &c) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/scaffold/policies.lua", ws);
	if (fsu_write_atomic(path, policy, sizeof policy - 1, 0644) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/runs/w", ws);
	return mkdir(path, 0755);
}

/* True when process pid holds an inotify instance. */
static bool has_inotify(pid_t pid)
{
	char dir[64], path[PATH_MAX], target[64];
	struct dirent *e;
	bool found = false;
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	while (d && !found && (e = readdir(d))) {
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		found = strcmp(target, "anon_inode:inotify") == 0;
	}
	if (d)
		closedir(d);
	return found;
}

static void run_case(const char *name, bool inotify)
{
	char ws[PATH_MAX], path[PATH_MAX + 64], line[256];
	e2e_proc p, stop;
	TT_REQUIRE(sleep_workspace(ws, sizeof ws, name) == 0);
	snprintf(path, sizeof path, "%s/runs/w/metrics.jsonl", ws);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(fd >= 0 && db);
	TT_REQUIRE(e2e_spawnv(&p, ws, "run", (const char *const[]){"run", "w", "--no-status",
								  NULL}) == 0);
	TT_CHECK(wait_count(db, "SELECT count(*) FROM runs WHERE state = 'running'", 1, 30) == 1);
	TT_CHECK(has_inotify(p.pid) == inotify);
	/* Plain rows: committed within the commit period (1 s) and a tick. */
	for (int i = 1; i <= 5; i++) {
		int len = snprintf(line, sizeof line, "{\"step\":%d,\"loss\":2.5}\n", i);
		TT_CHECK(write(fd, line, (size_t)len) == len);
	}
	TT_CHECK(wait_count(db, "SELECT count(*) FROM metrics", 5, 3) == 5);
	/* An incident: committed at once, each time. */
	for (int i = 1; i <= 5; i++) {
		int len = snprintf(line, sizeof line, "{\"step\":%d,\"loss\":NaN}\n", 1000 * i);
		TT_CHECK(write(fd, line, (size_t)len) == len);
		TT_CHECK(wait_count(db, "SELECT coalesce(sum(count), 0) FROM incidents WHERE "
				    "signature = 'nonfinite:loss'", i, 2) == i);
	}
	/* Writes it saw itself never make the watch give up. */
	TT_CHECK(has_inotify(p.pid) == inotify);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'ingest'") == 0);
	TT_CHECK(e2e_tend(&stop, ws, "stop", 60, "stop", "--now") == 0);
	TT_CHECK(e2e_wait(&p, 60) == 1); /* stopped before its end */
	close(fd);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "w");
}

static void test_woken_by_writes(void)
{
	run_case("inotify", true);
}

static void test_polling_without_inotify(void)
{
	int fds[4096], n = 0, fd;
	while (n < 4096 && (fd = inotify_init1(IN_CLOEXEC)) >= 0)
		fds[n++] = fd;
	bool exhausted = n < 4096 && (errno == EMFILE || errno == ENFILE);
	if (!exhausted)
		fprintf(stderr, "  (could not exhaust inotify instances: %s; case not meaningful)\n",
			strerror(errno));
	TT_CHECK(exhausted);
	if (exhausted)
		run_case("poll", false);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* Writes through a hard link in another directory raise no event in the
 * run directory's watch, as writes from another host to a network
 * filesystem would not: the timer finds the lines, and after a few such
 * finds the supervisor polls instead. */
static void test_unseen_writes_switch_to_polling(void)
{
	char ws[PATH_MAX], path[PATH_MAX + 64], link_path[PATH_MAX + 64], line[256];
	e2e_proc p, stop;
	TT_REQUIRE(sleep_workspace(ws, sizeof ws, "unseen") == 0);
	snprintf(path, sizeof path, "%s/runs/w/metrics.jsonl", ws);
	snprintf(link_path, sizeof link_path, "%s/elsewhere", ws);
	mkdir(link_path, 0755);
	snprintf(link_path, sizeof link_path, "%s/elsewhere/metrics.jsonl", ws);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	TT_REQUIRE(fd >= 0);
	close(fd);
	TT_REQUIRE(link(path, link_path) == 0);
	fd = open(link_path, O_WRONLY | O_APPEND);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(fd >= 0 && db);
	TT_REQUIRE(e2e_spawnv(&p, ws, "run", (const char *const[]){"run", "w", "--no-status",
								  NULL}) == 0);
	TT_CHECK(wait_count(db, "SELECT count(*) FROM runs WHERE state = 'running'", 1, 30) == 1);
	TT_CHECK(has_inotify(p.pid));
	for (int i = 1; i <= 8; i++) {
		int len = snprintf(line, sizeof line, "{\"step\":%d,\"loss\":2.5}\n", i);
		TT_CHECK(write(fd, line, (size_t)len) == len);
		e2e_sleep(0.25); /* past a timer tick and the commit of each */
	}
	TT_CHECK(wait_count(db, "SELECT count(*) FROM metrics", 8, 3) == 8);
	TT_CHECK(wait_count(db, "SELECT count(*) FROM events WHERE kind = 'ingest' AND reason "
			    "LIKE '%%without inotify events: polling every 20 ms%%'", 1, 3) == 1);
	TT_CHECK(!has_inotify(p.pid));
	/* Polling now: an incident still comes at once. */
	int len = snprintf(line, sizeof line, "{\"step\":1000,\"loss\":NaN}\n");
	TT_CHECK(write(fd, line, (size_t)len) == len);
	TT_CHECK(wait_count(db, "SELECT coalesce(sum(count), 0) FROM incidents WHERE "
			    "signature = 'nonfinite:loss'", 1, 2) == 1);
	TT_CHECK(e2e_tend(&stop, ws, "stop", 60, "stop", "--now") == 0);
	TT_CHECK(e2e_wait(&p, 60) == 1);
	close(fd);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "w");
}

/* A backlog (a resumed run's files, a burst of output) is read 4 MiB at a
 * time by the timer with no event pending: that is not a watch missing
 * writes. */
static void test_backlog_keeps_the_watch(void)
{
	char ws[PATH_MAX], path[PATH_MAX + 64], line[128];
	e2e_proc p, stop;
	TT_REQUIRE(sleep_workspace(ws, sizeof ws, "backlog") == 0);
	snprintf(path, sizeof path, "%s/runs/w/stdout.log", ws);
	FILE *f = fopen(path, "w");
	TT_REQUIRE(f);
	memset(line, 'x', 99);
	line[99] = '\n';
	for (int i = 0; i < 140000; i++) /* 14 MB: four capped reads */
		fwrite(line, 1, 100, f);
	fclose(f);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_REQUIRE(e2e_spawnv(&p, ws, "run", (const char *const[]){"run", "w", "--no-status",
								  NULL}) == 0);
	TT_CHECK(wait_count(db, "SELECT count(*) FROM logs WHERE stream = 'stdout'", 140000,
			    30) == 140000);
	e2e_sleep(0.3);
	TT_CHECK(has_inotify(p.pid));
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'ingest'") == 0);
	TT_CHECK(e2e_tend(&stop, ws, "stop", 60, "stop", "--now") == 0);
	TT_CHECK(e2e_wait(&p, 60) == 1);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "w");
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_woken_by_writes);
	TT_RUN(test_polling_without_inotify);
	TT_RUN(test_unseen_writes_switch_to_polling);
	TT_RUN(test_backlog_keeps_the_watch);
	e2e_teardown();
	return TT_DONE();
}
