/*
 * train.c - the training loop of the in-tree trainer (see train.h).
 *
 * One step: ask the scaffold for lr/clip/coefficients, run grad_accum
 * micro-batches forward and backward, clip, AdamW, write one metrics line,
 * let the scaffold's on_step act (skip data, checkpoint, stop), evaluate
 * and checkpoint on schedule. Faults are injected at their documented
 * points. Everything that decides a loss value is restored from the
 * checkpoint, so a resumed run repeats the losses of an unbroken one.
 */
#include "train.h"
#include "trn_int.h"
#include "ckpt.h"
#include "fsutil.h"
#include "loader.h"
#include "scf.h"
#include "shard.h"
#include "synth.h"
#include "tend.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_hup, got_term, got_usr1, got_int;

static void on_hup(int sig) { (void)sig; got_hup = 1; }
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }
/* SIGTERM ends the run at the next step boundary without a checkpoint (the
 * supervisor is rolling back, and a checkpoint written now could push a good
 * one out of retention); SIGINT checkpoints first, as a user stop wants. */
static void on_term(int sig) { (void)sig; got_term = 1; }
static void on_int(int sig) { (void)sig; got_int = 1; }

void trn_opts_default(trn_opts *o)
{
	memset(o, 0, sizeof *o);
	o->model = (gpt_config){.vocab = 256, .context = 64, .layers = 2, .heads = 4,
		.d_model = 64, .moe_every = 1, .experts = 4, .top_k = 2,
		.capacity_factor = 1.25f};
	o->batch = 8;
	o->context = 64;
	o->grad_accum = 1;
	o->steps = 500;
	o->eval_every = 100;
	o->eval_batches = 4;
	o->checkpoint_every = 100;
	o->keep_last = 3;
	o->keep_every = 1000;
	o->seed = 1337;
	o->data = "synthetic";
	o->metrics_file = "metrics.jsonl";
	o->lr_scale = 1.0;
	o->heartbeat_s = 5.0;
}

double trn__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Synthetic data: generated once per run directory, seeded. */
static int ensure_synthetic(const char *dir, uint64_t seed)
{
	char path[4096];
	const size_t n_train = 2u << 20, n_val = 128u << 10;
	int rc = 0;
	snprintf(path, sizeof path, "%s/val_000.bin", dir);
	if (fsu_exists(path))
		return 0;
	if ((rc = fsu_mkdir_p(dir, 0755)) < 0)
		return rc;
	uint8_t *bytes = malloc(n_train + n_val);
	uint16_t *tok = malloc((n_train + n_val) * sizeof *tok);
	if (!bytes || !tok) {
		rc = tend_error_set(TEND_ENOMEM, "synthetic data: out of memory");
		goto done;
	}
	synth_generate(bytes, n_train + n_val, seed);
	for (size_t i = 0; i < n_train + n_val; i++)
		tok[i] = bytes[i];
	snprintf(path, sizeof path, "%s/train_000.bin", dir);
	if ((rc = shard_write(path, tok, n_train)) < 0)
		goto done;
	snprintf(path, sizeof path, "%s/val_000.bin", dir);
	rc = shard_write(path, tok + n_train, n_val);
done:
	free(bytes);
	free(tok);
	return rc;
}

/* The model config as key=value text: stored in checkpoints and compared
 * on resume, so a checkpoint never loads into a different model. */
void trn__config_text(const trn_opts *o, char *buf, size_t cap)
{
	const gpt_config *m = &o->model;
	snprintf(buf, cap,
		 "vocab=%d\ncontext=%d\nlayers=%d\nheads=%d\nd_model=%d\nd_ff=%d\n"
		 "moe_every=%d\nexperts=%d\ntop_k=%d\ncapacity_factor=%g\n"
		 "batch=%d\nseq=%d\ngrad_accum=%d\n",
		 m->vocab, m->context, m->layers, m->heads, m->d_model, m->d_ff,
		 m->moe_every, m->experts, m->top_k, (double)m->capacity_factor,
		 o->batch, o->context, o->grad_accum);
}

