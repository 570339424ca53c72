/*
 * test_e2e_faults.c - every fault the in-tree trainer can inject, through
 * a real `tend run`: detected (the incident in the store), handled by the
 * default policies.lua (the policy event, the attempts), and the run still
 * finishes with no NaN left on its final timeline.
 */
#include "e2e.h"
#include "tt.h"

typedef struct frun {
	char ws[PATH_MAX];
	sqlite3 *db;
	int rc;
	double wall;
} frun;

static int start_run(frun *r, const char *name, const e2e_cfg *c, double timeout)
{
	e2e_proc p;
	memset(r, 0, sizeof *r);
	if (e2e_workspace(r->ws, sizeof r->ws, name, c) < 0)
		return -1;
	double t0 = e2e_now();
	r->rc = e2e_tend(&p, r->ws, "run", timeout, "run", "r", "--no-status");
	r->wall = e2e_now() - t0;
	r->db = e2e_db(r->ws);
	if (r->rc != 0) {
		char *err = e2e_slurp(p.err);
		fprintf(stderr, "%s: tend run exited %d: %s\n", name, r->rc, err);
		free(err);
	}
	return r->db ? 0 : -1;
}

static void end_run(frun *r)
{
	if (tt_case_failed && r->db)
		e2e_dump_run(r->db);
	e2e_kill_trainer(r->ws, "r");
	sqlite3_close(r->db);
	r->db = NULL;
}

/* The run reached its end: exit 0, state finished, every step present
 * once on the final timeline (latest attempt per step), none NaN or
 * infinite there. */
static void check_finished(frun *r, long steps)
{
	sqlite3 *db = r->db;
	TT_CHECK(r->rc == 0);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(e2e_int(db, "SELECT exit_status FROM runs WHERE name = 'r'") == 0);
	const char *timeline =
		"SELECT %s FROM metrics m JOIN metric_names n ON n.id = m.name_id "
		"WHERE m.run_id = (SELECT id FROM runs WHERE name = 'r') AND n.name = %Q AND m.attempt = (SELECT max(attempt) FROM metrics x "
		"WHERE x.run_id = m.run_id AND x.name_id = m.name_id AND x.step = m.step)";
	for (const char *const *f = (const char *const[]){"loss", "grad_norm", NULL}; *f; f++) {
		TT_CHECK(e2e_int(db, timeline, "count(DISTINCT step)", *f) == steps);
		TT_CHECK(e2e_int(db, timeline, "min(step)", *f) == 1);
		TT_CHECK(e2e_int(db, timeline, "max(step)", *f) == steps);
		char bad[512];
		snprintf(bad, sizeof bad, "%s AND (m.value IS NULL OR abs(m.value) > 1e300)",
			 timeline);
		TT_CHECK(e2e_int(db, bad, "count(*)", *f) == 0);
	}
	/* The supervisor's accounts close every run. */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'accounts'") == 1);
}

static long long count_events(sqlite3 *db, const char *kind, const char *like)
{
	return e2e_int(db, "SELECT count(*) FROM events WHERE kind = %Q AND reason LIKE %Q",
		       kind, like);
}

static long long count_incidents(sqlite3 *db, const char *kind)
{
	return e2e_int(db, "SELECT count(*) FROM incidents WHERE kind = %Q", kind);
}

/* nan@35: a critical nonfinite incident; roll back to a verified checkpoint
 * at least rollback_steps (10) before the onset (step 20) and skip the data
 * window; no checkpoint written from the NaN on; steps lost accounted. */
static void test_nan_rolls_back(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"nan@35\""};
	TT_REQUIRE(start_run(&r, "nan", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(e2e_int(db, "SELECT onset_step FROM incidents WHERE signature = 'nonfinite:loss'")
		 == 35);
	TT_CHECK_STR(e2e_text(db, "SELECT severity FROM incidents WHERE signature = "
			      "'nonfinite:loss'"), "critical");
	TT_CHECK(count_events(db, "policy", "incident % nonfinite:loss -> rollback:%") == 1);
	TT_CHECK(count_events(db, "rollback", "roll back to step 20 (%ckpt-00000020.bin), "
			      "skip 20 batches%") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 20);
	TT_CHECK_HAS(e2e_text(db, "SELECT from_checkpoint FROM attempts WHERE n = 2"),
		     "ckpt-00000020.bin");
	TT_CHECK_HAS(e2e_text(db, "SELECT reason FROM attempts WHERE n = 2"), "nonfinite: ");
	/* Attempt 1 ended on our SIGTERM at a step boundary (exit 0). */
	TT_CHECK(e2e_int(db, "SELECT exit_status FROM attempts WHERE n = 1") == 0);
	/* Nothing poisoned was checkpointed: no checkpoint of attempt 1 at or
	 * after the NaN. */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM checkpoints WHERE attempt = 1 AND step >= 35")
		 == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM checkpoints WHERE attempt = 1 AND step = 30")
		 == 1);
	/* Attempt 2 skipped the data window: it never met the poisoned batch. */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM metrics m JOIN metric_names n ON "
			 "n.id = m.name_id WHERE n.name = 'loss' AND m.attempt = 2 AND "
			 "m.value IS NULL") == 0);
	/* The accounts: at least the 15 steps from 20 to the NaN are lost. */
	TT_CHECK(e2e_int(db, "SELECT json_extract(detail, '$.lost_steps') FROM events "
			 "WHERE kind = 'accounts'") >= 15);
	TT_CHECK(e2e_int(db, "SELECT json_extract(detail, '$.recoveries') FROM events "
			 "WHERE kind = 'accounts'") == 1);
	TT_CHECK_HAS(e2e_text(db, "SELECT reason FROM events WHERE kind = 'accounts'"),
		     "effective training time ");
	end_run(&r);
}

