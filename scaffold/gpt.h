/*
 * gpt.h - tend's in-tree trainer model: a GPT-2 style decoder whose FFN can
 * be a Mixture of Experts every Nth layer. CPU reference (llm.c style) over
 * the kernels of layers.h; the CUDA trainer mirrors its buffers.
 *
 * Memory: the parameters are ONE allocation, and so are their gradients and
 * AdamW's m and v (same layout, gpt_num_params() floats each). Activations
 * are one more allocation, made by the first gpt_forward and grown when a
 * later call needs more (B*T or B*T*T larger).
 *
 * Parameter layout (gpt_tensor_at() lists it): wte (Vp,C), wpe (maxT,C),
 * then tensor kind by kind, each kind for every layer that has it, in layer
 * order: ln1w ln1b qkvw qkvb attprojw attprojb ln2w ln2b, then the dense
 * FFN fcw (H,C) fcb fcprojw (C,H) fcprojb, then the MoE FFN routerw (E,C)
 * efcw (E,H,C) efcb (E,H) eprojw (E,C,H) eprojb (E,C); finally lnfw lnfb.
 * For a dense model this is exactly llm.c's gpt2 checkpoint layout.
 *
 * Losses: gpt_forward reports the mean cross-entropy over the positions
 * whose target is not -1. The gradient gpt_backward computes is that of
 *   CE + aux_coef * sum_l aux_l + z_coef * sum_l z_l   (l over MoE layers)
 * times the grad scale (gpt_set_grad_scale, default 1).
 *
 * Gradient accumulation: gpt_backward ADDS into the gradients; call
 * gpt_zero_grad once per optimizer step, run forward+backward per
 * micro-batch, and set the grad scale to 1/micro_batches so the sum is the
 * mean (or leave it at 1 and divide the learning rate).
 *
 * Determinism: same config, seed, data and thread count => bit-identical
 * losses and parameters.
 */
#ifndef GPT_H
#define GPT_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"

typedef struct gpt gpt;

typedef struct gpt_config {
	int vocab;         /* V: tokens and targets are in [0, V) */
	int padded_vocab;  /* Vp >= V, row count of wte; 0 = V rounded up to 128 */
	int context;       /* max T (rows of wpe) */
	int layers;        /* L */
	int heads;         /* NH; d_model % heads == 0 */
	int d_model;       /* C */
	int d_ff;          /* H, FFN hidden width (dense and each expert); 0 = 4C */
	int moe_every;     /* layer l is MoE when (l+1) % moe_every == 0; 0 = dense */
	int experts;       /* E, 2..MOE_MAX_EXPERTS (MoE only) */
	int top_k;         /* 1 or 2, <= experts (MoE only) */
	float capacity_factor; /* slots per expert = ceil(cf*N*k/E); <= 0: no limit */
} gpt_config;

typedef struct gpt_adamw {
	float beta1, beta2, eps;
	float weight_decay; /* decoupled; applied to matrices and embeddings only */
} gpt_adamw;

/* One parameter tensor of the layout. */
typedef struct gpt_tensor {
	const char *name;   /* "wte", "qkvw", "efcw", ... (static storage) */
	int layer;          /* block index, -1 for wte wpe lnfw lnfb */
	size_t offset;      /* in floats, into params/grads/m/v */
	size_t count;       /* floats */
	int decay;          /* 1 when weight decay applies */
} gpt_tensor;

/* Routing statistics of one MoE layer, from the last gpt_forward (named
 * _layer_stats: C cannot give the function gpt_moe_stats and a type one name). */
typedef struct gpt_moe_layer_stats {
	int layer;          /* block index */
	int experts;        /* E (entries of load used) */
	float load[MOE_MAX_EXPERTS]; /* share of the N*k assignments that chose
				      * expert e, before capacity; sums to 1 */
	float load_max;     /* max_e load[e] */
	float load_mean;    /* mean_e load[e] (= 1/E); imbalance = max/mean */
	float entropy;      /* mean over tokens of the router distribution's
			     * entropy divided by log(E): 1 = uniform, 0 = one-hot */
	int dropped;        /* (token, choice) assignments over capacity */
	float dropped_frac; /* dropped / (N*k) */
	float aux_loss;     /* E * sum_e f_e * P_e (1 when balanced) */
	float z_loss;       /* mean_n logsumexp(router logits)^2 */
} gpt_moe_layer_stats;

/* GPT-2 124M: V 50257 padded to 50304, ctx 1024, 12 layers, 12 heads, 768,
 * dense (moe_every 0); MoE fields preset to 8 experts, top-2, cf 1.25 so
 * that setting moe_every alone makes an MoE variant. */