static int open_data(trn_state *s)
{
	const trn_opts *o = s->o;
	int rc;
	const char *dir = o->data;
	if (!dir || strcmp(dir, "synthetic") == 0) {
		snprintf(s->data_dir, sizeof s->data_dir, "%s/data", o->run_dir);
		if ((rc = ensure_synthetic(s->data_dir, o->seed)) < 0)
			return rc;
		dir = s->data_dir;
	}
	if ((rc = loader_new(&s->train, dir, "train", o->batch, o->context,
			     o->model.vocab, o->seed)) < 0)
		return rc;
	if (o->eval_every > 0 &&
	    (rc = loader_new(&s->val, dir, "val", o->batch, o->context,
			     o->model.vocab, o->seed)) < 0)
		return rc;
	return 0;
}

static int setup(trn_state *s)
{
	const trn_opts *o = s->o;
	char path[4096];
	int rc;
	if (!o->run_dir || !o->scaffold_dir)
		return tend_error_set(TEND_EINVAL, "train: run directory and scaffold are required");
	if (o->context > o->model.context)
		return tend_error_set(TEND_EINVAL, "train: context %d exceeds the model's %d",
				      o->context, o->model.context);
	snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s/checkpoints", o->run_dir);
	if ((rc = fsu_mkdir_p(s->ckpt_dir, 0755)) < 0)
		return rc;
	snprintf(s->fired_path, sizeof s->fired_path, "%s/faults_fired", o->run_dir);
	s->faults = o->faults;
	fault_drop_fired(&s->faults, s->fired_path);
	for (int i = 0; o->no_machine_faults && i < s->faults.n; i++)
		if (!fault_is_data(s->faults.f[i].kind))
			s->faults.f[i--] = s->faults.f[--s->faults.n];
	/* the scaffold first: it is quick to load and the likeliest to be
	 * broken, so a bad one is reported before any data is generated
	 * (scf_open's message names the directory) */
	trn_scaffold_commit(o->scaffold_dir, s->commit, sizeof s->commit);
	if ((rc = scf_open(&s->scf, o->scaffold_dir, NULL)) < 0)
		return rc;
	if ((rc = open_data(s)) < 0 || (rc = gpt_new(&s->g, &o->model, o->seed)) < 0)
		return rc;
	size_t n = (size_t)o->batch * (size_t)o->context;
	s->inputs = malloc(n * sizeof *s->inputs);
	s->targets = malloc(n * sizeof *s->targets);
	if (!s->inputs || !s->targets)
		return tend_error_set(TEND_ENOMEM, "train: out of memory");
	snprintf(path, sizeof path, "%s/%s", o->run_dir, o->metrics_file);
	return trn__metrics_open(s, path);
}

static void teardown(trn_state *s)
{
	trn__metrics_close(s);
	scf_free(s->scf);
	gpt_free(s->g);
	loader_free(s->train);
	loader_free(s->val);
	free(s->inputs);
	free(s->targets);
}

/* Applies a machine fault due at this step; may not return. */
static void machine_faults(trn_state *s, long step)
{
	const fault *f;
	if ((f = fault_at(&s->faults, FAULT_CRASH, step))) {
		fault_mark_fired(f, s->fired_path);
		trn__event(s, step, "fault", "crash", true);
		/* the default action, even for a signal the trainer handles
		 * (crash@S:15 must not become a clean SIGTERM stop) */
		signal((int)f->arg, SIG_DFL);
		raise((int)f->arg);
		_exit(128 + (int)f->arg); /* a signal whose default is to ignore */
	}
	if ((f = fault_at(&s->faults, FAULT_OOM, step))) {
		fault_mark_fired(f, s->fired_path);
		fprintf(stderr, "RuntimeError: CUDA out of memory. Tried to allocate "
			"2.00 GiB (injected fault at step %ld)\n", step);
		fflush(stderr);
		_exit(1);
	}
	if ((f = fault_at(&s->faults, FAULT_HANG, step))) {
		fault_mark_fired(f, s->fired_path);
		trn__event(s, step, "fault", "hang", true);
		for (;;) /* as a deadlocked collective does, ignore SIGTERM too */
			pause();
	}
	if ((f = fault_at(&s->faults, FAULT_SLOW, step)) && f->step == step)
		fault_mark_fired(f, s->fired_path);
	if ((f = fault_at(&s->faults, FAULT_COLLAPSE, step))) {
		if (f->step == step)
			fault_mark_fired(f, s->fired_path);
		trn__collapse_routers(s->g);
	}
}

