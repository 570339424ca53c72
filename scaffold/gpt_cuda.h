/*
 * gpt_cuda.h - the GPU trainer: a gpt (gpt.h) mirrored on one CUDA device,
 * built from the kernels of cuda_kernels.h in the order gpt_pass.c runs
 * their CPU twins (llm.c's train_gpt2.cu is the model).
 *
 * Memory mirrors the CPU model: parameters, gradients and AdamW's m and v
 * are one device allocation each, in the layout of gpt.h (so a flat copy
 * moves a whole model either way), and activations one more, grown on
 * demand. A gptc starts as a copy of a CPU gpt, so both start from the
 * same init; gptc_download writes the state back into a gpt for
 * checkpoints (ckpt.h works on gpt).
 *
 * Precision: GPTC_FP32 runs the fp32 twins (losses match the CPU to ~1e-5
 * relative); GPTC_BF16 runs every weight matmul, the attention GEMMs and
 * the MoE experts with bf16 operands and fp32 accumulation, keeping fp32
 * master weights, optimizer state, activations, softmax, layernorm and the
 * router (losses match to ~1e-2). See docs/cuda.md.
 *
 * Errors: every int function returns 0 or a negative TEND_E* code with
 * tend_error_last() set; a device failure is TEND_ERROR and leaves the
 * gptc usable only for gptc_free. Calls synchronise the device when they
 * return. Only built with CUDA (TEND_HAVE_CUDA); not thread-safe.
 */
#ifndef GPT_CUDA_H
#define GPT_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "gpt.h"

typedef struct gptc gptc;

enum { GPTC_FP32 = 0, GPTC_BF16 = 1 };

/* A device copy of src: its config, parameters, AdamW m and v and step
 * counter (gradients start at 0, grad scale 1, MoE coefficients 0.01 and
 * 0.001 as gpt_new). precision is GPTC_FP32 or GPTC_BF16.
 * Returns 0, TEND_EINVAL (NULL src, bad precision), TEND_ENOTFOUND (no
 * CUDA device), TEND_ENOMEM or TEND_ERROR. Free with gptc_free. */
int gptc_new(gptc **out, const gpt *src, int precision);

void gptc_free(gptc *g);

/* As gpt_forward, with inputs and targets in host memory; *loss_out is
 * the mean cross-entropy over targets != -1 (-1 without targets).
 * Returns 0, TEND_EINVAL (same checks and messages as gpt_forward,
 * prefixed "gptc_forward"), TEND_ENOMEM or TEND_ERROR. */
int gptc_forward(gptc *g, const int *inputs, const int *targets, int B,
		 int T, float *loss_out);

/* Zeroes the gradients; 0 or TEND_ERROR. */
int gptc_zero_grad(gptc *g);

/* As gpt_backward: adds the gradient of the last forward (with targets)
 * into the gradients. 0, TEND_EINVAL (no forward with targets) or
 * TEND_ERROR. */
int gptc_backward(gptc *g);

void gptc_set_grad_scale(gptc *g, float scale);
void gptc_set_moe_coeffs(gptc *g, float aux, float z);

/* *norm_out = L2 norm of all gradients; 0 or TEND_ERROR. */
int gptc_grad_norm(gptc *g, float *norm_out);

/* As gpt_clip; *norm_out (may be NULL) gets the pre-clip norm. */
int gptc_clip(gptc *g, float max_norm, float *norm_out);

/* As gpt_step; 0, TEND_EINVAL or TEND_ERROR. */
int gptc_step(gptc *g, const gpt_adamw *opt, float lr);

/* As gpt_moe_stats (downloads the router outputs of the last forward):
 * returns the number of MoE layers, or a negative TEND_E* code. */
int gptc_moe_stats(gptc *g, gpt_moe_layer_stats *out, int max_layers);

/* Copies parameters, m, v and the step counter from src (gradients are
 * zeroed). 0, TEND_EINVAL (src has another config) or TEND_ERROR. */
int gptc_upload(gptc *g, const gpt *src);

/* Copies parameters, gradients, m, v and the step counter into dst, a gpt
 * of the same config (e.g. to write a checkpoint with ckpt.h).
 * 0, TEND_EINVAL or TEND_ERROR. */
int gptc_download(gptc *g, gpt *dst);

size_t gptc_num_params(const gptc *g);
int gptc_get_step(const gptc *g);

#ifdef __cplusplus
}
#endif

#endif
