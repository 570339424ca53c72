/*
 * test_gpt.c - the gpt object (scaffold/gpt.h): config checks and errors,
 * the GPT-2 124M parameter count, init, overfitting one batch,
 * determinism, gradient accumulation, clipping, AdamW's decay groups,
 * MoE statistics, FLOPs and checkpoint state round trips.
 */
#include "gpt.h"
#include "rng.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static gpt_config tiny_moe(void)
{
	gpt_config c = { .vocab = 13, .padded_vocab = 0, .context = 16,
			 .layers = 2, .heads = 2, .d_model = 16, .d_ff = 0,
			 .moe_every = 1, .experts = 4, .top_k = 2,
			 .capacity_factor = 1.5f };
	return c;
}

enum { B = 2, T = 8 };

static void batch(int *inp, int *tgt, uint64_t seed, int V)
{
	rng r;
	rng_seed(&r, seed);
	for (int i = 0; i < B * T; i++) {
		inp[i] = (int)rng_below(&r, (uint64_t)V);
		tgt[i] = (int)rng_below(&r, (uint64_t)V);
	}
}

static void test_config_errors(void)
{
	gpt_config c = tiny_moe();
	gpt *g = (gpt *)1;
	c.d_model = 15;
	TT_CHECK_RC(gpt_new(&g, &c, 1), TEND_EINVAL);
	TT_CHECK(g == NULL);
	TT_CHECK_STR(tend_error_last(),
		     "gpt config: d_model 15 is not a multiple of heads 2");
	c = tiny_moe();
	c.top_k = 3;
	TT_CHECK_RC(gpt_config_check(&c), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "gpt config: top_k 3 must be 1 or 2");
	c = tiny_moe();
	c.experts = 1;
	TT_CHECK_RC(gpt_config_check(&c), TEND_EINVAL);
	TT_CHECK_HAS(tend_error_last(), "experts 1 must be in [2, 64]");
	c.moe_every = 0; /* a dense model ignores the MoE fields */
	TT_CHECK_RC(gpt_config_check(&c), 0);
	c.padded_vocab = 5;
	TT_CHECK_RC(gpt_config_check(&c), TEND_EINVAL);
	TT_CHECK(gpt_config_num_params(&c) == 0);
	gpt_free(NULL);
}

static void test_gpt2_124m_count(void)
{
	gpt_config c = gpt_config_gpt2_124m();
	TT_CHECK(gpt_config_num_params(&c) == 124475904);
	gpt *g = NULL;
	TT_CHECK_RC(gpt_new(&g, &c, 42), 0);
	TT_REQUIRE(g);
	TT_CHECK(gpt_num_params(g) == 124475904);
	TT_CHECK(gpt_get_config(g)->d_ff == 3072);
	/* layout: llm.c's order, the tensors tile the buffer exactly */
	gpt_tensor t;
	size_t off = 0;
	for (int i = 0; i < gpt_num_tensors(g); i++) {
		TT_CHECK_RC(gpt_tensor_at(g, i, &t), 0);
		TT_CHECK(t.offset == off);
		off += t.count;
	}
	TT_CHECK(off == gpt_num_params(g));
	TT_CHECK_RC(gpt_tensor_at(g, 0, &t), 0);
	TT_CHECK_STR(t.name, "wte");
	TT_CHECK(t.count == (size_t)50304 * 768 && t.decay == 1);
	TT_CHECK_RC(gpt_tensor_at(g, 2, &t), 0);
	TT_CHECK_STR(t.name, "ln1w");
	TT_CHECK(t.layer == 0 && t.decay == 0);
	TT_CHECK_RC(gpt_tensor_at(g, gpt_num_tensors(g), &t), TEND_EINVAL);
	/* padded vocab rows are zero; init std is 0.02 */
	const float *p = gpt_params(g);
	int padded_zero = 1;
	for (size_t i = (size_t)50257 * 768; i < (size_t)50304 * 768; i++)
		padded_zero &= p[i] == 0.0f;
	TT_CHECK(padded_zero);
	double s2 = 0.0;
	for (size_t i = 0; i < 100000; i++)
		s2 += (double)p[i] * p[i];
	TT_CHECK(fabs(sqrt(s2 / 100000) - 0.02) < 0.001);
	/* dense FLOPs: 6 * (N - wpe) + 6 L C T */
	double want = 6.0 * (124475904.0 - 1024 * 768) + 6.0 * 12 * 768 * 1024;
	TT_CHECK(gpt_flops_per_token(g, 1024) == want);
	TT_CHECK(gpt_num_active_params(g) == gpt_num_params(g));
	TT_CHECK(gpt_moe_stats(g, NULL, 0) == 0);
	gpt_free(g);
}

