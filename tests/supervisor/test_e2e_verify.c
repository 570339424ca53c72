/*
 * test_e2e_verify.c - the checkpoint a rollback or restart resumes from is
 * verified (every byte hashed) in a child process, never in the
 * supervisor's loop. A large corrupt checkpoint (sparse, sized so hashing
 * it takes about 0.3 s here) is the newest candidate; the test catches the
 * real `tend-verify` child in the middle of hashing it and holds it there
 * with SIGSTOP, so nothing races the hash: meanwhile the loop ingests what
 * arrives, answers `tend stop` (killing and reaping the child), or sees the
 * child die (a fresh start, said why). Released, it rolls back to the
 * newest good checkpoint; and a verdict once reached is not hashed again.
 * A stop that comes while the trainer ends for a rollback, before any
 * verification, is held there (both processes frozen in turn) and stops
 * the run; a rollback decided on the last lines of a trainer already dead
 * is carried out.
 */
#include "e2e.h"
#include "sha256.h"
#include "tt.h"

#include <dirent.h>

/* Bytes SHA-256 hashes per second in this build, measured now. */
static double hash_rate(void)
{
	size_t n = 16u << 20;
	unsigned char *buf = calloc(1, n);
	uint8_t out[32];
	sha256_ctx c;
	if (!buf)
		return 0;
	double t0 = e2e_now();
	sha256_init(&c);
	sha256_update(&c, buf, n);
	sha256_final(&c, out);
	double dt = e2e_now() - t0;
	free(buf);
	return dt > 0 ? (double)n / dt : 0;
}

/* RUN_DIR/checkpoints/ckpt-STEP.bin: a valid header over `bytes` of holes
 * whose checksum cannot match, so only hashing all of it rejects it. */
static int fake_ckpt(const char *ws, long step, long long bytes)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	unsigned char h[64] = "TENDCKPT";
	snprintf(dir, sizeof dir, "%s/runs/r/checkpoints", ws);
	if (fsu_mkdir_p(dir, 0755) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/ckpt-%08ld.bin", dir, step);
	h[8] = 1;  /* format version */
	h[12] = 64; /* header bytes */
	for (int i = 0; i < 8; i++) {
		h[16 + i] = (unsigned char)((unsigned long long)bytes >> (8 * i));
		h[24 + i] = (unsigned char)((unsigned long)step >> (8 * i));
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int rc = fd < 0 || write(fd, h, sizeof h) != (ssize_t)sizeof h ||
		 ftruncate(fd, (off_t)bytes) < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A workspace whose run r has the corrupt checkpoint at step 24, between
 * the good ones at 20 and 30, and `tend run r` started in it. */
static int start(char *ws, const char *name, const e2e_cfg *c, e2e_proc *run)
{
	double rate = hash_rate();
	long long bytes = (long long)(rate * 0.3) & ~63LL;
	if (bytes < (64LL << 20))
		bytes = 64LL << 20;
	if (bytes > (1LL << 30))
		bytes = 1LL << 30;
	if (e2e_workspace(ws, PATH_MAX, name, c) < 0 || fake_ckpt(ws, 24, bytes) < 0)
		return -1;
	return e2e_spawnv(run, ws, "run", (const char *const[]){"run", "r", "--no-status", NULL});
}

/* The state letter and parent of pid from /proc/PID/stat when its name is
 * comm; 0 otherwise. */
static char proc_state(pid_t pid, const char *comm, pid_t *ppid)
{
	char path[64], buf[512], name[64];
	char st = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int pp = 0;
	if (fgets(buf, sizeof buf, f) && sscanf(buf, "%*d (%63[^)]) %c %d", name, &st, &pp) == 3 &&
	    strcmp(name, comm) == 0)
		*ppid = pp;
	else
		st = 0;
	fclose(f);
	return st;
}

/* Finds the supervisor's `tend-verify` child and stops it where it is;
 * its pid, or -1 when none showed up in time (or it had already ended). */
static pid_t catch_verifier(pid_t sup, double max_s)
{
	double t0 = e2e_now();
	while (e2e_now() - t0 < max_s) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		pid_t found = 0, ppid = 0;
		while (d && !found && (e = readdir(d))) {
			pid_t p = (pid_t)atol(e->d_name);
			char st = p > 0 ? proc_state(p, "tend-verify", &ppid) : 0;
			if (st && ppid == sup)
				found = st == 'Z' ? -1 : p;
		}
		if (d)
			closedir(d);
		if (found > 0 && kill(found, SIGSTOP) == 0) {
			for (int i = 0; i < 200 && proc_state(found, "tend-verify", &ppid) != 'T'; i++)
				e2e_sleep(0.005);
			return proc_state(found, "tend-verify", &ppid) == 'T' ? found : -1;
		}
		if (found < 0)
			return -1;
		e2e_sleep(0.002);
	}
	return -1;
}

static long long count_events(sqlite3 *db, const char *kind, const char *like)
{
	return e2e_int(db, "SELECT count(*) FROM events WHERE kind = %Q AND reason LIKE %Q",
		       kind, like);
}

/* Waits until the query counts at least n. */
static int wait_count(const char *ws, long long n, double max_s, const char *sql)
{
	double t0 = e2e_now();
	while (e2e_now() - t0 < max_s) {
		sqlite3 *db = e2e_db(ws);
		long long got = db ? e2e_int(db, "%s", sql) : -1;
		sqlite3_close(db);
		if (got >= n)
			return 0;
		e2e_sleep(0.02);
	}
	return -1;
}

static int append_line(const char *ws, const char *line)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/runs/r/metrics.jsonl", ws);
	int fd = open(path, O_WRONLY | O_APPEND);
	ssize_t n = fd < 0 ? -1 : write(fd, line, strlen(line));
	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(line) ? 0 : -1;
}

