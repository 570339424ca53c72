/*
 * layers.h - the layer kernels of tend's in-tree GPT + MoE trainer, CPU
 * reference (llm.c style). Every CUDA kernel has a twin here with the SAME
 * signature; the CPU version is the readable definition of what it computes.
 *
 * Conventions for every function below:
 *  - outputs first, then inputs, then dimensions last;
 *  - all tensors are dense row-major float arrays; shapes are written
 *    (A, B, C) with the last index contiguous;
 *  - N is a number of rows (tokens, N = B*T), C the model width, H a hidden
 *    width (4*C in GPT-2), OC an output width, V the vocabulary and Vp the
 *    padded vocabulary (row stride of logits/probs), E experts, k the top-k;
 *  - a _forward OVERWRITES its outputs (=);
 *  - a _backward ACCUMULATES (+=) into every gradient output (d-prefixed),
 *    parameter gradients and activation gradients alike, exactly as llm.c:
 *    the caller zeroes them first. Scratch arguments are overwritten.
 *  - the kernels never allocate, never fail, and do not validate: the caller
 *    (gpt.c) checks tokens and shapes once at the boundary.
 *  - results are bit-identical across runs with the same thread count: the
 *    parallel loops write disjoint outputs, and reductions use fixed
 *    partitions with a fixed-order final sum.
 */
#ifndef LAYERS_H
#define LAYERS_H

#include <stddef.h>

/* Largest expert count and top-k the MoE kernels support (they keep
 * per-token expert vectors on the stack). */
#define MOE_MAX_EXPERTS 64
#define MOE_MAX_TOPK 2

/* ---- embeddings ---------------------------------------------------------- */

/* out (B,T,C) = wte[inp[b,t]] + wpe[t].
 * inp (B,T) token ids in [0, V); wte (V or Vp, C); wpe (maxT, C). */
void encoder_forward(float *out, const int *inp, const float *wte,
		     const float *wpe, int B, int T, int C);

/* dwte (Vp, C) += scatter of dout rows by token id; dwpe (maxT, C) += dout
 * summed over the batch. dout (B,T,C), inp (B,T). */
void encoder_backward(float *dwte, float *dwpe, const float *dout,
		      const int *inp, int B, int T, int C);

/* ---- layernorm ----------------------------------------------------------- */

/* out (N,C) = (inp - mean) * rstd * weight + bias, per row;
 * mean (N), rstd (N) are saved for the backward. eps = 1e-5. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
		       const float *weight, const float *bias, int N, int C);

/* dinp (N,C), dweight (C), dbias (C) += gradients given dout (N,C). */
void layernorm_backward(float *dinp, float *dweight, float *dbias,
			const float *dout, const float *inp,
			const float *weight, const float *mean,
			const float *rstd, int N, int C);

/* ---- matmul -------------------------------------------------------------- */

/* out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be NULL.
 * cblas_sgemm when built with BLAS, else an OpenMP blocked loop. */
void matmul_forward(float *out, const float *inp, const float *weight,
		    const float *bias, int N, int C, int OC);

/* dinp (N,C) += dout @ weight; dweight (OC,C) += dout^T @ inp;
 * dbias (OC) += column sums of dout. dinp, dbias may be NULL (skipped). */
void matmul_backward(float *dinp, float *dweight, float *dbias,
		     const float *dout, const float *inp, const float *weight,
		     int N, int C, int OC);

/* ---- attention ----------------------------------------------------------- */

/* Causal multi-head self-attention. inp (B,T,3C) holds q|k|v per token, each
 * C = NH heads of hs = C/NH. out (B,T,C); att (B,NH,T,T) the post-softmax
 * weights (entries above the diagonal are 0), saved for the backward.
 * Scores are scaled by 1/sqrt(hs). */
void attention_forward(float *out, float *att, const float *inp,
		       int B, int T, int C, int NH);

/* dinp (B,T,3C) += gradient given dout (B,T,C). dpreatt and datt
 * (B,NH,T,T) are scratch, overwritten (they may be shared across layers). */
void attention_backward(float *dinp, float *dpreatt, float *datt,
			const float *dout, const float *inp, const float *att,
			int B, int T, int C, int NH);

/* ---- pointwise ----------------------------------------------------------- */

/* out (N) = GELU(inp), tanh approximation (GPT-2). */
void gelu_forward(float *out, const float *inp, int N);

/* dinp (N) += GELU'(inp) * dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, int N);

/* out (N) = inp1 + inp2. */
void residual_forward(float *out, const float *inp1, const float *inp2, int N);

/* dinp1, dinp2 (N) += dout. */
void residual_backward(float *dinp1, float *dinp2, const float *dout, int N);

/* ---- loss ---------------------------------------------------------------- */

/* Fused softmax + cross-entropy over the first V of Vp columns.
 * logits (N,Vp); probs (N,Vp) = softmax (columns >= V set to 0);
 * losses (N) = -log probs[n, targets[n]], or 0 where targets[n] == -1
 * (ignored position). targets (N). */
void softmax_crossentropy_forward(float *losses, float *probs,
				  const float *logits, const int *targets,
				  int N, int V, int Vp);

/* dlogits (N,Vp) += dlosses[n] * (probs - onehot(target)) on the first V
 * columns; rows with target -1 get nothing. dlosses (N): e.g. 1/count for a
 * mean loss. */
