/*
 * test_store.c - the store against real SQLite files: migrations and
 * version refusal, runs and attempts, batched ingest with its offsets,
 * non-finite values, logs and events, incidents folding, checkpoints, and
 * the incident -> proposal -> evaluation -> promotion path.
 */
#include "store.h"
#include "tend.h"
#include "tt.h"
#include "helpers.h"

#include <math.h>
#include <sys/stat.h>

static char dir[64];

/* A fresh store in dir/name with one run; NULL on failure. */
static store *fresh(const char *name, int64_t *run)
{
	char path[256];
	store *s = NULL;

	th_path(path, sizeof path, dir, name);
	if (store_open(&s, path, STORE_CREATE) != 0) {
		fprintf(stderr, "open: %s\n", tend_error_last());
		return NULL;
	}
	if (run && store_run_create(s, run, "r1", "lr: 0.1\n", "/ws/runs/r1")) {
		fprintf(stderr, "run: %s\n", tend_error_last());
		store_close(s);
		return NULL;
	}
	return s;
}

static void test_fresh_and_reopen(void)
{
	char path[256];
	store *s = NULL;

	th_path(path, sizeof path, dir, "fresh.db");
	TT_CHECK_RC(store_open(&s, path, 0), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "fresh.db: no such database (is this "
		     "a tend workspace?)");
	TT_CHECK(strncmp(tend_error_last(), path, strlen(path)) == 0);
	TT_CHECK(s == NULL);
	TT_CHECK_RC(store_open(&s, path, STORE_CREATE), 0);
	TT_REQUIRE(s);
	TT_CHECK_STR(store_path(s), path);
	TT_CHECK_RC(store_integrity_check(s), 0);
	store_close(s);
	TT_CHECK(th_raw_int(path, "PRAGMA user_version") ==
		 store_schema_version());
	TT_CHECK(th_raw_int(path, "PRAGMA application_id") == 1952804452);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM sqlite_master WHERE "
			    "name IN ('runs', 'metrics', 'audit', "
			    "'ingest_offsets', 'promotions')") == 5);
	/* Reopening applies nothing and keeps WAL. */
	s = NULL;
	TT_CHECK_RC(store_open(&s, path, 0), 0);
	TT_REQUIRE(s);
	TT_CHECK_RC(store_run_create(s, NULL, "a", "", "/w"), 0);
	store_close(s);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM runs") == 1);
	TT_CHECK(th_raw_int(path, "PRAGMA user_version") ==
		 store_schema_version());
}

/* A database written by a newer tend is refused and left byte for byte
 * as it was, whether it was left in rollback or WAL mode. */
static void check_newer_untouched(const char *name, const char *mode_sql)
{
	char path[256], want[512], wal[300];
	char *before, *after;
	size_t nb, na;
	store *s = NULL;

	th_path(path, sizeof path, dir, name);
	TT_REQUIRE(th_raw_exec(path, mode_sql) == SQLITE_OK);
	TT_REQUIRE(th_raw_exec(path, "CREATE TABLE future (x); INSERT INTO "
			       "future VALUES (1); PRAGMA user_version = 7;")
		   == SQLITE_OK);
	before = th_read_file(path, &nb);
	TT_REQUIRE(before);
	TT_CHECK_RC(store_open(&s, path, STORE_CREATE), TEND_EVERSION);
	TT_CHECK(s == NULL);
	snprintf(want, sizeof want, "%s: schema version 7 is newer than this "
		 "tend (knows %d); upgrade tend", path, store_schema_version());
	TT_CHECK_STR(tend_error_last(), want);
	snprintf(wal, sizeof wal, "%s-wal", path);
	TT_CHECK(access(wal, F_OK) != 0);
	/* A read-only reader of a WAL file may leave an empty -wal behind
	 * (SQLite's doing); the database itself must not change. */
	TT_CHECK_RC(store_open(&s, path, STORE_READONLY), TEND_EVERSION);
	after = th_read_file(path, &na);
	TT_CHECK(after && na == nb && memcmp(before, after, nb) == 0);
	free(before);
	free(after);
}

static void test_newer_schema_refused_untouched(void)
{
	check_newer_untouched("newer-delete.db", "PRAGMA journal_mode = DELETE");
	check_newer_untouched("newer-wal.db", "PRAGMA journal_mode = WAL");
}

