/*
 * test_train.c - the GPU trainer (scaffold/gpt_cuda.h) against the CPU
 * model it was copied from, on the synthetic corpus (synth.h):
 *  - fp32, dense and MoE: the first losses, every gradient tensor and the
 *    MoE routing statistics match the CPU path;
 *  - bf16: the first loss and the gradients match within bf16's margin;
 *  - a few hundred steps (bf16 dense, bf16 MoE) bring the loss well down;
 *  - state round trips through a CPU gpt (the checkpoint path), and two
 *    runs from the same state give bit-identical losses;
 *  - the error paths answer with the documented codes and messages.
 * Exits 77 (skip) when built without CUDA or run without a device.
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
#include "synth.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { B = 8, T = 64, N = B * T, CORPUS = 1 << 20 };

static uint8_t *corpus;

static gpt_config small(int moe)
{
	gpt_config c = { .vocab = SYNTH_VOCAB, .padded_vocab = 0,
			 .context = T, .layers = 2, .heads = 4, .d_model = 64,
			 .d_ff = 0, .moe_every = moe ? 2 : 0, .experts = 4,
			 .top_k = 2, .capacity_factor = 1.25f };
	return c;
}

/* Batch i: B windows of the corpus at offsets drawn from seed i. */
static void batch(int *inp, int *tgt, uint64_t i)
{
	rng r;
	rng_seed(&r, 1000 + i);
	for (int b = 0; b < B; b++) {
		size_t o = (size_t)rng_below(&r, CORPUS - T - 1);
		for (int t = 0; t < T; t++) {
			inp[b * T + t] = corpus[o + t];
			tgt[b * T + t] = corpus[o + t + 1];
		}
	}
}

/* Relative L2 error of the whole gradient and the worst tensor's
 * max-abs error relative to that tensor's max. */
typedef struct gdiff {
	double l2, worst;
	const char *worst_name;
} gdiff;

static gdiff grad_diff(gpt *want, gpt *got)
{
	gdiff d = { 0.0, 0.0, "-" };
	const float *w = gpt_grads(want), *g = gpt_grads(got);
	double num = 0.0, den = 0.0;
	for (int i = 0; i < gpt_num_tensors(want); i++) {
		gpt_tensor t;
		gpt_tensor_at(want, i, &t);
		double err = 0.0, ref = 0.0;
		for (size_t j = t.offset; j < t.offset + t.count; j++) {
			double e = fabs((double)g[j] - w[j]);
			err = isfinite(g[j]) ? (e > err ? e : err) : INFINITY;
			ref = fabs(w[j]) > ref ? fabs(w[j]) : ref;
			num += e * e;
			den += (double)w[j] * w[j];
		}
		double rel = ref > 0.0 ? err / ref : err;
		if (!(rel <= d.worst)) {
			d.worst = rel;
			d.worst_name = t.name;
		}
	}
	d.l2 = den > 0.0 ? sqrt(num / den) : sqrt(num);
	return d;
}

/* One step on both models with the same batch: losses, and gradients
 * (downloaded into mirror) compared; then clip and AdamW on both. */
static void lockstep(gpt *cpu, gptc *gpu, gpt *mirror, int step, double ltol,
		     double gl2, double gworst)
{
	int inp[N], tgt[N];
	float lc, lg;
	gpt_adamw opt = gpt_adamw_defaults();
	batch(inp, tgt, step);
	TT_CHECK_RC(gpt_forward(cpu, inp, tgt, B, T, &lc), 0);
	TT_CHECK_RC(gptc_forward(gpu, inp, tgt, B, T, &lg), 0);
	fprintf(stderr, "  step %d: loss cpu %.6f gpu %.6f (rel %.1e)\n", step,
		lc, lg, fabs(lc - lg) / lc);
	TT_CHECK(fabs(lc - lg) <= ltol * lc);
	gpt_zero_grad(cpu);
	TT_CHECK_RC(gptc_zero_grad(gpu), 0);
	TT_CHECK_RC(gpt_backward(cpu), 0);
	TT_CHECK_RC(gptc_backward(gpu), 0);
	if (step == 0) {
		TT_CHECK_RC(gptc_download(gpu, mirror), 0);
		gdiff d = grad_diff(cpu, mirror);
		fprintf(stderr, "  grads: rel L2 %.1e, worst tensor %s %.1e\n",
			d.l2, d.worst_name, d.worst);
		TT_CHECK(d.l2 <= gl2);
		TT_CHECK(d.worst <= gworst);
	}
	float nc = gpt_clip(cpu, 1.0f), ng = 0.0f;
	TT_CHECK_RC(gptc_clip(gpu, 1.0f, &ng), 0);
	TT_CHECK(fabs(nc - ng) <= 10 * gl2 * nc);
	TT_CHECK_RC(gpt_step(cpu, &opt, 1e-3f), 0);
	TT_CHECK_RC(gptc_step(gpu, &opt, 1e-3f), 0);
}

