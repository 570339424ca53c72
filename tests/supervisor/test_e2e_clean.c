/*
 * test_e2e_clean.c - false positives: clean runs on four seeds with the
 * short-run monitor settings that catch every injected fault in
 * test_e2e_faults.c, and one with the documented defaults, raise no
 * warning or critical incident and need no recovery (an info plateau
 * would be allowed).
 */
#include "e2e.h"
#include "tt.h"

static void clean_run(long seed, const char *monitors)
{
	char ws[PATH_MAX], name[32];
	e2e_proc p;
	e2e_cfg c = {.steps = 120, .seed = seed, .monitors = monitors};
	snprintf(name, sizeof name, "seed%ld", seed);
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, name, &c) == 0);
	int rc = e2e_tend(&p, ws, "run", 120, "run", "r", "--no-status");
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK(rc == 0);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM incidents WHERE severity <> 'info'") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind IN ('policy', "
			 "'rollback', 'restart', 'skip', 'lower_lr', 'kill', 'giveup')") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	/* The trainer's writes woke the ingest: its watch never gave up. */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'ingest'") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(DISTINCT m.step) FROM metrics m JOIN metric_names n "
			 "ON n.id = m.name_id WHERE n.name = 'loss'") == 120);
	/* The accounts of a clean run: nothing lost, no recovery. */
	TT_CHECK(e2e_int(db, "SELECT json_extract(detail, '$.lost_steps') FROM events "
			 "WHERE kind = 'accounts'") == 0);
	if (tt_case_failed)
		e2e_dump_run(db);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "r");
}

static void test_seed_1(void) { clean_run(1, NULL); }
static void test_seed_2(void) { clean_run(2, NULL); }
static void test_seed_3(void) { clean_run(3, NULL); }
static void test_seed_4(void) { clean_run(4, NULL); }
/* The documented defaults (an empty monitors: section). */
static void test_seed_5_defaults(void) { clean_run(5, ""); }

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_seed_1);
	TT_RUN(test_seed_2);
	TT_RUN(test_seed_3);
	TT_RUN(test_seed_4);
	TT_RUN(test_seed_5_defaults);
	e2e_teardown();
	return TT_DONE();
}
