/*
 * gpt_pass.c - the forward and backward passes of a gpt over the layer
 * kernels, and the activation memory they use (one float and one int
 * allocation, carved into per-block views, grown on demand).
 *
 * The backward keeps one running residual gradient `dres`: since
 * resid3 = resid2 + ffn_out and resid2 = x + attproj, d ffn_out and
 * d attproj are both just dres, so residual_backward's copies are skipped
 * and the layernorm backwards add straight into dres.
 */
#include "gpt_int.h"

#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- activation memory --------------------------------------------------- */

/* A bump allocator over one buffer; with base NULL it only counts. */
typedef struct bump {
	float *f;
	int *i;
	size_t nf, ni;
} bump;

static float *takef(bump *b, size_t n)
{
	float *p = b->f ? b->f + b->nf : NULL;
	b->nf += n;
	return p;
}

static int *takei(bump *b, size_t n)
{
	int *p = b->i ? b->i + b->ni : NULL;
	b->ni += n;
	return p;
}

static void carve_moe(gpt__acts *a, bump *b, size_t N, size_t C, size_t H,
		      size_t E, size_t k, size_t cap)
{
	a->rlogits = takef(b, N * E);
	a->rprobs = takef(b, N * E);
	a->rlse = takef(b, N);
	a->gates = takef(b, N * k);
	a->frac = takef(b, E);
	a->xin = takef(b, E * cap * C);
	a->eh = takef(b, E * cap * H);
	a->ehg = takef(b, E * cap * H);
	a->ey = takef(b, E * cap * C);
	a->topk = takei(b, N * k);
	a->slot = takei(b, N * k);
	a->slot_token = takei(b, E * cap);
	a->expert_count = takei(b, E);
}

static void carve_block(gpt *g, gpt__acts *a, bump *b, int l, size_t N,
			size_t BTT, size_t cap)
{
	size_t C = g->C, H = g->H;
	a->ln1 = takef(b, N * C);
	a->ln1_mean = takef(b, N);
	a->ln1_rstd = takef(b, N);
	a->qkv = takef(b, N * 3 * C);
	a->atty = takef(b, N * C);
	a->att = takef(b, BTT * g->NH);
	a->attproj = takef(b, N * C);
	a->resid2 = takef(b, N * C);
	a->ln2 = takef(b, N * C);
	a->ln2_mean = takef(b, N);
	a->ln2_rstd = takef(b, N);
	a->ffn_out = takef(b, N * C);
	a->resid3 = takef(b, N * C);
	if (gpt__is_moe(&g->cfg, l)) {
		carve_moe(a, b, N, C, H, g->E, g->k, cap);
	} else {
		a->fch = takef(b, N * H);
		a->fch_gelu = takef(b, N * H);
	}
}

static void carve_grads(gpt *g, bump *b, size_t N, size_t BTT, size_t cap)
{
	gpt__grad_acts *d = &g->ga;
	size_t C = g->C, H = g->H, E = g->E, k = g->k;
	d->dres = takef(b, N * C);
	d->dln = takef(b, N * C);
	d->datty = takef(b, N * C);
	d->dqkv = takef(b, N * 3 * C);
	d->dpreatt = takef(b, BTT * g->NH);
	d->datt = takef(b, BTT * g->NH);
	d->dfch = takef(b, N * H);
	d->dfch_gelu = takef(b, N * H);
	d->drlogits = takef(b, N * E);
	d->dgates = takef(b, N * k);
	d->dxin = takef(b, E * cap * C);
	d->deh = takef(b, E * cap * H);
	d->dehg = takef(b, E * cap * H);
	d->dey = takef(b, E * cap * C);
	d->dlogits = takef(b, N * g->Vp);
	d->dlosses = takef(b, N);
	d->dlnf = takef(b, N * C);
}

static void carve(gpt *g, bump *b, size_t N, size_t BTT)
{
	size_t cap = g->E ? (size_t)gpt__cap(g, (int)N) : 0;
	g->encoded = takef(b, N * g->C);
	for (int l = 0; l < g->L; l++)
		carve_block(g, &g->acts[l], b, l, N, BTT, cap);
	g->lnf = takef(b, N * g->C);
	g->lnf_mean = takef(b, N);
	g->lnf_rstd = takef(b, N);
	g->logits = takef(b, N * g->Vp);
	g->probs = takef(b, N * g->Vp);
	g->losses = takef(b, N);
	g->inputs = takei(b, N);
	g->targets = takei(b, N);
	carve_grads(g, b, N, BTT, cap);
}