/* The residual projections are scaled by 1/sqrt(2L). */
static void test_init_scales(void)
{
	gpt_config c = tiny_moe();
	c.d_model = 64;
	c.heads = 4;
	gpt *g = NULL;
	TT_CHECK_RC(gpt_new(&g, &c, 3), 0);
	TT_REQUIRE(g);
	for (int i = 0; i < gpt_num_tensors(g); i++) {
		gpt_tensor t;
		gpt_tensor_at(g, i, &t);
		const float *p = gpt_params(g) + t.offset;
		double s2 = 0.0;
		for (size_t j = 0; j < t.count; j++)
			s2 += (double)p[j] * p[j];
		double std = sqrt(s2 / t.count);
		if (!strcmp(t.name, "attprojw") || !strcmp(t.name, "eprojw"))
			TT_CHECK(fabs(std - 0.01) < 0.001); /* 0.02/sqrt(4) */
		else if (!strcmp(t.name, "efcw") || !strcmp(t.name, "qkvw"))
			TT_CHECK(fabs(std - 0.02) < 0.001);
		else if (!strcmp(t.name, "ln1w") || !strcmp(t.name, "lnfw"))
			TT_CHECK(std == 1.0);
		else if (!strcmp(t.name, "efcb") || !strcmp(t.name, "qkvb"))
			TT_CHECK(std == 0.0);
	}
	gpt_free(g);
}

static void test_forward_errors(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	int inp[B * T], tgt[B * T];
	float loss;
	TT_CHECK_RC(gpt_new(&g, &c, 1), 0);
	TT_REQUIRE(g);
	TT_CHECK_RC(gpt_backward(g), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "gpt_backward: no forward pass with targets to differentiate");
	batch(inp, tgt, 1, 13);
	inp[5] = 13;
	TT_CHECK_RC(gpt_forward(g, inp, tgt, B, T, &loss), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "gpt_forward: input token 13 at "
		     "position 5 is outside [0, 13)");
	inp[5] = 0;
	tgt[2] = -2;
	TT_CHECK_RC(gpt_forward(g, inp, tgt, B, T, &loss), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(), "gpt_forward: target -2 at position 2 "
		     "is outside [-1, 13)");
	TT_CHECK_RC(gpt_forward(g, inp, NULL, 1, 17, &loss), TEND_EINVAL);
	TT_CHECK_STR(tend_error_last(),
		     "gpt_forward: T=17 exceeds the context length 16");
	TT_CHECK_RC(gpt_forward(g, inp, NULL, 0, 4, &loss), TEND_EINVAL);
	/* without targets: logits only, no backward */
	TT_CHECK(gpt_logits(g) == NULL);
	TT_CHECK_RC(gpt_forward(g, inp, NULL, B, T, &loss), 0);
	TT_CHECK(loss == -1.0f && gpt_logits(g) != NULL);
	TT_CHECK_RC(gpt_backward(g), TEND_EINVAL);
	gpt_free(g);
}

/* Trains n steps on one batch; returns the last loss, fills first. */
static float train(gpt *g, const int *inp, const int *tgt, int n, float lr,
		   float *first)
{
	gpt_adamw opt = gpt_adamw_defaults();
	float loss = NAN;
	for (int s = 0; s < n; s++) {
		if (gpt_forward(g, inp, tgt, B, T, &loss) != 0)
			return NAN;
		if (s == 0 && first)
			*first = loss;
		gpt_zero_grad(g);
		gpt_backward(g);
		gpt_clip(g, 1.0f);
		gpt_step(g, &opt, lr);
	}
	return loss;
}

