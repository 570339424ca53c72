/*
 * gpt.c - building a gpt: config checks, the parameter layout (one
 * allocation each for params, grads, m, v), deterministic GPT-2 init, the
 * AdamW step, gradient norm and clipping, and the accessors. The forward
 * and backward passes are in gpt_pass.c.
 */
#include "gpt_int.h"
#include "model_omp.h"

#include "rng.h"
#include "tend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ---- config -------------------------------------------------------------- */

gpt_config gpt_config_gpt2_124m(void)
{
	gpt_config c = {
		.vocab = 50257, .padded_vocab = 50304, .context = 1024,
		.layers = 12, .heads = 12, .d_model = 768, .d_ff = 0,
		.moe_every = 0, .experts = 8, .top_k = 2,
		.capacity_factor = 1.25f,
	};
	return c;
}

gpt_adamw gpt_adamw_defaults(void)
{
	gpt_adamw a = { .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
			.weight_decay = 0.1f };
	return a;
}

int gpt__is_moe(const gpt_config *c, int l)
{
	return c->moe_every > 0 && (l + 1) % c->moe_every == 0;
}

static int padded_vocab(const gpt_config *c)
{
	return c->padded_vocab > 0 ? c->padded_vocab
				   : (c->vocab + 127) / 128 * 128;
}

static int hidden(const gpt_config *c)
{
	return c->d_ff > 0 ? c->d_ff : 4 * c->d_model;
}

static int check_moe(const gpt_config *c)
{
	if (c->moe_every <= 0)
		return 0;
	if (c->experts < 2 || c->experts > MOE_MAX_EXPERTS)
		return tend_error_set(TEND_EINVAL,
			"gpt config: experts %d must be in [2, %d]",
			c->experts, MOE_MAX_EXPERTS);
	if (c->top_k < 1 || c->top_k > MOE_MAX_TOPK || c->top_k > c->experts)
		return tend_error_set(TEND_EINVAL,
			"gpt config: top_k %d must be 1 or 2", c->top_k);
	if (!isfinite(c->capacity_factor))
		return tend_error_set(TEND_EINVAL,
			"gpt config: capacity_factor is not finite");
	return 0;
}

int gpt_config_check(const gpt_config *c)
{
	if (!c)
		return tend_error_set(TEND_EINVAL, "gpt config: NULL");
	if (c->vocab < 1 || (c->padded_vocab && c->padded_vocab < c->vocab))
		return tend_error_set(TEND_EINVAL,
			"gpt config: vocab %d / padded_vocab %d invalid",
			c->vocab, c->padded_vocab);
	if (c->context < 1 || c->layers < 1 || c->heads < 1 ||
	    c->d_model < 1 || c->d_ff < 0 || c->moe_every < 0)
		return tend_error_set(TEND_EINVAL,
			"gpt config: context, layers, heads, d_model must be "
			">= 1 and d_ff, moe_every >= 0");
	if (c->d_model % c->heads != 0)
		return tend_error_set(TEND_EINVAL,
			"gpt config: d_model %d is not a multiple of heads %d",
			c->d_model, c->heads);
	/* int indexing in the kernels: keep every activation row count sane */
	if ((double)padded_vocab(c) * c->d_model > 2e9 ||
	    (double)hidden(c) * c->d_model * (c->moe_every ? c->experts : 1) > 2e9)
		return tend_error_set(TEND_EINVAL, "gpt config: too large");
	return check_moe(c);
}

/* ---- layout -------------------------------------------------------------- */

enum { INIT_ZERO, INIT_ONE, INIT_NORMAL, INIT_RESID };
enum { FOR_ALL, FOR_DENSE, FOR_MOE };

/* Per-block tensor kinds, in layout order (llm.c's order, MoE appended). */
enum {
	K_LN1W, K_LN1B, K_QKVW, K_QKVB, K_ATTPROJW, K_ATTPROJB, K_LN2W, K_LN2B,
	K_FCW, K_FCB, K_FCPROJW, K_FCPROJB,
	K_ROUTERW, K_EFCW, K_EFCB, K_EPROJW, K_EPROJB,
};

