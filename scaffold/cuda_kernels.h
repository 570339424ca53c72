/*
 * cuda_kernels.h - the CUDA twins of the CPU layer kernels (layers.h), plus
 * the few device helpers their callers need. Plain C: includable from .c
 * files, implemented by the .cu files in scaffold/cuda/.
 *
 * Every launcher cuda_X takes the SAME arguments, in the same order and
 * with the same meaning, as its CPU twin X in layers.h, except that every
 * tensor pointer (outputs and inputs alike, scalar outputs such as
 * aux_loss included) is a DEVICE pointer. Forward overwrites, backward
 * accumulates, scratch is overwritten: read layers.h for the contracts.
 *
 * Launchers are asynchronous and return nothing, like their twins: they
 * queue work on the legacy default stream. A failure (launch error, cuBLAS
 * status, scratch allocation) is remembered and reported by the next
 * cuda_check(), which waits for the device. Not thread-safe: one host
 * thread drives the device.
 *
 * Precision: the plain launchers compute in fp32 (cuBLAS without TF32) and
 * match their twins to ~1e-5 relative. The _bf16 variants keep the fp32
 * signature, round the GEMM operands to bf16 and accumulate in fp32 on the
 * tensor cores (~1e-2 relative); see docs/cuda.md.
 *
 * Only declared when built with CUDA (TEND_HAVE_CUDA in tend_build.h);
 * callers guard their use with `#if TEND_HAVE_CUDA`.
 */
#ifndef CUDA_KERNELS_H
#define CUDA_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device helpers -------------------------------------------------------- */

/* 1 when a CUDA device is usable, 0 when the driver is missing or reports
 * no device. Never fails. */
int cuda_available(void);

/* Waits for the device, then returns 0, or TEND_ERROR with "what: <first
 * failure since the last check>" (and clears that failure). */
int cuda_check(const char *what);

/* Device memory, zero-filled; *out NULL on failure. 0 or TEND_ENOMEM. */
int cuda_alloc(void **out, size_t bytes);

/* Frees a cuda_alloc'ed pointer (NULL is fine). */
void cuda_free(void *p);

/* Synchronous copies between host and device; 0 or TEND_ERROR. */
int cuda_upload(void *dst_dev, const void *src_host, size_t bytes);
int cuda_download(void *dst_host, const void *src_dev, size_t bytes);

/* Zeroes device memory (queued); 0 or TEND_ERROR. */
int cuda_zero(void *dst_dev, size_t bytes);

/* Frees the launchers' scratch and cuBLAS handle (they come back on the
 * next launch). Call before exit to leave no device allocation behind. */
void cuda_release(void);

/* ---- embeddings, layernorm, matmul (fp32) ---------------------------------- */

void cuda_encoder_forward(float *out, const int *inp, const float *wte,
			  const float *wpe, int B, int T, int C);
/* Deterministic and bit-identical to the CPU twin: reads inp back to the
 * host to group positions by token (synchronises the device). */
void cuda_encoder_backward(float *dwte, float *dwpe, const float *dout,
			   const int *inp, int B, int T, int C);

void cuda_layernorm_forward(float *out, float *mean, float *rstd,
			    const float *inp, const float *weight,
			    const float *bias, int N, int C);
void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias,
			     const float *dout, const float *inp,
			     const float *weight, const float *mean,
			     const float *rstd, int N, int C);

void cuda_matmul_forward(float *out, const float *inp, const float *weight,
			 const float *bias, int N, int C, int OC);
void cuda_matmul_backward(float *dinp, float *dweight, float *dbias,
			  const float *dout, const float *inp,
			  const float *weight, int N, int C, int OC);

/* ---- attention, pointwise, loss (fp32) ------------------------------------- */

/* cuBLAS batched GEMMs + a causal softmax kernel (llm.c's design). The
 * backward's datt scratch keeps its entries above the diagonal (the CPU
 * twin zeroes them); dpreatt matches the twin everywhere. */
void cuda_attention_forward(float *out, float *att, const float *inp,
			    int B, int T, int C, int NH);
void cuda_attention_backward(float *dinp, float *dpreatt, float *datt,
			     const float *dout, const float *inp,
			     const float *att, int B, int T, int C, int NH);

void cuda_gelu_forward(float *out, const float *inp, int N);
void cuda_gelu_backward(float *dinp, const float *inp, const float *dout,
			int N);
