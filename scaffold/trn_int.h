/*
 * trn_int.h - state shared by the trainer's files (train.c: the loop;
 * train_io.c: metrics, events, heartbeats, eval, checkpoints, resume).
 * Not a public header.
 */
#ifndef TRN_INT_H
#define TRN_INT_H

#include "fault.h"
#include "gpt.h"
#include "loader.h"
#include "scf.h"
#include "train.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct trn_state {
	const trn_opts *o;
	gpt *g;
	gpt_adamw adamw;
	loader *train, *val;
	scf *scf;
	int *inputs, *targets;
	long data_pos;       /* batches consumed or skipped since step 0 */
	long last_step;      /* last step completed */
	long last_ckpt;      /* step of the last checkpoint written */
	long last_eval;      /* step of the last evaluation */
	double last_loss, last_grad_norm;
	double lr_scale;     /* from the options, then from control files */
	fault_set faults;
	char commit[64];
	char data_dir[PATH_MAX];
	char ckpt_dir[PATH_MAX];
	char fired_path[PATH_MAX];
	char resumed_from[PATH_MAX];
	FILE *metrics;
	pthread_mutex_t mu;  /* guards metrics and hb_step */
	pthread_t hb;
	bool hb_running;
	volatile int hb_stop;
	long hb_step;
} trn_state;

typedef struct trn_step_out {
	double lr, clip, aux_coef, z_coef;
	double loss, grad_norm, step_time, tokens_per_s;
} trn_step_out;

double trn__now(void);
void trn__config_text(const trn_opts *o, char *buf, size_t cap);
int trn__metrics_open(trn_state *s, const char *path);
void trn__metrics_close(trn_state *s);
void trn__metrics_step(trn_state *s, long step, const trn_step_out *out);
void trn__event(trn_state *s, long step, const char *event, const char *message, bool ok);
int trn__on_step(trn_state *s, long step, const trn_step_out *out, scf_actions *acts);
void trn__eval(trn_state *s, long step);
int trn__checkpoint(trn_state *s, long step);
int trn__resume(trn_state *s, long *first_step);
void trn__collapse_routers(gpt *g);

#endif
