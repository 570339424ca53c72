/*
 * test_e2e_crashsafe.c - the supervisor killed with SIGKILL at random
 * moments, again and again, each time started over with `tend run NAME
 * --resume` (which adopts the still-running trainer or restarts it). At
 * the end the store must hold every line the trainer wrote exactly once:
 * each metric value of metrics.jsonl under the attempt that wrote it,
 * each event and output line once, the ingest offsets at the files' ends,
 * and a database that passes PRAGMA integrity_check.
 */
#include "e2e.h"
#include "tt.h"
#include "mline.h"

#define KILLS 20

static char ws[PATH_MAX];

/* True when pid holds the workspace's supervisor lock (its pid is in the
 * lock file, see sup.c). */
static int e2e_holds_workspace(pid_t pid)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/.tend-supervisor.lock", ws);
	char *text = e2e_slurp(path);
	int holds = atol(text) == (long)pid;
	free(text);
	return holds;
}

/* Waits until run r exists in the store (the first start must get that
 * far, or there is nothing to resume). */
static int wait_run_row(double max_s)
{
	double t0 = e2e_now();
	while (e2e_now() - t0 < max_s) {
		sqlite3 *db = e2e_db(ws);
		long long n = db ? e2e_int(db, "SELECT count(*) FROM runs WHERE name = 'r'") : 0;
		sqlite3_close(db);
		if (n == 1)
			return 0;
		e2e_sleep(0.02);
	}
	return -1;
}

typedef struct tally {
	long values, found, wrong, events, ckpts, lines;
	int attempt;
} tally;

/* Checks one step/eval line's values against the store, under the
 * attempt that wrote it (the count of trainer "start" events so far). */
static void check_values(sqlite3_stmt *q, const mline *m, tally *t)
{
	for (size_t i = 0; i < m->n_metrics; i++) {
		const mline_metric *x = &m->metrics[i];
		t->values++;
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, m->step);
		sqlite3_bind_int(q, 2, t->attempt);
		sqlite3_bind_text(q, 3, x->name, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_ROW)
			continue;
		t->found++;
		double v = sqlite3_column_type(q, 0) == SQLITE_NULL ? NAN
			: sqlite3_column_double(q, 0);
		if (!(v == x->value || (isnan(v) && isnan(x->value)))) {
			if (t->wrong++ < 5)
				fprintf(stderr, "step %lld %s: store %g, file %g\n",
					(long long)m->step, x->name, v, x->value);
		}
	}
}

static void tally_file(sqlite3 *db, const char *text, tally *t)
{
	mline m;
	sqlite3_stmt *q = NULL;
	mline_init(&m);
	sqlite3_prepare_v2(db, "SELECT m.value FROM metrics m JOIN metric_names n ON "
			   "n.id = m.name_id WHERE m.run_id = 1 AND m.step = ?1 AND "
			   "m.attempt = ?2 AND n.name = ?3", -1, &q, NULL);
	for (const char *p = text, *nl; q && *p; p = nl + 1) {
		if (!(nl = strchr(p, '\n')))
			break; /* a partial last line is not ingested yet either */
		t->lines++;
		if (mline_parse(&m, p, (size_t)(nl - p)) < 0)
			continue;
		if (m.type == MLINE_EVENT) {
			t->events++;
			t->attempt += strcmp(m.event, "start") == 0;
		} else if (m.type == MLINE_CHECKPOINT) {
			t->ckpts++;
		} else if (m.type == MLINE_STEP || m.type == MLINE_EVAL) {
			check_values(q, &m, t);
		}
	}
	sqlite3_finalize(q);
	mline_free(&m);
}

