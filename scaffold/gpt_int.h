/*
 * gpt_int.h - the inside of a gpt, shared by gpt.c (construction, layout,
 * optimizer, accessors) and gpt_pass.c (forward and backward). Not a public
 * header: only the scaffold's model files include it.
 */
#ifndef GPT_INT_H
#define GPT_INT_H

#include "gpt.h"

/* Pointers to one block's tensors, into params or grads (same layout).
 * Dense blocks leave the MoE pointers NULL and vice versa. */
typedef struct gpt__block {
	float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b;
	float *fcw, *fcb, *fcprojw, *fcprojb;
	float *routerw, *efcw, *efcb, *eprojw, *eprojb;
} gpt__block;

typedef struct gpt__tensors {
	float *wte, *wpe, *lnfw, *lnfb;
	gpt__block *block; /* L entries */
} gpt__tensors;

/* One block's saved activations for the backward. */
typedef struct gpt__acts {
	float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj;
	float *resid2, *ln2, *ln2_mean, *ln2_rstd, *ffn_out, *resid3;
	float *fch, *fch_gelu;                             /* dense */
	float *rlogits, *rprobs, *rlse, *gates, *frac;     /* MoE router */
	float *xin, *eh, *ehg, *ey;                        /* MoE experts */
	int *topk, *slot, *slot_token, *expert_count;
} gpt__acts;

/* Activation gradients: one set of scratch shared by all blocks, since the
 * backward visits one block at a time. */
typedef struct gpt__grad_acts {
	float *dres, *dln, *datty, *dqkv, *dpreatt, *datt, *dfch, *dfch_gelu;
	float *drlogits, *dgates, *dxin, *deh, *dehg, *dey;
	float *dlogits, *dlosses, *dlnf;
} gpt__grad_acts;

struct gpt {
	gpt_config cfg;
	int V, Vp, C, H, L, NH, E, k;
	size_t nparams;
	float *params, *grads, *m, *v;
	gpt__tensors p, dp;        /* views into params and grads */
	gpt_tensor *tensors;
	int ntensors;
	int step;
	float aux_coef, z_coef, grad_scale;

	/* activations, sized for up to acts_N tokens and acts_BTT = B*T*T */
	float *abuf;
	int *ibuf;
	size_t acts_N, acts_BTT;
	gpt__acts *acts;           /* L entries */
	float *encoded, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
	int *inputs, *targets;
	gpt__grad_acts ga;
	int B, T, have_targets;    /* of the last forward */
	float loss, loss_count;
	gpt_moe_layer_stats *stats;      /* one per block (used for MoE blocks) */
};

/* True when block l's FFN is a Mixture of Experts. */
int gpt__is_moe(const gpt_config *c, int l);

/* Expert slots per expert for N tokens. */
int gpt__cap(const gpt *g, int N);

#endif