gpt_config gpt_config_gpt2_124m(void);

/* AdamW as GPT-3 trained: beta1 0.9, beta2 0.95, eps 1e-8, decay 0.1. */
gpt_adamw gpt_adamw_defaults(void);

/* Checks a config; 0 or TEND_EINVAL with a message naming the field. */
int gpt_config_check(const gpt_config *c);

/* Parameters a config would have (0 when the config is invalid). */
size_t gpt_config_num_params(const gpt_config *c);

/* Builds a model with deterministic GPT-2 init from seed: matrices and
 * embeddings N(0, 0.02), residual projections (attprojw, fcprojw, eprojw)
 * N(0, 0.02/sqrt(2L)), biases 0, layernorm weights 1, padded wte rows 0.
 * Gradients, m and v start at 0, the step counter at 0.
 * Returns 0, TEND_EINVAL (bad config) or TEND_ENOMEM. Free with gpt_free. */
int gpt_new(gpt **out, const gpt_config *c, uint64_t seed);

void gpt_free(gpt *g);

const gpt_config *gpt_get_config(const gpt *g);

/* Forward pass on inputs (B,T) and, when targets (B,T) is not NULL, the
 * loss: *loss_out = mean cross-entropy over targets != -1 (0 if none).
 * Without targets only the logits are computed (*loss_out = -1).
 * Returns 0, TEND_EINVAL (B or T < 1, T > context, a token outside
 * [0, vocab), a target outside [-1, vocab)) or TEND_ENOMEM. */
int gpt_forward(gpt *g, const int *inputs, const int *targets, int B, int T,
		float *loss_out);

/* Logits (B,T,Vp) of the last forward (columns >= vocab are meaningless);
 * NULL before any forward. Owned by g, overwritten by the next forward. */
const float *gpt_logits(const gpt *g);

/* Zeroes the parameter gradients. */
void gpt_zero_grad(gpt *g);

/* Backward of the last forward (which must have had targets); adds into
 * the gradients. Returns 0 or TEND_EINVAL (no forward with targets). */
int gpt_backward(gpt *g);

/* Multiplies every gradient gpt_backward computes (default 1). */
void gpt_set_grad_scale(gpt *g, float scale);

/* Coefficients of the MoE auxiliary losses in the backward (default 0.01
 * and 0.001); the Lua scaffold sets them each step. */
void gpt_set_moe_coeffs(gpt *g, float aux, float z);

/* L2 norm of all gradients (deterministic fixed-order sum). */
float gpt_grad_norm(gpt *g);

/* Scales the gradients so their global norm is at most max_norm (no-op when
 * max_norm <= 0 or the norm is not finite). Returns the pre-clip norm. */
float gpt_clip(gpt *g, float max_norm);

/* One AdamW step at learning rate lr: increments the step counter, then
 * updates every parameter; weight decay only where gpt_tensor.decay.
 * Returns 0 or TEND_EINVAL (NULL opt, lr or betas not finite). */
int gpt_step(gpt *g, const gpt_adamw *opt, float lr);

/* Routing statistics of the last forward, one entry per MoE layer in layer
 * order; writes at most max_layers and returns how many MoE layers there
 * are (0 for a dense model). */
int gpt_moe_stats(const gpt *g, gpt_moe_layer_stats *out, int max_layers);

/* Sizes. Active parameters count, per MoE layer, the router and top_k
 * experts instead of all E. */
size_t gpt_num_params(const gpt *g);
size_t gpt_num_active_params(const gpt *g);

/* Training FLOPs per token at sequence length T, for MFU:
 *   6 * (active params - wpe) + 6 * L * C * T
 * i.e. forward+backward of every active matmul weight (the lm head counts
 * through the tied wte; wpe is a lookup) plus causal attention (QK^T and AV,
 * 2*2*C*T per token per layer forward, halved for the causal mask, times 3
 * for forward+backward), as llm.c counts. */
double gpt_flops_per_token(const gpt *g, int T);

/* The flat buffers (gpt_num_params() floats each), owned by g: read them to
 * checkpoint, write them to restore. The layout is the one above. */
float *gpt_params(gpt *g);
float *gpt_grads(gpt *g);
float *gpt_adam_m(gpt *g);
float *gpt_adam_v(gpt *g);

/* AdamW step counter t (steps taken; the next gpt_step uses t+1). */
int gpt_get_step(const gpt *g);
void gpt_set_step(gpt *g, int t);

/* The parameter layout: number of tensors, and tensor i (0 or TEND_EINVAL
 * when i is out of range). */
int gpt_num_tensors(const gpt *g);
int gpt_tensor_at(const gpt *g, int i, gpt_tensor *out);

#endif