static void end(const char *ws, sqlite3 *db, e2e_proc *run)
{
	if (tt_case_failed && db)
		e2e_dump_run(db);
	sqlite3_close(db);
	if (run->pid > 0 && waitpid(run->pid, NULL, WNOHANG) == 0) {
		kill(run->pid, SIGKILL);
		waitpid(run->pid, NULL, 0);
	}
	e2e_kill_trainer(ws, "r");
}

/* Replaces the first `from` in WS/tend.yaml with `to`. */
static int patch_config(const char *ws, const char *from, const char *to)
{
	char path[PATH_MAX], out[8192];
	int rc = -1;
	snprintf(path, sizeof path, "%s/tend.yaml", ws);
	char *text = e2e_slurp(path), *at = strstr(text, from);
	if (at && strlen(text) - strlen(from) + strlen(to) < sizeof out) {
		snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
		rc = fsu_write_atomic(path, out, strlen(out), 0644);
	}
	free(text);
	return rc;
}

/* Waits until RUN_DIR/metrics.jsonl has a line holding both a and b. */
static int wait_line(const char *ws, const char *a, const char *b, double max_s)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/runs/r/metrics.jsonl", ws);
	for (double t0 = e2e_now(); e2e_now() - t0 < max_s; e2e_sleep(0.002)) {
		char *text = e2e_slurp(path), *at = strstr(text, a);
		char *eol = at ? strchr(at, '\n') : NULL;
		bool found = eol && (*eol = '\0', strstr(at, b) != NULL);
		free(text);
		if (found)
			return 0;
	}
	return -1;
}

/* Brings run r to the moment of the race and sends `tend stop` there: the
 * supervisor is frozen until its trainer has written the NaN of step 35,
 * the trainer then frozen, so the rollback's SIGTERM waits in it (the run
 * "stopping") until the stop has reached the supervisor. 0 when it did. */
static int stop_in_rollback(const char *ws, e2e_proc *run, e2e_proc *stop, bool now)
{
	pid_t tp = 0;
	int rc = -1;
	double t0 = e2e_now();
	while ((!e2e_trainer_alive(ws, "r", &tp) || tp <= 1) && e2e_now() - t0 < 30)
		e2e_sleep(0.002);
	if (tp <= 1 || kill(run->pid, SIGSTOP) < 0)
		return -1;
	if (wait_line(ws, "\"step\":35,", "\"loss\":NaN", 30) == 0 && kill(-tp, SIGSTOP) == 0) {
		kill(run->pid, SIGCONT);
		if (wait_count(ws, 1, 30, "SELECT count(*) FROM runs WHERE state = 'stopping'") == 0 &&
		    e2e_spawnv(stop, ws, "stop", (const char *const[]){"stop", now ? "--now" : NULL,
				NULL}) == 0)
			rc = wait_count(ws, 1, 30, "SELECT count(*) FROM events WHERE kind = 'stop'");
	}
	kill(run->pid, SIGCONT);
	kill(-tp, SIGCONT);
	return rc;
}