static void test_foreign_file_refused(void)
{
	char path[256];
	store *s = NULL;
	FILE *f;

	th_path(path, sizeof path, dir, "other-app.db");
	TT_REQUIRE(th_raw_exec(path, "CREATE TABLE t (x); "
			       "PRAGMA user_version = 1;") == SQLITE_OK);
	TT_CHECK_RC(store_open(&s, path, 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "other-app.db: not a tend database");

	th_path(path, sizeof path, dir, "garbage.db");
	f = fopen(path, "wb");
	TT_REQUIRE(f);
	for (int i = 0; i < 512; i++)
		fputs("this is not sqlite ", f);
	fclose(f);
	TT_CHECK_RC(store_open(&s, path, 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "garbage.db: reading the schema "
		     "version: file is not a database");
	TT_CHECK(s == NULL);
}

static void test_older_schema_readonly_refused(void)
{
	char path[256], want[512];
	store *s = NULL;

	th_path(path, sizeof path, dir, "old.db");
	TT_REQUIRE(th_raw_exec(path, "PRAGMA user_version = 0;") == SQLITE_OK);
	TT_CHECK_RC(store_open(&s, path, STORE_READONLY), TEND_EVERSION);
	snprintf(want, sizeof want, "%s: schema version 0 is older than this "
		 "tend (knows %d); open it once for writing to migrate it",
		 path, store_schema_version());
	TT_CHECK_STR(tend_error_last(), want);
}

static void test_runs(void)
{
	int64_t id = 0, id2 = 0;
	store_run *r = NULL, *list = NULL;
	size_t n = 0;
	store *s = fresh("runs.db", &id);

	TT_REQUIRE(s);
	TT_CHECK(id == 1);
	TT_CHECK_RC(store_run_create(s, &id2, "r1", "", "/x"), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "runs.db: a run named 'r1' already exists");
	TT_CHECK_RC(store_run_create(s, &id2, "r2", "b: 2\n", "/ws/runs/r2"), 0);
	TT_CHECK(id2 == 2);
	TT_CHECK_RC(store_run_set_state(s, id, "running"), 0);
	TT_CHECK_RC(store_run_set_started(s, id, 4242, 1000.5), 0);
	TT_CHECK_RC(store_run_set_commit(s, id, "abc123"), 0);
	TT_CHECK_RC(store_run_set_notes(s, id, "first try"), 0);
	TT_CHECK_RC(store_run_set_state(s, 99, "running"), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "no run with id 99");

	TT_CHECK_RC(store_run_get_by_name(s, &r, "r1"), 0);
	TT_REQUIRE(r);
	TT_CHECK_STR(r->name, "r1");
	TT_CHECK_STR(r->state, "running");
	TT_CHECK_STR(r->config, "lr: 0.1\n");
	TT_CHECK_STR(r->workdir, "/ws/runs/r1");
	TT_CHECK_STR(r->scaffold_commit, "abc123");
	TT_CHECK_STR(r->notes, "first try");
	TT_CHECK(r->pid == 4242 && r->started_t == 1000.5);
	TT_CHECK(r->ended_t == 0 && r->exit_status == STORE_NONE);
	TT_CHECK(r->created_t > 1.7e9);
	store_run_free(r);
	r = NULL;

	TT_CHECK_RC(store_run_set_ended(s, id, 3, 2000.25), 0);
	TT_CHECK_RC(store_run_get(s, &r, id), 0);
	TT_REQUIRE(r);
	TT_CHECK(r->exit_status == 3 && r->ended_t == 2000.25);
	TT_CHECK(r->pid == STORE_NONE);
	store_run_free(r);

	TT_CHECK_RC(store_run_get_by_name(s, &r, "nope"), TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "runs.db: no run named 'nope'");
	TT_CHECK_RC(store_run_get(s, &r, 77), TEND_ENOTFOUND);

	TT_CHECK_RC(store_run_list(s, &list, &n), 0);
	TT_CHECK(n == 2);
	if (n == 2) {
		TT_CHECK_STR(list[0].name, "r1");
		TT_CHECK_STR(list[1].name, "r2");
		TT_CHECK_STR(list[1].state, "created");
		TT_CHECK(list[1].scaffold_commit == NULL);
	}
	store_run_list_free(list, n);
	store_close(s);
}

static int count_attempt(const store_attempt *a, void *ud)
{
	store_attempt *last = ud;
	*last = *a;
	last->reason = NULL; /* valid only during the call */
	last->from_checkpoint = NULL;
	return 0;
}

static void test_attempts(void)
{
	int64_t run = 0;
	int n1 = 0, n2 = 0;
	store_attempt last;
	store *s = fresh("attempts.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_attempt_begin(s, &n1, run, "start", NULL, STORE_NONE,
					100, 10.0), 0);
	TT_CHECK_RC(store_attempt_end(s, run, n1, STORE_NONE, 9, 20.0), 0);
	TT_CHECK_RC(store_attempt_begin(s, &n2, run, "crash",
					"/ws/ckpt/step-500.bin", 500, 101,
					30.0), 0);
	TT_CHECK(n1 == 1 && n2 == 2);
	TT_CHECK_RC(store_attempt_end(s, run, 5, 0, STORE_NONE, 1.0),
		    TEND_ENOTFOUND);
	TT_CHECK_RC(store_attempt_begin(s, &n1, 999, "start", NULL, STORE_NONE,
					1, 1.0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "FOREIGN KEY constraint failed");
	memset(&last, 0, sizeof last);
	TT_CHECK_RC(store_attempt_list(s, run, count_attempt, &last), 0);
	TT_CHECK(last.n == 2 && last.from_step == 500 && last.pid == 101);
	TT_CHECK(last.exit_status == STORE_NONE && last.signal == STORE_NONE);
	TT_CHECK(last.ended_t == 0 && last.started_t == 30.0);
	store_close(s);
}

/* Collects what store_metrics_read reports. */
typedef struct seen {
	int n;
	int64_t step[16];
	int attempt[16];
	double value[16], t[16];
} seen;

static int collect(int64_t step, int attempt, double value, double t,
		   void *ud)
{
	seen *c = ud;

	if (c->n < 16) {
		c->step[c->n] = step;
		c->attempt[c->n] = attempt;
		c->value[c->n] = value;
		c->t[c->n] = t;
	}
	c->n++;
	return 0;
}

static void test_batch_and_offset_atomic(void)
{
	int64_t run = 0, off = -1;
	seen c = { 0 };
	store *s = fresh("batch.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_offset_get(s, &off, run, "metrics.jsonl"), 0);
	TT_CHECK(off == 0);
	/* Committed batch: rows and offset together. */
	TT_CHECK_RC(store_batch_begin(s), 0);
	TT_CHECK_RC(store_batch_begin(s), TEND_EINVAL);
	TT_CHECK_RC(store_metric_put(s, run, 1, 0, "loss", 2.5, 1.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 1, "loss", 2.25, 2.0), 0);
	TT_CHECK_RC(store_offset_set(s, run, "metrics.jsonl", 120), 0);
	TT_CHECK_RC(store_batch_commit(s), 0);
	/* Rolled-back batch: neither rows nor offset, and a name first seen
	 * in it ("gnorm") must not linger in the name cache. */
	TT_CHECK_RC(store_batch_begin(s), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 2, "loss", 2.0, 3.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 2, "gnorm", 0.5, 3.0), 0);
	TT_CHECK_RC(store_log_put(s, run, 1, 3.0, STORE_STDOUT, "x", 1), 0);
	TT_CHECK_RC(store_offset_set(s, run, "metrics.jsonl", 240), 0);
	TT_CHECK_RC(store_batch_rollback(s), 0);
	TT_CHECK_RC(store_offset_get(s, &off, run, "metrics.jsonl"), 0);
	TT_CHECK(off == 120);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 0, collect, &c), 0);
	TT_CHECK(c.n == 2);
	TT_CHECK_RC(store_metrics_read(s, run, "gnorm", 0, collect, &c),
		    TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "batch.db: run 1 has no metric named "
		     "'gnorm'");
	TT_CHECK_RC(store_batch_commit(s), TEND_EINVAL);
	/* The name works again after the rollback (a stale cached id would
	 * point at nothing). */
	TT_CHECK_RC(store_metric_put(s, run, 1, 2, "gnorm", 0.5, 3.0), 0);
	c.n = 0;
	TT_CHECK_RC(store_metrics_read(s, run, "gnorm", 0, collect, &c), 0);
	TT_CHECK(c.n == 1 && c.value[0] == 0.5);
	store_close(s);
}