/* spike@35:10: one batch's loss x10; a loss_spike incident whose first
 * rung is skipping batches, applied live (no restart). */
static void test_spike_skips(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"spike@35:10\""};
	TT_REQUIRE(start_run(&r, "spike", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(e2e_int(db, "SELECT onset_step FROM incidents WHERE kind = 'loss_spike'") == 35);
	TT_CHECK_STR(e2e_text(db, "SELECT severity FROM incidents WHERE kind = 'loss_spike'"),
		     "warning");
	TT_CHECK(count_events(db, "policy", "incident % loss_spike -> skip:%") == 1);
	/* The trainer applied it: its own event, in attempt 1. */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'skip' AND attempt = 1 "
			 "AND reason = 'skipped 10 batches on the supervisor''s request'") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	end_run(&r);
}

/* gradblow@35: the gradient x1000 before clipping: a grad_spike incident,
 * skipped live. */
static void test_gradblow_skips(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"gradblow@35:1000\""};
	TT_REQUIRE(start_run(&r, "gradblow", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(e2e_int(db, "SELECT onset_step FROM incidents WHERE kind = 'grad_spike'") == 35);
	TT_CHECK(count_incidents(db, "loss_spike") == 0);
	TT_CHECK(count_events(db, "policy", "incident % grad_spike -> skip:%") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind = 'skip' AND attempt = 1 "
			 "AND reason LIKE 'skipped %% batches on the supervisor''s request'") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	end_run(&r);
}

/* hang@35: the loop stops (heartbeats go on, SIGTERM is ignored): a stall
 * after 3 s, SIGTERM, 2 s grace, SIGKILL, restart from the latest
 * checkpoint (30). */
static void test_hang_restarts(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"hang@35\""};
	TT_REQUIRE(start_run(&r, "hang", &c, 120) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(count_incidents(db, "stall") == 1);
	TT_CHECK_STR(e2e_text(db, "SELECT severity FROM incidents WHERE kind = 'stall'"),
		     "critical");
	TT_CHECK(count_events(db, "policy", "incident % stall -> restart:%") == 1);
	TT_CHECK(count_events(db, "kill", "trainer did not exit within 2 s: SIGKILL") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT signal FROM attempts WHERE n = 1") == SIGKILL);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 30);
	TT_CHECK_HAS(e2e_text(db, "SELECT reason FROM attempts WHERE n = 2"), "stall: ");
	/* Stall limit 3 s + grace 2 s: the whole run stays well under 60 s. */
	TT_CHECK(r.wall < 60);
	end_run(&r);
}

/* slow@35:20: each step 20x slower from 35 on: a throughput incident; the
 * first decision alerts, the re-emission 100 steps later restarts, and the
 * transient fault does not come back. (20x, not less: on a loaded machine
 * the tiny model's tokens/s swings 10x from step to step, and a slowed
 * step that lands above half the median breaks the patience streak.) */
static void test_slow_alerts_then_restarts(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"slow@35:20\"", .steps = 150};
	TT_REQUIRE(start_run(&r, "slow", &c, 150) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 150);
	TT_CHECK(count_incidents(db, "throughput") >= 1);
	/* Not before the fault (a loaded machine may slow a step just before). */
	TT_CHECK(e2e_int(db, "SELECT min(onset_step) FROM incidents WHERE kind = 'throughput'")
		 >= 25);
	TT_CHECK(count_events(db, "policy", "incident % throughput -> alert:%") == 1);
	TT_CHECK(count_events(db, "policy", "incident % throughput -> restart:%") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK_HAS(e2e_text(db, "SELECT reason FROM attempts WHERE n = 2"), "throughput: ");
	end_run(&r);
}

/* crash@35 (SIGSEGV): crash_segfault, restart from the latest checkpoint
 * after the backoff. */
static void test_crash_restarts_with_backoff(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"crash@35\""};
	TT_REQUIRE(start_run(&r, "crash", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK_STR(e2e_text(db, "SELECT signature FROM incidents WHERE kind = 'crash_segfault'"),
		     "crash_segfault:SIGSEGV");
	TT_CHECK(count_events(db, "policy", "incident % crash_segfault:SIGSEGV -> restart:%") == 1);
	TT_CHECK(count_events(db, "backoff", "restarting in 0.2 s") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT signal FROM attempts WHERE n = 1") == SIGSEGV);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 30);
	TT_CHECK_HAS(e2e_text(db, "SELECT reason FROM attempts WHERE n = 2"), "crash_segfault: ");
	end_run(&r);
}

/* Four crashes with recovery.max_restarts_per_hour 3: three restarts with
 * doubling backoff, then the policy stops and the run has given up. */
static void test_crash_loop_gives_up(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"crash@15\", \"crash@25\", \"crash@35\", \"crash@45\"",
		.recovery = "  max_restarts_per_hour: 3\n"};
	TT_REQUIRE(start_run(&r, "crashloop", &c, 90) == 0);
	sqlite3 *db = r.db;
	TT_CHECK(r.rc == 1);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "failed");
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 4);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts WHERE signal = 11") == 4);
	TT_CHECK(count_events(db, "backoff", "restarting in 0.2 s") == 1);
	TT_CHECK(count_events(db, "backoff", "restarting in 0.4 s") == 1);
	TT_CHECK(count_events(db, "backoff", "restarting in 0.8 s") == 1);
	TT_CHECK(count_events(db, "policy", "incident % -> stop: too many restarts in the last "
			      "hour: giving up") == 1);
	TT_CHECK(count_events(db, "giveup", "crash_segfault: too many restarts in the last "
			      "hour: giving up") == 1);
	/* The crashes fold into one incident, observed four times. */
	TT_CHECK(e2e_int(db, "SELECT count FROM incidents WHERE kind = 'crash_segfault'") == 4);
	TT_CHECK(!e2e_trainer_alive(r.ws, "r", NULL));
	end_run(&r);
}

/* The cap covers every restart, not only crashes: with one restart an
 * hour, a second NaN after the rollback gives up instead of looping. (The
 * rollback skips 20 batches, so data step 65 comes at training step 45.) */
static void test_rollbacks_are_capped(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"nan@35\", \"nan@65\"",
		.recovery = "  max_restarts_per_hour: 1\n"};
	TT_REQUIRE(start_run(&r, "nanloop", &c, 90) == 0);
	sqlite3 *db = r.db;
	TT_CHECK(r.rc == 1);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "failed");
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(count_events(db, "policy", "incident % nonfinite:loss -> rollback:%") == 1);
	TT_CHECK(count_events(db, "giveup", "nonfinite: too many restarts in the last hour: "
			      "giving up") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM checkpoints WHERE attempt = 2 AND step >= 45")
		 == 0);
	TT_CHECK(!e2e_trainer_alive(r.ws, "r", NULL));
	end_run(&r);
}

