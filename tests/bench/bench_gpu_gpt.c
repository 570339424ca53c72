/*
 * bench_gpu_gpt.c - throughput of the GPU trainer (scaffold/gpt_cuda.h) on
 * GPT-2 124M dense: one step = forward + backward + clip + AdamW, timed
 * after two warm-up steps (which grow activations and scratch).
 *
 * Prints ms/step (split forward / backward / optimizer), tokens/s and MFU:
 * achieved FLOP/s (gpt_flops_per_token, llm.c's count) over the H200's
 * dense bf16 tensor-core peak, 989 TFLOP/s. It runs bf16 (the training
 * mode) and then a few fp32 steps, and prints the bf16/fp32 speedup
 * measured in the same run.
 * Usage: bench_gpu_gpt [B [T [steps]]] (default 16 1024 10).
 * Exits 77 when built without CUDA or run without a device.
 */
#include "tend_build.h"

#include <stdio.h>

#if !TEND_HAVE_CUDA
int main(void)
{
	puts("built without CUDA: skip");
	return 77;
}
#else

#include "cuda_kernels.h"
#include "gpt.h"
#include "gpt_cuda.h"
#include "rng.h"
#include "tend.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <time.h>

#define PEAK_BF16 989e12 /* H200 SXM dense bf16, FLOP/s */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct timing {
	double fwd, bwd, opt;
	float loss;
} timing;

static int one_step(gptc *g, const int *inp, const int *tgt, int B, int T,
		    timing *t)
{
	gpt_adamw opt = gpt_adamw_defaults();
	double t0 = now();
	int rc = gptc_forward(g, inp, tgt, B, T, &t->loss);
	double t1 = now();
	if (rc == 0)
		rc = gptc_zero_grad(g);
	if (rc == 0)
		rc = gptc_backward(g);
	double t2 = now();
	if (rc == 0)
		rc = gptc_clip(g, 1.0f, NULL);
	if (rc == 0)
		rc = gptc_step(g, &opt, 1e-4f);
	double t3 = now();
	t->fwd += t1 - t0;
	t->bwd += t2 - t1;
	t->opt += t3 - t2;
	return rc;
}

/* Seconds per step at precision over steps timed steps; < 0 on error. */
static double run(gpt *cpu, int precision, const int *inp, const int *tgt,
		  int B, int T, int steps)
{
	gptc *g = NULL;
	timing warm = { 0 }, t = { 0 };
	const char *name = precision == GPTC_BF16 ? "bf16" : "fp32";
	int rc = gptc_new(&g, cpu, precision);
	for (int s = 0; rc == 0 && s < 2; s++)
		rc = one_step(g, inp, tgt, B, T, &warm);
	for (int s = 0; rc == 0 && s < steps; s++)
		rc = one_step(g, inp, tgt, B, T, &t);
	gptc_free(g);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", name, tend_error_last());
		return -1.0;
	}
	double step = (t.fwd + t.bwd + t.opt) / steps;
	double tok = (double)B * T / step;
	double flops = tok * gpt_flops_per_token(cpu, T);
	printf("%s: B=%d T=%d: %.1f ms/step (fwd %.1f, bwd %.1f, opt %.1f), "
	       "%.0f tok/s, %.1f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s "
	       "(loss %.3f, %d steps)\n", name, B, T, step * 1e3,
	       t.fwd / steps * 1e3, t.bwd / steps * 1e3, t.opt / steps * 1e3,
	       tok, flops * 1e-12, 100.0 * flops / PEAK_BF16, PEAK_BF16 * 1e-12,
	       t.loss, steps);
	return step;
}

int main(int argc, char **argv)
{
	int B = argc > 1 ? atoi(argv[1]) : 16, T = argc > 2 ? atoi(argv[2]) : 1024;
	int steps = argc > 3 ? atoi(argv[3]) : 10, rc = 1;
	if (!cuda_available()) {
		puts("no CUDA device: skip");
		return 77;
	}
	struct cudaDeviceProp prop;
	if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
		printf("device: %s, %d SMs, %.1f GiB\n", prop.name,
		       prop.multiProcessorCount,
		       prop.totalGlobalMem / 1073741824.0);
	gpt_config c = gpt_config_gpt2_124m();
	gpt *cpu = NULL;
	int *inp = malloc(sizeof(int) * B * T), *tgt = malloc(sizeof(int) * B * T);
	if (B < 1 || T < 1 || steps < 1 || !inp || !tgt ||
	    gpt_new(&cpu, &c, 1) != 0) {
		fprintf(stderr, "setup: %s\n", tend_error_last());
		goto done;
	}
	rng r;
	rng_seed(&r, 1);
	for (int i = 0; i < B * T; i++) {
		inp[i] = (int)rng_below(&r, (uint64_t)c.vocab);
		tgt[i] = (int)rng_below(&r, (uint64_t)c.vocab);
	}
	printf("GPT-2 124M dense: %zu params, %.3g FLOP/token at T=%d\n",
	       gpt_num_params(cpu), gpt_flops_per_token(cpu, T), T);
	double sb = run(cpu, GPTC_BF16, inp, tgt, B, T, steps);
	double sf = run(cpu, GPTC_FP32, inp, tgt, B, T, steps < 3 ? steps : 3);
	if (sb > 0 && sf > 0) {
		printf("bf16 / fp32 speedup: %.2fx (same run)\n", sf / sb);
		rc = 0;
	}
done:
	gpt_free(cpu);
	free(inp);
	free(tgt);
	cuda_release();
	return rc;
}

#endif