static void test_overfit_one_batch(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	int inp[B * T], tgt[B * T];
	float first = 0, last;
	TT_CHECK_RC(gpt_new(&g, &c, 5), 0);
	TT_REQUIRE(g);
	batch(inp, tgt, 9, 13);
	last = train(g, inp, tgt, 60, 1e-2f, &first);
	fprintf(stderr, "  overfit: loss %.4f -> %.4f\n", first, last);
	TT_CHECK(fabsf(first - logf(13.0f)) < 0.2f); /* starts near uniform */
	TT_CHECK(last < 0.3f * first);
	TT_CHECK(gpt_get_step(g) == 60);
	gpt_free(g);
}

static void test_determinism(void)
{
	gpt_config c = tiny_moe();
	gpt *a = NULL, *b = NULL;
	int inp[B * T], tgt[B * T];
	TT_CHECK_RC(gpt_new(&a, &c, 11), 0);
	TT_CHECK_RC(gpt_new(&b, &c, 11), 0);
	TT_REQUIRE(a && b);
	batch(inp, tgt, 2, 13);
	for (int s = 0; s < 5; s++) {
		float la = train(a, inp, tgt, 1, 3e-3f, NULL);
		float lb = train(b, inp, tgt, 1, 3e-3f, NULL);
		TT_CHECK(memcmp(&la, &lb, sizeof la) == 0);
	}
	size_t n = gpt_num_params(a);
	TT_CHECK(memcmp(gpt_params(a), gpt_params(b), n * sizeof(float)) == 0);
	TT_CHECK(memcmp(gpt_adam_v(a), gpt_adam_v(b), n * sizeof(float)) == 0);
	gpt_free(b);
	/* a different seed gives a different model */
	TT_CHECK_RC(gpt_new(&b, &c, 12), 0);
	TT_CHECK(memcmp(gpt_params(a), gpt_params(b), 64 * sizeof(float)) != 0);
	gpt_free(a);
	gpt_free(b);
}

/* Big enough that every kernel's parallel path runs (split sgemm, experts
 * on threads, parallel attention): still bit-identical. */
static void test_determinism_parallel_sizes(void)
{
	gpt_config c = { .vocab = 64, .context = 16, .layers = 2, .heads = 4,
			 .d_model = 64, .moe_every = 2, .experts = 4,
			 .top_k = 2, .capacity_factor = 1.25f };
	enum { PB = 4, PT = 16 };
	gpt *g[2] = { NULL, NULL };
	int inp[PB * PT], tgt[PB * PT];
	float loss[2][3];
	rng r;
	rng_seed(&r, 99);
	for (int i = 0; i < PB * PT; i++) {
		inp[i] = (int)rng_below(&r, 64);
		tgt[i] = (int)rng_below(&r, 64);
	}
	gpt_adamw opt = gpt_adamw_defaults();
	for (int m = 0; m < 2; m++) {
		TT_CHECK_RC(gpt_new(&g[m], &c, 31), 0);
		TT_REQUIRE(g[m]);
		for (int s = 0; s < 3; s++) {
			TT_CHECK_RC(gpt_forward(g[m], inp, tgt, PB, PT,
						&loss[m][s]), 0);
			gpt_zero_grad(g[m]);
			gpt_backward(g[m]);
			gpt_clip(g[m], 1.0f);
			gpt_step(g[m], &opt, 1e-3f);
		}
	}
	TT_CHECK(memcmp(loss[0], loss[1], sizeof loss[0]) == 0);
	TT_CHECK(loss[0][2] < loss[0][0]);
	TT_CHECK(memcmp(gpt_params(g[0]), gpt_params(g[1]),
			gpt_num_params(g[0]) * sizeof(float)) == 0);
	gpt_free(g[0]);
	gpt_free(g[1]);
}

/* Two half-scaled backwards of the same batch equal one full one. */
static void test_grad_accumulation(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	int inp[B * T], tgt[B * T];
	float loss;
	TT_CHECK_RC(gpt_new(&g, &c, 4), 0);
	TT_REQUIRE(g);
	batch(inp, tgt, 3, 13);
	size_t n = gpt_num_params(g);
	float *full = malloc(n * sizeof(float));
	gpt_forward(g, inp, tgt, B, T, &loss);
	gpt_zero_grad(g);
	gpt_backward(g);
	memcpy(full, gpt_grads(g), n * sizeof(float));
	gpt_zero_grad(g);
	gpt_set_grad_scale(g, 0.5f);
	for (int i = 0; i < 2; i++) {
		gpt_forward(g, inp, tgt, B, T, &loss);
		TT_CHECK_RC(gpt_backward(g), 0);
	}
	double worst = 0.0;
	for (size_t i = 0; i < n; i++)
		worst = fmax(worst, fabs(full[i] - gpt_grads(g)[i]));
	TT_CHECK(worst < 1e-7);
	free(full);
	gpt_free(g);
}

