/*
 * test_signals.c - the trainer steered from outside while it runs: SIGHUP
 * reloads the scaffold between steps (a broken one is refused and the old
 * one kept), SIGUSR1 applies RUN_DIR/control ("skip=N", "lr_scale=F"),
 * SIGTERM ends the run without a checkpoint, SIGINT with one; and what the
 * scaffold's S.on_step asks for (checkpoint, stop).
 */
#include "ckpt.h"
#include "ttrain.h"

/* lua/scaffold.lua's S.lr for its config (warmup 100, min_lr 3e-5). */
static double want_lr(long step, long total, double lr)
{
	const double min_lr = 3e-5, warmup = 100;
	if (step < warmup)
		return lr * (double)(step + 1) / warmup;
	double span = fmax(1, (double)total - warmup);
	double progress = fmin(1, ((double)step - warmup) / span);
	return min_lr + 0.5 * (lr - min_lr) * (1 + cos(M_PI * progress));
}

static bool near(double got, double want)
{
	return fabs(got - want) <= 1e-6 * fabs(want);
}

/* Checks every step line in [from, to) of m against lr * scale; returns the
 * number that differ. */
static int lr_mismatches(const tr_metrics *m, int from, int to, double lr, double scale)
{
	int bad = 0;
	for (int i = from; i < to && i < m->n; i++) {
		const tr_line *l = &m->v[i];
		if (l->type == MLINE_STEP && !near(l->lr, scale * want_lr(l->step, 100000, lr))) {
			if (bad++ < 3)
				fprintf(stderr, "step %ld: lr %s, want %g\n", l->step, l->lr_text,
					scale * want_lr(l->step, 100000, lr));
		}
	}
	return bad;
}

/* Waits for step lines beyond the nth event named ev (true) or times out. */
static bool steps_after_event(const char *metrics, const char *ev, int nth, int steps)
{
	double end = tr_now() + 20;
	while (tr_now() < end) {
		tr_metrics m;
		tr_metrics_read(&m, metrics);
		const tr_line *e = tr_event(&m, ev, nth);
		bool ok = e && tr_last_step(&m) >= e->step + steps;
		tr_metrics_free(&m);
		if (ok)
			return true;
		tr_sleep(0.02);
	}
	return false;
}

static void test_sighup_reloads_and_keeps_old_on_error(void)
{
	const char *scf = tr_scaffold_copy("scf-hup"), *metrics = tr_path("hup/metrics.jsonl");
	char lua[600];
	snprintf(lua, sizeof lua, "%s/scaffold.lua", scf);
	const char *a[] = {"--run-dir", tr_path("hup"), "--scaffold", scf, "--steps", "100000",
		"--eval-every", "0", "--checkpoint-every", "0", "--heartbeat", "0", NULL};
	pid_t pid = tr_spawn("hup", a);
	TT_REQUIRE(pid > 0);
	bool up = tr_wait_for(metrics, 3, NULL, 30);
	TT_CHECK(tr_replace(lua, "lr = 3e-4,", "lr = 6e-4,") == 0);
	kill(pid, SIGHUP);
	bool reloaded = steps_after_event(metrics, "scaffold_reload", 0, 3);
	/* a syntax error: the reload must fail and keep the 6e-4 scaffold */
	TT_CHECK(tr_replace(lua, "local S = { api = 1 }", "local S = { api = 1") == 0);
	kill(pid, SIGHUP);
	bool refused = steps_after_event(metrics, "scaffold_reload", 1, 3);
	kill(pid, SIGTERM);
	int st = tr_wait(pid, 30);
	TT_CHECK(up && reloaded && refused);
	TT_CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);

	tr_metrics m;
	tr_metrics_read(&m, metrics);
	TT_CHECK(m.bad == 0);
	const tr_line *r1 = tr_event(&m, "scaffold_reload", 0), *r2 = tr_event(&m, "scaffold_reload", 1);
	TT_REQUIRE(r1 && r2);
	TT_CHECK(r1->ok == 1);
	TT_CHECK_STR(r1->message, "scaffold reloaded");
	TT_CHECK(r2->ok == 0);
	TT_CHECK_HAS(r2->message, "reload failed, keeping the previous scaffold: scaffold ");
	TT_CHECK_HAS(r2->message, "scaffold.lua:");
	int i1 = (int)(r1 - m.v);
	TT_CHECK(lr_mismatches(&m, 0, i1, 3e-4, 1) == 0);
	TT_CHECK(lr_mismatches(&m, i1, m.n, 6e-4, 1) == 0);
	/* the step the reload happened at already ran under the new scaffold */
	const tr_line *at = tr_find(&m, MLINE_STEP, r1->step, 0);
	TT_CHECK(at && near(at->lr, want_lr(at->step, 100000, 6e-4)));
	TT_CHECK(tr_last_step(&m) >= r2->step + 3);
	const tr_line *ex = tr_event(&m, "exit", 0);
	TT_CHECK(ex && strcmp(ex->message, "terminated") == 0);
	TT_CHECK(tr_count(&m, MLINE_CHECKPOINT) == 0); /* SIGTERM: no checkpoint */
	tr_metrics_free(&m);
}

