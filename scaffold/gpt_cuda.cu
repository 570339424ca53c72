/*
 * gpt_cuda.cu - the GPU trainer (gpt_cuda.h): device buffers laid out as
 * the CPU gpt's, and forward, backward, norm, clip and AdamW step that call
 * the CUDA twins in exactly the order gpt_pass.c and gpt.c call the CPU
 * kernels, so a reader can hold the two side by side.
 *
 * The backward keeps one running residual gradient dres, as gpt_pass.c
 * does. Host round trips per step: the per-position losses after the
 * forward (to take the mean in the CPU's order), the ids in the encoder
 * backward, and one float for the gradient norm.
 */
#include "cuda/cuda_int.cuh"

#include "gpt_cuda.h"

extern "C" {
#include "tend.h"
}

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Device views of one block's tensors (params or grads, same layout). */
typedef struct blk {
	float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b;
	float *fcw, *fcb, *fcprojw, *fcprojb;
	float *routerw, *efcw, *efcb, *eprojw, *eprojb;
} blk;

typedef struct views {
	float *wte, *wpe, *lnfw, *lnfb;
	blk *block;
} views;

/* One block's saved activations, as gpt__acts, plus the router scalars. */
typedef struct acts {
	float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att, *attproj;
	float *resid2, *ln2, *ln2_mean, *ln2_rstd, *ffn_out, *resid3;
	float *fch, *fch_gelu;
	float *rlogits, *rprobs, *rlse, *gates, *frac, *moe_loss; /* aux, z */
	float *xin, *eh, *ehg, *ey;
	int *topk, *slot, *slot_token, *expert_count, *dropped;
} acts;

typedef struct gacts {
	float *dres, *dln, *datty, *dqkv, *dpreatt, *datt, *dfch, *dfch_gelu;
	float *drlogits, *dgates, *dxin, *deh, *dehg, *dey;
	float *dlogits, *dlosses, *dlnf;
} gacts;

struct gptc {
	gpt_config cfg;
	int V, Vp, C, H, L, NH, E, k, bf16;
	size_t nparams;
	float *params, *grads, *m, *v, *norm; /* device */
	views p, dp;
	gpt_tensor *tensors;
	int ntensors, step;
	float aux_coef, z_coef, grad_scale;

	float *abuf; /* device activations, for up to acts_N tokens */
	int *ibuf;
	size_t acts_N, acts_BTT;
	acts *a;
	float *encoded, *lnf, *lnf_mean, *lnf_rstd, *logits, *probs, *losses;
	int *inputs, *targets;
	gacts ga;
	int *h_targets; /* host copies, acts_N entries */
	float *h_losses;
	int B, T, have_targets;
	float loss, loss_count;
};

/* ---- layout ------------------------------------------------------------------- */

static const struct field {
	const char *name;
	size_t off;
} fields[] = {
	{ "ln1w", offsetof(blk, ln1w) }, { "ln1b", offsetof(blk, ln1b) },
	{ "qkvw", offsetof(blk, qkvw) }, { "qkvb", offsetof(blk, qkvb) },
	{ "attprojw", offsetof(blk, attprojw) },
	{ "attprojb", offsetof(blk, attprojb) },
	{ "ln2w", offsetof(blk, ln2w) }, { "ln2b", offsetof(blk, ln2b) },
	{ "fcw", offsetof(blk, fcw) }, { "fcb", offsetof(blk, fcb) },
	{ "fcprojw", offsetof(blk, fcprojw) },
	{ "fcprojb", offsetof(blk, fcprojb) },
	{ "routerw", offsetof(blk, routerw) }, { "efcw", offsetof(blk, efcw) },
	{ "efcb", offsetof(blk, efcb) }, { "eprojw", offsetof(blk, eprojw) },
	{ "eprojb", offsetof(blk, eprojb) },
};