static const struct kind {
	const char *name;
	int which; /* FOR_* */
	int init;  /* INIT_* */
	int decay;
	size_t off; /* offsetof in gpt__block */
} kinds[] = {
	{ "ln1w", FOR_ALL, INIT_ONE, 0, offsetof(gpt__block, ln1w) },
	{ "ln1b", FOR_ALL, INIT_ZERO, 0, offsetof(gpt__block, ln1b) },
	{ "qkvw", FOR_ALL, INIT_NORMAL, 1, offsetof(gpt__block, qkvw) },
	{ "qkvb", FOR_ALL, INIT_ZERO, 0, offsetof(gpt__block, qkvb) },
	{ "attprojw", FOR_ALL, INIT_RESID, 1, offsetof(gpt__block, attprojw) },
	{ "attprojb", FOR_ALL, INIT_ZERO, 0, offsetof(gpt__block, attprojb) },
	{ "ln2w", FOR_ALL, INIT_ONE, 0, offsetof(gpt__block, ln2w) },
	{ "ln2b", FOR_ALL, INIT_ZERO, 0, offsetof(gpt__block, ln2b) },
	{ "fcw", FOR_DENSE, INIT_NORMAL, 1, offsetof(gpt__block, fcw) },
	{ "fcb", FOR_DENSE, INIT_ZERO, 0, offsetof(gpt__block, fcb) },
	{ "fcprojw", FOR_DENSE, INIT_RESID, 1, offsetof(gpt__block, fcprojw) },
	{ "fcprojb", FOR_DENSE, INIT_ZERO, 0, offsetof(gpt__block, fcprojb) },
	{ "routerw", FOR_MOE, INIT_NORMAL, 1, offsetof(gpt__block, routerw) },
	{ "efcw", FOR_MOE, INIT_NORMAL, 1, offsetof(gpt__block, efcw) },
	{ "efcb", FOR_MOE, INIT_ZERO, 0, offsetof(gpt__block, efcb) },
	{ "eprojw", FOR_MOE, INIT_RESID, 1, offsetof(gpt__block, eprojw) },
	{ "eprojb", FOR_MOE, INIT_ZERO, 0, offsetof(gpt__block, eprojb) },
};
#define NKINDS (int)(sizeof kinds / sizeof kinds[0])

static size_t kind_count(const gpt_config *c, int kind)
{
	size_t C = c->d_model, H = hidden(c), E = c->experts;
	switch (kind) {
	case K_QKVW: return 3 * C * C;
	case K_QKVB: return 3 * C;
	case K_ATTPROJW: return C * C;
	case K_FCW: case K_FCPROJW: return H * C;
	case K_FCB: return H;
	case K_ROUTERW: case K_EPROJB: return E * C;
	case K_EFCW: case K_EPROJW: return E * H * C;
	case K_EFCB: return E * H;
	default: return C; /* layernorms, attprojb, fcprojb */
	}
}

static int kind_applies(const gpt_config *c, int kind, int l)
{
	int moe = gpt__is_moe(c, l);
	return kinds[kind].which == FOR_ALL ||
	       (kinds[kind].which == FOR_MOE) == moe;
}

/* Calls fn for each tensor in layout order; returns the float count. */
typedef void (*layout_fn)(void *ud, const gpt_tensor *t, int init);

static void emit(size_t *off, layout_fn fn, void *ud, const char *name,
		 int layer, size_t count, int decay, int init)
{
	gpt_tensor t = { name, layer, *off, count, decay };
	if (fn)
		fn(ud, &t, init);
	*off += count;
}

static size_t layout(const gpt_config *c, layout_fn fn, void *ud)
{
	size_t off = 0, C = c->d_model;
	emit(&off, fn, ud, "wte", -1, (size_t)padded_vocab(c) * C, 1,
	     INIT_NORMAL);
	emit(&off, fn, ud, "wpe", -1, (size_t)c->context * C, 1, INIT_NORMAL);
	for (int k = 0; k < NKINDS; k++)
		for (int l = 0; l < c->layers; l++)
			if (kind_applies(c, k, l))
				emit(&off, fn, ud, kinds[k].name, l,
				     kind_count(c, k), kinds[k].decay,
				     kinds[k].init);
	emit(&off, fn, ud, "lnfw", -1, C, 0, INIT_ONE);
	emit(&off, fn, ud, "lnfb", -1, C, 0, INIT_ZERO);
	return off;
}

size_t gpt_config_num_params(const gpt_config *c)
{
	if (gpt_config_check(c) != 0)
		return 0;
	return layout(c, NULL, NULL);
}

/* ---- construction -------------------------------------------------------- */

typedef struct build {
	gpt *g;
	int *inits; /* init kind per tensor */
} build;

static void collect_tensor(void *ud, const gpt_tensor *t, int init)
{
	build *b = ud;
	b->inits[b->g->ntensors] = init;
	b->g->tensors[b->g->ntensors++] = *t;
}

/* Points a gpt__tensors view at base for every tensor of the layout. */
static void bind_views(gpt *g, gpt__tensors *v, float *base)
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
		for (int k = 0; k < NKINDS; k++)
			if (!strcmp(kinds[k].name, t->name))
				*(float **)((char *)&v->block[t->layer] +
					    kinds[k].off) = p;
	}
}

#define INIT_CHUNK 65536

/* Two N(0,1) draws from one Box-Muller pair, in float: init draws 10^8
 * of them for GPT-2, and rng_normal's one-per-call double path is 4x
 * slower. */
