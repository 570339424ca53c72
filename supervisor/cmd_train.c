/*
 * cmd_train.c - `tend train`: runs the in-tree trainer in this process.
 * Settings come from the workspace's tend.yaml (trainer and run sections)
 * when there is one, then from the flags. Linked into tend-train only
 * (train_main.c); `tend train` executes tend-train (cmd_train_exec.c), and
 * the supervisor launches tend-train as its child.
 */
#include "cli.h"
#include "config.h"
#include "tend.h"
#include "tend_build.h"
#include "train.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void from_cfg(trn_opts *o, const cfg *c)
{
	const cfg_trainer *t = &c->trainer;
	o->model.vocab = (int)t->vocab;
	o->model.context = (int)t->context;
	o->model.layers = (int)t->layers;
	o->model.heads = (int)t->heads;
	o->model.d_model = (int)t->d_model;
	o->model.moe_every = (int)t->moe_every;
	o->model.experts = (int)t->experts;
	o->model.top_k = (int)t->top_k;
	o->model.capacity_factor = (float)t->capacity_factor;
	o->batch = (int)t->batch;
	o->context = (int)t->context;
	o->grad_accum = (int)t->grad_accum;
	o->data = t->data;
	o->steps = c->run.steps;
	o->eval_every = c->run.eval_every;
	o->checkpoint_every = c->run.checkpoint_every;
	o->keep_last = (int)c->run.keep_last;
	o->keep_every = c->run.keep_every;
	o->seed = (uint64_t)c->run.seed;
	o->metrics_file = c->run.metrics_file;
}

enum {
	O_RUN_DIR = 256, O_SCAFFOLD, O_STEPS, O_RESUME, O_SKIP, O_LR_SCALE, O_INJECT,
	O_SEED, O_DATA, O_BATCH, O_CONTEXT, O_LAYERS, O_DMODEL, O_HEADS, O_EXPERTS,
	O_TOPK, O_MOE_EVERY, O_ACCUM, O_EVAL_EVERY, O_CKPT_EVERY, O_THREADS,
	O_STOP_AFTER, O_HEARTBEAT, O_NO_CKPT, O_NO_MACHINE,
};

static const struct option longopts[] = {
	{"run-dir", 1, 0, O_RUN_DIR}, {"scaffold", 1, 0, O_SCAFFOLD},
	{"steps", 1, 0, O_STEPS}, {"resume", 1, 0, O_RESUME},
	{"skip-batches", 1, 0, O_SKIP}, {"lr-scale", 1, 0, O_LR_SCALE},
	{"inject", 1, 0, O_INJECT}, {"seed", 1, 0, O_SEED}, {"data", 1, 0, O_DATA},
	{"batch", 1, 0, O_BATCH}, {"context", 1, 0, O_CONTEXT},
	{"layers", 1, 0, O_LAYERS}, {"d-model", 1, 0, O_DMODEL},
	{"heads", 1, 0, O_HEADS}, {"experts", 1, 0, O_EXPERTS},
	{"top-k", 1, 0, O_TOPK}, {"moe-every", 1, 0, O_MOE_EVERY},
	{"grad-accum", 1, 0, O_ACCUM}, {"eval-every", 1, 0, O_EVAL_EVERY},
	{"checkpoint-every", 1, 0, O_CKPT_EVERY}, {"threads", 1, 0, O_THREADS},
	{"stop-after", 1, 0, O_STOP_AFTER}, {"heartbeat", 1, 0, O_HEARTBEAT},
	{"no-checkpoints", 0, 0, O_NO_CKPT}, {"no-machine-faults", 0, 0, O_NO_MACHINE},
	{0, 0, 0, 0},
};