/* One optimizer step over grad_accum micro-batches. */
static int train_step(trn_state *s, trn_step_out *out)
{
	const trn_opts *o = s->o;
	int A = o->grad_accum, rc;
	long data_step = s->data_pos / A + 1; /* steps count from 1 */
	const fault *nan = fault_at(&s->faults, FAULT_NAN, data_step);
	const fault *spike = fault_at(&s->faults, FAULT_SPIKE, data_step);
	const fault *blow = fault_at(&s->faults, FAULT_GRADBLOW, data_step);
	double scale = 1.0 / A;
	if (spike)
		scale *= spike->arg;
	if (nan)
		scale = NAN;
	gpt_zero_grad(s->g);
	gpt_set_grad_scale(s->g, (float)scale);
	gpt_set_moe_coeffs(s->g, (float)out->aux_coef, (float)out->z_coef);
	out->loss = 0;
	for (int a = 0; a < A; a++) {
		float loss;
		if ((rc = loader_next(s->train, s->inputs, s->targets)) < 0 ||
		    (rc = gpt_forward(s->g, s->inputs, s->targets, o->batch, o->context, &loss)) < 0 ||
		    (rc = gpt_backward(s->g)) < 0)
			return rc;
		s->data_pos++;
		out->loss += (double)loss / A;
	}
	if (spike)
		out->loss *= spike->arg;
	if (nan)
		out->loss = NAN;
	if (blow) {
		float *gr = gpt_grads(s->g);
		for (size_t i = 0, n = gpt_num_params(s->g); i < n; i++)
			gr[i] *= (float)blow->arg;
	}
	out->grad_norm = gpt_clip(s->g, (float)out->clip);
	return gpt_step(s->g, &s->adamw, (float)out->lr);
}

/* Asks the scaffold for this step's settings. */
static int steer(trn_state *s, long step, trn_step_out *out)
{
	int rc;
	double lr, clip, aux, z;
	if ((rc = scf_lr(s->scf, step, s->o->steps, &lr)) < 0 ||
	    (rc = scf_clip(s->scf, step, &clip)) < 0 ||
	    (rc = scf_coeffs(s->scf, step, &aux, &z)) < 0)
		return rc;
	out->lr = lr * s->lr_scale;
	out->clip = clip;
	out->aux_coef = aux;
	out->z_coef = z;
	return 0;
}

static void reload_scaffold(trn_state *s, long step)
{
	char msg[1024];
	got_hup = 0;
	int rc = scf_reload(s->scf);
	if (rc == 0) {
		trn_scaffold_commit(s->o->scaffold_dir, s->commit, sizeof s->commit);
		trn__event(s, step, "scaffold_reload", "scaffold reloaded", true);
	} else {
		snprintf(msg, sizeof msg, "reload failed, keeping the previous scaffold: %s",
			 tend_error_last());
		trn__event(s, step, "scaffold_reload", msg, false);
	}
}

/* The supervisor's live recovery: on SIGUSR1 the trainer reads
 * RUN_DIR/control ("skip=N" and "lr_scale=F" lines), applies it between
 * steps and removes it, so a spike is handled without a restart. */
static void read_control(trn_state *s, long step)
{
	char path[PATH_MAX], line[128], msg[256];
	got_usr1 = 0;
	char taken[PATH_MAX + 8];
	snprintf(path, sizeof path, "%s/control", s->o->run_dir);
	snprintf(taken, sizeof taken, "%s.taken", path);
	/* Take the file first: a new one the supervisor writes meanwhile is
	 * left for the next SIGUSR1 instead of being deleted unread. */
	if (rename(path, taken) < 0)
		return;
	FILE *f = fopen(taken, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		long n;
		double x;
		if (sscanf(line, "skip=%ld", &n) == 1 && n > 0 && n < 1000000) {
			loader_skip(s->train, n);
			s->data_pos += n;
			snprintf(msg, sizeof msg, "skipped %ld batches on the supervisor's request", n);
			trn__event(s, step, "skip", msg, true);
		} else if (sscanf(line, "lr_scale=%lf", &x) == 1 && x > 0 && x <= 10) {
			s->lr_scale = x;
			snprintf(msg, sizeof msg, "learning rate scaled by %g on the supervisor's request", x);
			trn__event(s, step, "lr_scale", msg, true);
		}
	}
	fclose(f);
	unlink(taken);
}

