/*
 * test_resume.c - exact resume on CPU: a run trained straight through and
 * the same run stopped (--stop-after, or SIGINT, which checkpoints first)
 * and resumed with --resume latest print the same loss, bit for bit as
 * written (%.9g), at every step, the same learning rate and the same
 * val_loss, and write byte-identical checkpoints: model, optimizer and data
 * cursor all continue exactly. Real `tend train` children, real files.
 */
#include "sha256.h"
#include "ttrain.h"

/* Every step line of got has a step line in want with the same loss and
 * lr text; every eval line of got matches want's val_loss; got covers
 * steps 1..steps. */
static void same_as_straight(const char *got_path, const char *want_path, long steps)
{
	tr_metrics got, want;
	tr_metrics_read(&got, got_path);
	tr_metrics_read(&want, want_path);
	TT_CHECK(got.bad == 0 && want.bad == 0);
	int nstep = 0, neval = 0, mismatch = 0;
	for (int i = 0; i < got.n; i++) {
		const tr_line *g = &got.v[i], *w = tr_find(&want, g->type, g->step, 0);
		if (g->type == MLINE_STEP) {
			nstep++;
			if (!w || strcmp(g->loss_text, w->loss_text) != 0 ||
			    strcmp(g->lr_text, w->lr_text) != 0) {
				if (mismatch++ < 5)
					fprintf(stderr, "step %ld: loss %s lr %s, straight %s %s\n",
						g->step, g->loss_text, g->lr_text,
						w ? w->loss_text : "-", w ? w->lr_text : "-");
			}
		} else if (g->type == MLINE_EVAL) {
			neval++;
			if (!w || !(g->val_loss == w->val_loss))
				mismatch++;
		}
	}
	TT_CHECK(mismatch == 0);
	TT_CHECK(nstep >= steps); /* the repeated steps after a resume count twice */
	TT_CHECK(neval >= 1);
	for (long s = 1; s <= steps; s++)
		TT_CHECK(tr_find(&got, MLINE_STEP, s, 0) != NULL);
	TT_CHECK(tr_find(&got, MLINE_STEP, steps + 1, 0) == NULL);
	TT_CHECK(!isnan(tr_find(&got, MLINE_STEP, steps, 0)->loss));
	tr_metrics_free(&got);
	tr_metrics_free(&want);
}

static bool same_file(const char *a, const char *b)
{
	char ha[65], hb[65];
	return sha256_file(ha, a) == 0 && sha256_file(hb, b) == 0 && strcmp(ha, hb) == 0;
}

/* The straight run, stopped after 15 steps, resumed from step 10 and
 * stopped after 12 more (crossing the checkpoint at 20), resumed from 20
 * to the end. accum is the --grad-accum value. */
static void resume_three_segments(const char *accum)
{
	const char *straight[] = {"--run-dir", tr_path("s%s", accum), "--steps", "30",
		"--eval-every", "10", "--checkpoint-every", "10", "--grad-accum", accum, NULL};
	TT_REQUIRE(tr_run("s", straight) == 0);
	const char *dir = tr_path("r%s", accum);
	const char *a[] = {"--run-dir", dir, "--steps", "30", "--eval-every", "10",
		"--checkpoint-every", "10", "--grad-accum", accum, "--stop-after", "15", NULL};
	TT_REQUIRE(tr_run("r1", a) == 0);
	const char *b[] = {"--run-dir", dir, "--steps", "30", "--eval-every", "10",
		"--checkpoint-every", "10", "--grad-accum", accum, "--resume", "latest",
		"--stop-after", "12", NULL};
	TT_REQUIRE(tr_run("r2", b) == 0);
	const char *c[] = {"--run-dir", dir, "--steps", "30", "--eval-every", "10",
		"--checkpoint-every", "10", "--grad-accum", accum, "--resume", "latest", NULL};
	TT_REQUIRE(tr_run("r3", c) == 0);

	tr_metrics m;
	tr_metrics_read(&m, tr_path("r%s/metrics.jsonl", accum));
	/* segments: 1..15, 11..22, 21..30 */
	TT_CHECK(tr_find(&m, MLINE_STEP, 15, 0) && !tr_find(&m, MLINE_STEP, 16, 1));
	TT_CHECK(tr_find(&m, MLINE_STEP, 11, 1) && tr_find(&m, MLINE_STEP, 21, 1));
	TT_CHECK(tr_find(&m, MLINE_STEP, 23, 0) && !tr_find(&m, MLINE_STEP, 23, 1));
	const tr_line *st = tr_event(&m, "start", 1);
	TT_REQUIRE(st != NULL);
	TT_CHECK(st->step == 10);
	TT_CHECK_HAS(st->message, "resumed from ");
	TT_CHECK_HAS(st->message, "/checkpoints/ckpt-00000010.bin");
	const tr_line *ex = tr_event(&m, "exit", 0);
	TT_CHECK(ex && ex->step == 15 && strcmp(ex->message, "stopped") == 0);
	tr_metrics_free(&m);
	same_as_straight(tr_path("r%s/metrics.jsonl", accum),
			 tr_path("s%s/metrics.jsonl", accum), 30);
	/* parameters, Adam moments, step and data cursor: byte for byte */
	for (int s = 20; s <= 30; s += 10)
		TT_CHECK(same_file(tr_path("s%s/checkpoints/ckpt-%08d.bin", accum, s),
				   tr_path("r%s/checkpoints/ckpt-%08d.bin", accum, s)));
}