/* Parses a whole number in [lo, hi] or reports the flag. */
static int num(const char *flag, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi) {
		fprintf(stderr, "tend train: --%s: expected an integer in [%ld, %ld], got \"%s\"\n",
			flag, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int set_int(trn_opts *o, int opt, long v)
{
	switch (opt) {
	case O_STEPS: o->steps = v; break;
	case O_SKIP: o->skip_batches = v; break;
	case O_SEED: o->seed = (uint64_t)v; break;
	case O_BATCH: o->batch = (int)v; break;
	case O_CONTEXT: o->context = o->model.context = (int)v; break;
	case O_LAYERS: o->model.layers = (int)v; break;
	case O_DMODEL: o->model.d_model = (int)v; break;
	case O_HEADS: o->model.heads = (int)v; break;
	case O_EXPERTS: o->model.experts = (int)v; break;
	case O_TOPK: o->model.top_k = (int)v; break;
	case O_MOE_EVERY: o->model.moe_every = (int)v; break;
	case O_ACCUM: o->grad_accum = (int)v; break;
	case O_EVAL_EVERY: o->eval_every = v; break;
	case O_CKPT_EVERY: o->checkpoint_every = v; break;
	case O_STOP_AFTER: o->stop_after = v; break;
	default: return -1;
	}
	return 0;
}

static int parse(int argc, char **argv, trn_opts *o, int *threads)
{
	int c;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *name = c >= 256 ? longopts[c - 256].name : "?";
		switch (c) {
		case O_RUN_DIR: o->run_dir = optarg; break;
		case O_SCAFFOLD: o->scaffold_dir = optarg; break;
		case O_RESUME: o->resume = optarg; break;
		case O_DATA: o->data = optarg; break;
		case O_LR_SCALE: o->lr_scale = atof(optarg);
			if (!(o->lr_scale > 0 && o->lr_scale <= 10)) {
				fprintf(stderr, "tend train: --lr-scale: expected a number in (0, 10]\n");
				return -1;
			}
			break;
		case O_HEARTBEAT: o->heartbeat_s = atof(optarg); break;
		case O_NO_CKPT: o->no_checkpoints = true; break;
		case O_NO_MACHINE: o->no_machine_faults = true; break;
		case O_INJECT:
			if (fault_add_list(&o->faults, optarg) < 0) {
				fprintf(stderr, "tend train: --inject: %s\n", tend_error_last());
				return -1;
			}
			break;
		case O_THREADS:
			if (num(name, optarg, 0, 1024, &v) < 0)
				return -1;
			*threads = (int)v;
			break;
		case '?':
			return -1;
		default:
			if (num(name, optarg, 0, LONG_MAX / 2, &v) < 0 || set_int(o, c, v) < 0)
				return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tend train: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int cli_train_run(int argc, char **argv)
{
	trn_opts o;
	cfg *c = NULL;
	char ws[PATH_MAX], path[PATH_MAX + 16], run_dir[PATH_MAX + 32], scaffold[PATH_MAX + 16];
	int threads = 0, rc;
	trn_opts_default(&o);
	if (cli_workspace(ws, sizeof ws) == 0) {
		snprintf(path, sizeof path, "%s/tend.yaml", ws);
		if (cfg_load(&c, path) < 0) {
			fprintf(stderr, "tend: %s\n", tend_error_last());
			return CLI_USAGE;
		}
		from_cfg(&o, c);
		for (size_t i = 0; i < c->trainer.inject.n; i++)
			if (fault_add(&o.faults, c->trainer.inject.v[i]) < 0) {
				fprintf(stderr, "tend: %s: trainer.inject: %s\n", path, tend_error_last());
				cfg_free(c);
				return CLI_USAGE;
			}
		threads = (int)c->trainer.threads;
		snprintf(scaffold, sizeof scaffold, "%s/scaffold", ws);
		o.scaffold_dir = scaffold;
		snprintf(run_dir, sizeof run_dir, "%s/runs/train", ws);
		o.run_dir = run_dir;
	} else {
		snprintf(scaffold, sizeof scaffold, "%s/lua", TEND_SOURCE_ROOT);
		o.scaffold_dir = scaffold;
		o.run_dir = "tend-train";
	}
	if (parse(argc, argv, &o, &threads) < 0) {
		cfg_free(c);
		return CLI_USAGE;
	}
#ifdef _OPENMP
	if (threads > 0)
		omp_set_num_threads(threads);
#endif
	rc = trn_run(&o);
	if (rc < 0)
		fprintf(stderr, "tend train: %s\n", tend_error_last());
	cfg_free(c);
	return rc < 0 ? (rc == TEND_EINVAL ? CLI_USAGE : CLI_FAIL) : CLI_OK;
}
