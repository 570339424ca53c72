/*
 * test_e2e_verify.c - the checkpoint a rollback or restart resumes from is
 * verified (every byte hashed) in a child process, never in the
 * supervisor's loop. A large corrupt checkpoint (sparse, sized so hashing
 * it takes about 0.3 s here) is the newest candidate; the test catches the
 * real `tend-verify` child in the middle of hashing it and holds it there
 * with SIGSTOP (seen in /proc/PID/maps to have that file mapped), so
 * nothing races the hash: meanwhile the loop ingests what arrives, answers
 * `tend stop` (killing and reaping the child), sees the child die (that
 * candidate skipped, a new child for the rest) or make no progress (the
 * search ends there), gives up rather than start from scratch when no
 * candidate verified but some could not be checked, and lets a slow child
 * that makes progress finish. Released, it rolls back to the newest
 * good checkpoint; a verdict once reached is not hashed again, but a file
 * that could not be read (mode 000, the run's supervisor without
 * CAP_DAC_OVERRIDE, as the tests run as root) is read again next time.
 * A stop that comes while the trainer ends for a rollback, before any
 * verification, is held there (both processes frozen in turn) and stops
 * the run; a rollback decided on the last lines of a trainer already dead
 * is carried out.
 */
#include "ckpt.h"
#include "e2e.h"
#include "sha256.h"
#include "tt.h"

#include <dirent.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

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

/* RUN_DIR/checkpoints/ckpt-STEP.bin: a small valid checkpoint. */
static int good_ckpt(const char *ws, long step)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	float x[16] = {0};
	ckpt_writer *w = NULL;
	snprintf(dir, sizeof dir, "%s/runs/r/checkpoints", ws);
	if (fsu_mkdir_p(dir, 0755) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/ckpt-%08ld.bin", dir, step);
	int rc = ckpt_writer_new(&w, step);
	if (rc == 0)
		rc = ckpt_writer_add(w, "w", x, 16);
	if (rc == 0)
		rc = ckpt_write(w, path);
	ckpt_writer_free(w);
	return rc;
}

/* Bytes of a corrupt checkpoint that take about 0.3 s to hash here. */
static long long fake_bytes(void)
{
	long long bytes = (long long)(hash_rate() * 0.3) & ~63LL;
	if (bytes < (64LL << 20))
		bytes = 64LL << 20;
	return bytes > (1LL << 30) ? 1LL << 30 : bytes;
}

/* A workspace whose run r has the corrupt checkpoint at step 24, between
 * the good ones at 20 and 30, and `tend run r` started in it. */
static int start(char *ws, const char *name, const e2e_cfg *c, e2e_proc *run)
{
	if (e2e_workspace(ws, PATH_MAX, name, c) < 0 || fake_ckpt(ws, 24, fake_bytes()) < 0)
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

/* A live `tend-verify` child of sup other than `not`; 0 when none. */
static pid_t find_verifier(pid_t sup, pid_t not)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0, ppid = 0;
	while (d && !found && (e = readdir(d))) {
		pid_t p = (pid_t)atol(e->d_name);
		char st = p > 0 && p != not ? proc_state(p, "tend-verify", &ppid) : 0;
		if (st && st != 'Z' && ppid == sup)
			found = p;
	}
	if (d)
		closedir(d);
	return found;
}

/* True when pid has a file called name mapped (the checkpoint reader
 * hashes through a mapping, so: while it is checking that file). */
static bool maps_has(pid_t pid, const char *name)
{
	char path[64], line[PATH_MAX + 160];
	bool found = false;
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, name) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* Finds the supervisor's `tend-verify` child (not `not`) and stops it
 * while it hashes the checkpoint called name: stopped, looked at, let go
 * for a millisecond until it is there. Its pid, or -1 when that did not
 * happen in time. */
static pid_t hold_verifier(pid_t sup, const char *name, pid_t not, double max_s)
{
	pid_t ppid;
	for (double t0 = e2e_now(); e2e_now() - t0 < max_s; e2e_sleep(0.001)) {
		pid_t v = find_verifier(sup, not);
		if (v <= 0 || kill(v, SIGSTOP) < 0)
			continue;
		for (int i = 0; i < 200 && proc_state(v, "tend-verify", &ppid) != 'T'; i++)
			e2e_sleep(0.005);
		if (proc_state(v, "tend-verify", &ppid) == 'T' && maps_has(v, name))
			return v;
		kill(v, SIGCONT);
	}
	return -1;
}