static void check_moe_stats(gpt *cpu, gptc *gpu)
{
	gpt_moe_layer_stats sc[4], sg[4];
	int nc = gpt_moe_stats(cpu, sc, 4);
	TT_REQUIRE(gptc_moe_stats(gpu, sg, 4) == nc && nc == 1);
	TT_CHECK(sg[0].layer == sc[0].layer && sg[0].experts == sc[0].experts);
	TT_CHECK(sg[0].dropped == sc[0].dropped);
	for (int e = 0; e < sc[0].experts; e++)
		TT_CHECK(sg[0].load[e] == sc[0].load[e]);
	TT_CHECK(fabsf(sg[0].entropy - sc[0].entropy) <= 1e-4f);
	TT_CHECK(fabsf(sg[0].aux_loss - sc[0].aux_loss) <= 1e-4f * sc[0].aux_loss);
	TT_CHECK(fabsf(sg[0].z_loss - sc[0].z_loss) <= 1e-3f * sc[0].z_loss + 1e-7f);
	fprintf(stderr, "  moe: aux %.5f/%.5f z %.3e/%.3e dropped %d\n",
		sc[0].aux_loss, sg[0].aux_loss, sc[0].z_loss, sg[0].z_loss,
		sc[0].dropped);
}

/* CPU and GPU copies of one model, run in lockstep for a few steps. */
static void match_case(int moe, int precision, double ltol, double gl2,
		       double gworst)
{
	gpt_config c = small(moe);
	gpt *cpu = NULL, *mirror = NULL;
	gptc *gpu = NULL;
	TT_CHECK_RC(gpt_new(&cpu, &c, 7), 0);
	TT_CHECK_RC(gpt_new(&mirror, &c, 8), 0);
	TT_CHECK_RC(gptc_new(&gpu, cpu, precision), 0);
	if (!cpu || !mirror || !gpu)
		goto done;
	TT_CHECK(gptc_num_params(gpu) == gpt_num_params(cpu));
	for (int s = 0; s < 3; s++) {
		lockstep(cpu, gpu, mirror, s, ltol, gl2, gworst);
		if (moe && s == 0 && precision == GPTC_FP32)
			check_moe_stats(cpu, gpu); /* bf16 may route a tie apart */
	}
	TT_CHECK(gptc_get_step(gpu) == 3 && gpt_get_step(cpu) == 3);
done:
	gptc_free(gpu);
	gpt_free(mirror);
	gpt_free(cpu);
}

static void test_dense_fp32_matches_cpu(void) { match_case(0, GPTC_FP32, 1e-4, 1e-4, 1e-3); }
static void test_moe_fp32_matches_cpu(void) { match_case(1, GPTC_FP32, 1e-4, 1e-4, 1e-3); }
static void test_dense_bf16_matches_cpu(void) { match_case(0, GPTC_BF16, 2e-2, 5e-2, 2e-1); }
/* (a near-tie routed the other way moves whole rows of one expert: no
 * per-tensor bound for MoE in bf16, the L2 bound still holds) */
static void test_moe_bf16_matches_cpu(void) { match_case(1, GPTC_BF16, 2e-2, 5e-2, 1e30); }

/* steps of training from a fresh model; the loss must fall well below
 * the corpus' unigram entropy (~3 nats). The CPU reference reaches 1.43
 * (dense, fp32) with these settings. */