/* oom@35: the CUDA OOM line on stderr and exit 1: crash_oom from the log,
 * not crash_other from the status. */
static void test_oom_classified_from_log(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"oom@35\""};
	TT_REQUIRE(start_run(&r, "oom", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(count_incidents(db, "crash_oom") == 1);
	TT_CHECK(count_incidents(db, "crash_other") == 0);
	TT_CHECK_HAS(e2e_text(db, "SELECT summary FROM incidents WHERE kind = 'crash_oom'"),
		     "out of memory");
	TT_CHECK(count_events(db, "policy", "incident % crash_oom% -> restart:%") == 1);
	TT_CHECK(e2e_int(db, "SELECT exit_status FROM attempts WHERE n = 1") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM logs WHERE stream = 'stderr' AND "
			 "line LIKE 'RuntimeError: CUDA out of memory.%%'") == 1);
	end_run(&r);
}

/* collapse@35: the router weights zeroed from step 35 on (transient: a
 * restarted trainer does not repeat it): a MoE incident, rolled back. */
static void test_collapse_rolls_back(void)
{
	frun r;
	e2e_cfg c = {.inject = "\"collapse@35\"", .monitors = E2E_MONITORS
		"  moe:\n    max_over_mean: 1.5\n"};
	TT_REQUIRE(start_run(&r, "collapse", &c, 90) == 0);
	sqlite3 *db = r.db;
	check_finished(&r, 80);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM incidents WHERE kind LIKE 'moe_%%' AND "
			 "kind <> 'moe_dropped' AND onset_step >= 35") >= 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM incidents WHERE kind LIKE 'moe_%%' AND "
			 "onset_step < 35") == 0);
	TT_CHECK(count_events(db, "policy", "incident % moe_% -> rollback:%") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") < 35);
	end_run(&r);
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_nan_rolls_back);
	TT_RUN(test_spike_skips);
	TT_RUN(test_gradblow_skips);
	TT_RUN(test_hang_restarts);
	TT_RUN(test_slow_alerts_then_restarts);
	TT_RUN(test_crash_restarts_with_backoff);
	TT_RUN(test_crash_loop_gives_up);
	TT_RUN(test_rollbacks_are_capped);
	TT_RUN(test_oom_classified_from_log);
	TT_RUN(test_collapse_rolls_back);
	e2e_teardown();
	return TT_DONE();
}