/* `tend stop` (or --now) while the trainer ends for a rollback: the run is
 * stopped once it has exited (the SIGTERM it got, so no checkpoint of the
 * poisoned state; --now kills it), never restarted or verified for. */
static void stop_during_rollback(const char *name, bool now)
{
	char ws[PATH_MAX];
	e2e_proc run = {0}, stop = {0};
	e2e_cfg c = {.inject = "\"nan@35\"", .monitors = "  stall:\n    timeout_s: 60\n"};
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, name, &c) == 0);
	/* No SIGKILL from the grace timer while the trainer is held. */
	TT_REQUIRE(patch_config(ws, "term_grace_s: 2\n", "term_grace_s: 60\n") == 0);
	TT_REQUIRE(e2e_spawnv(&run, ws, "run", (const char *const[]){"run", "r", "--no-status",
			      NULL}) == 0);
	TT_CHECK(stop_in_rollback(ws, &run, &stop, now) == 0);
	TT_CHECK(e2e_wait(&run, 30) == 1);
	TT_CHECK(stop.pid > 0 && e2e_wait(&stop, 30) == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "stopped");
	TT_CHECK(count_events(db, "policy", "incident % nonfinite:loss -> rollback: %") == 1);
	TT_CHECK(count_events(db, "stop", now ? "stop now requested" : "stop requested") == 1);
	TT_CHECK(count_events(db, "kill", "%") == (now ? 1 : 0));
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM events WHERE kind IN ('rollback', 'verify', "
			 "'verify_failed')") == 0);
	TT_CHECK(count_events(db, "start", "attempt %") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	TT_CHECK(e2e_int(db, now ? "SELECT signal FROM attempts WHERE n = 1" :
			 "SELECT exit_status FROM attempts WHERE n = 1") == (now ? SIGKILL : 0));
	TT_CHECK(!e2e_trainer_alive(ws, "r", NULL));
	end(ws, db, &run);
}

static void test_stop_during_rollback(void) { stop_during_rollback("rb-stop", false); }
static void test_stop_now_during_rollback(void) { stop_during_rollback("rb-stop-now", true); }

/* A trainer (run.command) that writes five steps, then, once RUN_DIR/go
 * exists, a NaN and dies at once (exit 3); its second attempt finishes. */
static const char die_on_nan_sh[] =
	"#!/bin/sh\n"
	"m=\"$TEND_METRICS_FILE\"\n"
	"if [ \"$TEND_ATTEMPT\" != 1 ]; then\n"
	"  echo '{\"type\":\"event\",\"step\":1,\"event\":\"exit\",\"message\":\"finished\"}' >> \"$m\"\n"
	"  exit 0\n"
	"fi\n"
	"for i in 1 2 3 4 5; do\n"
	"  printf '{\"type\":\"step\",\"step\":%s,\"loss\":2.5,\"grad_norm\":1}\\n' $i >> \"$m\"\n"
	"done\n"
	"while [ ! -e \"$TEND_RUN_DIR/go\" ]; do sleep 0.01; done\n"
	"echo '{\"type\":\"step\",\"step\":6,\"loss\":NaN,\"grad_norm\":NaN}' >> \"$m\"\n"
	"exit 3\n";

/* The trainer's exit reaches the supervisor before its NaN line does (the
 * supervisor is frozen while the trainer writes it and dies; thawed, it
 * takes signals first): reading that line as the exit is handled, the
 * policy rolls back a trainer that is already gone. The rollback is
 * carried out (it used to leave the run "stopping" with no trainer,
 * deaf to `tend stop`). */