static void learn_case(int moe, int precision, int steps)
{
	gpt_config c = small(moe);
	gpt *cpu = NULL;
	gptc *gpu = NULL;
	gpt_adamw opt = gpt_adamw_defaults();
	int inp[N], tgt[N];
	float first = 0.0f, last = 0.0f, loss;
	TT_CHECK_RC(gpt_new(&cpu, &c, 11), 0);
	TT_CHECK_RC(gptc_new(&gpu, cpu, precision), 0);
	for (int s = 0; gpu && s < steps; s++) {
		batch(inp, tgt, 100 + s);
		TT_REQUIRE(gptc_forward(gpu, inp, tgt, B, T, &loss) == 0);
		TT_REQUIRE(gptc_zero_grad(gpu) == 0 && gptc_backward(gpu) == 0);
		TT_REQUIRE(gptc_clip(gpu, 1.0f, NULL) == 0);
		TT_REQUIRE(gptc_step(gpu, &opt, 3e-3f) == 0);
		TT_REQUIRE(isfinite(loss));
		if (s == 0)
			first = loss;
		if (s >= steps - 10)
			last += loss / 10;
	}
	fprintf(stderr, "  %s %s: loss %.3f -> %.3f over %d steps\n",
		moe ? "moe" : "dense", precision ? "bf16" : "fp32", first, last,
		steps);
	TT_CHECK(last < 0.6f * first);
	TT_CHECK(last < 2.5f);
	gptc_free(gpu);
	gpt_free(cpu);
}

static void test_dense_bf16_learns(void) { learn_case(0, GPTC_BF16, 300); }
static void test_moe_bf16_learns(void) { learn_case(1, GPTC_BF16, 300); }

/* Train a little, download into a CPU gpt, and check the CPU model and a
 * second GPU copy made from it see exactly the state the first one had. */
static void test_state_round_trip(void)
{
	gpt_config c = small(1);
	gpt *cpu = NULL, *back = NULL;
	gptc *g1 = NULL, *g2 = NULL;
	gpt_adamw opt = gpt_adamw_defaults();
	int inp[N], tgt[N];
	float l1 = 0, l2 = -1, lc = -2;
	TT_CHECK_RC(gpt_new(&cpu, &c, 3), 0);
	TT_CHECK_RC(gpt_new(&back, &c, 4), 0);
	TT_CHECK_RC(gptc_new(&g1, cpu, GPTC_FP32), 0);
	if (!g1 || !back)
		goto done;
	for (int s = 0; s < 5; s++) {
		batch(inp, tgt, 200 + s);
		TT_CHECK_RC(gptc_forward(g1, inp, tgt, B, T, &l1), 0);
		TT_CHECK_RC(gptc_zero_grad(g1), 0);
		TT_CHECK_RC(gptc_backward(g1), 0);
		TT_CHECK_RC(gptc_step(g1, &opt, 1e-3f), 0);
	}
	TT_CHECK_RC(gptc_download(g1, back), 0);
	TT_CHECK(gpt_get_step(back) == 5);
	TT_CHECK_RC(gptc_new(&g2, back, GPTC_FP32), 0);
	TT_REQUIRE(g2);
	TT_CHECK(gptc_get_step(g2) == 5);
	batch(inp, tgt, 300);
	TT_CHECK_RC(gptc_forward(g1, inp, tgt, B, T, &l1), 0);
	TT_CHECK_RC(gptc_forward(g2, inp, tgt, B, T, &l2), 0);
	TT_CHECK_RC(gpt_forward(back, inp, tgt, B, T, &lc), 0);
	fprintf(stderr, "  after 5 steps: gpu %.7f, copy %.7f, cpu %.7f\n", l1,
		l2, lc);
	TT_CHECK(l1 == l2); /* same device, same kernels: deterministic */
	TT_CHECK(fabs(l1 - lc) <= 1e-4 * lc);
	/* one more step on both GPU copies stays identical */
	TT_CHECK_RC(gptc_zero_grad(g1), 0);
	TT_CHECK_RC(gptc_zero_grad(g2), 0);
	TT_CHECK_RC(gptc_backward(g1), 0);
	TT_CHECK_RC(gptc_backward(g2), 0);
	TT_CHECK_RC(gptc_step(g1, &opt, 1e-3f), 0);
	TT_CHECK_RC(gptc_step(g2, &opt, 1e-3f), 0);
	TT_CHECK_RC(gptc_forward(g1, inp, tgt, B, T, &l1), 0);
	TT_CHECK_RC(gptc_forward(g2, inp, tgt, B, T, &l2), 0);
	TT_CHECK(l1 == l2);
	/* upload puts the downloaded state back */
	TT_CHECK_RC(gptc_upload(g1, back), 0);
	TT_CHECK(gptc_get_step(g1) == 5);
	batch(inp, tgt, 300);
	TT_CHECK_RC(gptc_forward(g1, inp, tgt, B, T, &l1), 0);
	TT_CHECK(fabs(l1 - lc) <= 1e-4 * lc);
done:
	gptc_free(g2);
	gptc_free(g1);
	gpt_free(back);
	gpt_free(cpu);
}