/* Values wait in the store to be written many at a time; reads inside
 * the batch still see them, and a rollback drops them. */
static void test_batch_buffer(void)
{
	char path[256];
	int64_t run = 0;
	seen c = { 0 };
	store *s = fresh("buffer.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_batch_begin(s), 0);
	for (int i = 0; i < 123; i++)
		TT_CHECK_RC(store_metric_put(s, run, 1, i, "loss", i, i), 0);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 120, collect, &c), 0);
	TT_CHECK(c.n == 3 && c.step[2] == 122 && c.value[2] == 122);
	TT_CHECK_RC(store_batch_rollback(s), 0);
	c.n = 0;
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 0, collect, &c),
		    TEND_ENOTFOUND);
	TT_CHECK_RC(store_batch_begin(s), 0);
	for (int i = 0; i < 77; i++)
		TT_CHECK_RC(store_metric_put(s, run, 2, i, "loss", -i, i), 0);
	TT_CHECK_RC(store_batch_commit(s), 0);
	store_close(s);
	th_path(path, sizeof path, dir, "buffer.db");
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics WHERE "
			    "run_id = 1 AND attempt = 2 AND value <= 0") == 77);
	TT_CHECK(th_raw_int(path, "SELECT sum(step) FROM metrics") == 76 * 77 / 2);
}

/* What series k of test_batch_out_of_order holds at step: every 100th
 * step was put twice, the later time negated. */
static double unordered_value(int k, int64_t step)
{
	return step % 100 == 0 ? -(double)step : (double)step * 10.0 + k;
}

typedef struct unordered {
	int k, n, bad;
	int64_t last;
} unordered;

static int check_unordered(int64_t step, int attempt, double value, double t,
			   void *ud)
{
	unordered *c = ud;

	if (step <= c->last || attempt != 1 || t != (double)step ||
	    value != unordered_value(c->k, step))
		c->bad++;
	c->last = step;
	c->n++;
	return 0;
}

/* Values wait in the store and are written in key order, a window at a
 * time (4,096 values). Put in any order over more than one window, each
 * comes back once and in step order, and a value put twice keeps the
 * later one whether both puts fell in one window or in two. */
static void test_batch_out_of_order(void)
{
	static const char *const names[] = { "c", "a", "b" };
	char path[256];
	int64_t run = 0;
	store *s = fresh("unordered.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_batch_begin(s), 0);
	/* 7919 is prime to 2000: i * 7919 % 2000 visits every step once. */
	for (int64_t i = 0; i < 2000; i++) {
		int64_t step = i * 7919 % 2000;

		for (int k = 0; k < 3; k++)
			TT_CHECK_RC(store_metric_put(s, run, 1, step, names[k],
				step % 100 ? unordered_value(k, step) : 1e9,
				(double)step), 0);
	}
	for (int64_t step = 0; step < 2000; step += 100)
		for (int k = 0; k < 3; k++)
			TT_CHECK_RC(store_metric_put(s, run, 1, step, names[k],
						     -(double)step,
						     (double)step), 0);
	TT_CHECK_RC(store_batch_commit(s), 0);
	for (int k = 0; k < 3; k++) {
		unordered c = { k, 0, 0, -1 };

		TT_CHECK_RC(store_metrics_read(s, run, names[k], 0,
					       check_unordered, &c), 0);
		TT_CHECK(c.n == 2000);
		TT_CHECK(c.bad == 0);
	}
	store_close(s);
	th_path(path, sizeof path, dir, "unordered.db");
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics") == 6000);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics WHERE "
			    "value = 1e9") == 0);
}