/* Points v at base for every tensor of the layout (names from gpt.c). */
static void bind(gptc *g, views *v, float *base)
{
	for (int i = 0; i < g->ntensors; i++) {
		const gpt_tensor *t = &g->tensors[i];
		float *p = base + t->offset;
		if (t->layer < 0) {
			if (!strcmp(t->name, "wte")) v->wte = p;
			else if (!strcmp(t->name, "wpe")) v->wpe = p;
			else if (!strcmp(t->name, "lnfw")) v->lnfw = p;
			else v->lnfb = p;
			continue;
		}
		for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
			if (!strcmp(fields[f].name, t->name))
				*(float **)((char *)&v->block[t->layer] +
					    fields[f].off) = p;
	}
}

static int is_moe(const gptc *g, int l)
{
	return g->cfg.moe_every > 0 && (l + 1) % g->cfg.moe_every == 0;
}

static int cap_for(const gptc *g, int N)
{
	return moe_capacity(g->cfg.capacity_factor, N, g->E, g->k);
}

/* ---- activation memory (gpt_pass.c's bump carving, on the device) -------------- */

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

static void carve_moe(acts *a, bump *b, size_t N, size_t C, size_t H,
		      size_t E, size_t k, size_t cap)
{
	a->rlogits = takef(b, N * E);
	a->rprobs = takef(b, N * E);
	a->rlse = takef(b, N);
	a->gates = takef(b, N * k);
	a->frac = takef(b, E);
	a->moe_loss = takef(b, 2);
	a->xin = takef(b, E * cap * C);
	a->eh = takef(b, E * cap * H);
	a->ehg = takef(b, E * cap * H);
	a->ey = takef(b, E * cap * C);
	a->topk = takei(b, N * k);
	a->slot = takei(b, N * k);
	a->slot_token = takei(b, E * cap);
	a->expert_count = takei(b, E);
	a->dropped = takei(b, 1);
}

static void carve_block(gptc *g, acts *a, bump *b, int l, size_t N,
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
	if (is_moe(g, l)) {
		carve_moe(a, b, N, C, H, g->E, g->k, cap);
	} else {
		a->fch = takef(b, N * H);
		a->fch_gelu = takef(b, N * H);
	}
}

