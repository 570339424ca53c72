/*
 * test_store_nomem.c - allocation failure. SQLite is given an allocator
 * that fails exactly the Nth allocation (the store allocates through
 * sqlite3_malloc too, so its own memory is covered). A scenario runs once
 * for every N until it gets through without reaching N; each run must end
 * in success or a clean error naming the file, leak nothing, and leave a
 * database that opens, passes the integrity check and keeps its audit
 * chain.
 *
 * Two scenarios: creating a database (migrations), and, on a copy of a
 * migrated database, everything else: reopening, ingest, reading,
 * incidents, proposals, audit. See sweep() for which N are tried.
 *
 * The scratch directory is on /dev/shm when there is one: thousands of
 * opens with an fsync each would take minutes on a disk, and the disk's
 * own failures are test_store_errors' business.
 *
 * A binary of its own: sqlite3_config() must come before SQLite starts.
 */
#include "store.h"
#include "tend.h"
#include "tt.h"
#include "helpers.h"

static sqlite3_mem_methods real;
static long n_alloc, fail_at, live;
static long opened_at; /* n_alloc when the scenario's store_open returned */

static void *x_malloc(int n)
{
	void *p;

	if (++n_alloc == fail_at)
		return NULL;
	if ((p = real.xMalloc(n)))
		live++;
	return p;
}

static void x_free(void *p)
{
	if (p)
		live--;
	real.xFree(p);
}

static void *x_realloc(void *p, int n)
{
	if (++n_alloc == fail_at)
		return NULL;
	return real.xRealloc(p, n);
}

static int x_size(void *p) { return real.xSize(p); }
static int x_roundup(int n) { return real.xRoundup(n); }
static int x_init(void *ud) { return real.xInit(ud); }
static void x_shutdown(void *ud) { real.xShutdown(ud); }

static char dir[64];

static int on_metric(int64_t step, int attempt, double v, double t, void *ud)
{
	(void)step; (void)attempt; (void)v; (void)t;
	++*(int *)ud;
	return 0;
}

static int on_name(const char *name, void *ud)
{
	(void)name;
	++*(int *)ud;
	return 0;
}

static int on_log(const store_log *l, void *ud)
{
	(void)l;
	++*(int *)ud;
	return 0;
}

/* Ingest: one batch with values, a log line and its offset. */
static int ingest(store *s, int64_t run)
{
	static const char *const names[] = { "loss", "lr", "grad_norm" };
	int rc;

	if ((rc = store_batch_begin(s)) != 0)
		return rc;
	for (int step = 0; step < 4 && rc == 0; step++)
		for (int k = 0; k < 3 && rc == 0; k++)
			rc = store_metric_put(s, run, 1, step, names[k],
					      step * 0.5, step);
	if (rc == 0)
		rc = store_log_put(s, run, 1, 1.0, STORE_STDOUT, "hello", 5);
	if (rc == 0)
		rc = store_offset_set(s, run, "metrics.jsonl", 4096);
	if (rc == 0)
		return store_batch_commit(s);
	store_batch_rollback(s);
	return rc;
}

/* Everything after ingest: reading, incidents, proposals, audit. */
static int decide(store *s, int64_t run)
{
	store_incident in = { 0 };
	store_proposal p = { 0 }, *got = NULL;
	store_run *runs = NULL;
	size_t nruns = 0;
	int64_t inc = 0, pid = 0;
	int n = 0, rc;

	in.run_id = run;
	in.kind = "spike";
	in.severity = "warning";
	in.signature = "spike:loss";
	in.onset_step = 3;
	in.evidence = "{\"ratio\":5}";
	p.proposer = "model";
	p.diff = "--- a\n+++ b\n";
	if ((rc = store_metrics_read(s, run, "loss", 0, on_metric, &n)) ||
	    (rc = store_metric_names(s, run, on_name, &n)) ||
	    (rc = store_logs_read(s, run, 0, on_log, &n)) ||
	    (rc = store_incident_upsert(s, &inc, NULL, &in)) ||
	    (rc = store_incident_upsert(s, &inc, NULL, &in)) ||
	    (p.incident_id = inc, rc = store_proposal_insert(s, &pid, &p)) ||
	    (rc = store_proposal_get(s, &got, pid)) ||
	    (rc = store_run_list(s, &runs, &nruns)) ||
	    (rc = store_audit_append(s, "tend", "propose", "p:1", "{}", NULL)) ||
	    (rc = store_audit_append(s, "tend", "promote", "p:1", NULL, NULL)) ||
	    (rc = store_audit_verify(s, NULL)))
		goto done;
	rc = store_integrity_check(s);
done:
	store_proposal_free(got);
	store_run_list_free(runs, nruns);
	return rc;
}