/* A new file gets 8 KiB pages (ingest is faster with them, docs/store.md);
 * a file whose pages already exist keeps their size, 4 KiB for the stores
 * made before, and works as well. */
static void test_page_size(void)
{
	char path[256];
	int64_t run = 0;
	seen c = { 0 };
	store *s = fresh("pages8k.db", &run);

	TT_REQUIRE(s);
	store_close(s);
	th_path(path, sizeof path, dir, "pages8k.db");
	TT_CHECK(th_raw_int(path, "PRAGMA page_size") == 8192);
	th_path(path, sizeof path, dir, "pages4k.db");
	TT_REQUIRE(th_raw_exec(path, "PRAGMA page_size = 4096; CREATE TABLE "
			       "x (y); DROP TABLE x;") == SQLITE_OK);
	s = NULL;
	TT_CHECK_RC(store_open(&s, path, STORE_CREATE), 0);
	TT_REQUIRE(s);
	TT_CHECK_RC(store_run_create(s, &run, "r1", "", "/w"), 0);
	TT_CHECK_RC(store_batch_begin(s), 0);
	for (int i = 0; i < 5000; i++)
		TT_CHECK_RC(store_metric_put(s, run, 1, i, i % 2 ? "a" : "b",
					     i, i), 0);
	TT_CHECK_RC(store_batch_commit(s), 0);
	TT_CHECK_RC(store_metrics_read(s, run, "a", 4990, collect, &c), 0);
	TT_CHECK(c.n == 5 && c.step[0] == 4991 && c.value[4] == 4999);
	TT_CHECK_RC(store_integrity_check(s), 0);
	store_close(s);
	TT_CHECK(th_raw_int(path, "PRAGMA page_size") == 4096);
}

static void test_metric_limits(void)
{
	int64_t run = 0;
	store *s = fresh("limits.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_metric_put(s, run, 1, -1, "loss", 1, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "limits.db: writing a metric value: "
		     "step -1 or attempt 1 out of range (0..2147483647, 0..1023)");
	TT_CHECK_RC(store_metric_put(s, run, 1, INT64_C(1) << 31, "loss", 1, 1),
		    TEND_EINVAL);
	TT_CHECK_RC(store_metric_put(s, run, 1024, 0, "loss", 1, 1), TEND_EINVAL);
	TT_CHECK_RC(store_metric_put(s, run, 1, 0, "", 1, 1), TEND_EINVAL);
	TT_CHECK_RC(store_metric_put(s, run, 1, 0, NULL, 1, 1), TEND_EINVAL);
	TT_CHECK_RC(store_metric_put(s, run, 1023, 2147483647, "loss", 1, 1), 0);
	TT_CHECK_RC(store_metric_put(s, 999, 1, 1, "loss", 1, 1), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "limits.db: recording a metric series: "
		     "no run with id 999");
	store_close(s);
}

/* The `metrics` view shows the packed rows as (run_id, name_id, step,
 * attempt, value, t), for queries and for the sqlite3 shell. */
static void test_metrics_view(void)
{
	char path[256];
	int64_t run = 0, run2 = 0;
	store *s = fresh("view.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_run_create(s, &run2, "r2", "", "/w"), 0);
	TT_CHECK_RC(store_metric_put(s, run, 3, 1000000, "loss", 0.25, 9.5), 0);
	TT_CHECK_RC(store_metric_put(s, run2, 1, 7, "loss", 1, 1), 0);
	TT_CHECK_RC(store_metric_put(s, run2, 1, 7, "lr", NAN, 1), 0);
	store_close(s);
	th_path(path, sizeof path, dir, "view.db");
	TT_CHECK(th_raw_int(path, "SELECT step * 10 + attempt FROM metrics "
			    "WHERE run_id = 1") == 10000003);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics m JOIN "
			    "metric_names n ON n.id = m.name_id WHERE "
			    "m.run_id = 2 AND n.name = 'lr' AND value IS NULL "
			    "AND t = 1") == 1);
	TT_CHECK(th_raw_int(path, "SELECT count(*) FROM metrics") == 3);
}

static void test_close_rolls_back_open_batch(void)
{
	char path[256];
	int64_t run = 0, off = -1;
	store *s = fresh("close-batch.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_batch_begin(s), 0);
	TT_CHECK_RC(store_offset_set(s, run, "m", 10), 0);
	store_close(s);
	s = NULL;
	TT_CHECK_RC(store_open(&s, th_path(path, sizeof path, dir,
					   "close-batch.db"), 0), 0);
	TT_REQUIRE(s);
	TT_CHECK_RC(store_offset_get(s, &off, run, "m"), 0);
	TT_CHECK(off == 0);
	store_close(s);
}

static void test_nonfinite_roundtrip(void)
{
	int64_t run = 0;
	seen c = { 0 };
	store *s = fresh("nonfinite.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_metric_put(s, run, 1, 0, "loss", NAN, 1.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 1, "loss", INFINITY, 2.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 2, "loss", -INFINITY, 3.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 3, "loss", 0.1, 4.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 4, "loss", -1e-300, 5.0), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 5, "loss", 1.7976931348623157e308,
				     6.0), 0);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 0, collect, &c), 0);
	TT_REQUIRE(c.n == 6);
	TT_CHECK(isnan(c.value[0]));
	TT_CHECK(isinf(c.value[1]) && c.value[1] > 0);
	TT_CHECK(isinf(c.value[2]) && c.value[2] < 0);
	TT_CHECK(c.value[3] == 0.1);
	TT_CHECK(c.value[4] == -1e-300);
	TT_CHECK(c.value[5] == 1.7976931348623157e308);
	TT_CHECK(c.t[0] == 1.0 && c.step[5] == 5);
	store_close(s);
}