void softmax_crossentropy_backward(float *dlogits, const float *dlosses,
				   const float *probs, const int *targets,
				   int N, int V, int Vp);

/* ---- Mixture of Experts: router ------------------------------------------
 *
 * The router logits come from matmul_forward(logits, x, wr, NULL, N, C, E)
 * with the router weight wr (E,C). router_forward then:
 *  1. probs (N,E) = softmax(logits); lse (N) = logsumexp(logits);
 *  2. picks the k (1 or 2) largest probs per token, best first, into
 *     topk_idx (N,k) (ties go to the lower expert id);
 *  3. gates (N,k): k == 1, gate = p (Switch, keeps the router in the task
 *     gradient); k == 2, gate_i = p_i / (p_1 + p_2) (GShard/Mixtral);
 *  4. capacity: each expert takes at most cap tokens. Assignments are made
 *     choice by choice (every token's first choice, in token order, before
 *     any second choice, as GShard), so a first choice is never displaced by
 *     a second. slot (N,k) = position in that expert's buffer, or -1 when
 *     the assignment was dropped; slot_token (E,cap) = token n of each
 *     filled slot (-1 for unused); expert_count (E) = slots filled.
 *     A dropped assignment contributes nothing (its gate is not
 *     renormalised away); a token with all k dropped gets zero expert output
 *     and passes through the residual unchanged.
 *  5. frac (E) = share of the N*k assignments that chose e BEFORE capacity
 *     (the f_e of the Switch load-balancing loss);
 *     aux_loss[0] = E * sum_e frac[e] * P[e], P[e] = mean_n probs[n,e]
 *     (1.0 when perfectly balanced); z_loss[0] = mean_n lse[n]^2;
 *     dropped[0] = number of dropped (token, choice) assignments.
 * cap = number of slots per expert; use moe_capacity() below. */
void router_forward(float *probs, float *lse, int *topk_idx, float *gates,
		    int *slot, int *slot_token, int *expert_count, float *frac,
		    float *aux_loss, float *z_loss, int *dropped,
		    const float *logits, int N, int E, int k, int cap);

/* dlogits (N,E) += gradient of
 *   sum_{n,i} dgates[n,i] * gates[n,i] + aux_coef * aux_loss + z_coef * z_loss
 * where frac is held constant (counts are not differentiable, as Switch).
 * dgates (N,k) comes from moe_backward (0 for dropped assignments). */
void router_backward(float *dlogits, const float *dgates, const float *probs,
		     const float *lse, const int *topk_idx, const float *frac,
		     float aux_coef, float z_coef, int N, int E, int k);

/* Slots per expert: ceil(capacity_factor * N * k / E), at least 1 and at most
 * N; capacity_factor <= 0 means no limit (N). */
int moe_capacity(float capacity_factor, int N, int E, int k);

/* ---- Mixture of Experts: experts -----------------------------------------
 *
 * Expert e is a GPT-2 MLP: y = proj_e(GELU(fc_e(x))), C -> H -> C, with
 * fcw (E,H,C), fcb (E,H), projw (E,C,H), projb (E,C).
 * Per-expert buffers hold cap rows; only the first expert_count[e] are used:
 * xin (E,cap,C) the gathered inputs, h (E,cap,H) pre-GELU, hg (E,cap,H)
 * post-GELU, y (E,cap,C) the expert outputs, all saved for the backward.
 * out (N,C) = sum_i gates[n,i] * y[topk_idx[n,i], slot[n,i]] over the kept
 * assignments (0 for a token with none). inp (N,C). */
void moe_forward(float *out, float *xin, float *h, float *hg, float *y,
		 const float *inp, const int *topk_idx, const int *slot,
		 const float *gates, const int *slot_token,
		 const int *expert_count, const float *fcw, const float *fcb,
		 const float *projw, const float *projb,
		 int N, int C, int H, int E, int k, int cap);

/* Given dout (N,C): dinp (N,C) += gradient to the MoE input; dgates (N,k) +=
 * <dout[n], y[e, slot]> for kept assignments; dfcw, dfcb, dprojw, dprojb +=
 * expert parameter gradients. dxin (E,cap,C), dh and dhg (E,cap,H), dy
 * (E,cap,C) are scratch, overwritten. */
void moe_backward(float *dinp, float *dgates, float *dfcw, float *dfcb,
		  float *dprojw, float *dprojb, float *dxin, float *dh,
		  float *dhg, float *dy, const float *dout, const float *xin,
		  const float *h, const float *hg, const float *y,
		  const int *topk_idx, const int *slot, const float *gates,
		  const int *expert_count, const float *fcw,
		  const float *projw, int N, int C, int H, int E, int k,
		  int cap);

/* ---- optimizer ----------------------------------------------------------- */

/* AdamW with decoupled weight decay, bias-corrected by step t (1-based):
 * m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p).
 * params, grads, m, v (n). */
void adamw_update(float *params, const float *grads, float *m, float *v,
		  size_t n, float lr, float beta1, float beta2, float eps,
		  float weight_decay, int t);

/* out[0] = sum of values[i]^2 over count values, accumulated in double over
 * fixed chunks and summed in chunk order (deterministic for any thread
 * count). */
void global_norm_squared(float *out, const float *values, size_t count);

#endif