static void test_resume_stop_after(void)
{
	resume_three_segments("1");
}

static void test_resume_grad_accum_2(void)
{
	resume_three_segments("2");
}

/* SIGINT mid-run: the trainer finishes the step, checkpoints it, writes
 * exit "interrupted" and exits 0; the resumed run starts right after it.
 * The interrupted run is slowed (slow@1:6) so the signal lands mid-run;
 * the slow fault is recorded as fired and the resumed run is not slowed,
 * and neither changes a loss. */
static void test_resume_after_sigint(void)
{
	const char *straight[] = {"--run-dir", tr_path("si-s"), "--steps", "40",
		"--eval-every", "10", "--checkpoint-every", "10", NULL};
	TT_REQUIRE(tr_run("si-s", straight) == 0);
	const char *dir = tr_path("si-r"), *metrics = tr_path("si-r/metrics.jsonl");
	const char *a[] = {"--run-dir", dir, "--steps", "40", "--eval-every", "10",
		"--checkpoint-every", "10", "--inject", "slow@1:6", NULL};
	pid_t pid = tr_spawn("si-r1", a);
	TT_REQUIRE(pid > 0);
	bool seen = tr_wait_for(metrics, 13, NULL, 30);
	kill(pid, SIGINT);
	int st = tr_wait(pid, 30);
	TT_REQUIRE(seen);
	TT_REQUIRE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);

	tr_metrics m;
	tr_metrics_read(&m, metrics);
	long k = tr_last_step(&m);
	const tr_line *ex = tr_event(&m, "exit", 0), *ck = tr_find(&m, MLINE_CHECKPOINT, k, 0);
	TT_CHECK(k >= 13 && k < 40);
	TT_CHECK(ex && ex->step == k && strcmp(ex->message, "interrupted") == 0);
	TT_CHECK(ck != NULL);
	tr_metrics_free(&m);
	char want[64];
	snprintf(want, sizeof want, "checkpoints/ckpt-%08ld.bin", k);
	TT_CHECK(fsu_exists(tr_path("si-r/%s", want)));
	char *fired = tr_read(tr_path("si-r/faults_fired"));
	TT_CHECK_STR(fired, "slow@1:6\n");
	free(fired);

	const char *b[] = {"--run-dir", dir, "--steps", "40", "--eval-every", "10",
		"--checkpoint-every", "10", "--inject", "slow@1:6", "--resume", "latest", NULL};
	TT_REQUIRE(tr_run("si-r2", b) == 0);
	tr_metrics_read(&m, metrics);
	const tr_line *start = tr_event(&m, "start", 1);
	TT_CHECK(start && start->step == k);
	TT_CHECK_HAS(start ? start->message : NULL, want);
	TT_CHECK(tr_find(&m, MLINE_STEP, k, 1) == NULL); /* step k is not repeated */
	tr_metrics_free(&m);
	same_as_straight(metrics, tr_path("si-s/metrics.jsonl"), 40);
	TT_CHECK(same_file(tr_path("si-s/checkpoints/ckpt-00000040.bin"),
			   tr_path("si-r/checkpoints/ckpt-00000040.bin")));
}

int main(void)
{
	tr_mkdtemp();
	TT_RUN(test_resume_stop_after);
	TT_RUN(test_resume_grad_accum_2);
	TT_RUN(test_resume_after_sigint);
	return tr_finish();
}
