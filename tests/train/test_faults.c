/*
 * test_faults.c - every injected fault (scaffold/fault.h) shows in the
 * metrics, the exit status or stderr as documented: nan, spike, gradblow
 * (data faults: they come back after a restart, not after skipping past
 * them), hang, slow, crash, oom, collapse (machine faults: recorded in
 * RUN_DIR/faults_fired and not fired again), and the scaffold's
 * skip_windows hook stepping over a poisoned batch, also across a resume.
 */
#include "ckpt.h"
#include "ttrain.h"

#include <sys/resource.h>

static tr_metrics M;

static void load(const char *run)
{
	tr_metrics_free(&M);
	tr_metrics_read(&M, tr_path("%s/metrics.jsonl", run));
	TT_CHECK(M.bad == 0);
}

static const tr_line *step_line(long step, int nth)
{
	return tr_find(&M, MLINE_STEP, step, nth);
}

/* The data position stored in the checkpoint of step in run; -1 if none. */
static long ckpt_data_pos(const char *run, long step)
{
	ckpt *c = NULL;
	char path[600];
	snprintf(path, sizeof path, "%s/checkpoints/" CKPT_NAME_FMT, tr_path("%s", run), step);
	if (ckpt_open(&c, path) < 0)
		return -1;
	const char *v = ckpt_meta(c, "data_pos");
	long pos = v ? atol(v) : -1;
	ckpt_free(c);
	return pos;
}

static void check_fired(const char *run, const char *want)
{
	char *got = tr_read(tr_path("%s/faults_fired", run));
	if (want)
		TT_CHECK_STR(got, want);
	else
		TT_CHECK(got == NULL);
	free(got);
}