static void carve_grads(gptc *g, bump *b, size_t N, size_t BTT, size_t cap)
{
	gacts *d = &g->ga;
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

static void carve(gptc *g, bump *b, size_t N, size_t BTT)
{
	size_t cap = g->E ? (size_t)cap_for(g, (int)N) : 0;
	g->encoded = takef(b, N * g->C);
	for (int l = 0; l < g->L; l++)
		carve_block(g, &g->a[l], b, l, N, BTT, cap);
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

static void free_acts(gptc *g)
{
	cuda_free(g->abuf);
	cuda_free(g->ibuf);
	free(g->h_targets);
	free(g->h_losses);
	g->abuf = NULL;
	g->ibuf = NULL;
	g->h_targets = NULL;
	g->h_losses = NULL;
	g->acts_N = g->acts_BTT = 0;
}

/* Makes room for B x T tokens; each bound only grows (as gpt_pass.c). */
static int ensure_acts(gptc *g, int B, int T)
{
	size_t N = (size_t)B * T, BTT = (size_t)B * T * T;
	if (g->abuf && N <= g->acts_N && BTT <= g->acts_BTT)
		return 0;
	N = N < g->acts_N ? g->acts_N : N;
	BTT = BTT < g->acts_BTT ? g->acts_BTT : BTT;
	bump count = { NULL, NULL, 0, 0 };
	carve(g, &count, N, BTT);
	free_acts(g);
	g->B = 0;
	int rc = cuda_alloc((void **)&g->abuf, count.nf * sizeof(float));
	if (rc == 0)
		rc = cuda_alloc((void **)&g->ibuf, count.ni * sizeof(int));
	g->h_targets = (int *)malloc(N * sizeof(int));
	g->h_losses = (float *)malloc(N * sizeof(float));
	if (rc == 0 && (!g->h_targets || !g->h_losses))
		rc = tend_error_set(TEND_ENOMEM, "out of host memory");
	if (rc != 0) {
		free_acts(g);
		return tend_error_wrap(rc, "gptc_forward: activations "
				       "(%zu floats)", count.nf);
	}
	bump real = { g->abuf, g->ibuf, 0, 0 };
	carve(g, &real, N, BTT);
	g->acts_N = N;
	g->acts_BTT = BTT;
	return 0;
}

/* ---- construction -------------------------------------------------------------- */

static void set_dims(gptc *g, const gpt_config *c, int precision)
{
	g->cfg = *c; /* already normalised by gpt_new (Vp, d_ff filled in) */
	g->V = c->vocab;
	g->Vp = c->padded_vocab;
	g->C = c->d_model;
	g->H = c->d_ff;
	g->L = c->layers;
	g->NH = c->heads;
	g->E = c->moe_every ? c->experts : 0;
	g->k = c->moe_every ? c->top_k : 0;
	g->bf16 = precision == GPTC_BF16;
	g->aux_coef = 0.01f;
	g->z_coef = 0.001f;
	g->grad_scale = 1.0f;
}

static int alloc_model(gptc *g, const gpt *src)
{
	g->nparams = gpt_num_params(src);
	g->ntensors = gpt_num_tensors(src);
	g->tensors = (gpt_tensor *)calloc(g->ntensors, sizeof(gpt_tensor));
	g->p.block = (blk *)calloc(g->L, sizeof(blk));
	g->dp.block = (blk *)calloc(g->L, sizeof(blk));
	g->a = (acts *)calloc(g->L, sizeof(acts));
	if (!g->tensors || !g->p.block || !g->dp.block || !g->a)
		return tend_error_set(TEND_ENOMEM, "gptc_new: out of memory");
	for (int i = 0; i < g->ntensors; i++)
		gpt_tensor_at(src, i, &g->tensors[i]);
	size_t bytes = g->nparams * sizeof(float);
	int rc;
	if ((rc = cuda_alloc((void **)&g->params, bytes)) != 0 ||
	    (rc = cuda_alloc((void **)&g->grads, bytes)) != 0 ||
	    (rc = cuda_alloc((void **)&g->m, bytes)) != 0 ||
	    (rc = cuda_alloc((void **)&g->v, bytes)) != 0 ||
	    (rc = cuda_alloc((void **)&g->norm, sizeof(float))) != 0)
		return tend_error_wrap(rc, "gptc_new: %zu parameters",
				       g->nparams);
	bind(g, &g->p, g->params);
	bind(g, &g->dp, g->grads);
	return 0;
}

int gptc_new(gptc **out, const gpt *src, int precision)
{
	int rc;
	gptc *g = NULL;
	*out = NULL;
	if (!src || (precision != GPTC_FP32 && precision != GPTC_BF16))
		return tend_error_set(TEND_EINVAL,
			"gptc_new: need a model and GPTC_FP32 or GPTC_BF16");
	if (!cuda_available())
		return tend_error_set(TEND_ENOTFOUND,
				      "gptc_new: no CUDA device");
	if (!(g = (gptc *)calloc(1, sizeof *g)))
		return tend_error_set(TEND_ENOMEM, "gptc_new: out of memory");
	set_dims(g, gpt_get_config(src), precision);
	if ((rc = alloc_model(g, src)) != 0 || (rc = gptc_upload(g, src)) != 0)
		goto done;
	*out = g;
	g = NULL;
done:
	gptc_free(g);
	return rc;
}

void gptc_free(gptc *g)
{
	if (!g)
		return;
	cuda_free(g->params);
	cuda_free(g->grads);
	cuda_free(g->m);
	cuda_free(g->v);
	cuda_free(g->norm);
	free_acts(g);
	free(g->tensors);
	free(g->p.block);
	free(g->dp.block);
	free(g->a);
	free(g);
}

size_t gptc_num_params(const gptc *g) { return g->nparams; }
int gptc_get_step(const gptc *g) { return g->step; }
void gptc_set_grad_scale(gptc *g, float scale) { g->grad_scale = scale; }

void gptc_set_moe_coeffs(gptc *g, float aux, float z)
{
	g->aux_coef = aux;
	g->z_coef = z;
}

/* ---- state in and out ----------------------------------------------------------- */

static int same_model(const gptc *g, const gpt *m, const char *what)
{
	const gpt_config *c = gpt_get_config(m);
	if (gpt_num_params(m) != g->nparams || c->layers != g->L ||
	    c->d_model != g->C || c->padded_vocab != g->Vp ||
	    c->moe_every != g->cfg.moe_every || c->experts != g->cfg.experts)
		return tend_error_set(TEND_EINVAL,
			"%s: the gpt has another config (%zu parameters, "
			"want %zu)", what, gpt_num_params(m), g->nparams);
	return 0;
}

int gptc_upload(gptc *g, const gpt *src)
{
	int rc;
	size_t bytes = g->nparams * sizeof(float);
	gpt *s = (gpt *)src; /* the gpt accessors only read, but lack const */
	if ((rc = same_model(g, src, "gptc_upload")) != 0)
		return rc;
	if ((rc = cuda_upload(g->params, gpt_params(s), bytes)) != 0 ||
	    (rc = cuda_upload(g->m, gpt_adam_m(s), bytes)) != 0 ||
	    (rc = cuda_upload(g->v, gpt_adam_v(s), bytes)) != 0 ||
	    (rc = cuda_zero(g->grads, bytes)) != 0)
		return tend_error_wrap(rc, "gptc_upload");
	g->step = gpt_get_step(src);
	return cuda_check("gptc_upload");
}

int gptc_download(gptc *g, gpt *dst)
{
	int rc;
	size_t bytes = g->nparams * sizeof(float);
	if ((rc = same_model(g, dst, "gptc_download")) != 0)
		return rc;
	if ((rc = cuda_download(gpt_params(dst), g->params, bytes)) != 0 ||
	    (rc = cuda_download(gpt_grads(dst), g->grads, bytes)) != 0 ||
	    (rc = cuda_download(gpt_adam_m(dst), g->m, bytes)) != 0 ||
	    (rc = cuda_download(gpt_adam_v(dst), g->v, bytes)) != 0)
		return tend_error_wrap(rc, "gptc_download");
	gpt_set_step(dst, g->step);
	return 0;
}

/* ---- precision dispatch ---------------------------------------------------------- */

static void mm_fwd(const gptc *g, float *out, const float *inp,
		   const float *w, const float *b, int N, int C, int OC)
{
	(g->bf16 ? cuda_matmul_forward_bf16 : cuda_matmul_forward)(
		out, inp, w, b, N, C, OC);
}

static void mm_bwd(const gptc *g, float *dinp, float *dw, float *db,
		   const float *dout, const float *inp, const float *w, int N,
		   int C, int OC)
{
	(g->bf16 ? cuda_matmul_backward_bf16 : cuda_matmul_backward)(
		dinp, dw, db, dout, inp, w, N, C, OC);
}

static void zero(float *p, size_t n)
{
	cudaMemsetAsync(p, 0, n * sizeof(float), 0);
}

/* ---- forward ---------------------------------------------------------------------- */

static int check_tokens(const gptc *g, const int *inputs, const int *targets,
			int B, int T)
{
	if (!inputs || B < 1 || T < 1)
		return tend_error_set(TEND_EINVAL,
			"gptc_forward: need inputs and B, T >= 1 (B=%d T=%d)",
			B, T);
	if (T > g->cfg.context)
		return tend_error_set(TEND_EINVAL,
			"gptc_forward: T=%d exceeds the context length %d", T,
			g->cfg.context);
	if ((size_t)B * T > (size_t)1 << 30)
		return tend_error_set(TEND_EINVAL,
			"gptc_forward: B*T=%zu too large", (size_t)B * T);
	for (int i = 0; i < B * T; i++) {
		if (inputs[i] < 0 || inputs[i] >= g->V)
			return tend_error_set(TEND_EINVAL,
				"gptc_forward: input token %d at position %d "
				"is outside [0, %d)", inputs[i], i, g->V);
		if (targets && (targets[i] < -1 || targets[i] >= g->V))
			return tend_error_set(TEND_EINVAL,
				"gptc_forward: target %d at position %d is "
				"outside [-1, %d)", targets[i], i, g->V);
	}
	return 0;
}

/* Router + experts of MoE block l on ln2, writing ffn_out. The router
 * stays fp32 in both precisions: routing decisions are discrete. */
static void moe_block_forward(gptc *g, int l, int N)
{
	acts *a = &g->a[l];
	const blk *p = &g->p.block[l];
	int C = g->C, E = g->E, k = g->k, cap = cap_for(g, N);
	cuda_matmul_forward(a->rlogits, a->ln2, p->routerw, NULL, N, C, E);
	cuda_router_forward(a->rprobs, a->rlse, a->topk, a->gates, a->slot,
			    a->slot_token, a->expert_count, a->frac,
			    a->moe_loss, a->moe_loss + 1, a->dropped,
			    a->rlogits, N, E, k, cap);
	(g->bf16 ? cuda_moe_forward_bf16 : cuda_moe_forward)(
		a->ffn_out, a->xin, a->eh, a->ehg, a->ey, a->ln2, a->topk,
		a->slot, a->gates, a->slot_token, a->expert_count, p->efcw,
		p->efcb, p->eprojw, p->eprojb, N, C, g->H, E, k, cap);
}

static void block_forward(gptc *g, int l, const float *x, int B, int T)
{
	acts *a = &g->a[l];
	const blk *p = &g->p.block[l];
	int N = B * T, C = g->C;
	cuda_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p->ln1w,
			       p->ln1b, N, C);
	mm_fwd(g, a->qkv, a->ln1, p->qkvw, p->qkvb, N, C, 3 * C);
	(g->bf16 ? cuda_attention_forward_bf16 : cuda_attention_forward)(
		a->atty, a->att, a->qkv, B, T, C, g->NH);
	mm_fwd(g, a->attproj, a->atty, p->attprojw, p->attprojb, N, C, C);
	cuda_residual_forward(a->resid2, x, a->attproj, N * C);
	cuda_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->resid2,
			       p->ln2w, p->ln2b, N, C);
	if (is_moe(g, l)) {
		moe_block_forward(g, l, N);
	} else {
		mm_fwd(g, a->fch, a->ln2, p->fcw, p->fcb, N, C, g->H);
		cuda_gelu_forward(a->fch_gelu, a->fch, N * g->H);
		mm_fwd(g, a->ffn_out, a->fch_gelu, p->fcprojw, p->fcprojb, N,
		       g->H, C);
	}
	cuda_residual_forward(a->resid3, a->resid2, a->ffn_out, N * C);
}