static void test_errors(void)
{
	gpt_config c = small(0), other = small(1);
	gpt *cpu = NULL, *wrong = NULL;
	gptc *g = (gptc *)1;
	int inp[N], tgt[N];
	float loss;
	TT_CHECK_RC(gptc_new(&g, NULL, GPTC_FP32), TEND_EINVAL);
	TT_CHECK(g == NULL);
	TT_CHECK_STR(tend_error_last(),
		     "gptc_new: need a model and GPTC_FP32 or GPTC_BF16");
	TT_CHECK_RC(gpt_new(&cpu, &c, 1), 0);
	TT_CHECK_RC(gpt_new(&wrong, &other, 1), 0);
	TT_CHECK_RC(gptc_new(&g, cpu, 7), TEND_EINVAL);
	TT_CHECK_RC(gptc_new(&g, cpu, GPTC_FP32), 0);
	if (!g || !wrong)
		goto done;
	TT_CHECK_RC(gptc_backward(g), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "gptc_backward: no forward pass with "
		     "targets to differentiate");
	batch(inp, tgt, 0);
	inp[5] = 256;
	TT_CHECK_RC(gptc_forward(g, inp, tgt, B, T, &loss), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "gptc_forward: input token 256 at "
		     "position 5 is outside [0, 256)");
	inp[5] = 1;
	tgt[7] = -2;
	TT_CHECK_RC(gptc_forward(g, inp, tgt, B, T, &loss), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "target -2 at position 7");
	TT_CHECK_RC(gptc_forward(g, inp, tgt, 1, T + 1, &loss), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "gptc_forward: T=65 exceeds the context length 64");
	TT_CHECK_RC(gptc_forward(g, inp, NULL, B, T, &loss), 0);
	TT_CHECK(loss == -1.0f);
	TT_CHECK_RC(gptc_backward(g), TEND_EINVAL);
	TT_CHECK_RC(gptc_download(g, wrong), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "gptc_download: the gpt has another "
		     "config");
	TT_CHECK_RC(gptc_upload(g, wrong), TEND_EINVAL);
	TT_CHECK_RC(gptc_step(g, NULL, 1e-3f), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "gptc_step: need finite lr and betas in [0, 1)");
	TT_CHECK(gptc_moe_stats(g, NULL, 0) == 0); /* dense */
done:
	gptc_free(g);
	gptc_free(NULL);
	gpt_free(wrong);
	gpt_free(cpu);
}

int main(void)
{
	if (!cuda_available()) {
		puts("no CUDA device: skip");
		return 77;
	}
	corpus = malloc(CORPUS);
	if (!corpus)
		return 1;
	synth_generate(corpus, CORPUS, 1);
	TT_RUN(test_errors);
	TT_RUN(test_dense_fp32_matches_cpu);
	TT_RUN(test_moe_fp32_matches_cpu);
	TT_RUN(test_dense_bf16_matches_cpu);
	TT_RUN(test_moe_bf16_matches_cpu);
	TT_RUN(test_state_round_trip);
	TT_RUN(test_dense_bf16_learns);
	TT_RUN(test_moe_bf16_learns);
	free(corpus);
	cuda_release();
	return TT_DONE();
}

#endif