void cuda_residual_forward(float *out, const float *inp1, const float *inp2,
			   int N);
void cuda_residual_backward(float *dinp1, float *dinp2, const float *dout,
			    int N);

void cuda_softmax_crossentropy_forward(float *losses, float *probs,
				       const float *logits, const int *targets,
				       int N, int V, int Vp);
void cuda_softmax_crossentropy_backward(float *dlogits, const float *dlosses,
					const float *probs,
					const int *targets, int N, int V,
					int Vp);

/* ---- Mixture of Experts (fp32) --------------------------------------------- */

/* aux_loss, z_loss, dropped point to one device scalar each. */
void cuda_router_forward(float *probs, float *lse, int *topk_idx,
			 float *gates, int *slot, int *slot_token,
			 int *expert_count, float *frac, float *aux_loss,
			 float *z_loss, int *dropped, const float *logits,
			 int N, int E, int k, int cap);
void cuda_router_backward(float *dlogits, const float *dgates,
			  const float *probs, const float *lse,
			  const int *topk_idx, const float *frac,
			  float aux_coef, float z_coef, int N, int E, int k);

/* The experts run as batched GEMMs over all cap rows of every expert
 * (rows past expert_count[e] are zero inputs whose results are never
 * read), so no host round trip is needed. xin, h, hg, y rows past
 * expert_count are therefore written (the twin leaves them alone); the
 * backward's scratch dxin, dh, dhg, dy are written in full. */
void cuda_moe_forward(float *out, float *xin, float *h, float *hg, float *y,
		      const float *inp, const int *topk_idx, const int *slot,
		      const float *gates, const int *slot_token,
		      const int *expert_count, const float *fcw,
		      const float *fcb, const float *projw, const float *projb,
		      int N, int C, int H, int E, int k, int cap);
void cuda_moe_backward(float *dinp, float *dgates, float *dfcw, float *dfcb,
		       float *dprojw, float *dprojb, float *dxin, float *dh,
		       float *dhg, float *dy, const float *dout,
		       const float *xin, const float *h, const float *hg,
		       const float *y, const int *topk_idx, const int *slot,
		       const float *gates, const int *expert_count,
		       const float *fcw, const float *projw, int N, int C,
		       int H, int E, int k, int cap);

/* ---- optimizer -------------------------------------------------------------- */

void cuda_adamw_update(float *params, const float *grads, float *m, float *v,
		       size_t n, float lr, float beta1, float beta2, float eps,
		       float weight_decay, int t);
/* out (one device float) = sum of squares, accumulated in double over a
 * fixed partition of count (deterministic; not the twin's partition). */
void cuda_global_norm_squared(float *out, const float *values, size_t count);

/* ---- bf16 variants: same signatures, bf16 operands, fp32 accumulate -------- */

void cuda_matmul_forward_bf16(float *out, const float *inp,
			      const float *weight, const float *bias, int N,
			      int C, int OC);
void cuda_matmul_backward_bf16(float *dinp, float *dweight, float *dbias,
			       const float *dout, const float *inp,
			       const float *weight, int N, int C, int OC);
void cuda_attention_forward_bf16(float *out, float *att, const float *inp,
				 int B, int T, int C, int NH);
void cuda_attention_backward_bf16(float *dinp, float *dpreatt, float *datt,
				  const float *dout, const float *inp,
				  const float *att, int B, int T, int C,
				  int NH);
void cuda_moe_forward_bf16(float *out, float *xin, float *h, float *hg,
			   float *y, const float *inp, const int *topk_idx,
			   const int *slot, const float *gates,
			   const int *slot_token, const int *expert_count,
			   const float *fcw, const float *fcb,
			   const float *projw, const float *projb, int N,
			   int C, int H, int E, int k, int cap);
void cuda_moe_backward_bf16(float *dinp, float *dgates, float *dfcw,
			    float *dfcb, float *dprojw, float *dprojb,
			    float *dxin, float *dh, float *dhg, float *dy,
			    const float *dout, const float *xin,
			    const float *h, const float *hg, const float *y,
			    const int *topk_idx, const int *slot,
			    const float *gates, const int *expert_count,
			    const float *fcw, const float *projw, int N,
			    int C, int H, int E, int k, int cap);

#ifdef __cplusplus
}
#endif

#endif