/* The CPU's mean: double sum over targets != -1, in position order. */
static int mean_loss(gptc *g, int N)
{
	int rc = cuda_download(g->h_losses, g->losses, (size_t)N * sizeof(float));
	if (rc != 0)
		return rc;
	double sum = 0.0;
	int count = 0;
	for (int n = 0; n < N; n++)
		if (g->h_targets[n] >= 0) {
			sum += g->h_losses[n];
			count++;
		}
	g->loss_count = (float)count;
	g->loss = count ? (float)(sum / count) : 0.0f;
	return 0;
}

static int forward_targets(gptc *g, const int *targets, int N)
{
	int rc;
	memcpy(g->h_targets, targets, (size_t)N * sizeof(int));
	if ((rc = cuda_upload(g->targets, targets, (size_t)N * sizeof(int))))
		return rc;
	cuda_softmax_crossentropy_forward(g->losses, g->probs, g->logits,
					  g->targets, N, g->V, g->Vp);
	if ((rc = mean_loss(g, N)) == 0)
		g->have_targets = 1;
	return rc;
}

int gptc_forward(gptc *g, const int *inputs, const int *targets, int B,
		 int T, float *loss_out)
{
	int rc, N = B * T, C = g->C;
	g->have_targets = 0;
	if ((rc = check_tokens(g, inputs, targets, B, T)) != 0 ||
	    (rc = ensure_acts(g, B, T)) != 0)
		return rc;
	if ((rc = cuda_upload(g->inputs, inputs, (size_t)N * sizeof(int))))
		return tend_error_wrap(rc, "gptc_forward");
	cuda_encoder_forward(g->encoded, g->inputs, g->p.wte, g->p.wpe, B, T,
			     C);
	const float *x = g->encoded;
	for (int l = 0; l < g->L; l++) {
		block_forward(g, l, x, B, T);
		x = g->a[l].resid3;
	}
	cuda_layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, x, g->p.lnfw,
			       g->p.lnfb, N, C);
	mm_fwd(g, g->logits, g->lnf, g->p.wte, NULL, N, C, g->Vp);
	g->B = B;
	g->T = T;
	g->loss = -1.0f;
	if (targets && (rc = forward_targets(g, targets, N)) != 0)
		return tend_error_wrap(rc, "gptc_forward");
	if (loss_out)
		*loss_out = g->loss;
	return cuda_check("gptc_forward");
}