int gpt__cap(const gpt *g, int N)
{
	return moe_capacity(g->cfg.capacity_factor, N, g->E, g->k);
}

/* Makes room for B x T tokens; keeps the buffers when they are big enough
 * (capacity grows with N, so a smaller N always fits). */
static int ensure_acts(gpt *g, int B, int T)
{
	size_t N = (size_t)B * T, BTT = (size_t)B * T * T;
	if (g->abuf && N <= g->acts_N && BTT <= g->acts_BTT)
		return 0;
	if (N < g->acts_N)
		N = g->acts_N; /* grow each bound monotonically */
	if (BTT < g->acts_BTT)
		BTT = g->acts_BTT;
	bump count = { 0 };
	carve(g, &count, N, BTT);
	free(g->abuf);
	free(g->ibuf);
	g->abuf = calloc(count.nf, sizeof(float));
	g->ibuf = calloc(count.ni, sizeof(int));
	g->B = 0;
	if (!g->abuf || !g->ibuf) {
		free(g->abuf);
		free(g->ibuf);
		g->abuf = NULL;
		g->ibuf = NULL;
		g->acts_N = g->acts_BTT = 0;
		return tend_error_set(TEND_ENOMEM,
			"gpt_forward: out of memory for activations "
			"(%zu floats)", count.nf);
	}
	bump real = { g->abuf, g->ibuf, 0, 0 };
	carve(g, &real, N, BTT);
	g->acts_N = N;
	g->acts_BTT = BTT;
	return 0;
}

/* ---- forward ------------------------------------------------------------- */

static int check_tokens(const gpt *g, const int *inputs, const int *targets,
			int B, int T)
{
	if (!inputs || B < 1 || T < 1)
		return tend_error_set(TEND_EINVAL,
			"gpt_forward: need inputs and B, T >= 1 (B=%d T=%d)",
			B, T);
	if (T > g->cfg.context)
		return tend_error_set(TEND_EINVAL,
			"gpt_forward: T=%d exceeds the context length %d", T,
			g->cfg.context);
	if ((size_t)B * T > (size_t)1 << 30)
		return tend_error_set(TEND_EINVAL,
			"gpt_forward: B*T=%zu too large", (size_t)B * T);
	for (int i = 0; i < B * T; i++) {
		if (inputs[i] < 0 || inputs[i] >= g->V)
			return tend_error_set(TEND_EINVAL,
				"gpt_forward: input token %d at position %d is "
				"outside [0, %d)", inputs[i], i, g->V);
		if (targets && (targets[i] < -1 || targets[i] >= g->V))
			return tend_error_set(TEND_EINVAL,
				"gpt_forward: target %d at position %d is "
				"outside [-1, %d)", targets[i], i, g->V);
	}
	return 0;
}

/* Fills the routing statistics of MoE block l from its router outputs. */
static void moe_block_stats(gpt *g, int l, int N, float aux, float z,
			    int dropped)
{
	gpt__acts *a = &g->acts[l];
	gpt_moe_layer_stats *s = &g->stats[l];
	int E = g->E;
	memset(s, 0, sizeof *s);
	s->layer = l;
	s->experts = E;
	for (int e = 0; e < E; e++) {
		s->load[e] = a->frac[e];
		if (a->frac[e] > s->load_max)
			s->load_max = a->frac[e];
		s->load_mean += a->frac[e] / E;
	}
	double ent = 0.0;
	for (size_t n = 0; n < (size_t)N; n++)
		for (int e = 0; e < E; e++) {
			float p = a->rprobs[n * E + e];
			if (p > 0.0f)
				ent -= p * log(p);
		}
	s->entropy = (float)(ent / N / log(E));
	s->dropped = dropped;
	s->dropped_frac = (float)dropped / ((float)N * g->k);
	s->aux_loss = aux;
	s->z_loss = z;
}

/* Router + experts of MoE block l on ln2, writing ffn_out. */
static void moe_block_forward(gpt *g, int l, int N)
{
	gpt__acts *a = &g->acts[l];
	const gpt__block *p = &g->p.block[l];
	int C = g->C, E = g->E, k = g->k, cap = gpt__cap(g, N);
	float aux, z;
	int dropped;
	matmul_forward(a->rlogits, a->ln2, p->routerw, NULL, N, C, E);
	router_forward(a->rprobs, a->rlse, a->topk, a->gates, a->slot,
		       a->slot_token, a->expert_count, a->frac, &aux, &z,
		       &dropped, a->rlogits, N, E, k, cap);
	moe_forward(a->ffn_out, a->xin, a->eh, a->ehg, a->ey, a->ln2, a->topk,
		    a->slot, a->gates, a->slot_token, a->expert_count, p->efcw,
		    p->efcb, p->eprojw, p->eprojb, N, C, g->H, E, k, cap);
	moe_block_stats(g, l, N, aux, z, dropped);
}