static void test_metrics_order_and_replace(void)
{
	int64_t run = 0, run2 = 0;
	seen c = { 0 };
	store *s = fresh("order.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_run_create(s, &run2, "r2", "", "/w"), 0);
	/* A restart from a checkpoint repeats steps under attempt 2. */
	TT_CHECK_RC(store_metric_put(s, run, 1, 10, "loss", 1.0, 1), 0);
	TT_CHECK_RC(store_metric_put(s, run, 1, 11, "loss", 9.0, 2), 0);
	TT_CHECK_RC(store_metric_put(s, run, 2, 11, "loss", 0.9, 3), 0);
	TT_CHECK_RC(store_metric_put(s, run, 2, 12, "loss", 0.8, 4), 0);
	TT_CHECK_RC(store_metric_put(s, run, 2, 12, "loss", 0.7, 5), 0);
	TT_CHECK_RC(store_metric_put(s, run2, 1, 11, "loss", 5.0, 6), 0);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 11, collect, &c), 0);
	TT_REQUIRE(c.n == 3);
	TT_CHECK(c.step[0] == 11 && c.attempt[0] == 1 && c.value[0] == 9.0);
	TT_CHECK(c.step[1] == 11 && c.attempt[1] == 2 && c.value[1] == 0.9);
	TT_CHECK(c.step[2] == 12 && c.value[2] == 0.7 && c.t[2] == 5);
	store_close(s);
}

static int stop_at_two(int64_t step, int attempt, double v, double t,
		       void *ud)
{
	(void)step; (void)attempt; (void)v; (void)t;
	return ++*(int *)ud == 2 ? 42 : 0;
}

static int reenter(int64_t step, int attempt, double v, double t, void *ud)
{
	seen c = { 0 };
	(void)step; (void)attempt; (void)v; (void)t;
	return store_metrics_read(ud, 1, "loss", 0, collect, &c);
}

static void test_callback_stop_and_reentry(void)
{
	int64_t run = 0;
	int calls = 0;
	seen c = { 0 };
	store *s = fresh("stop.db", &run);

	TT_REQUIRE(s);
	for (int i = 0; i < 5; i++)
		TT_CHECK_RC(store_metric_put(s, run, 1, i, "loss", i, i), 0);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 0, stop_at_two, &calls),
		    42);
	TT_CHECK(calls == 2);
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 0, reenter, s),
		    TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "re-entered");
	/* Both stops left the statement usable. */
	TT_CHECK_RC(store_metrics_read(s, run, "loss", 3, collect, &c), 0);
	TT_CHECK(c.n == 2);
	store_close(s);
}

typedef struct names { int n; char buf[256]; } names;

static int add_name(const char *name, void *ud)
{
	names *nm = ud;
	size_t len = strlen(nm->buf);

	snprintf(nm->buf + len, sizeof nm->buf - len, "%s%s", len ? "," : "",
		 name);
	nm->n++;
	return 0;
}