/* The usual case: the child of start(), held in the corrupt step 24. */
static pid_t catch_verifier(pid_t sup, double max_s)
{
	return hold_verifier(sup, "/ckpt-00000024.bin", 0, max_s);
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

/* A verifying child that dies (here SIGKILL while it hashes the corrupt
 * 24, the newest candidate, as the OOM killer or a SIGBUS would) costs
 * that candidate only: it is skipped for this search, not marked corrupt,
 * and a new child checks the rest. The run rolls back to 20, the next
 * good one, and finishes. */
static void test_dead_verifier_costs_one_candidate(void)
{
	char ws[PATH_MAX], like[256];
	e2e_proc run = {0};
	e2e_cfg c = {.inject = "\"nan@35\""};
	TT_REQUIRE(start(ws, "death", &c, &run) == 0);
	pid_t v = catch_verifier(run.pid, 60);
	TT_REQUIRE(v > 0);
	kill(v, SIGKILL);
	TT_CHECK(e2e_wait(&run, 90) == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	snprintf(like, sizeof like, "checkpoint verification (pid %d) was killed by signal 9 "
		 "while checking ckpt-00000024.bin: skipped for this search, not marked corrupt",
		 (int)v);
	TT_CHECK(count_events(db, "verify_failed", like) == 1);
	TT_CHECK(count_events(db, "verify_failed", "%") == 1);
	TT_CHECK(count_events(db, "verify", "verifying up to 3 checkpoints, newest first, in a "
			      "child process (pid %)") == 1);
	TT_CHECK(count_events(db, "verify", "ckpt-00000020.bin (step 20) verifies; 0 newer "
			      "rejected, 1 could not be checked; % s") == 1);
	TT_CHECK(count_events(db, "rollback", "roll back to step 20 (%/runs/r/checkpoints/"
			      "ckpt-00000020.bin), skip 20 batches, lr scale 1; % steps lost") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 20);
	end(ws, db, &run);
}

/* Workspace NAME whose trainer (run.command) is the shell script text. */
static int script_workspace(char *ws, const char *name, const char *text)
{
	char path[PATH_MAX + 16], cmd[PATH_MAX + 64];
	if (e2e_workspace(ws, PATH_MAX, name, &(e2e_cfg){0}) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/train.sh", ws);
	snprintf(cmd, sizeof cmd, "run:\n  command: [\"%s\"]\n", path);
	if (fsu_write_atomic(path, text, strlen(text), 0755) < 0)
		return -1;
	return patch_config(ws, "run:\n", cmd);
}

/* A trainer whose first attempt crashes at once (exit 3), and whose
 * second waits for RUN_DIR/go when `twice`, then crashes too; the last
 * one finishes. */
#define FINISH_SH \
	"echo '{\"type\":\"event\",\"step\":21,\"event\":\"exit\",\"message\":\"finished\"}'" \
	" >> \"$TEND_METRICS_FILE\"\nexit 0\n"
static const char crash_once_sh[] = "#!/bin/sh\n[ \"$TEND_ATTEMPT\" = 1 ] && exit 3\n" FINISH_SH;
static const char crash_twice_sh[] =
	"#!/bin/sh\n"
	"[ \"$TEND_ATTEMPT\" = 1 ] && exit 3\n"
	"if [ \"$TEND_ATTEMPT\" = 2 ]; then\n"
	"  while [ ! -e \"$TEND_RUN_DIR/go\" ]; do sleep 0.01; done\n"
	"  exit 3\n"
	"fi\n" FINISH_SH;

/* Every candidate's child dies (the corrupt 20 and 10 of a crash's
 * restart, each child killed while it hashes its own): none verified, but
 * none was proven corrupt either, so the run gives up, saying why, rather
 * than start from scratch. */
static void test_every_verifier_dies_gives_up(void)
{
	char ws[PATH_MAX], like[256];
	e2e_proc run = {0};
	long long bytes = fake_bytes();
	TT_REQUIRE(script_workspace(ws, "all-die", crash_once_sh) == 0);
	TT_REQUIRE(fake_ckpt(ws, 10, bytes) == 0 && fake_ckpt(ws, 20, bytes) == 0);
	TT_REQUIRE(e2e_spawnv(&run, ws, "run", (const char *const[]){"run", "r", "--no-status",
			      NULL}) == 0);
	pid_t v1 = hold_verifier(run.pid, "/ckpt-00000020.bin", 0, 60);
	TT_REQUIRE(v1 > 0);
	kill(v1, SIGKILL);
	pid_t v2 = hold_verifier(run.pid, "/ckpt-00000010.bin", v1, 60);
	TT_CHECK(v2 > 0);
	if (v2 > 0)
		kill(v2, SIGKILL);
	TT_CHECK(e2e_wait(&run, 60) == 1);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "failed");
	snprintf(like, sizeof like, "checkpoint verification (pid %d) was killed by signal 9 "
		 "while checking ckpt-00000020.bin: %%", (int)v1);
	TT_CHECK(count_events(db, "verify_failed", like) == 1);
	snprintf(like, sizeof like, "verifying up to 1 checkpoint, newest first, in a child "
		 "process (pid %d)", (int)v2);
	TT_CHECK(count_events(db, "verify", like) == 1);
	snprintf(like, sizeof like, "checkpoint verification (pid %d) was killed by signal 9 "
		 "while checking ckpt-00000010.bin: %%", (int)v2);
	TT_CHECK(count_events(db, "verify_failed", like) == 1);
	TT_CHECK(count_events(db, "giveup", "no checkpoint could be verified (2 of 2 could not be "
			      "checked: ckpt-00000020.bin: its verifier was killed by signal 9, "
			      "and 1 more): not starting from scratch; check the storage, then "
			      "`tend run r --resume`") == 1);
	TT_CHECK(count_events(db, "giveup", "%") == 1);
	TT_CHECK(count_events(db, "verify", "no good checkpoint%") == 0);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	end(ws, db, &run);
}

/* A read that never returns (a hung disk or NFS server; here the newest
 * candidate of a crash's restart, 24, is a FIFO, whose open waits for a
 * writer that never comes): the child uses no CPU, so it is killed after
 * recovery.verify_timeout_s (1 s) without progress, and reaped. The
 * search ends there (a next child would hang on the same storage): the
 * good 20 is never tried, and since 24 was not proven corrupt the run
 * gives up rather than start from scratch. (The script trainer keeps no
 * checkpoints, so nothing but the search opens the FIFO.) */
static void test_verifier_deadline(void)
{
	char ws[PATH_MAX], like[256], path[PATH_MAX + 64];
	e2e_proc run = {0};
	double limit = 0;
	int v = 0;
	TT_REQUIRE(script_workspace(ws, "deadline", crash_once_sh) == 0);
	TT_REQUIRE(patch_config(ws, "recovery:\n", "recovery:\n  verify_timeout_s: 1\n") == 0);
	TT_REQUIRE(good_ckpt(ws, 20) == 0);
	snprintf(path, sizeof path, "%s/runs/r/checkpoints/ckpt-00000024.bin", ws);
	TT_REQUIRE(mkfifo(path, 0644) == 0);
	TT_REQUIRE(e2e_spawnv(&run, ws, "run", (const char *const[]){"run", "r", "--no-status",
			      NULL}) == 0);
	TT_CHECK(wait_count(ws, 1, 60, "SELECT count(*) FROM events WHERE kind = 'verify'") == 0);
	double t0 = e2e_now();
	TT_CHECK(wait_count(ws, 1, 30, "SELECT count(*) FROM events WHERE kind = "
			    "'verify_failed'") == 0);
	double waited = e2e_now() - t0;
	TT_CHECK(e2e_wait(&run, 60) == 1);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	const char *first = e2e_text(db, "SELECT reason FROM events WHERE kind = 'verify'");
	TT_CHECK(sscanf(first, "verifying up to 2 checkpoints, newest first, in a child process "
			"(pid %d)", &v) == 1 && v > 0);
	snprintf(like, sizeof like, "checkpoint verification (pid %d) made no progress (no CPU "
		 "time) for %% s (killed) while checking ckpt-00000024.bin: skipped for this "
		 "search, not marked corrupt", v);
	TT_CHECK(count_events(db, "verify_failed", like) == 1);
	TT_CHECK(count_events(db, "verify_failed", "%") == 1);
	const char *why = e2e_text(db, "SELECT reason FROM events WHERE kind = 'verify_failed'");
	const char *at = strstr(why, "no CPU time) for ");
	TT_CHECK(at && sscanf(at, "no CPU time) for %lf s", &limit) == 1);
	TT_CHECK(limit == 1.0);
	TT_CHECK(waited > 0.5 && waited < 10);
	TT_CHECK(v > 0 && kill(v, 0) < 0 && errno == ESRCH); /* killed, and reaped */
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "failed");
	TT_CHECK(count_events(db, "verify", "verifying up to %") == 1); /* no second child */
	TT_CHECK(count_events(db, "verify", "%ckpt-00000020.bin%") == 0);
	TT_CHECK(count_events(db, "giveup", "no checkpoint could be verified (2 of 2 could not be "
			      "checked: ckpt-00000024.bin: its verifier made no progress (no CPU "
			      "time) for 1.0 s (killed), 1 not tried after it): not starting from "
			      "scratch; check the storage, then `tend run r --resume`") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 1);
	end(ws, db, &run);
}

/* A slow check is not a hung one: with recovery.verify_timeout_s at 1 s,
 * the newest candidate of a crash's restart, a corrupt 20, takes about
 * 2.5 s to hash here. The child uses CPU all along, so it is never killed:
 * it rejects 20 and accepts 10, and the run resumes from 10. */
static void test_slow_verifier_not_killed(void)
{
	char ws[PATH_MAX];
	e2e_proc run = {0};
	double dt = 0;
	long long bytes = (long long)(hash_rate() * 2.5) & ~63LL;
	TT_REQUIRE(script_workspace(ws, "slow", crash_once_sh) == 0);
	TT_REQUIRE(patch_config(ws, "recovery:\n", "recovery:\n  verify_timeout_s: 1\n") == 0);
	TT_REQUIRE(good_ckpt(ws, 10) == 0);
	TT_REQUIRE(fake_ckpt(ws, 20, bytes > (64LL << 20) ? bytes : 64LL << 20) == 0);
	TT_REQUIRE(e2e_spawnv(&run, ws, "run", (const char *const[]){"run", "r", "--no-status",
			      NULL}) == 0);
	TT_CHECK(e2e_wait(&run, 90) == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(count_events(db, "verify_failed", "%") == 0);
	TT_CHECK(count_events(db, "verify", "verifying up to %") == 1);
	const char *ok = e2e_text(db, "SELECT reason FROM events WHERE kind = 'verify' AND "
				  "reason LIKE 'ckpt-00000010.bin (step 10) verifies; 1 newer "
				  "rejected; %% s'");
	const char *at = strstr(ok, "rejected; ");
	TT_CHECK(at && sscanf(at, "rejected; %lf s", &dt) == 1);
	TT_CHECK(dt > 1.5); /* outlived verify_timeout_s, by progress */
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 2);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 10);
	end(ws, db, &run);
}

/* Drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from this process and
 * all it execs (bounding, inheritable, ambient, effective sets): file
 * modes then bind root as they bind any owner. */
static int drop_dac(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	unsigned dac = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH;
	if (prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) < 0 ||
	    prctl(PR_CAPBSET_DROP, CAP_DAC_READ_SEARCH, 0, 0, 0) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ||
	    syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[0].inheritable &= ~dac;
	d[0].permitted &= ~dac;
	d[0].effective &= ~dac;
	return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

/* `tend run r` as e2e_spawnv starts it, but without the capabilities
 * that let root read a mode-000 file (when root: the tests run as root). */
static int spawn_run_no_dac(e2e_proc *p, const char *ws)
{
	const char *bin = getenv("TEND_BIN");
	snprintf(p->out, sizeof p->out, "%s/run.out", ws);
	snprintf(p->err, sizeof p->err, "%s/run.err", ws);
	fflush(NULL);
	if (!bin || (p->pid = fork()) < 0)
		return -1;
	if (p->pid == 0) {
		int fo = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fo < 0 || fe < 0 || (geteuid() == 0 && drop_dac() < 0))
			_exit(125);
		dup2(fo, 1);
		dup2(fe, 2);
		setenv("OMP_WAIT_POLICY", "passive", 1);
		unsetenv("TEND_WORKSPACE");
		execl(bin, bin, "--workspace", ws, "run", "r", "--no-status", (char *)NULL);
		_exit(127);
	}
	return 0;
}