static void block_forward(gpt *g, int l, const float *x, int B, int T)
{
	gpt__acts *a = &g->acts[l];
	const gpt__block *p = &g->p.block[l];
	int N = B * T, C = g->C;
	layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p->ln1w,
			  p->ln1b, N, C);
	matmul_forward(a->qkv, a->ln1, p->qkvw, p->qkvb, N, C, 3 * C);
	attention_forward(a->atty, a->att, a->qkv, B, T, C, g->NH);
	matmul_forward(a->attproj, a->atty, p->attprojw, p->attprojb, N, C, C);
	residual_forward(a->resid2, x, a->attproj, N * C);
	layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2, p->ln2w,
			  p->ln2b, N, C);
	if (gpt__is_moe(&g->cfg, l)) {
		moe_block_forward(g, l, N);
	} else {
		matmul_forward(a->fch, a->ln2, p->fcw, p->fcb, N, C, g->H);
		gelu_forward(a->fch_gelu, a->fch, N * g->H);
		matmul_forward(a->ffn_out, a->fch_gelu, p->fcprojw, p->fcprojb,
			       N, g->H, C);
	}
	residual_forward(a->resid3, a->resid2, a->ffn_out, N * C);
}

/* Mean of the per-position losses over targets != -1, in order. */
static void mean_loss(gpt *g, int N)
{
	double sum = 0.0;
	int count = 0;
	for (int n = 0; n < N; n++)
		if (g->targets[n] >= 0) {
			sum += g->losses[n];
			count++;
		}
	g->loss_count = (float)count;
	g->loss = count ? (float)(sum / count) : 0.0f;
}

int gpt_forward(gpt *g, const int *inputs, const int *targets, int B, int T,
		float *loss_out)
{
	int rc, N = B * T, C = g->C;
	g->have_targets = 0;
	if ((rc = check_tokens(g, inputs, targets, B, T)) != 0 ||
	    (rc = ensure_acts(g, B, T)) != 0)
		return rc;
	memcpy(g->inputs, inputs, (size_t)N * sizeof(int));
	encoder_forward(g->encoded, inputs, g->p.wte, g->p.wpe, B, T, C);
	const float *x = g->encoded;
	for (int l = 0; l < g->L; l++) {
		block_forward(g, l, x, B, T);
		x = g->acts[l].resid3;
	}
	layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, x, g->p.lnfw,
			  g->p.lnfb, N, C);
	matmul_forward(g->logits, g->lnf, g->p.wte, NULL, N, C, g->Vp);
	g->B = B;
	g->T = T;
	g->loss = -1.0f;
	if (targets) {
		memcpy(g->targets, targets, (size_t)N * sizeof(int));
		softmax_crossentropy_forward(g->losses, g->probs, g->logits,
					     g->targets, N, g->V, g->Vp);
		mean_loss(g, N);
		g->have_targets = 1;
	}
	if (loss_out)
		*loss_out = g->loss;
	return 0;
}

/* ---- backward ------------------------------------------------------------ */

static void zero(float *p, size_t n)
{
	memset(p, 0, n * sizeof(float));
}

/* MoE FFN backward: dres is d ffn_out; adds into ga.dln (d ln2). */
static void moe_block_backward(gpt *g, int l, int N)
{
	gpt__acts *a = &g->acts[l];
	const gpt__block *p = &g->p.block[l];
	gpt__block *dp = &g->dp.block[l];
	gpt__grad_acts *d = &g->ga;
	int C = g->C, H = g->H, E = g->E, k = g->k, cap = gpt__cap(g, N);
	zero(d->dgates, (size_t)N * k);
	zero(d->drlogits, (size_t)N * E);
	moe_backward(d->dln, d->dgates, dp->efcw, dp->efcb, dp->eprojw,
		     dp->eprojb, d->dxin, d->deh, d->dehg, d->dey, d->dres,
		     a->xin, a->eh, a->ehg, a->ey, a->topk, a->slot, a->gates,
		     a->expert_count, p->efcw, p->eprojw, N, C, H, E, k, cap);
	router_backward(d->drlogits, d->dgates, a->rprobs, a->rlse, a->topk,
			a->frac, g->aux_coef * g->grad_scale,
			g->z_coef * g->grad_scale, N, E, k);
	matmul_backward(d->dln, dp->routerw, NULL, d->drlogits, a->ln2,
			p->routerw, N, C, E);
}