/* After a step: what the scaffold's on_step asked for (but stop), then
 * the scheduled eval and checkpoint. The skip comes first so that a
 * checkpoint of this step holds the data position after it: a run resumed
 * from that checkpoint steps over the same batches as an unbroken one.
 * --no-checkpoints holds for the scaffold's checkpoint requests too. */
static void after_step(trn_state *s, long step, const scf_actions *a)
{
	const trn_opts *o = s->o;
	if (a->skip > 0) {
		loader_skip(s->train, a->skip);
		s->data_pos += a->skip;
		char msg[128];
		snprintf(msg, sizeof msg, "scaffold skipped %ld batches", (long)a->skip);
		trn__event(s, step, "skip", msg, true);
	}
	if (o->eval_every > 0 && step % o->eval_every == 0)
		trn__eval(s, step);
	bool due = o->checkpoint_every > 0 && step % o->checkpoint_every == 0;
	if (!o->no_checkpoints && (due || a->checkpoint))
		trn__checkpoint(s, step);
}

static int loop(trn_state *s, long first)
{
	const trn_opts *o = s->o;
	long done_here = 0;
	int rc = 0;
	for (long step = first; step <= o->steps && !got_term && !got_int; step++) {
		trn_step_out out = {0};
		scf_actions acts;
		if (got_hup)
			reload_scaffold(s, step);
		if (got_usr1)
			read_control(s, step);
		machine_faults(s, step);
		double t0 = mono();
		if ((rc = steer(s, step, &out)) < 0 || (rc = train_step(s, &out)) < 0)
			return rc;
		const fault *slow = fault_at(&s->faults, FAULT_SLOW, step);
		double dt = mono() - t0;
		if (slow) {
			usleep((useconds_t)(dt * (slow->arg - 1) * 1e6));
			dt = mono() - t0;
		}
		out.step_time = dt;
		out.tokens_per_s = (double)o->batch * o->context * o->grad_accum / dt;
		trn__metrics_step(s, step, &out);
		if ((rc = trn__on_step(s, step, &out, &acts)) < 0)
			return rc;
		after_step(s, step, &acts);
		if (acts.stop)
			return 0;
		if (o->stop_after > 0 && ++done_here >= o->stop_after)
			return 1;
	}
	return got_term || got_int ? 1 : 0;
}

int trn_run(const trn_opts *o)
{
	trn_state s = {.o = o, .adamw = gpt_adamw_defaults(), .lr_scale = o->lr_scale};
	long first = 1;
	int rc;
	struct sigaction sa = {.sa_handler = on_hup};
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_int;
	sigaction(SIGINT, &sa, NULL);
	if ((rc = setup(&s)) < 0 || (rc = trn__resume(&s, &first)) < 0)
		goto done;
	if (o->skip_batches > 0) {
		loader_skip(s.train, o->skip_batches);
		s.data_pos += o->skip_batches;
	}
	trn__event(&s, first - 1, "start", s.resumed_from[0] ? s.resumed_from : "fresh start", true);
	rc = loop(&s, first);
	if (rc == 0 && o->eval_every > 0 && s.last_eval != s.last_step && s.last_step > 0)
		trn__eval(&s, s.last_step); /* every run ends with a validation figure */
	/* not after an error: a step that failed half-way has moved the data
	 * cursor past the last step's, and the checkpoint would not resume */
	if ((rc == 0 || (rc > 0 && got_int)) && !o->no_checkpoints && s.last_step > 0 &&
	    s.last_ckpt != s.last_step)
		trn__checkpoint(&s, s.last_step);
	if (rc >= 0)
		trn__event(&s, s.last_step, "exit", rc == 0 ? "finished" :
			   got_int ? "interrupted" : got_term ? "terminated" : "stopped", true);
	rc = rc < 0 ? rc : 0;
done:
	teardown(&s);
	return rc;
}