static void normal_pair(rng *r, float z[2])
{
	float u1 = ((float)(rng_u64(r) >> 40) + 1.0f) / 16777216.0f;
	float u2 = (float)(rng_u64(r) >> 40) / 16777216.0f;
	float rad = sqrtf(-2.0f * logf(u1)), s, c;
	sincosf(6.2831853f * u2, &s, &c);
	z[0] = rad * c;
	z[1] = rad * s;
}

/* Fills tensor i; chunk j draws from its own rng stream, so the result does
 * not depend on the thread count. */
static void init_tensor(gpt *g, int i, int init, uint64_t seed)
{
	const gpt_tensor *t = &g->tensors[i];
	float *p = g->params + t->offset;
	float std = 0.02f;
	if (init == INIT_RESID)
		std = 0.02f / sqrtf(2.0f * g->L);
	size_t n = t->count;
	if (!strcmp(t->name, "wte")) { /* padded rows are 0 */
		n = (size_t)g->V * g->C;
		memset(p + n, 0, (t->count - n) * sizeof(float));
	}
	if (init == INIT_ZERO || init == INIT_ONE) {
		for (size_t j = 0; j < n; j++)
			p[j] = init == INIT_ONE ? 1.0f : 0.0f;
		return;
	}
	long nchunks = (long)((n + INIT_CHUNK - 1) / INIT_CHUNK);
	OMP(parallel for schedule(static) if(PAR(n)))
	for (long j = 0; j < nchunks; j++) {
		rng r;
		rng_derive(&r, seed, ((uint64_t)i << 32) | (uint64_t)j);
		size_t a = (size_t)j * INIT_CHUNK;
		size_t e = a + INIT_CHUNK < n ? a + INIT_CHUNK : n;
		for (size_t q = a; q < e; q += 2) {
			float z[2];
			normal_pair(&r, z);
			p[q] = std * z[0];
			if (q + 1 < e)
				p[q + 1] = std * z[1];
		}
	}
}

static int alloc_buffers(gpt *g)
{
	g->params = malloc(g->nparams * sizeof(float));
	g->grads = calloc(g->nparams, sizeof(float));
	g->m = calloc(g->nparams, sizeof(float));
	g->v = calloc(g->nparams, sizeof(float));
	g->p.block = calloc(g->L, sizeof(gpt__block));
	g->dp.block = calloc(g->L, sizeof(gpt__block));
	g->acts = calloc(g->L, sizeof(gpt__acts));
	g->stats = calloc(g->L, sizeof(gpt_moe_layer_stats));
	if (!g->params || !g->grads || !g->m || !g->v || !g->p.block ||
	    !g->dp.block || !g->acts || !g->stats)
		return tend_error_set(TEND_ENOMEM,
			"gpt_new: out of memory for %zu parameters",
			g->nparams);
	return 0;
}

static void set_dims(gpt *g, const gpt_config *c)
{
	g->cfg = *c;
	g->cfg.padded_vocab = padded_vocab(c);
	g->cfg.d_ff = hidden(c);
	g->V = c->vocab;
	g->Vp = g->cfg.padded_vocab;
	g->C = c->d_model;
	g->H = g->cfg.d_ff;
	g->L = c->layers;
	g->NH = c->heads;
	g->E = c->moe_every ? c->experts : 0;
	g->k = c->moe_every ? c->top_k : 0;
	g->aux_coef = 0.01f;
	g->z_coef = 0.001f;
	g->grad_scale = 1.0f;
}

int gpt_new(gpt **out, const gpt_config *c, uint64_t seed)
{
	int rc, *inits = NULL;
	gpt *g = NULL;
	*out = NULL;
	if ((rc = gpt_config_check(c)) != 0)
		return rc;
	if (!(g = calloc(1, sizeof *g)))
		return tend_error_set(TEND_ENOMEM, "gpt_new: out of memory");
	set_dims(g, c);
	g->nparams = layout(&g->cfg, NULL, NULL);
	int nt = 4 + NKINDS * g->L;
	g->tensors = calloc(nt, sizeof(gpt_tensor));
	inits = calloc(nt, sizeof(int));
	if (!g->tensors || !inits) {
		rc = tend_error_set(TEND_ENOMEM, "gpt_new: out of memory");
		goto done;
	}
	if ((rc = alloc_buffers(g)) != 0)
		goto done;
	build b = { g, inits };
	layout(&g->cfg, collect_tensor, &b);
	bind_views(g, &g->p, g->params);
	bind_views(g, &g->dp, g->grads);
	for (int i = 0; i < g->ntensors; i++)
		init_tensor(g, i, inits[i], seed);
	*out = g;
	g = NULL;
done:
	free(inits);
	gpt_free(g);
	return rc;
}