/* ---- backward --------------------------------------------------------------------- */

__global__ static void fill_dlosses(float *dlosses, const int *targets,
				    float dl, int N)
{
	int n = blockIdx.x * blockDim.x + threadIdx.x;
	if (n < N)
		dlosses[n] = targets[n] >= 0 ? dl : 0.0f;
}

/* MoE FFN backward: dres is d ffn_out; adds into ga.dln (d ln2). */
static void moe_block_backward(gptc *g, int l, int N)
{
	acts *a = &g->a[l];
	const blk *p = &g->p.block[l];
	blk *dp = &g->dp.block[l];
	gacts *d = &g->ga;
	int C = g->C, H = g->H, E = g->E, k = g->k, cap = cap_for(g, N);
	zero(d->dgates, (size_t)N * k);
	zero(d->drlogits, (size_t)N * E);
	(g->bf16 ? cuda_moe_backward_bf16 : cuda_moe_backward)(
		d->dln, d->dgates, dp->efcw, dp->efcb, dp->eprojw, dp->eprojb,
		d->dxin, d->deh, d->dehg, d->dey, d->dres, a->xin, a->eh,
		a->ehg, a->ey, a->topk, a->slot, a->gates, a->expert_count,
		p->efcw, p->eprojw, N, C, H, E, k, cap);
	cuda_router_backward(d->drlogits, d->dgates, a->rprobs, a->rlse,
			     a->topk, a->frac, g->aux_coef * g->grad_scale,
			     g->z_coef * g->grad_scale, N, E, k);
	cuda_matmul_backward(d->dln, dp->routerw, NULL, d->drlogits, a->ln2,
			     p->routerw, N, C, E);
}