static void test_clip(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	int inp[B * T], tgt[B * T];
	float loss;
	TT_CHECK_RC(gpt_new(&g, &c, 6), 0);
	TT_REQUIRE(g);
	batch(inp, tgt, 4, 13);
	gpt_forward(g, inp, tgt, B, T, &loss);
	gpt_zero_grad(g);
	gpt_backward(g);
	float norm = gpt_grad_norm(g);
	TT_CHECK(norm > 0.0f && isfinite(norm));
	TT_CHECK(gpt_clip(g, 2.0f * norm) == norm); /* under the cap: no-op */
	TT_CHECK(gpt_grad_norm(g) == norm);
	TT_CHECK(gpt_clip(g, 0.25f * norm) == norm);
	TT_CHECK(fabsf(gpt_grad_norm(g) - 0.25f * norm) < 1e-4f * norm);
	gpt_zero_grad(g);
	TT_CHECK(gpt_grad_norm(g) == 0.0f);
	gpt_free(g);
}

/* With zero gradients AdamW only decays, and only the decay group. */
static void test_step_decay_groups(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	TT_CHECK_RC(gpt_new(&g, &c, 8), 0);
	TT_REQUIRE(g);
	size_t n = gpt_num_params(g);
	float *before = malloc(n * sizeof(float));
	memcpy(before, gpt_params(g), n * sizeof(float));
	gpt_adamw opt = { 0.9f, 0.95f, 1e-8f, 0.5f };
	gpt_zero_grad(g);
	TT_CHECK_RC(gpt_step(g, &opt, 0.1f), 0);
	for (int i = 0; i < gpt_num_tensors(g); i++) {
		gpt_tensor t;
		gpt_tensor_at(g, i, &t);
		float f = t.decay ? 1.0f - 0.1f * 0.5f : 1.0f;
		int ok = 1;
		for (size_t j = t.offset; j < t.offset + t.count; j++)
			ok &= fabsf(gpt_params(g)[j] - f * before[j]) <=
			      1e-6f * fabsf(before[j]);
		TT_CHECK(ok);
	}
	TT_CHECK_RC(gpt_step(g, NULL, 0.1f), TEND_EINVAL);
	opt.beta1 = 1.0f;
	TT_CHECK_RC(gpt_step(g, &opt, 0.1f), TEND_EINVAL);
	free(before);
	gpt_free(g);
}

static void test_moe_stats(void)
{
	gpt_config c = tiny_moe();
	c.capacity_factor = 0.5f; /* forces drops */
	gpt *g = NULL;
	int inp[B * T], tgt[B * T];
	float loss;
	gpt_moe_layer_stats st[4];
	TT_CHECK_RC(gpt_new(&g, &c, 2), 0);
	TT_REQUIRE(g);
	batch(inp, tgt, 5, 13);
	TT_CHECK_RC(gpt_forward(g, inp, tgt, B, T, &loss), 0);
	TT_CHECK(gpt_moe_stats(g, st, 1) == 2); /* two MoE layers, one written */
	TT_CHECK(gpt_moe_stats(g, st, 4) == 2);
	for (int i = 0; i < 2; i++) {
		double sum = 0.0;
		for (int e = 0; e < 4; e++)
			sum += st[i].load[e];
		TT_CHECK(st[i].layer == i && st[i].experts == 4);
		TT_CHECK(fabs(sum - 1.0) < 1e-6);
		TT_CHECK(fabsf(st[i].load_mean - 0.25f) < 1e-6f);
		TT_CHECK(st[i].load_max >= 0.25f && st[i].load_max <= 1.0f);
		/* a fresh router is near uniform */
		TT_CHECK(st[i].entropy > 0.99f && st[i].entropy <= 1.0f);
		TT_CHECK(fabsf(st[i].aux_loss - 1.0f) < 0.5f);
		TT_CHECK(st[i].z_loss > 0.0f);
		/* cap = ceil(0.5 * 16 * 2 / 4) = 4 slots x 4 experts of 32 */
		TT_CHECK(st[i].dropped >= 16);
		TT_CHECK(st[i].dropped_frac == st[i].dropped / 32.0f);
	}
	/* active params: router + 2 of 4 experts per MoE layer */
	size_t per_expert = 2 * 64 * 16 + 64 + 16;
	TT_CHECK(gpt_num_active_params(g) == gpt_num_params(g) - 2 * 2 * per_expert);
	gpt_free(g);
}