static void test_rollback_decided_as_trainer_dies(void)
{
	char ws[PATH_MAX], path[PATH_MAX + 16], cmd[PATH_MAX + 64];
	e2e_proc run = {0};
	pid_t tp = 0, ppid;
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, "dies", &(e2e_cfg){0}) == 0);
	snprintf(path, sizeof path, "%s/train.sh", ws);
	TT_REQUIRE(fsu_write_atomic(path, die_on_nan_sh, strlen(die_on_nan_sh), 0755) == 0);
	snprintf(cmd, sizeof cmd, "run:\n  command: [\"%s\"]\n", path);
	TT_REQUIRE(patch_config(ws, "run:\n", cmd) == 0);
	TT_REQUIRE(e2e_spawnv(&run, ws, "run", (const char *const[]){"run", "r", "--no-status",
			      NULL}) == 0);
	TT_CHECK(wait_count(ws, 5, 30, "SELECT count(*) FROM metrics m JOIN metric_names n ON "
			    "n.id = m.name_id WHERE n.name = 'loss'") == 0);
	TT_CHECK(e2e_trainer_alive(ws, "r", &tp) && tp > 1);
	kill(run.pid, SIGSTOP);
	for (int i = 0; i < 200 && proc_state(run.pid, "tend", &ppid) != 'T'; i++)
		e2e_sleep(0.005);
	TT_CHECK(proc_state(run.pid, "tend", &ppid) == 'T');
	snprintf(path, sizeof path, "%s/runs/r/go", ws);
	TT_CHECK(fsu_write_atomic(path, "", 0, 0644) == 0);
	for (double t0 = e2e_now(); e2e_trainer_alive(ws, "r", NULL) && e2e_now() - t0 < 30;)
		e2e_sleep(0.005);
	TT_CHECK(!e2e_trainer_alive(ws, "r", NULL));
	kill(run.pid, SIGCONT);
	TT_CHECK(e2e_wait(&run, 20) == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(count_events(db, "policy", "incident % nonfinite:loss -> rollback: %") == 1);
	TT_CHECK(count_events(db, "rollback", "roll back to step 0 (no good checkpoint: fresh "
			      "start), skip 20 batches, lr scale 1; 6 steps lost") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT exit_status FROM attempts WHERE n = 1") == 3);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 0);
	end(ws, db, &run);
}

/* nan@35 rolls back. The search (newest first, before step 26) meets the
 * corrupt 24 first; held there, the loop still ingests a line the test
 * appends, the run waits in backoff with no rollback decided yet. Let go,
 * the child rejects 24, accepts 20, and the run resumes from 20 and
 * finishes. */
static void test_loop_runs_while_verifying(void)
{
	char ws[PATH_MAX];
	e2e_proc run = {0};
	e2e_cfg c = {.inject = "\"nan@35\""};
	TT_REQUIRE(start(ws, "responsive", &c, &run) == 0);
	pid_t v = catch_verifier(run.pid, 60);
	TT_REQUIRE(v > 0);
	TT_CHECK(append_line(ws, "{\"type\":\"event\",\"step\":35,\"event\":\"probe\","
			     "\"message\":\"written while verifying\"}\n") == 0);
	TT_CHECK(wait_count(ws, 1, 10, "SELECT count(*) FROM events WHERE kind = 'probe'") == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK(kill(v, 0) == 0); /* still held mid-hash */
	TT_CHECK(count_events(db, "rollback", "%") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "verifying");
	char like[128];
	snprintf(like, sizeof like, "verifying up to 4 checkpoints, newest first, in a child "
		 "process (pid %d)", (int)v);
	TT_CHECK(count_events(db, "verify", like) == 1);
	sqlite3_close(db);

	kill(v, SIGCONT);
	TT_CHECK(e2e_wait(&run, 90) == 0);
	db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(count_events(db, "verify", "ckpt-00000020.bin (step 20) verifies; 1 newer "
			      "rejected; % s") == 1);
	TT_CHECK(count_events(db, "rollback", "roll back to step 20 (%/runs/r/checkpoints/"
			      "ckpt-00000020.bin), skip 20 batches, lr scale 1; % steps lost") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 20);
	TT_CHECK_HAS(e2e_text(db, "SELECT from_checkpoint FROM attempts WHERE n = 2"),
		     "ckpt-00000020.bin");
	/* The probe came in before the rollback was decided. */
	TT_CHECK(e2e_int(db, "SELECT (SELECT id FROM events WHERE kind = 'probe') < "
			 "(SELECT id FROM events WHERE kind = 'rollback')") == 1);
	end(ws, db, &run);
}

/* `tend stop` while the child hashes: the supervisor answers at once,
 * kills and reaps the child, and the run is stopped, never rolled back. */
static void test_stop_while_verifying(void)
{
	char ws[PATH_MAX];
	e2e_proc run = {0}, stop;
	e2e_cfg c = {.inject = "\"nan@35\""};
	TT_REQUIRE(start(ws, "stopping", &c, &run) == 0);
	pid_t v = catch_verifier(run.pid, 60);
	TT_REQUIRE(v > 0);
	double t0 = e2e_now();
	TT_CHECK(e2e_tend(&stop, ws, "stop", 30, "stop") == 0);
	TT_CHECK(e2e_wait(&run, 30) == 1);
	TT_CHECK(e2e_now() - t0 < 10);
	TT_CHECK(kill(v, 0) < 0 && errno == ESRCH);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "stopped");
	char like[160];
	snprintf(like, sizeof like, "the run ended before checkpoint verification did: killed "
		 "its child (pid %d)", (int)v);
	TT_CHECK(count_events(db, "verify", like) == 1);
	TT_CHECK(count_events(db, "stop", "stop requested") == 1);
	TT_CHECK(count_events(db, "rollback", "%") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	end(ws, db, &run);
}

/* A verifying child that dies gives no answer: a fresh start, and an event
 * saying why. The fresh start skips 20 batches, so nan@35 (a data batch)
 * comes back at its step 15 and rolls back again: the stop may land in any
 * phase of that second rollback (test_stop_during_rollback holds the one
 * that lost it), and each ends the run "stopped". */
static void test_dead_verifier_means_fresh_start(void)
{
	char ws[PATH_MAX];
	e2e_proc run = {0}, stop;
	e2e_cfg c = {.inject = "\"nan@35\"", .steps = 1000};
	TT_REQUIRE(start(ws, "death", &c, &run) == 0);
	pid_t v = catch_verifier(run.pid, 60);
	TT_REQUIRE(v > 0);
	kill(v, SIGKILL);
	TT_CHECK(wait_count(ws, 2, 30, "SELECT count(*) FROM attempts") == 0);
	TT_CHECK(e2e_tend(&stop, ws, "stop", 30, "stop") == 0);
	TT_CHECK(e2e_wait(&run, 30) == 1);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "stopped");
	char like[160];
	snprintf(like, sizeof like, "checkpoint verification (pid %d) was killed by signal 9: "
		 "no good checkpoint: fresh start", (int)v);
	TT_CHECK(count_events(db, "verify_failed", like) == 1);
	TT_CHECK(count_events(db, "rollback", "roll back to step 0 (no good checkpoint: fresh "
			      "start), skip 20 batches, %") == 1);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 0);
	TT_CHECK(e2e_int(db, "SELECT from_checkpoint FROM attempts WHERE n = 2") == -2);
	end(ws, db, &run);
}