static void test_nan_written_as_token_and_not_checkpointed(void)
{
	const char *a[] = {"--run-dir", tr_path("nan"), "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "nan@10", NULL};
	TT_REQUIRE(tr_run("nan", a) == 0);
	load("nan");
	const tr_line *s9 = step_line(9, 0), *s10 = step_line(10, 0);
	TT_REQUIRE(s9 && s10);
	TT_CHECK(isfinite(s9->loss));
	TT_CHECK_STR(s10->loss_text, "NaN"); /* the bare token, not a string */
	TT_CHECK(isnan(s10->loss) && isnan(s10->grad_norm));
	const tr_line *sk = tr_event(&M, "checkpoint_skipped", 0);
	TT_REQUIRE(sk != NULL);
	TT_CHECK(sk->step == 10 && sk->ok == 0);
	TT_CHECK_STR(sk->message, "loss or grad norm is not finite: not checkpointing");
	TT_CHECK(tr_find(&M, MLINE_CHECKPOINT, 5, 0) != NULL);
	TT_CHECK(tr_count(&M, MLINE_CHECKPOINT) == 1);
	TT_CHECK(!fsu_exists(tr_path("nan/checkpoints/ckpt-00000010.bin")));
	check_fired("nan", NULL); /* data faults are not "fired" */
}

/* With grad_accum 2 a data fault's step still counts optimizer steps. */
static void test_nan_step_with_grad_accum(void)
{
	const char *a[] = {"--run-dir", tr_path("nan2"), "--steps", "5", "--eval-every", "0",
		"--checkpoint-every", "0", "--grad-accum", "2", "--inject", "nan@4", NULL};
	TT_REQUIRE(tr_run("nan2", a) == 0);
	load("nan2");
	TT_CHECK(step_line(3, 0) && isfinite(step_line(3, 0)->loss));
	TT_CHECK(step_line(4, 0) && isnan(step_line(4, 0)->loss));
}

static void test_spike_multiplies_the_loss(void)
{
	const char *a[] = {"--run-dir", tr_path("spike"), "--steps", "10", "--eval-every", "0",
		"--checkpoint-every", "0", "--inject", "spike@6:10", NULL};
	TT_REQUIRE(tr_run("spike", a) == 0);
	load("spike");
	const tr_line *b = step_line(5, 0), *s = step_line(6, 0), *n = step_line(7, 0);
	TT_REQUIRE(b && s && n);
	double ratio = s->loss / ((b->loss + n->loss) / 2);
	TT_CHECK(ratio > 9.5 && ratio < 10.5);
	TT_CHECK(s->grad_norm > 5 * b->grad_norm); /* a real, bigger gradient */
	TT_CHECK(n->loss < 2 * b->loss);           /* one step only */
}

static void test_gradblow_raises_the_grad_norm(void)
{
	const char *a[] = {"--run-dir", tr_path("blow"), "--steps", "10", "--eval-every", "0",
		"--checkpoint-every", "0", "--inject", "gradblow@6", NULL};
	TT_REQUIRE(tr_run("blow", a) == 0);
	load("blow");
	const tr_line *b = step_line(5, 0), *s = step_line(6, 0), *n = step_line(7, 0);
	TT_REQUIRE(b && s && n);
	TT_CHECK(s->grad_norm > 500 * b->grad_norm && s->grad_norm > 500 * n->grad_norm);
	TT_CHECK(s->loss < 1.1 * b->loss); /* the loss itself is untouched */
}

static void test_hang_keeps_heartbeats_and_ignores_sigterm(void)
{
	const char *run = tr_path("hang"), *metrics = tr_path("hang/metrics.jsonl");
	const char *a[] = {"--run-dir", run, "--steps", "1000", "--eval-every", "0",
		"--checkpoint-every", "0", "--heartbeat", "0.1", "--inject", "hang@6", NULL};
	pid_t pid = tr_spawn("hang", a);
	TT_REQUIRE(pid > 0);
	bool hung = tr_wait_for(metrics, 0, "fault", 30);
	tr_sleep(0.6);
	load("hang");
	int hb1 = tr_count(&M, MLINE_HEARTBEAT);
	kill(pid, SIGTERM);
	bool alive = tr_alive_after(pid, 0.6);
	load("hang");
	int hb2 = tr_count(&M, MLINE_HEARTBEAT);
	kill(pid, SIGKILL);
	int st = tr_wait(pid, 10);
	TT_CHECK(hung);
	TT_CHECK(alive);
	TT_CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	const tr_line *f = tr_event(&M, "fault", 0);
	TT_REQUIRE(f != NULL);
	TT_CHECK(f->step == 6 && strcmp(f->message, "hang") == 0);
	TT_CHECK(tr_last_step(&M) == 5);
	TT_CHECK(hb1 >= 3 && hb2 >= hb1 + 3);
	int after = 0;
	for (int i = (int)(f - M.v); i < M.n; i++)
		if (M.v[i].type == MLINE_HEARTBEAT) {
			after++;
			TT_CHECK(M.v[i].step == 5);
		}
	TT_CHECK(after >= 6);
	check_fired("hang", "hang@6:0\n");
	/* a restart does not hang again */
	const char *b[] = {"--run-dir", run, "--steps", "8", "--eval-every", "0",
		"--checkpoint-every", "0", "--heartbeat", "0.1", "--inject", "hang@6",
		"--resume", "latest", NULL};
	TT_CHECK(tr_run("hang2", b) == 0);
	load("hang");
	TT_CHECK(tr_last_step(&M) == 8);
}

/* Resumed from step 5 and hung before step 6: the heartbeats must say 5,
 * the last step done, not 0 - a monitor would see the run go backwards. */
static void test_heartbeat_after_resume_names_resumed_step(void)
{
	const char *run = tr_path("hb"), *metrics = tr_path("hb/metrics.jsonl");
	const char *a[] = {"--run-dir", run, "--steps", "5", "--eval-every", "0",
		"--checkpoint-every", "0", "--heartbeat", "0", NULL};
	TT_REQUIRE(tr_run("hb1", a) == 0);
	const char *b[] = {"--run-dir", run, "--steps", "10", "--eval-every", "0",
		"--checkpoint-every", "0", "--heartbeat", "0.05", "--resume", "latest",
		"--inject", "hang@6", NULL};
	pid_t pid = tr_spawn("hb2", b);
	TT_REQUIRE(pid > 0);
	bool hung = tr_wait_for(metrics, 0, "fault", 30);
	tr_sleep(0.4);
	kill(pid, SIGKILL);
	tr_wait(pid, 10);
	TT_CHECK(hung);
	load("hb");
	const tr_line *start = tr_event(&M, "start", 1);
	TT_REQUIRE(start != NULL);
	int n = 0, wrong = 0;
	for (int i = (int)(start - M.v); i < M.n; i++)
		if (M.v[i].type == MLINE_HEARTBEAT) {
			n++;
			wrong += M.v[i].step != 5;
		}
	TT_CHECK(n >= 3 && wrong == 0);
}

static double min_step_time(long from, long to)
{
	double m = INFINITY;
	for (long s = from; s <= to; s++)
		if (step_line(s, 0) && step_line(s, 0)->step_time < m)
			m = step_line(s, 0)->step_time;
	return m;
}

/* slow@S:F sleeps (F-1) times each step's own compute time. Other work on
 * the machine makes single steps jitter by several times, so the fastest
 * step of each side is compared (the least disturbed), with a large F and
 * a wide band: load that comes and goes between the two halves must not
 * fail it, a fault that does nothing or sleeps a wrong multiple must. */
static void test_slow_multiplies_step_time(void)
{
	const char *a[] = {"--run-dir", tr_path("slow"), "--steps", "30", "--eval-every", "0",
		"--checkpoint-every", "0", "--inject", "slow@21:20", NULL};
	TT_REQUIRE(tr_run("slow", a) == 0);
	load("slow");
	double before = min_step_time(2, 20), after = min_step_time(21, 30);
	printf("slow@21:20: fastest step %.4f s before, %.4f s after (x%.1f)\n", before, after,
	       after / before);
	TT_CHECK(after / before > 5 && after / before < 40);
	check_fired("slow", "slow@21:20\n");
}

/* crash@S:11 kills the trainer with SIGSEGV; a restart from the latest
 * checkpoint with the same --inject passes step S. */
static void test_crash_by_signal_then_not_again(void)
{
	static char asan[512];
	const char *prev = getenv("ASAN_OPTIONS");
	/* ASan would catch the SIGSEGV and abort instead */
	snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%shandle_segv=0", prev ? prev : "",
		 prev && *prev ? ":" : "");
	const char *run = tr_path("crash");
	const char *a[] = {"--run-dir", run, "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "crash@8:11", NULL};
	int st = tr_wait(tr_spawn_env("crash", asan, a), 60);
	TT_CHECK(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	load("crash");
	TT_CHECK(tr_last_step(&M) == 7);
	const tr_line *f = tr_event(&M, "fault", 0);
	TT_CHECK(f && f->step == 8 && strcmp(f->message, "crash") == 0);
	check_fired("crash", "crash@8:11\n");
	const char *b[] = {"--run-dir", run, "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "crash@8:11", "--resume", "latest", NULL};
	TT_CHECK(tr_wait(tr_spawn_env("crash2", asan, b), 60) == 0);
	load("crash");
	const tr_line *start = tr_event(&M, "start", 1);
	TT_CHECK(start && start->step == 5);
	TT_CHECK(step_line(8, 0) && tr_last_step(&M) == 12);
	check_fired("crash", "crash@8:11\n");
}

static void test_oom_message_and_exit_1(void)
{
	const char *a[] = {"--run-dir", tr_path("oom"), "--steps", "10", "--eval-every", "0",
		"--checkpoint-every", "0", "--inject", "oom@5", NULL};
	TT_CHECK(tr_run("oom", a) == 1);
	char *err = tr_read(tr_path("oom.err"));
	TT_CHECK_STR(err, "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB "
		     "(injected fault at step 5)\n");
	free(err);
	load("oom");
	TT_CHECK(tr_last_step(&M) == 4);
	check_fired("oom", "oom@5:0\n");
}

/* collapse@S zeroes the routers: every token goes to experts 0..k-1, so the
 * busiest expert carries E/k times the mean and E-k experts are dead. */
static void test_collapse_concentrates_expert_load(void)
{
	const char *a[] = {"--run-dir", tr_path("collapse"), "--steps", "14", "--eval-every", "0",
		"--checkpoint-every", "0", "--inject", "collapse@8", NULL};
	TT_REQUIRE(tr_run("collapse", a) == 0);
	load("collapse");
	for (long s = 1; s <= 14; s++) {
		const tr_line *l = step_line(s, 0);
		TT_REQUIRE(l != NULL);
		if (s < 8) {
			TT_CHECK(l->max_over_mean < 1.6);
			TT_CHECK(l->dead == 0);
		} else {
			TT_CHECK(fabs(l->max_over_mean - 4.0 / 2) < 1e-6);
			TT_CHECK(l->dead == 2);
		}
	}
	check_fired("collapse", "collapse@8:0\n");
}

/* A data fault is the batch's: restarted without skipping, the run meets
 * it again; told to skip past it (--skip-batches), it does not. */
static void test_data_fault_refires_unless_skipped(void)
{
	const char *run = tr_path("refire");
	const char *a[] = {"--run-dir", run, "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "nan@8", NULL};
	TT_REQUIRE(tr_run("refire1", a) == 0);
	const char *b[] = {"--run-dir", run, "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "nan@8", "--resume", "latest", NULL};
	TT_REQUIRE(tr_run("refire2", b) == 0);
	load("refire");
	TT_CHECK(step_line(8, 0) && isnan(step_line(8, 0)->loss));
	TT_CHECK(step_line(8, 1) && isnan(step_line(8, 1)->loss));
	TT_CHECK(step_line(7, 1) && isfinite(step_line(7, 1)->loss));
	const char *c[] = {"--run-dir", run, "--steps", "12", "--eval-every", "0",
		"--checkpoint-every", "5", "--inject", "nan@8", "--resume", "latest",
		"--skip-batches", "3", NULL};
	TT_REQUIRE(tr_run("refire3", c) == 0);
	load("refire");
	const tr_line *start = tr_event(&M, "start", 2);
	TT_REQUIRE(start != NULL);
	TT_CHECK(start->step == 5);
	int nan = 0;
	for (int i = (int)(start - M.v); i < M.n; i++)
		nan += M.v[i].type == MLINE_STEP && !isfinite(M.v[i].loss);
	TT_CHECK(nan == 0);
	TT_CHECK(tr_last_step(&M) == 12);
	TT_CHECK(ckpt_data_pos("refire", 10) == 13); /* 10 steps + 3 skipped */
	check_fired("refire", NULL);
}

/* The scaffold's skip_windows hook: at the step before a window it skips
 * the window's batches, so nan@8 inside {from=8, to=9} is never met - also
 * when the run is stopped and resumed from the checkpoint of step 7, the
 * step where the skip is asked for. */
static void test_skip_window_steps_over_nan(void)
{
	const char *scf = tr_scaffold_copy("scf-window");
	char lua[600];
	snprintf(lua, sizeof lua, "%s/scaffold.lua", scf);
	TT_REQUIRE(tr_replace(lua, "skip_windows = {},",
			      "skip_windows = { { from = 8, to = 9 } },") == 0);
	const char *a[] = {"--run-dir", tr_path("win"), "--scaffold", scf, "--steps", "12",
		"--eval-every", "0", "--checkpoint-every", "7", "--inject", "nan@8", NULL};
	TT_REQUIRE(tr_run("win", a) == 0);
	const char *b[] = {"--run-dir", tr_path("win-r"), "--scaffold", scf, "--steps", "12",
		"--eval-every", "0", "--checkpoint-every", "7", "--inject", "nan@8",
		"--stop-after", "9", NULL};
	TT_REQUIRE(tr_run("win-r1", b) == 0);
	const char *c[] = {"--run-dir", tr_path("win-r"), "--scaffold", scf, "--steps", "12",
		"--eval-every", "0", "--checkpoint-every", "7", "--inject", "nan@8",
		"--resume", "latest", NULL};
	TT_REQUIRE(tr_run("win-r2", c) == 0);
	tr_metrics straight;
	tr_metrics_read(&straight, tr_path("win/metrics.jsonl"));
	load("win-r");
	const tr_line *sk = tr_event(&straight, "skip", 0);
	TT_REQUIRE(sk != NULL);
	TT_CHECK(sk->step == 7);
	TT_CHECK_STR(sk->message, "scaffold skipped 2 batches");
	TT_CHECK(ckpt_data_pos("win", 7) == 9);
	int nan = 0, differ = 0;
	for (int i = 0; i < M.n; i++) {
		const tr_line *l = &M.v[i];
		if (l->type != MLINE_STEP)
			continue;
		const tr_line *w = tr_find(&straight, MLINE_STEP, l->step, 0);
		nan += !isfinite(l->loss) || !w || !isfinite(w->loss);
		differ += !w || strcmp(w->loss_text, l->loss_text) != 0;
	}
	TT_CHECK(nan == 0);
	TT_CHECK(differ == 0);
	TT_CHECK(tr_last_step(&straight) == 12 && tr_last_step(&M) == 12);
	tr_metrics_free(&straight);
}

int main(void)
{
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core); /* inherited: the crash test dumps no core */
	tr_mkdtemp();
	TT_RUN(test_nan_written_as_token_and_not_checkpointed);
	TT_RUN(test_nan_step_with_grad_accum);
	TT_RUN(test_spike_multiplies_the_loss);
	TT_RUN(test_gradblow_raises_the_grad_norm);
	TT_RUN(test_hang_keeps_heartbeats_and_ignores_sigterm);
	TT_RUN(test_heartbeat_after_resume_names_resumed_step);
	TT_RUN(test_slow_multiplies_step_time);
	TT_RUN(test_crash_by_signal_then_not_again);
	TT_RUN(test_oom_message_and_exit_1);
	TT_RUN(test_collapse_concentrates_expert_load);
	TT_RUN(test_data_fault_refires_unless_skipped);
	TT_RUN(test_skip_window_steps_over_nan);
	tr_metrics_free(&M);
	return tr_finish();
}
