/*
 * sample.c - (name, value) pairs -> mon_sample. MoE names carry the model's
 * layer index; layers get sample slots in order of first appearance.
 */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void smp_begin(smp *b, mon_sample_type type, long step, double t)
{
	mon_sample_init(&b->s, type, step, t);
	b->s.moe = b->layers;
	b->s.n_moe = 0;
}

static mon_moe_layer *layer_slot(smp *b, int layer)
{
	for (int i = 0; i < b->s.n_moe; i++)
		if (b->layers[i].layer == layer)
			return &b->layers[i];
	if (b->s.n_moe == SMP_MAX_LAYERS)
		return NULL;
	int i = b->s.n_moe++;
	b->layers[i] = (mon_moe_layer){.layer = layer, .n_experts = 0, .load = b->loads[i],
		.max_over_mean = NAN, .entropy = NAN, .dropped = NAN, .tokens = NAN};
	return &b->layers[i];
}

static void put_moe(smp *b, const char *rest, double v)
{
	char *end;
	long layer = strtol(rest, &end, 10);
	if (end == rest || *end != '.' || layer < 0 || layer > 100000)
		return;
	mon_moe_layer *l = layer_slot(b, (int)layer);
	const char *field = end + 1;
	if (!l)
		return;
	if (strncmp(field, "load.", 5) == 0) {
		long e = strtol(field + 5, &end, 10);
		if (end == field + 5 || *end || e < 0 || e >= MON_MOE_MAX_EXPERTS)
			return;
		int idx = (int)(l - b->layers);
		b->loads[idx][e] = v;
		if (e + 1 > l->n_experts) {
			for (int k = l->n_experts; k < e; k++)
				b->loads[idx][k] = 0;
			l->n_experts = (int)e + 1;
		}
	} else if (strcmp(field, "max_over_mean") == 0) {
		l->max_over_mean = v;
	} else if (strcmp(field, "entropy") == 0) {
		l->entropy = v;
	} else if (strcmp(field, "dropped") == 0) {
		l->dropped = v;
	} else if (strcmp(field, "tokens") == 0) {
		l->tokens = v;
	} else if (strcmp(field, "top_k") == 0) {
		l->top_k = v >= 1 && v <= MON_MOE_MAX_EXPERTS ? (int)v : 0;
	}
}

void smp_put(smp *b, const char *name, double v)
{
	mon_sample *s = &b->s;
	switch (name[0]) {
	case 'l':
		if (strcmp(name, "loss") == 0) {
			s->loss = v;
			s->present |= MON_F_LOSS;
		} else if (strcmp(name, "lr") == 0) {
			s->lr = v;
			s->present |= MON_F_LR;
		}
		return;
	case 'g':
		if (strcmp(name, "grad_norm") == 0) {
			s->grad_norm = v;
			s->present |= MON_F_GRAD_NORM;
		}
		return;
	case 't':
		if (strcmp(name, "tokens_per_s") == 0)
			s->tokens_per_s = v;
		return;
	case 's':
		if (strcmp(name, "step_time_s") == 0)
			s->step_time_s = v;
		return;
	case 'v':
		if (strcmp(name, "val_loss") == 0) {
			s->val_loss = v;
			s->present |= MON_F_VAL_LOSS;
		}
		return;
	case 'm':
		if (strncmp(name, "moe.", 4) == 0)
			put_moe(b, name + 4, v);
		return;
	default:
		return;
	}
}

const mon_sample *smp_sample(smp *b)
{
	return &b->s;
}