void gpt_free(gpt *g)
{
	if (!g)
		return;
	free(g->params);
	free(g->grads);
	free(g->m);
	free(g->v);
	free(g->p.block);
	free(g->dp.block);
	free(g->tensors);
	free(g->acts);
	free(g->stats);
	free(g->abuf);
	free(g->ibuf);
	free(g);
}

/* ---- optimizer ----------------------------------------------------------- */

void gpt_zero_grad(gpt *g)
{
	memset(g->grads, 0, g->nparams * sizeof(float));
}

void gpt_set_grad_scale(gpt *g, float scale)
{
	g->grad_scale = scale;
}

void gpt_set_moe_coeffs(gpt *g, float aux, float z)
{
	g->aux_coef = aux;
	g->z_coef = z;
}

float gpt_grad_norm(gpt *g)
{
	float sq;
	global_norm_squared(&sq, g->grads, g->nparams);
	return sqrtf(sq);
}

float gpt_clip(gpt *g, float max_norm)
{
	float norm = gpt_grad_norm(g);
	if (max_norm <= 0.0f || !isfinite(norm) || norm <= max_norm)
		return norm;
	float s = max_norm / (norm + 1e-6f);
	float *gr = g->grads;
	size_t n = g->nparams;
	OMP(parallel for simd schedule(static) if(PAR(n)))
	for (size_t i = 0; i < n; i++)
		gr[i] *= s;
	return norm;
}

int gpt_step(gpt *g, const gpt_adamw *opt, float lr)
{
	if (!opt || !isfinite(lr) || !(opt->beta1 >= 0.0f && opt->beta1 < 1.0f)
	    || !(opt->beta2 >= 0.0f && opt->beta2 < 1.0f))
		return tend_error_set(TEND_EINVAL,
			"gpt_step: need finite lr and betas in [0, 1)");
	g->step++;
	/* Runs of adjacent tensors with the same decay flag make one call:
	 * the kind-major layout keeps e.g. all ln1w together. */
	int i = 0;
	while (i < g->ntensors) {
		int j = i;
		while (j + 1 < g->ntensors &&
		       g->tensors[j + 1].decay == g->tensors[i].decay)
			j++;
		size_t off = g->tensors[i].offset;
		size_t n = g->tensors[j].offset + g->tensors[j].count - off;
		adamw_update(g->params + off, g->grads + off, g->m + off,
			     g->v + off, n, lr, opt->beta1, opt->beta2,
			     opt->eps,
			     g->tensors[i].decay ? opt->weight_decay : 0.0f,
			     g->step);
		i = j + 1;
	}
	return 0;
}

/* ---- accessors ----------------------------------------------------------- */

const gpt_config *gpt_get_config(const gpt *g) { return &g->cfg; }
size_t gpt_num_params(const gpt *g) { return g->nparams; }
float *gpt_params(gpt *g) { return g->params; }
float *gpt_grads(gpt *g) { return g->grads; }
float *gpt_adam_m(gpt *g) { return g->m; }
float *gpt_adam_v(gpt *g) { return g->v; }
int gpt_get_step(const gpt *g) { return g->step; }
void gpt_set_step(gpt *g, int t) { g->step = t; }
int gpt_num_tensors(const gpt *g) { return g->ntensors; }

int gpt_tensor_at(const gpt *g, int i, gpt_tensor *out)
{
	if (i < 0 || i >= g->ntensors)
		return tend_error_set(TEND_EINVAL,
			"gpt_tensor_at: index %d not in [0, %d)", i,
			g->ntensors);
	*out = g->tensors[i];
	return 0;
}

size_t gpt_num_active_params(const gpt *g)
{
	size_t n = g->nparams;
	if (g->E == 0)
		return n;
	size_t per_expert = 2 * (size_t)g->H * g->C + g->H + g->C;
	for (int l = 0; l < g->L; l++)
		if (gpt__is_moe(&g->cfg, l))
			n -= (size_t)(g->E - g->k) * per_expert;
	return n;
}

double gpt_flops_per_token(const gpt *g, int T)
{
	double n = (double)gpt_num_active_params(g) -
		   (double)g->cfg.context * g->C; /* wpe is a lookup */
	return 6.0 * n + 6.0 * g->L * (double)g->C * T;
}

int gpt_moe_stats(const gpt *g, gpt_moe_layer_stats *out, int max_layers)
{
	int n = 0;
	for (int l = 0; l < g->L; l++) {
		if (!gpt__is_moe(&g->cfg, l))
			continue;
		if (n < max_layers && out)
			out[n] = g->stats[l];
		n++;
	}
	return n;
}

const float *gpt_logits(const gpt *g)
{
	return g->B ? g->logits : NULL;
}