/* Everything but creating: reopen, ingest, read, decide, audit. */
static int scenario_work(const char *path)
{
	store *s = NULL;
	int64_t run = 0;
	int rc;

	rc = store_open(&s, path, 0);
	opened_at = n_alloc;
	if (rc == 0 &&
	    (rc = store_run_create(s, &run, "r1", "lr: 1\n", "/w")) == 0 &&
	    (rc = ingest(s, run)) == 0)
		rc = decide(s, run);
	store_close(s);
	return rc;
}

static int scenario_create(const char *path)
{
	store *s = NULL;
	int rc = store_open(&s, path, STORE_CREATE);

	opened_at = n_alloc;
	store_close(s);
	return rc;
}

/* With the allocator healthy again, what a failed scenario left must
 * open (finishing any migration), be intact, keep its audit chain, and
 * hold the ingest batch wholly or not at all. */
static int still_sound(const char *path)
{
	store *s = NULL;
	int64_t off = -1;
	int n = 0, rc = store_open(&s, path, STORE_CREATE);

	if (rc == 0)
		rc = store_integrity_check(s);
	if (rc == 0)
		rc = store_audit_verify(s, NULL);
	if (rc == 0)
		rc = store_offset_get(s, &off, 1, "metrics.jsonl");
	if (rc == 0 && (rc = store_metrics_read(s, 1, "grad_norm", 0,
						on_metric, &n)) == TEND_ENOTFOUND)
		rc = 0;
	if (rc == 0 && !((off == 0 && n == 0) || (off == 4096 && n == 4)))
		rc = tend_error_set(TEND_ERROR, "batch half there: offset "
				    "%lld with %d values", (long long)off, n);
	store_close(s);
	return rc;
}

static void remove_db(const char *path)
{
	char p[300];

	remove(path);
	snprintf(p, sizeof p, "%s-wal", path);
	remove(p);
	snprintf(p, sizeof p, "%s-shm", path);
	remove(p);
}