static void test_control_file_on_sigusr1(void)
{
	const char *run = tr_path("ctl"), *metrics = tr_path("ctl/metrics.jsonl");
	const char *a[] = {"--run-dir", run, "--steps", "100000", "--eval-every", "0",
		"--checkpoint-every", "0", "--heartbeat", "0", NULL};
	pid_t pid = tr_spawn("ctl", a);
	TT_REQUIRE(pid > 0);
	bool up = tr_wait_for(metrics, 3, NULL, 30);
	/* an out-of-range line is ignored; the rest apply in order */
	TT_CHECK(tr_write(tr_path("ctl/control"), "lr_scale=50\nskip=3\nlr_scale=0.5\n") == 0);
	kill(pid, SIGUSR1);
	bool applied = steps_after_event(metrics, "lr_scale", 0, 3);
	kill(pid, SIGINT);
	int st = tr_wait(pid, 30);
	TT_CHECK(up && applied);
	TT_CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	TT_CHECK(!fsu_exists(tr_path("ctl/control")));

	tr_metrics m;
	tr_metrics_read(&m, metrics);
	const tr_line *sk = tr_event(&m, "skip", 0), *ls = tr_event(&m, "lr_scale", 0);
	TT_REQUIRE(sk && ls);
	TT_CHECK(tr_event(&m, "lr_scale", 1) == NULL);
	TT_CHECK_STR(sk->message, "skipped 3 batches on the supervisor's request");
	TT_CHECK_STR(ls->message, "learning rate scaled by 0.5 on the supervisor's request");
	TT_CHECK(sk->ok == 1 && ls->ok == 1 && sk->step == ls->step);
	int il = (int)(ls - m.v);
	TT_CHECK(lr_mismatches(&m, 0, il, 3e-4, 1) == 0);
	TT_CHECK(lr_mismatches(&m, il, m.n, 3e-4, 0.5) == 0);
	/* SIGINT checkpointed the last step; its data position counts the skip */
	long k = tr_last_step(&m);
	const tr_line *ck = tr_find(&m, MLINE_CHECKPOINT, k, 0);
	const tr_line *ex = tr_event(&m, "exit", 0);
	TT_CHECK(ex && strcmp(ex->message, "interrupted") == 0);
	TT_REQUIRE(ck != NULL);
	ckpt *c = NULL;
	TT_REQUIRE(ckpt_open(&c, ck->path) == 0);
	const char *pos = ckpt_meta(c, "data_pos");
	TT_CHECK(pos && atol(pos) == k + 3);
	ckpt_free(c);
	tr_metrics_free(&m);
}

/* S.on_step asks for a checkpoint at step 3 and a stop at step 5: the run
 * checkpoints 3, stops after 5 as finished (final checkpoint). With
 * --no-checkpoints neither checkpoint is written. */
static void test_scaffold_checkpoint_and_stop(void)
{
	const char *scf = tr_scaffold_copy("scf-act");
	char lua[600];
	snprintf(lua, sizeof lua, "%s/scaffold.lua", scf);
	TT_REQUIRE(tr_replace(lua, "function S.on_step(m)\n", "function S.on_step(m)\n"
		"  if m.step == 3 then return { checkpoint = true } end\n"
		"  if m.step == 5 then return { stop = true, reason = \"enough\" } end\n") == 0);
	const char *a[] = {"--run-dir", tr_path("act"), "--scaffold", scf, "--steps", "10",
		"--eval-every", "0", "--checkpoint-every", "0", "--heartbeat", "0", NULL};
	TT_REQUIRE(tr_run("act", a) == 0);
	tr_metrics m;
	tr_metrics_read(&m, tr_path("act/metrics.jsonl"));
	TT_CHECK(tr_last_step(&m) == 5);
	TT_CHECK(tr_find(&m, MLINE_CHECKPOINT, 3, 0) && tr_find(&m, MLINE_CHECKPOINT, 5, 0));
	TT_CHECK(tr_count(&m, MLINE_CHECKPOINT) == 2);
	const tr_line *ex = tr_event(&m, "exit", 0);
	TT_CHECK(ex && ex->step == 5 && strcmp(ex->message, "finished") == 0);
	tr_metrics_free(&m);
	const char *b[] = {"--run-dir", tr_path("act-nc"), "--scaffold", scf, "--steps", "10",
		"--eval-every", "0", "--checkpoint-every", "0", "--heartbeat", "0",
		"--no-checkpoints", NULL};
	TT_REQUIRE(tr_run("act-nc", b) == 0);
	tr_metrics_read(&m, tr_path("act-nc/metrics.jsonl"));
	TT_CHECK(tr_last_step(&m) == 5);
	TT_CHECK(tr_count(&m, MLINE_CHECKPOINT) == 0);
	TT_CHECK(!fsu_exists(tr_path("act-nc/checkpoints/ckpt-00000003.bin")));
	tr_metrics_free(&m);
}

int main(void)
{
	tr_mkdtemp();
	TT_RUN(test_sighup_reloads_and_keeps_old_on_error);
	TT_RUN(test_control_file_on_sigusr1);
	TT_RUN(test_scaffold_checkpoint_and_stop);
	return tr_finish();
}