/* Dense FFN backward: dres is d ffn_out; adds into ga.dln (d ln2). */
static void mlp_block_backward(gptc *g, int l, int N)
{
	acts *a = &g->a[l];
	const blk *p = &g->p.block[l];
	blk *dp = &g->dp.block[l];
	gacts *d = &g->ga;
	int C = g->C, H = g->H;
	zero(d->dfch_gelu, (size_t)N * H);
	zero(d->dfch, (size_t)N * H);
	mm_bwd(g, d->dfch_gelu, dp->fcprojw, dp->fcprojb, d->dres, a->fch_gelu,
	       p->fcprojw, N, H, C);
	cuda_gelu_backward(d->dfch, a->fch, d->dfch_gelu, N * H);
	mm_bwd(g, d->dln, dp->fcw, dp->fcb, d->dfch, a->ln2, p->fcw, N, C, H);
}

/* On entry dres = d resid3; on return dres = d x (the block's input). */
static void block_backward(gptc *g, int l, const float *x, int B, int T)
{
	acts *a = &g->a[l];
	const blk *p = &g->p.block[l];
	blk *dp = &g->dp.block[l];
	gacts *d = &g->ga;
	int N = B * T, C = g->C;
	zero(d->dln, (size_t)N * C);
	if (is_moe(g, l))
		moe_block_backward(g, l, N);
	else
		mlp_block_backward(g, l, N);
	cuda_layernorm_backward(d->dres, dp->ln2w, dp->ln2b, d->dln, a->resid2,
				p->ln2w, a->ln2_mean, a->ln2_rstd, N, C);
	zero(d->datty, (size_t)N * C);
	mm_bwd(g, d->datty, dp->attprojw, dp->attprojb, d->dres, a->atty,
	       p->attprojw, N, C, C);
	zero(d->dqkv, (size_t)N * 3 * C);
	(g->bf16 ? cuda_attention_backward_bf16 : cuda_attention_backward)(
		d->dqkv, d->dpreatt, d->datt, d->datty, a->qkv, a->att, B, T,
		C, g->NH);
	zero(d->dln, (size_t)N * C);
	mm_bwd(g, d->dln, dp->qkvw, dp->qkvb, d->dqkv, a->ln1, p->qkvw, N, C,
	       3 * C);
	cuda_layernorm_backward(d->dres, dp->ln1w, dp->ln1b, d->dln, x, p->ln1w,
				a->ln1_mean, a->ln1_rstd, N, C);
}