static long count_lines(const char *path)
{
	char *text = e2e_slurp(path);
	long n = 0;
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void check_store(void)
{
	char path[PATH_MAX + 64];
	tally t = {0};
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "PRAGMA integrity_check"), "ok");
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "stopped");
	snprintf(path, sizeof path, "%s/runs/r/metrics.jsonl", ws);
	char *text = e2e_slurp(path);
	tally_file(db, text, &t);
	free(text);
	long long rows = e2e_int(db, "SELECT count(*) FROM metrics WHERE run_id = 1");
	fprintf(stderr, "crashsafe: %ld lines, %ld values, %lld metric rows, %d attempts, "
		"%ld events, %ld checkpoints\n", t.lines, t.values, rows, t.attempt, t.events,
		t.ckpts);
	TT_CHECK(t.values > 1000);
	/* Every value under its attempt with its value, and no row besides. */
	TT_CHECK(t.found == t.values);
	TT_CHECK(t.wrong == 0);
	TT_CHECK(rows == t.values);
	/* Every event line once (they carry a time, so no two are equal). */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM logs WHERE stream = 'event'") == t.events);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM (SELECT line FROM logs WHERE stream = "
			 "'event' GROUP BY line HAVING count(*) > 1)") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == t.attempt);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts WHERE ended_t IS NULL") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM logs WHERE stream = 'malformed'") == 0);
	/* Output lines once each, and the offsets at the ends of the files. */
	const char *files[] = {"metrics.jsonl", "stdout.log", "stderr.log"};
	const char *streams[] = {NULL, "stdout", "stderr"};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/runs/r/%s", ws, files[i]);
		long long off = e2e_int(db, "SELECT byte_offset FROM ingest_offsets WHERE "
					"source = %Q", path);
		if (off != file_size(path))
			fprintf(stderr, "%s: offset %lld, size %ld\n", files[i], off,
				file_size(path));
		TT_CHECK(off == file_size(path));
		if (streams[i])
			TT_CHECK(e2e_int(db, "SELECT count(*) FROM logs WHERE stream = %Q",
					 streams[i]) == count_lines(path));
	}
	if (tt_case_failed)
		e2e_dump_run(db);
	sqlite3_close(db);
}

/* One supervisor after another, each killed at a random moment; the run
 * is long enough never to end by itself, and the last supervisor stops
 * it gracefully, so the test takes the same time on any machine. */
static void test_sigkill_supervisor_many_times(void)
{
	e2e_cfg c = {.steps = 10000000, .ckpt_every = 100};
	e2e_proc p, stop;
	unsigned seed = getenv("E2E_SEED") ? (unsigned)atoi(getenv("E2E_SEED"))
		: (unsigned)time(NULL);
	int kills = 0, adopted_seen = 0, st;
	fprintf(stderr, "crashsafe: seed %u (E2E_SEED to repeat)\n", seed);
	srand(seed);
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, "crash", &c) == 0);
	TT_REQUIRE(e2e_spawnv(&p, ws, "run0", (const char *const[]){"run", "r", "--no-status",
							     NULL}) == 0);
	TT_REQUIRE(wait_run_row(20) == 0);
	for (int i = 1; kills < KILLS; i++) {
		e2e_sleep((50 + rand() % 751) / 1000.0);
		if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
			fprintf(stderr, "crashsafe: supervisor %d exited by itself (status %d)\n",
				i - 1, st);
			TT_CHECK(0);
			break;
		}
		kill(p.pid, SIGKILL);
		waitpid(p.pid, NULL, 0);
		kills++;
		char tag[32];
		snprintf(tag, sizeof tag, "run%d", i);
		TT_REQUIRE(e2e_spawnv(&p, ws, tag, (const char *const[]){"run", "r", "--resume",
							 "--no-status", NULL}) == 0);
	}
	/* The last one must be up (holding the workspace lock) to be stopped. */
	for (int i = 0; i < 200 && !e2e_holds_workspace(p.pid); i++)
		e2e_sleep(0.05);
	TT_CHECK(e2e_tend(&stop, ws, "stop", 90, "stop") == 0);
	TT_CHECK(e2e_wait(&p, 60) == 1); /* stopped, not finished */
	fprintf(stderr, "crashsafe: %d kills\n", kills);
	TT_CHECK(kills == KILLS);
	sqlite3 *db = e2e_db(ws);
	adopted_seen = (int)e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'adopt'");
	sqlite3_close(db);
	fprintf(stderr, "crashsafe: %d adoptions\n", adopted_seen);
	TT_CHECK(adopted_seen >= 1);
	check_store();
	e2e_kill_trainer(ws, "r");
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_sigkill_supervisor_many_times);
	e2e_teardown();
	return TT_DONE();
}