/* A checkpoint that cannot be read (EACCES: mode 000) is skipped for that
 * search only: the first restart resumes from 10; made readable again,
 * unchanged (same inode, size and mtime: chmod moves only the ctime), it
 * is hashed by the next search and accepted. It used to be remembered as
 * corrupt while unchanged, so skipped for good. */
static void test_unreadable_not_remembered(void)
{
	char ws[PATH_MAX], path[PATH_MAX + 64], go[PATH_MAX + 16];
	e2e_proc run = {0};
	struct stat a, b;
	TT_REQUIRE(script_workspace(ws, "unreadable", crash_twice_sh) == 0);
	TT_REQUIRE(good_ckpt(ws, 10) == 0 && good_ckpt(ws, 20) == 0);
	snprintf(path, sizeof path, "%s/runs/r/checkpoints/ckpt-00000020.bin", ws);
	TT_REQUIRE(chmod(path, 0) == 0 && stat(path, &a) == 0);
	TT_REQUIRE(spawn_run_no_dac(&run, ws) == 0);
	TT_CHECK(wait_count(ws, 2, 30, "SELECT count(*) FROM attempts") == 0);
	TT_CHECK(chmod(path, 0644) == 0 && stat(path, &b) == 0);
	TT_CHECK(a.st_ino == b.st_ino && a.st_size == b.st_size &&
		 a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec);
	snprintf(go, sizeof go, "%s/runs/r/go", ws);
	TT_CHECK(fsu_write_atomic(go, "", 0, 0644) == 0);
	TT_CHECK(e2e_wait(&run, 60) == 0);
	sqlite3 *db = e2e_db(ws);
	TT_REQUIRE(db);
	TT_CHECK_STR(e2e_text(db, "SELECT state FROM runs WHERE name = 'r'"), "finished");
	TT_CHECK(count_events(db, "verify", "ckpt-00000020.bin could not be read (Permission "
			      "denied): skipped for this search, not marked corrupt") == 1);
	TT_CHECK(count_events(db, "verify", "ckpt-00000010.bin (step 10) verifies; 0 newer "
			      "rejected, 1 could not be checked; % s") == 1);
	TT_CHECK(count_events(db, "verify", "verifying up to 2 checkpoints, newest first, %") == 2);
	TT_CHECK(count_events(db, "verify", "ckpt-00000020.bin (step 20) verifies; 0 newer "
			      "rejected; % s") == 1);
	TT_CHECK(e2e_int(db, "SELECT count(*) FROM attempts") == 3);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 2") == 10);
	TT_CHECK(e2e_int(db, "SELECT from_step FROM attempts WHERE n = 3") == 20);
	TT_CHECK_HAS(e2e_text(db, "SELECT from_checkpoint FROM attempts WHERE n = 3"),
		     "ckpt-00000020.bin");
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
	TT_RUN(test_dead_verifier_costs_one_candidate);
	TT_RUN(test_every_verifier_dies_gives_up);
	TT_RUN(test_verifier_deadline);
	TT_RUN(test_slow_verifier_not_killed);
	TT_RUN(test_unreadable_not_remembered);
	TT_RUN(test_verdict_remembered);
	TT_RUN(test_stop_during_rollback);
	TT_RUN(test_stop_now_during_rollback);
	TT_RUN(test_rollback_decided_as_trainer_dies);
	e2e_teardown();
	return TT_DONE();
}