/* Two crashes, each restarting from the latest checkpoint (30): the first
 * restart hashes it in a child, the second finds it unchanged and starts
 * at once. */
static void test_verdict_remembered(void)
{
	char ws[PATH_MAX];
	e2e_proc run;
	e2e_cfg c = {.inject = "\"crash@35\", \"crash@37\""};
	TT_REQUIRE(e2e_workspace(ws, sizeof ws, "remember", &c) == 0);
	TT_CHECK(e2e_tend(&run, ws, "run", 90, "run", "r", "--no-status") == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 3);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts WHERE n > 1 AND from_step = 30") == 2);
	TT_CHECK(count_events(db, "verify", "verifying up to 3 checkpoints, newest first, %") == 1);
	TT_CHECK(count_events(db, "verify", "ckpt-00000030.bin (step 30) verifies; 0 newer "
			      "rejected; % s") == 1);
	TT_CHECK(count_events(db, "verify", "ckpt-00000030.bin (step 30) verified before and "
			      "unchanged: not hashed again") == 1);
	run.pid = 0;
	end(ws, db, &run);
}

int main(void)
{
	if (e2e_setup() < 0)
		return 1;
	TT_RUN(test_loop_runs_while_verifying);
	TT_RUN(test_stop_while_verifying);
	TT_RUN(test_dead_verifier_means_fresh_start);
	TT_RUN(test_verdict_remembered);
	TT_RUN(test_stop_during_rollback);
	TT_RUN(test_stop_now_during_rollback);
	TT_RUN(test_rollback_decided_as_trainer_dies);
	e2e_teardown();
	return TT_DONE();
}