int gptc_backward(gptc *g)
{
	if (!g->have_targets)
		return tend_error_set(TEND_EINVAL,
			"gptc_backward: no forward pass with targets to "
			"differentiate");
	int B = g->B, T = g->T, N = B * T, C = g->C;
	gacts *d = &g->ga;
	float dl = g->loss_count > 0 ? g->grad_scale / g->loss_count : 0.0f;
	fill_dlosses<<<cuda__grid(N, 256), 256>>>(d->dlosses, g->targets, dl,
						  N);
	cuda__launched("gptc_backward(dlosses)");
	zero(d->dlogits, (size_t)N * g->Vp);
	cuda_softmax_crossentropy_backward(d->dlogits, d->dlosses, g->probs,
					   g->targets, N, g->V, g->Vp);
	zero(d->dlnf, (size_t)N * C);
	mm_bwd(g, d->dlnf, g->dp.wte, NULL, d->dlogits, g->lnf, g->p.wte, N, C,
	       g->Vp);
	zero(d->dres, (size_t)N * C);
	const float *xl = g->a[g->L - 1].resid3;
	cuda_layernorm_backward(d->dres, g->dp.lnfw, g->dp.lnfb, d->dlnf, xl,
				g->p.lnfw, g->lnf_mean, g->lnf_rstd, N, C);
	for (int l = g->L - 1; l >= 0; l--)
		block_backward(g, l, l ? g->a[l - 1].resid3 : g->encoded, B, T);
	cuda_encoder_backward(g->dp.wte, g->dp.wpe, d->dres, g->inputs, B, T,
			      C);
	return cuda_check("gptc_backward");
}

/* ---- optimizer -------------------------------------------------------------------- */

int gptc_zero_grad(gptc *g)
{
	zero(g->grads, g->nparams);
	return cuda_check("gptc_zero_grad");
}

int gptc_grad_norm(gptc *g, float *norm_out)
{
	float sq = 0.0f;
	cuda_global_norm_squared(g->norm, g->grads, g->nparams);
	int rc = cuda_download(&sq, g->norm, sizeof sq);
	if (rc == 0)
		rc = cuda_check("gptc_grad_norm");
	*norm_out = rc == 0 ? sqrtf(sq) : NAN;
	return rc;
}