/* Dense FFN backward: dres is d ffn_out; adds into ga.dln (d ln2). */
static void mlp_block_backward(gpt *g, int l, int N)
{
	gpt__acts *a = &g->acts[l];
	const gpt__block *p = &g->p.block[l];
	gpt__block *dp = &g->dp.block[l];
	gpt__grad_acts *d = &g->ga;
	int C = g->C, H = g->H;
	zero(d->dfch_gelu, (size_t)N * H);
	zero(d->dfch, (size_t)N * H);
	matmul_backward(d->dfch_gelu, dp->fcprojw, dp->fcprojb, d->dres,
			a->fch_gelu, p->fcprojw, N, H, C);
	gelu_backward(d->dfch, a->fch, d->dfch_gelu, N * H);
	matmul_backward(d->dln, dp->fcw, dp->fcb, d->dfch, a->ln2, p->fcw, N,
			C, H);
}

/* On entry dres = d resid3; on return dres = d x (the block's input). */
static void block_backward(gpt *g, int l, const float *x, int B, int T)
{
	gpt__acts *a = &g->acts[l];
	const gpt__block *p = &g->p.block[l];
	gpt__block *dp = &g->dp.block[l];
	gpt__grad_acts *d = &g->ga;
	int N = B * T, C = g->C;
	zero(d->dln, (size_t)N * C);
	if (gpt__is_moe(&g->cfg, l))
		moe_block_backward(g, l, N);
	else
		mlp_block_backward(g, l, N);
	layernorm_backward(d->dres, dp->ln2w, dp->ln2b, d->dln, a->resid2,
			   p->ln2w, a->ln2_mean, a->ln2_rstd, N, C);
	zero(d->datty, (size_t)N * C);
	matmul_backward(d->datty, dp->attprojw, dp->attprojb, d->dres, a->atty,
			p->attprojw, N, C, C);
	zero(d->dqkv, (size_t)N * 3 * C);
	attention_backward(d->dqkv, d->dpreatt, d->datt, d->datty, a->qkv,
			   a->att, B, T, C, g->NH);
	zero(d->dln, (size_t)N * C);
	matmul_backward(d->dln, dp->qkvw, dp->qkvb, d->dqkv, a->ln1, p->qkvw,
			N, C, 3 * C);
	layernorm_backward(d->dres, dp->ln1w, dp->ln1b, d->dln, x, p->ln1w,
			   a->ln1_mean, a->ln1_rstd, N, C);
}

int gpt_backward(gpt *g)
{
	if (!g->have_targets)
		return tend_error_set(TEND_EINVAL,
			"gpt_backward: no forward pass with targets to "
			"differentiate");
	int B = g->B, T = g->T, N = B * T, C = g->C;
	gpt__grad_acts *d = &g->ga;
	float dl = g->loss_count > 0 ? g->grad_scale / g->loss_count : 0.0f;
	for (int n = 0; n < N; n++)
		d->dlosses[n] = g->targets[n] >= 0 ? dl : 0.0f;
	zero(d->dlogits, (size_t)N * g->Vp);
	softmax_crossentropy_backward(d->dlogits, d->dlosses, g->probs,
				      g->targets, N, g->V, g->Vp);
	zero(d->dlnf, (size_t)N * C);
	matmul_backward(d->dlnf, g->dp.wte, NULL, d->dlogits, g->lnf, g->p.wte,
			N, C, g->Vp);
	zero(d->dres, (size_t)N * C);
	const float *xl = g->acts[g->L - 1].resid3;
	layernorm_backward(d->dres, g->dp.lnfw, g->dp.lnfb, d->dlnf, xl,
			   g->p.lnfw, g->lnf_mean, g->lnf_rstd, N, C);
	for (int l = g->L - 1; l >= 0; l--)
		block_backward(g, l, l ? g->acts[l - 1].resid3 : g->encoded, B,
			       T);
	encoder_backward(g->dp.wte, g->dp.wpe, d->dres, g->inputs, B, T, C);
	return 0;
}