/* A model restored from another's params, m, v and step continues
 * identically. */
static void test_state_roundtrip(void)
{
	gpt_config c = tiny_moe();
	gpt *a = NULL, *b = NULL;
	int inp[B * T], tgt[B * T];
	TT_CHECK_RC(gpt_new(&a, &c, 21), 0);
	TT_CHECK_RC(gpt_new(&b, &c, 22), 0);
	TT_REQUIRE(a && b);
	batch(inp, tgt, 6, 13);
	train(a, inp, tgt, 3, 3e-3f, NULL);
	size_t bytes = gpt_num_params(a) * sizeof(float);
	memcpy(gpt_params(b), gpt_params(a), bytes);
	memcpy(gpt_adam_m(b), gpt_adam_m(a), bytes);
	memcpy(gpt_adam_v(b), gpt_adam_v(a), bytes);
	gpt_set_step(b, gpt_get_step(a));
	float la = train(a, inp, tgt, 2, 3e-3f, NULL);
	float lb = train(b, inp, tgt, 2, 3e-3f, NULL);
	TT_CHECK(la == lb);
	TT_CHECK(gpt_get_step(b) == 5);
	TT_CHECK(memcmp(gpt_params(a), gpt_params(b), bytes) == 0);
	gpt_free(a);
	gpt_free(b);
}

/* Activations grow for a bigger batch and stay correct for a smaller one. */
static void test_shapes_change(void)
{
	gpt_config c = tiny_moe();
	gpt *g = NULL;
	int inp[4 * 16], tgt[4 * 16];
	float l1, l2, l3;
	TT_CHECK_RC(gpt_new(&g, &c, 13), 0);
	TT_REQUIRE(g);
	rng r;
	rng_seed(&r, 77);
	for (int i = 0; i < 64; i++) {
		inp[i] = (int)rng_below(&r, 13);
		tgt[i] = i % 5 ? (int)rng_below(&r, 13) : -1;
	}
	TT_CHECK_RC(gpt_forward(g, inp, tgt, 1, 4, &l1), 0);
	TT_CHECK_RC(gpt_forward(g, inp, tgt, 4, 16, &l2), 0);
	TT_CHECK_RC(gpt_forward(g, inp, tgt, 1, 4, &l3), 0);
	TT_CHECK(l1 == l3 && isfinite(l2));
	gpt_zero_grad(g);
	TT_CHECK_RC(gpt_backward(g), 0);
	TT_CHECK(isfinite(gpt_grad_norm(g)));
	/* all targets ignored: loss 0, zero CE gradient */
	for (int i = 0; i < 4; i++)
		tgt[i] = -1;
	TT_CHECK_RC(gpt_forward(g, inp, tgt, 1, 4, &l1), 0);
	TT_CHECK(l1 == 0.0f);
	gpt_free(g);
}

int main(void)
{
	TT_RUN(test_config_errors);
	TT_RUN(test_gpt2_124m_count);
	TT_RUN(test_init_scales);
	TT_RUN(test_forward_errors);
	TT_RUN(test_overfit_one_batch);
	TT_RUN(test_determinism);
	TT_RUN(test_determinism_parallel_sizes);
	TT_RUN(test_grad_accumulation);
	TT_RUN(test_clip);
	TT_RUN(test_step_decay_groups);
	TT_RUN(test_moe_stats);
	TT_RUN(test_state_roundtrip);
	TT_RUN(test_shapes_change);
	return TT_DONE();
}
