/*
 * test_e2e_stop.c - `tend run --detach`, `tend stop` (the trainer
 * checkpoints, the run is "stopped"), `tend stop --now` (the trainer is
 * killed), and a second `tend run` in a workspace that already has a
 * supervisor, refused with a clear message and no trace in the store.
 */
#include "e2e.h"
#include "tt.h"

static char ws[PATH_MAX];

/* Waits until run name has at least `steps` loss rows in the store. */
static int wait_steps(const char *name, long steps, double max_s)
{
	double t0 = e2e_now();
	while (e2e_now() - t0 < max_s) {
		sqlite3 *db = e2e_db(ws);
		long long n = db ? e2e_int(db, "SELECT count(*) FROM metrics m JOIN metric_names n "
					   "ON n.id = m.name_id JOIN runs r ON r.id = m.run_id "
					   "WHERE r.name = %Q AND n.name = 'loss'", name) : 0;
		sqlite3_close(db);
		if (n >= steps)
			return 0;
		e2e_sleep(0.05);
	}
	return -1;
}

static void start_detached(const char *name)
{
	e2e_proc p;
	char *out;
	int rc = e2e_tend(&p, ws, name, 30, "run", name, "--detach");
	TT_CHECK(rc == 0);
	out = e2e_slurp(p.out);
	TT_CHECK_HAS(out, "tend: supervising run ");
	TT_CHECK_HAS(out, " in the background (pid ");
	free(out);
}

static void test_stop_is_graceful(void)
{
	e2e_proc p;
	e2e_cfg c = {.steps = 1000000, .ckpt_every = 1000};
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, "stop", &c) == 0);
	start_detached("r");
	TT_REQUIRE(wait_steps("r", 20, 30) == 0);

	/* A second supervisor in the same workspace is refused, changing
	 * nothing. */
	TT_CHECK(e2e_tend(&p, ws, "second", 30, "run", "r2", "--no-status") == 1);
	char *err = e2e_slurp(p.err);
	TT_CHECK_HAS(err, "tend run: another supervisor (pid ");
	TT_CHECK_HAS(err, ", run r) already watches this workspace; `tend status` shows it, "
		     "`tend stop` stops it");
	free(err);

	/* Detached too: the refusal comes back to the caller, not to a log. */
	TT_CHECK(e2e_tend(&p, ws, "second-detached", 30, "run", "r2", "--detach") == 1);
	err = e2e_slurp(p.err);
	TT_CHECK_HAS(err, "tend: run --detach: another supervisor (pid ");
	free(err);

	TT_CHECK(e2e_tend(&p, ws, "stop", 90, "stop") == 0);
	char *out = e2e_slurp(p.out);
	TT_CHECK_HAS(out, "tend: asked the supervisor of run r (pid ");
	TT_CHECK_HAS(out, "to stop (the trainer checkpoints first)");
	free(out);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "stopped");
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM runs WHERE name = 'r2'") == 0);
	/* The trainer stopped at a step boundary, checkpointed that step and
	 * said so, and exited 0. */
	long long last = e2e_int(db, "SELECT max(m.step) FROM metrics m JOIN metric_names n ON "
				 "n.id = m.name_id WHERE n.name = 'loss'");
	TT_CHECK(last >= 20);
	TT_CHECK(e2e_int(db, "SELECT max(step) FROM checkpoints") == last);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'exit' AND "
			 "reason = 'interrupted'") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'stop' AND "
			 "reason = 'stop requested'") == 1);
	TT_CHECK(e2e_int(db, "SELECT exit_status FROM attempts WHERE n = 1") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts WHERE ended_t IS NULL") == 0);
	TT_CHECK(!e2e_trainer_alive(ws, "r", NULL));
	if (tt_case_failed)
		e2e_dump_run(db);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "r");
}

static void test_stop_now_kills(void)
{
	e2e_proc p;
	start_detached("r3");
	TT_REQUIRE(wait_steps("r3", 10, 30) == 0);
	TT_CHECK(e2e_tend(&p, ws, "stopnow", 90, "stop", "--now") == 0);
	char *out = e2e_slurp(p.out);
	TT_CHECK_HAS(out, "tend: asked the supervisor of run r3 (pid ");
	TT_CHECK_HAS(out, "to stop now");
	free(out);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r3'"), "stopped");
	TT_CHECK(e2e_int(db, "SELECT a.signal FROM attempts a JOIN runs r ON r.id = a.run_id "
			 "WHERE r.name = 'r3'") == SIGKILL);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id "
			 "WHERE r.name = 'r3' AND e.kind = 'stop' AND e.reason = "
			 "'stop now requested'") == 1);
	TT_CHECK(!e2e_trainer_alive(ws, "r3", NULL));
	if (tt_case_failed)
		e2e_dump_run(db);
	sqlite3_close(db);
	e2e_kill_trainer(ws, "r3");

	/* A run name is used once; --resume needs one that exists. */
	TT_CHECK(e2e_tend(&p, ws, "again", 30, "run", "r", "--no-status") == 1);
	char *again = e2e_slurp(p.err);
	TT_CHECK_HAS(again, "tend run: run r: ");
	TT_CHECK_HAS(again, "tend.db: a run named 'r' already exists");
	free(again);
	TT_CHECK(e2e_tend(&p, ws, "nosuch", 30, "run", "nosuch", "--resume", "--no-status") == 1);
	again = e2e_slurp(p.err);
	TT_CHECK_HAS(again, "tend run: run nosuch: ");
	TT_CHECK_HAS(again, "tend.db: no run named 'nosuch'");
	free(again);

	/* Nobody left to stop. */
	TT_CHECK(e2e_tend(&p, ws, "stop2", 30, "stop") == 1);
	char *err = e2e_slurp(p.err);
	TT_CHECK_HAS(err, "tend stop: no supervisor is running in ");
	free(err);
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_stop_is_graceful);
	TT_RUN(test_stop_now_kills);
	e2e_teardown();
	return TT_DONE();
}