/* Writes len bytes of buf to path, replacing it. */
static int put_file(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(buf, 1, len, f) == len;

	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

typedef struct tally {
	long points, enomem, recovered, other, unnamed, leaks, unsound;
} tally;

/* Judges one run that failed allocation n (or got through); checks the
 * file it left when sound is set. */
static void judge(tally *t, const char *path, long n, int rc, long leaked,
		  int sound)
{
	t->points++;
	if (rc == 0)
		t->recovered++; /* SQLite worked around the failure */
	else if (rc == TEND_ENOMEM)
		t->enomem++;
	else {
		t->other++;
		fprintf(stderr, "n=%ld: rc %d: %s\n", n, rc, tend_error_last());
	}
	if (rc != 0 && strncmp(tend_error_last(), path, strlen(path)) != 0) {
		t->unnamed++;
		fprintf(stderr, "n=%ld: message without the path: %s\n", n,
			tend_error_last());
	}
	if (leaked) {
		t->leaks++;
		fprintf(stderr, "n=%ld: %ld allocations leaked\n", n, leaked);
	}
	if (sound && still_sound(path) != 0) {
		t->unsound++;
		fprintf(stderr, "n=%ld: left unsound: %s\n", n,
			tend_error_last());
	}
}

/* Sets up path for one run: removes it and copies tmpl in when given. */
static int prepare(const char *path, const char *tmpl, size_t tmpl_len)
{
	remove_db(path);
	return tmpl ? put_file(path, tmpl, tmpl_len) : 0;
}

/* Runs scenario with allocation n failing, for n = 1, 2, ... until it no
 * longer reaches n. Most allocations inside store_open are SQLite parsing
 * the schema, the same code over and over: past the first 100 of them only
 * every stride-th is failed; all the store's own work after opening is
 * failed at every N. Reopening to check the file costs more than the
 * scenario, so that is done after every sound_every-th run and after any
 * run that did not end in ENOMEM. tmpl, when given, is the database each
 * run starts from. */
static tally sweep(int (*scenario)(const char *), const char *path,
		   const char *tmpl, size_t tmpl_len, long stride,
		   long sound_every)
{
	tally t = { 0 };
	long open_end;

	/* A dry run says how many allocations opening takes. */
	n_alloc = fail_at = 0;
	if (prepare(path, tmpl, tmpl_len) != 0 || scenario(path) != 0) {
		t.other++;
		return t;
	}
	open_end = opened_at;
	for (long n = 1; n < 1000000; n += n > 100 && n < open_end ? stride : 1) {
		long before = live;
		int rc;

		if (prepare(path, tmpl, tmpl_len) != 0) {
			t.other++;
			break;
		}
		n_alloc = 0;
		fail_at = n;
		rc = scenario(path);
		fail_at = 0;
		if (n_alloc < n) {
			TT_CHECK_RC(rc, 0);
			break;
		}
		judge(&t, path, n, rc, live - before,
		      rc != TEND_ENOMEM || t.points % sound_every == 0);
	}
	fprintf(stderr, "%ld allocation points (opening: %ld): %ld ENOMEM, "
		"%ld recovered, %ld other\n", t.points, open_end, t.enomem,
		t.recovered, t.other);
	return t;
}

static void check_tally(const tally *t, long min_points)
{
	TT_CHECK(t->points > min_points);
	TT_CHECK(t->enomem > t->points / 2);
	TT_CHECK(t->other == 0);
	TT_CHECK(t->unnamed == 0);
	TT_CHECK(t->leaks == 0);
	TT_CHECK(t->unsound == 0);
}

static void test_create_fails_cleanly(void)
{
	char path[256];
	tally t;

	th_path(path, sizeof path, dir, "create.db");
	t = sweep(scenario_create, path, NULL, 0, 10, 1);
	check_tally(&t, 400);
}

static void test_work_fails_cleanly(void)
{
	char path[256], tmpl[256];
	char *bytes;
	size_t len = 0;
	tally t;

	th_path(tmpl, sizeof tmpl, dir, "template.db");
	th_path(path, sizeof path, dir, "work.db");
	TT_REQUIRE(scenario_create(tmpl) == 0);
	bytes = th_read_file(tmpl, &len);
	TT_REQUIRE(bytes && len > 0);
	t = sweep(scenario_work, path, bytes, len, 4, 4);
	check_tally(&t, 2000);
	free(bytes);
}

int main(void)
{
	static sqlite3_mem_methods mine = { x_malloc, x_free, x_realloc,
					    x_size, x_roundup, x_init,
					    x_shutdown, NULL };

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_MALLOC, &mine) != SQLITE_OK ||
	    sqlite3_initialize() != SQLITE_OK) {
		fprintf(stderr, "cannot install the failing allocator\n");
		return 1;
	}
	if (access("/dev/shm", W_OK) == 0) {
		snprintf(dir, sizeof dir, "/dev/shm/tend-test-XXXXXX");
		if (!mkdtemp(dir))
			th_tmpdir(dir);
	} else {
		th_tmpdir(dir);
	}
	TT_RUN(test_create_fails_cleanly);
	TT_RUN(test_work_fails_cleanly);
	th_rmtree(dir);
	sqlite3_shutdown();
	return TT_DONE();
}