int gptc_clip(gptc *g, float max_norm, float *norm_out)
{
	float norm;
	int rc = gptc_grad_norm(g, &norm);
	if (norm_out)
		*norm_out = norm;
	if (rc != 0 || max_norm <= 0.0f || !isfinite(norm) || norm <= max_norm)
		return rc;
	cuda__scale(g->grads, max_norm / (norm + 1e-6f), g->nparams);
	return cuda_check("gptc_clip");
}

int gptc_step(gptc *g, const gpt_adamw *opt, float lr)
{
	if (!opt || !isfinite(lr) || !(opt->beta1 >= 0.0f && opt->beta1 < 1.0f)
	    || !(opt->beta2 >= 0.0f && opt->beta2 < 1.0f))
		return tend_error_set(TEND_EINVAL,
			"gptc_step: need finite lr and betas in [0, 1)");
	g->step++;
	/* runs of adjacent tensors with the same decay flag, as gpt_step */
	int i = 0;
	while (i < g->ntensors) {
		int j = i;
		while (j + 1 < g->ntensors &&
		       g->tensors[j + 1].decay == g->tensors[i].decay)
			j++;
		size_t off = g->tensors[i].offset;
		size_t n = g->tensors[j].offset + g->tensors[j].count - off;
		cuda_adamw_update(g->params + off, g->grads + off, g->m + off,
				  g->v + off, n, lr, opt->beta1, opt->beta2,
				  opt->eps,
				  g->tensors[i].decay ? opt->weight_decay : 0.0f,
				  g->step);
		i = j + 1;
	}
	return cuda_check("gptc_step");
}

/* ---- MoE statistics --------------------------------------------------------------- */

/* gpt_pass.c's moe_block_stats, from downloaded router outputs. */
static int layer_stats(gptc *g, int l, gpt_moe_layer_stats *s, float *probs)
{
	acts *a = &g->a[l];
	int E = g->E, N = g->B * g->T, dropped, rc;
	float frac[MOE_MAX_EXPERTS], loss[2];
	if ((rc = cuda_download(probs, a->rprobs, sizeof(float) * N * E)) ||
	    (rc = cuda_download(frac, a->frac, sizeof(float) * E)) ||
	    (rc = cuda_download(loss, a->moe_loss, sizeof loss)) ||
	    (rc = cuda_download(&dropped, a->dropped, sizeof dropped)))
		return rc;
	memset(s, 0, sizeof *s);
	s->layer = l;
	s->experts = E;
	for (int e = 0; e < E; e++) {
		s->load[e] = frac[e];
		if (frac[e] > s->load_max)
			s->load_max = frac[e];
		s->load_mean += frac[e] / E;
	}
	double ent = 0.0;
	for (size_t n = 0; n < (size_t)N; n++)
		for (int e = 0; e < E; e++) {
			float p = probs[n * E + e];
			if (p > 0.0f)
				ent -= p * log(p);
		}
	s->entropy = (float)(ent / N / log(E));
	s->dropped = dropped;
	s->dropped_frac = (float)dropped / ((float)N * g->k);
	s->aux_loss = loss[0];
	s->z_loss = loss[1];
	return 0;
}

int gptc_moe_stats(gptc *g, gpt_moe_layer_stats *out, int max_layers)
{
	int n = 0, rc = 0;
	float *probs = NULL;
	if (g->B > 0 && g->E > 0 &&
	    !(probs = (float *)malloc(sizeof(float) * g->B * g->T * g->E)))
		return tend_error_set(TEND_ENOMEM, "gptc_moe_stats: out of "
				      "memory");
	for (int l = 0; l < g->L && rc == 0; l++) {
		if (!is_moe(g, l))
			continue;
		if (n < max_layers && out) {
			if (g->B > 0)
				rc = layer_stats(g, l, &out[n], probs);
			else /* no forward yet: zeros, as the CPU model */
				memset(&out[n], 0, sizeof out[n]);
		}
		n++;
	}
	free(probs);
	return rc ? tend_error_wrap(rc, "gptc_moe_stats") : n;
}