static void test_metric_names(void)
{
	int64_t run = 0, run2 = 0;
	names nm = { 0, "" };
	store *s = fresh("names.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_run_create(s, &run2, "r2", "", "/w"), 0);
	TT_CHECK_RC(store_batch_begin(s), 0);
	for (int step = 0; step < 50; step++) {
		TT_CHECK_RC(store_metric_put(s, run, 1, step, "tokens_per_s", 1, 0), 0);
		TT_CHECK_RC(store_metric_put(s, run, 1, step, "loss", 1, 0), 0);
		TT_CHECK_RC(store_metric_put(s, run, 1, step, "grad_norm", 1, 0), 0);
	}
	TT_CHECK_RC(store_metric_put(s, run2, 1, 0, "other", 1, 0), 0);
	TT_CHECK_RC(store_batch_commit(s), 0);
	TT_CHECK_RC(store_metric_names(s, run, add_name, &nm), 0);
	TT_CHECK_STR(nm.buf, "grad_norm,loss,tokens_per_s");
	nm.n = 0;
	nm.buf[0] = '\0';
	TT_CHECK_RC(store_metric_names(s, 12345, add_name, &nm), 0);
	TT_CHECK(nm.n == 0);
	store_close(s);
}

typedef struct logs { int n; int64_t last; char text[256]; } logs;

static int add_log(const store_log *l, void *ud)
{
	logs *g = ud;
	size_t len = strlen(g->text);

	snprintf(g->text + len, sizeof g->text - len, "[%d:%.*s:%zu]",
		 (int)l->stream, (int)strlen(l->line), l->line, l->len);
	g->last = l->id;
	g->n++;
	return 0;
}

static void test_logs(void)
{
	int64_t run = 0;
	logs g = { 0, 0, "" };
	static const char bin[] = { 'a', 0, 'b' };
	store *s = fresh("logs.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_log_put(s, run, 1, 1.0, STORE_STDOUT, "step 1 ok", 9), 0);
	TT_CHECK_RC(store_log_put(s, run, 1, 2.0, STORE_STDERR, "warn: x", 4), 0);
	TT_CHECK_RC(store_log_put(s, run, 1, 3.0, STORE_MALFORMED, bin, 3), 0);
	TT_CHECK_RC(store_log_put(s, run, 1, 3.0, (store_stream)9, "x", 1),
		    TEND_EINVAL);
	TT_CHECK_RC(store_logs_read(s, run, 0, add_log, &g), 0);
	TT_CHECK(g.n == 3);
	TT_CHECK_STR(g.text, "[0:step 1 ok:9][1:warn:4][3:a:3]");
	g.n = 0;
	g.text[0] = '\0';
	TT_CHECK_RC(store_log_put(s, run, 1, 4.0, STORE_EVENT, "restart", 7), 0);
	TT_CHECK_RC(store_logs_read(s, run, g.last, add_log, &g), 0);
	TT_CHECK_STR(g.text, "[2:restart:7]");
	store_close(s);
}

static int add_event(const store_event *e, void *ud)
{
	logs *g = ud;
	size_t len = strlen(g->text);

	snprintf(g->text + len, sizeof g->text - len, "[%s|%s|%s|%lld]",
		 e->kind, e->reason ? e->reason : "-",
		 e->detail ? e->detail : "-", (long long)e->step);
	g->n++;
	return 0;
}

static void test_events(void)
{
	int64_t run = 0;
	logs g = { 0, 0, "" };
	store *s = fresh("events.db", &run);

	TT_REQUIRE(s);
	TT_CHECK_RC(store_event_put(s, run, 1, 5.0, 100, "restart", "crash",
				    "{\"signal\":9}"), 0);
	TT_CHECK_RC(store_event_put(s, run, 2, 6.0, STORE_NONE, "reload", NULL,
				    NULL), 0);
	TT_CHECK_RC(store_event_put(s, 999, 2, 6.0, 1, "x", NULL, NULL),
		    TEND_EINVAL);
	TT_CHECK_RC(store_events_read(s, run, 0, add_event, &g), 0);
	TT_CHECK_STR(g.text, "[restart|crash|{\"signal\":9}|100][reload|-|-|-1]");
	store_close(s);
}

static int count_inc(const store_incident *i, void *ud)
{
	(void)i;
	++*(int *)ud;
	return 0;
}

static void test_incident_folding(void)
{
	int64_t run = 0, id1 = 0, id2 = 0, id3 = 0;
	int is_new = -1, n = 0;
	store_incident in = { 0 }, *got = NULL;
	store *s = fresh("incidents.db", &run);

	TT_REQUIRE(s);
	in.run_id = run;
	in.kind = "spike";
	in.severity = "warning";
	in.signature = "spike:loss";
	in.onset_step = 100;
	in.first_t = 10.0;
	in.summary = "loss spiked 4.0x";
	in.evidence = "{\"ratio\":4.0}";
	TT_CHECK_RC(store_incident_upsert(s, &id1, &is_new, &in), 0);
	TT_CHECK(is_new == 1);
	in.onset_step = 140;
	in.first_t = 14.0;
	in.severity = "critical";
	in.summary = "loss spiked 9x";
	TT_CHECK_RC(store_incident_upsert(s, &id2, &is_new, &in), 0);
	TT_CHECK(is_new == 0 && id2 == id1);
	in.onset_step = 150;
	in.first_t = 15.0;
	in.severity = "info";
	TT_CHECK_RC(store_incident_upsert(s, &id2, &is_new, &in), 0);
	TT_CHECK(is_new == 0 && id2 == id1);

	TT_CHECK_RC(store_incident_get(s, &got, id1), 0);
	TT_REQUIRE(got);
	TT_CHECK(got->count == 3);
	TT_CHECK(got->onset_step == 100 && got->last_step == 150);
	TT_CHECK(got->first_t == 10.0 && got->last_t == 15.0);
	TT_CHECK_STR(got->severity, "critical");
	TT_CHECK_STR(got->summary, "loss spiked 4.0x");
	TT_CHECK_STR(got->evidence, "{\"ratio\":4.0}");
	TT_CHECK_STR(got->state, "open");
	TT_CHECK(got->resolved_t == 0 && got->resolution == NULL);
	store_incident_free(got);
	got = NULL;

	/* Once resolved, the same signature opens a new incident. */
	TT_CHECK_RC(store_incident_resolve(s, id1, 20.0, "lr lowered"), 0);
	TT_CHECK_RC(store_incident_resolve(s, id1, 21.0, "again"),
		    TEND_ENOTFOUND);
	TT_CHECK_HAS(tend_error_last(), "no open incident with id");
	TT_CHECK_RC(store_incident_upsert(s, &id3, &is_new, &in), 0);
	TT_CHECK(is_new == 1 && id3 != id1);

	/* Bad input is refused by the schema, not stored. */
	in.severity = "apocalyptic";
	TT_CHECK_RC(store_incident_upsert(s, NULL, NULL, &in), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "CHECK constraint failed");
	in.severity = "info";
	in.evidence = "{not json";
	in.signature = "other";
	TT_CHECK_RC(store_incident_upsert(s, NULL, NULL, &in), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "incidents.db: recording an incident: "
		     "not valid JSON in the evidence: 1:2: ");

	TT_CHECK_RC(store_incident_list(s, run, "open", count_inc, &n), 0);
	TT_CHECK(n == 1);
	n = 0;
	TT_CHECK_RC(store_incident_list(s, 0, NULL, count_inc, &n), 0);
	TT_CHECK(n == 2);
	store_close(s);
}

static int count_ckpt(const store_checkpoint *c, void *ud)
{
	(void)c;
	++*(int *)ud;
	return 0;
}

static void test_checkpoints(void)
{
	int64_t run = 0, a = 0, b = 0;
	int n = 0;
	store_checkpoint c = { 0 }, *got = NULL;
	store *s = fresh("ckpt.db", &run);

	TT_REQUIRE(s);
	c.run_id = run;
	c.attempt = 1;
	c.step = 100;
	c.path = "ckpt/step-100.bin";
	c.sha256 = "aa";
	c.bytes = 1024;
	c.good = STORE_NONE;
	TT_CHECK_RC(store_checkpoint_add(s, &a, &c), 0);
	TT_CHECK_RC(store_checkpoint_add(s, &a, &c), TEND_EEXISTS);
	TT_CHECK_HAS(tend_error_last(), "already has a checkpoint at "
		     "ckpt/step-100.bin");
	c.step = 200;
	c.path = "ckpt/step-200.bin";
	TT_CHECK_RC(store_checkpoint_add(s, &b, &c), 0);
	TT_CHECK_RC(store_checkpoint_latest_good(s, &got, run), TEND_ENOTFOUND);
	TT_CHECK_RC(store_checkpoint_set_good(s, a, 1), 0);
	TT_CHECK_RC(store_checkpoint_set_good(s, b, 0), 0);
	TT_CHECK_RC(store_checkpoint_set_good(s, 999, 1), TEND_ENOTFOUND);
	TT_CHECK_RC(store_checkpoint_latest_good(s, &got, run), 0);
	TT_REQUIRE(got);
	TT_CHECK(got->step == 100 && got->good == 1 && got->bytes == 1024);
	TT_CHECK_STR(got->path, "ckpt/step-100.bin");
	TT_CHECK(got->t > 1.7e9);
	store_checkpoint_free(got);
	TT_CHECK_RC(store_checkpoint_list(s, run, count_ckpt, &n), 0);
	TT_CHECK(n == 2);
	store_close(s);
}

static int count_any(const void *p, void *ud)
{
	(void)p;
	++*(int *)ud;
	return 0;
}

static int count_prop(const store_proposal *p, void *ud)
{
	return count_any(p, ud);
}

static int count_eval(const store_evaluation *e, void *ud)
{
	return count_any(e, ud);
}

static int count_promo(const store_promotion *p, void *ud)
{
	return count_any(p, ud);
}

/* The whole path an incident takes to a promoted patch. */
static void test_proposal_path(void)
{
	int64_t run = 0, base = 0, cand = 0, inc = 0, p1 = 0, p2 = 0, ev = 0,
		pr = 0;
	int n = 0;
	store_incident in = { 0 };
	store_proposal p = { 0 }, *gp = NULL;
	store_evaluation e = { 0 }, *ge = NULL;
	store_promotion m = { 0 }, *gm = NULL;
	store *s = fresh("path.db", &run);

	TT_REQUIRE(s);
	in.run_id = run;
	in.kind = "nonfinite";
	in.severity = "critical";
	in.signature = "nan:loss";
	in.onset_step = 7;
	TT_CHECK_RC(store_incident_upsert(s, &inc, NULL, &in), 0);

	p.incident_id = inc;
	p.proposer = "model";
	p.model = "m-large";
	p.diagnosis = "lr too high";
	p.confidence = 0.75;
	p.diff = "--- a/lua/schedule.lua\n+++ b/lua/schedule.lua\n";
	p.rationale = "warmup";
	p.expected_effect = "no NaN";
	p.prompt_sha256 = "11";
	p.response_sha256 = "22";
	TT_CHECK_RC(store_proposal_insert(s, &p1, &p), 0);
	p.confidence = STORE_NONE;
	TT_CHECK_RC(store_proposal_insert(s, &p2, &p), 0);
	p.confidence = 1.5;
	TT_CHECK_RC(store_proposal_insert(s, NULL, &p), TEND_EINVAL);
	TT_CHECK_RC(store_proposal_set_state(s, p2, "rejected", "diff does "
					     "not apply"), 0);
	TT_CHECK_RC(store_proposal_set_branch(s, p1, "tend/p1", "c0ffee"), 0);
	TT_CHECK_RC(store_proposal_set_state(s, p1, "evaluating", NULL), 0);
	TT_CHECK_RC(store_proposal_get(s, &gp, p2), 0);
	TT_REQUIRE(gp);
	TT_CHECK(gp->n == 2 && gp->confidence == STORE_NONE);
	TT_CHECK_STR(gp->reject_reason, "diff does not apply");
	TT_CHECK_STR(gp->state, "rejected");
	store_proposal_free(gp);
	TT_CHECK_RC(store_proposal_get(s, &gp, p1), 0);
	TT_REQUIRE(gp);
	TT_CHECK(gp->n == 1 && gp->confidence == 0.75 && gp->incident_id == inc);
	TT_CHECK_STR(gp->branch, "tend/p1");
	TT_CHECK_STR(gp->commit, "c0ffee");
	TT_CHECK_STR(gp->state, "evaluating");
	TT_CHECK_STR(gp->diff, p.diff);
	TT_CHECK(gp->reject_reason == NULL && gp->created_t > 1.7e9);
	store_proposal_free(gp);

	TT_CHECK_RC(store_run_create(s, &base, "p1-base", "", "/w/b"), 0);
	TT_CHECK_RC(store_run_create(s, &cand, "p1-cand", "", "/w/c"), 0);
	e.proposal_id = p1;
	e.stage = "short";
	TT_CHECK_RC(store_evaluation_insert(s, &ev, &e), 0);
	TT_CHECK_RC(store_evaluation_set_runs(s, ev, base, cand), 0);
	TT_CHECK_RC(store_evaluation_finish(s, ev, "done", "pass", "loss -3%",
					    "{\"loss\":[2.1,2.04]}", "ab12",
					    99.0), 0);
	TT_CHECK_RC(store_evaluation_finish(s, ev, "done", "maybe", NULL, NULL,
					    NULL, 0), TEND_EINVAL);
	TT_CHECK_RC(store_evaluation_finish(s, ev, "done", "pass", NULL, "[1,",
					    NULL, 0), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "not valid JSON in the figures: 1:4: ");
	TT_CHECK_RC(store_evaluation_get(s, &ge, ev), 0);
	TT_REQUIRE(ge);
	TT_CHECK(ge->baseline_run_id == base && ge->candidate_run_id == cand);
	TT_CHECK_STR(ge->verdict, "pass");
	TT_CHECK_STR(ge->state, "done");
	TT_CHECK_STR(ge->figures, "{\"loss\":[2.1,2.04]}");
	TT_CHECK_STR(ge->gates_sha256, "ab12");
	TT_CHECK(ge->ended_t == 99.0 && ge->started_t > 1.7e9);
	store_evaluation_free(ge);

	m.proposal_id = p1;
	m.evaluation_id = ev;
	m.commit = "c0ffee";
	m.merged_commit = "deadbeef";
	m.approved_by = "gates";
	TT_CHECK_RC(store_promotion_insert(s, &pr, &m), 0);
	TT_CHECK_RC(store_promotion_get(s, &gm, pr), 0);
	TT_REQUIRE(gm);
	TT_CHECK_STR(gm->merged_commit, "deadbeef");
	TT_CHECK(gm->evaluation_id == ev && gm->t > 1.7e9);
	store_promotion_free(gm);
	TT_CHECK_RC(store_promotion_get(s, &gm, 42), TEND_ENOTFOUND);
	m.proposal_id = 4242;
	TT_CHECK_RC(store_promotion_insert(s, NULL, &m), TEND_EINVAL);

	TT_CHECK_RC(store_proposal_list(s, inc, count_prop, &n), 0);
	TT_CHECK(n == 2);
	n = 0;
	TT_CHECK_RC(store_evaluation_list(s, p1, count_eval, &n), 0);
	TT_CHECK(n == 1);
	n = 0;
	TT_CHECK_RC(store_promotion_list(s, 0, count_promo, &n), 0);
	TT_CHECK(n == 1);
	store_close(s);
}

static void test_readonly_reads(void)
{
	char path[256];
	int64_t run = 0;
	seen c = { 0 };
	store *s = fresh("ro.db", &run), *ro = NULL;

	TT_REQUIRE(s);
	TT_CHECK_RC(store_metric_put(s, run, 1, 1, "loss", 3.0, 1.0), 0);
	store_close(s);
	th_path(path, sizeof path, dir, "ro.db");
	TT_CHECK_RC(store_open(&ro, path, STORE_READONLY), 0);
	TT_REQUIRE(ro);
	TT_CHECK_RC(store_metrics_read(ro, run, "loss", 0, collect, &c), 0);
	TT_CHECK(c.n == 1 && c.value[0] == 3.0);
	TT_CHECK_RC(store_run_create(ro, NULL, "r9", "", "/w"), TEND_EIO);
	TT_CHECK_HAS(tend_error_last(), "ro.db: creating a run: attempt to "
		     "write a readonly database");
	store_close(ro);
}

int main(void)
{
	th_tmpdir(dir);
	TT_RUN(test_fresh_and_reopen);
	TT_RUN(test_newer_schema_refused_untouched);
	TT_RUN(test_foreign_file_refused);
	TT_RUN(test_older_schema_readonly_refused);
	TT_RUN(test_runs);
	TT_RUN(test_attempts);
	TT_RUN(test_batch_and_offset_atomic);
	TT_RUN(test_batch_buffer);
	TT_RUN(test_batch_out_of_order);
	TT_RUN(test_page_size);
	TT_RUN(test_metric_limits);
	TT_RUN(test_metrics_view);
	TT_RUN(test_close_rolls_back_open_batch);
	TT_RUN(test_nonfinite_roundtrip);
	TT_RUN(test_metrics_order_and_replace);
	TT_RUN(test_callback_stop_and_reentry);
	TT_RUN(test_metric_names);
	TT_RUN(test_logs);
	TT_RUN(test_events);
	TT_RUN(test_incident_folding);
	TT_RUN(test_checkpoints);
	TT_RUN(test_proposal_path);
	TT_RUN(test_readonly_reads);
	th_rmtree(dir);
	return TT_DONE();
}
