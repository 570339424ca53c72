/*
 * test_gradcheck.c - finite-difference checks of every layer kernel's
 * backward (scaffold/layers.h) and of a whole tiny MoE GPT (gpt.h).
 *
 * Each check turns a kernel's outputs into a scalar with fixed random
 * weights (L = sum w * out, accumulated in double), feeds w as dout to the
 * backward, and compares the analytic gradient with central differences of
 * L, as a relative error of the whole gradient vector (robust to float
 * rounding in single entries) plus a looser per-entry bound.
 * Routing is piecewise constant: inputs are drawn away from ties, and the
 * whole-model check skips coordinates whose perturbation changes routing.
 */
#include "gpt.h"
#include "gpt_int.h" /* white box: the routing, to skip top-k flips */
#include "layers.h"
#include "rng.h"
#include "tend.h"
#include "tt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef double (*loss_fn)(void *ud);

static rng R;

static float *randn(size_t n, float std)
{
	float *p = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		p[i] = std * rng_normal(&R);
	return p;
}

static float *zeros(size_t n)
{
	return calloc(n, sizeof(float));
}

static double dot(const float *a, const float *w, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * w[i];
	return s;
}

/* Compares grad (n) with central differences of f over param (n); checks
 * at most 64 evenly spread entries. Returns the vector relative error. */
static double fd_error(const char *what, float *param, const float *grad,
		       size_t n, loss_fn f, void *ud, float eps)
{
	size_t stride = n > 64 ? n / 64 : 1;
	double num2 = 0.0, diff2 = 0.0, ana2 = 0.0, worst = 0.0, maxabs = 0.0;
	for (size_t i = 0; i < n; i += stride) {
		float orig = param[i];
		param[i] = orig + eps;
		double lp = f(ud);
		param[i] = orig - eps;
		double lm = f(ud);
		param[i] = orig;
		double num = (lp - lm) / (2.0 * eps);
		double d = fabs(num - grad[i]);
		num2 += num * num;
		ana2 += (double)grad[i] * grad[i];
		diff2 += d * d;
		if (d > worst)
			worst = d;
		if (fabs(num) > maxabs)
			maxabs = fabs(num);
	}
	double scale = sqrt(num2 > ana2 ? num2 : ana2);
	double rel = scale > 0 ? sqrt(diff2) / scale : sqrt(diff2);
	/* one wrong entry among many must not hide in the vector norm */
	double entry = worst / (maxabs + 1e-3);
	if (entry > rel)
		rel = entry;
	if (rel > 2e-3)
		fprintf(stderr, "  %s: rel err %.3g (worst entry %.3g, |g| %.3g)\n",
			what, rel, worst, scale);
	return rel;
}

#define GRAD_OK(what, p, g, n, f, ud, eps) \
	TT_CHECK(fd_error(what, p, g, n, f, ud, eps) < 2e-3)

/* ---- the checker itself must be able to fail ------------------------------ */

typedef struct lin {
	float *x, *w;
	int n;
} lin;

static double lin_loss(void *ud)
{
	lin *l = ud; /* L = sum w x^2 / 2, dL/dx = w x */
	double s = 0.0;
	for (int i = 0; i < l->n; i++)
		s += 0.5 * l->w[i] * l->x[i] * l->x[i];
	return s;
}

static void test_checker_catches_wrong_gradient(void)
{
	lin l = { randn(20, 1.0f), randn(20, 1.0f), 20 };
	float good[20], bad[20];
	for (int i = 0; i < 20; i++) {
		good[i] = l.w[i] * l.x[i];
		bad[i] = good[i] + (i == 3 ? 0.1f : 0.0f);
	}
	TT_CHECK(fd_error("good", l.x, good, 20, lin_loss, &l, 1e-3f) < 1e-3);
	TT_CHECK(fd_error("bad (expected)", l.x, bad, 20, lin_loss, &l, 1e-3f) > 1e-2);
	free(l.x);
	free(l.w);
}

/* ---- encoder ------------------------------------------------------------- */

typedef struct enc_case {
	float *out, *wte, *wpe, *w;
	int *inp, B, T, C;
} enc_case;

static double enc_loss(void *ud)
{
	enc_case *e = ud;
	encoder_forward(e->out, e->inp, e->wte, e->wpe, e->B, e->T, e->C);
	return dot(e->out, e->w, (size_t)e->B * e->T * e->C);
}

static void test_encoder(void)
{
	enum { B = 2, T = 4, C = 6, V = 5 };
	int inp[B * T] = { 1, 3, 1, 4, 0, 1, 2, 1 }; /* repeats scatter-add */
	enc_case e = { zeros(B * T * C), randn(V * C, 1), randn(T * C, 1),
		       randn(B * T * C, 1), inp, B, T, C };
	float *dwte = zeros(V * C), *dwpe = zeros(T * C);
	encoder_backward(dwte, dwpe, e.w, inp, B, T, C);
	GRAD_OK("dwte", e.wte, dwte, V * C, enc_loss, &e, 1e-2f);
	GRAD_OK("dwpe", e.wpe, dwpe, T * C, enc_loss, &e, 1e-2f);
	free(e.out); free(e.wte); free(e.wpe); free(e.w); free(dwte); free(dwpe);
}

/* ---- layernorm ----------------------------------------------------------- */

typedef struct ln_case {
	float *out, *mean, *rstd, *inp, *weight, *bias, *w;
	int N, C;
} ln_case;

static double ln_loss(void *ud)
{
	ln_case *l = ud;
	layernorm_forward(l->out, l->mean, l->rstd, l->inp, l->weight, l->bias,
			  l->N, l->C);
	return dot(l->out, l->w, (size_t)l->N * l->C);
}

static void test_layernorm(void)
{
	enum { N = 5, C = 70 }; /* C crosses a 64-column block */
	ln_case l = { zeros(N * C), zeros(N), zeros(N), randn(N * C, 1),
		      randn(C, 1), randn(C, 1), randn(N * C, 1), N, C };
	float *dinp = zeros(N * C), *dw = zeros(C), *db = zeros(C);
	ln_loss(&l);
	layernorm_backward(dinp, dw, db, l.w, l.inp, l.weight, l.mean, l.rstd,
			   N, C);
	GRAD_OK("dinp", l.inp, dinp, N * C, ln_loss, &l, 1e-2f);
	GRAD_OK("dweight", l.weight, dw, C, ln_loss, &l, 1e-2f);
	GRAD_OK("dbias", l.bias, db, C, ln_loss, &l, 1e-2f);
	free(l.out); free(l.mean); free(l.rstd); free(l.inp); free(l.weight);
	free(l.bias); free(l.w); free(dinp); free(dw); free(db);
}

/* ---- matmul -------------------------------------------------------------- */

typedef struct mm_case {
	float *out, *inp, *weight, *bias, *w;
	int N, C, OC;
} mm_case;

static double mm_loss(void *ud)
{
	mm_case *m = ud;
	matmul_forward(m->out, m->inp, m->weight, m->bias, m->N, m->C, m->OC);
	return dot(m->out, m->w, (size_t)m->N * m->OC);
}

static void check_matmul(int N, int C, int OC)
{
	mm_case m = { zeros(N * OC), randn(N * C, 1), randn(OC * C, 1),
		      randn(OC, 1), randn(N * OC, 1), N, C, OC };
	float *dinp = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
	matmul_backward(dinp, dw, db, m.w, m.inp, m.weight, N, C, OC);
	GRAD_OK("dinp", m.inp, dinp, N * C, mm_loss, &m, 1e-2f);
	GRAD_OK("dweight", m.weight, dw, OC * C, mm_loss, &m, 1e-2f);
	GRAD_OK("dbias", m.bias, db, OC, mm_loss, &m, 1e-2f);
	free(m.out); free(m.inp); free(m.weight); free(m.bias); free(m.w);
	free(dinp); free(dw); free(db);
}

static void test_matmul(void)
{
	check_matmul(5, 7, 9);
	check_matmul(17, 150, 70); /* crosses the blocking of the C path */
}

/* The forward against a plain triple loop, and accumulation (+=). */
static void test_matmul_values_and_accumulation(void)
{
	enum { N = 9, C = 13, OC = 11 };
	float *inp = randn(N * C, 1), *wt = randn(OC * C, 1), *b = randn(OC, 1);
	float *out = zeros(N * OC), *dout = randn(N * OC, 1);
	matmul_forward(out, inp, wt, b, N, C, OC);
	double worst = 0.0;
	for (int n = 0; n < N; n++)
		for (int o = 0; o < OC; o++) {
			double s = b[o];
			for (int c = 0; c < C; c++)
				s += (double)inp[n * C + c] * wt[o * C + c];
			worst = fmax(worst, fabs(s - out[n * OC + o]));
		}
	TT_CHECK(worst < 1e-4);
	float *d1 = zeros(OC * C), *d2 = zeros(OC * C);
	matmul_backward(NULL, d1, NULL, dout, inp, wt, N, C, OC);
	matmul_backward(NULL, d2, NULL, dout, inp, wt, N, C, OC);
	matmul_backward(NULL, d2, NULL, dout, inp, wt, N, C, OC);
	for (int i = 0; i < OC * C; i++)
		TT_CHECK(fabsf(d2[i] - 2 * d1[i]) <= 1e-4f * (1 + fabsf(d1[i])));
	free(inp); free(wt); free(b); free(out); free(dout); free(d1); free(d2);
}

/* ---- attention ----------------------------------------------------------- */

typedef struct att_case {
	float *out, *att, *inp, *w;
	int B, T, C, NH;
} att_case;

static double att_loss(void *ud)
{
	att_case *a = ud;
	attention_forward(a->out, a->att, a->inp, a->B, a->T, a->C, a->NH);
	return dot(a->out, a->w, (size_t)a->B * a->T * a->C);
}

static void test_attention(void)
{
	enum { B = 2, T = 5, C = 8, NH = 2 };
	att_case a = { zeros(B * T * C), zeros(B * NH * T * T),
		       randn(B * T * 3 * C, 1), randn(B * T * C, 1),
		       B, T, C, NH };
	float *dinp = zeros(B * T * 3 * C);
	float *dpre = zeros(B * NH * T * T), *datt = zeros(B * NH * T * T);
	att_loss(&a);
	/* causal: no weight above the diagonal, rows sum to 1 */
	double rowsum = 0.0;
	for (int t2 = 0; t2 < T; t2++)
		rowsum += a.att[2 * T + t2];
	TT_CHECK(fabs(rowsum - 1.0) < 1e-5);
	TT_CHECK(a.att[2 * T + 3] == 0.0f && a.att[2 * T + 4] == 0.0f);
	attention_backward(dinp, dpre, datt, a.w, a.inp, a.att, B, T, C, NH);
	GRAD_OK("dqkv", a.inp, dinp, B * T * 3 * C, att_loss, &a, 1e-2f);
	free(a.out); free(a.att); free(a.inp); free(a.w); free(dinp);
	free(dpre); free(datt);
}

/* ---- MLP: matmul + GELU + matmul, and residual --------------------------- */

typedef struct mlp_case {
	float *x, *fcw, *fcb, *pw, *pb, *h, *hg, *y, *out, *w;
	int N, C, H;
} mlp_case;

static double mlp_loss(void *ud)
{
	mlp_case *m = ud;
	matmul_forward(m->h, m->x, m->fcw, m->fcb, m->N, m->C, m->H);
	gelu_forward(m->hg, m->h, m->N * m->H);
	matmul_forward(m->y, m->hg, m->pw, m->pb, m->N, m->H, m->C);
	residual_forward(m->out, m->x, m->y, m->N * m->C);
	return dot(m->out, m->w, (size_t)m->N * m->C);
}

static void test_mlp(void)
{
	enum { N = 6, C = 8, H = 32 };
	mlp_case m = { randn(N * C, 1), randn(H * C, 0.5f), randn(H, 0.5f),
		       randn(C * H, 0.5f), randn(C, 0.5f), zeros(N * H),
		       zeros(N * H), zeros(N * C), zeros(N * C),
		       randn(N * C, 1), N, C, H };
	float *dx = zeros(N * C), *dy = zeros(N * C), *dhg = zeros(N * H);
	float *dh = zeros(N * H), *dfcw = zeros(H * C), *dfcb = zeros(H);
	float *dpw = zeros(C * H), *dpb = zeros(C);
	mlp_loss(&m);
	residual_backward(dx, dy, m.w, N * C);
	matmul_backward(dhg, dpw, dpb, dy, m.hg, m.pw, N, H, C);
	gelu_backward(dh, m.h, dhg, N * H);
	matmul_backward(dx, dfcw, dfcb, dh, m.x, m.fcw, N, C, H);
	GRAD_OK("dx", m.x, dx, N * C, mlp_loss, &m, 1e-2f);
	GRAD_OK("dfcw", m.fcw, dfcw, H * C, mlp_loss, &m, 1e-2f);
	GRAD_OK("dfcb", m.fcb, dfcb, H, mlp_loss, &m, 1e-2f);
	GRAD_OK("dprojw", m.pw, dpw, C * H, mlp_loss, &m, 1e-2f);
	GRAD_OK("dprojb", m.pb, dpb, C, mlp_loss, &m, 1e-2f);
	float *ptrs[] = { m.x, m.fcw, m.fcb, m.pw, m.pb, m.h, m.hg, m.y, m.out,
			  m.w, dx, dy, dhg, dh, dfcw, dfcb, dpw, dpb };
	for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
		free(ptrs[i]);
}

/* GELU at known points (tanh approximation). */
static void test_gelu_values(void)
{
	float x[3] = { -1.0f, 0.0f, 2.0f }, y[3];
	gelu_forward(y, x, 3);
	TT_CHECK(fabsf(y[0] - -0.158808f) < 1e-5f);
	TT_CHECK(y[1] == 0.0f);
	TT_CHECK(fabsf(y[2] - 1.954598f) < 1e-5f);
}

/* ---- cross-entropy ------------------------------------------------------- */

typedef struct ce_case {
	float *losses, *probs, *logits, *w;
	int *targets, N, V, Vp;
} ce_case;

static double ce_loss(void *ud)
{
	ce_case *c = ud;
	softmax_crossentropy_forward(c->losses, c->probs, c->logits,
				     c->targets, c->N, c->V, c->Vp);
	return dot(c->losses, c->w, c->N);
}

static void test_crossentropy(void)
{
	enum { N = 6, V = 10, Vp = 16 };
	int targets[N] = { 3, 0, -1, 9, 5, 3 };
	ce_case c = { zeros(N), zeros(N * Vp), randn(N * Vp, 2),
		      randn(N, 1), targets, N, V, Vp };
	float *dlogits = zeros(N * Vp);
	ce_loss(&c);
	TT_CHECK(c.losses[2] == 0.0f);             /* ignored position */
	TT_CHECK(c.probs[0 * Vp + 12] == 0.0f);    /* padding column */
	double psum = 0.0, direct = 0.0;
	for (int i = 0; i < V; i++)
		psum += c.probs[i];
	TT_CHECK(fabs(psum - 1.0) < 1e-5);
	direct = -log(c.probs[3]);
	TT_CHECK(fabs(direct - c.losses[0]) < 1e-4);
	softmax_crossentropy_backward(dlogits, c.w, c.probs, targets, N, V, Vp);
	for (int i = 0; i < Vp; i++)
		TT_CHECK(dlogits[2 * Vp + i] == 0.0f);
	for (int n = 0; n < N; n++)
		for (int i = V; i < Vp; i++)
			TT_CHECK(dlogits[n * Vp + i] == 0.0f);
	GRAD_OK("dlogits", c.logits, dlogits, N * Vp, ce_loss, &c, 1e-2f);
	free(c.losses); free(c.probs); free(c.logits); free(c.w); free(dlogits);
}

/* ---- router -------------------------------------------------------------- */

enum { RN = 12, RE = 4, RC = 8, RH = 16 };

typedef struct route_case {
	float *logits, *probs, *lse, *gates, *frac, *wg;
	int *idx, *slot, *slot_token, *count;
	float aux, z, aux_coef, z_coef;
	int dropped, k, cap;
} route_case;

static void route_alloc(route_case *r, int k, int cap)
{
	memset(r, 0, sizeof *r);
	r->probs = zeros(RN * RE);
	r->lse = zeros(RN);
	r->gates = zeros(RN * k);
	r->frac = zeros(RE);
	r->wg = randn(RN * k, 1);
	r->idx = calloc(RN * k, sizeof(int));
	r->slot = calloc(RN * k, sizeof(int));
	r->slot_token = calloc(RE * cap, sizeof(int));
	r->count = calloc(RE, sizeof(int));
	r->k = k;
	r->cap = cap;
	r->aux_coef = 0.3f;
	r->z_coef = 0.2f;
}

static void route_free(route_case *r)
{
	free(r->logits); free(r->probs); free(r->lse); free(r->gates);
	free(r->frac); free(r->wg); free(r->idx); free(r->slot);
	free(r->slot_token); free(r->count);
}

static void route_run(route_case *r)
{
	router_forward(r->probs, r->lse, r->idx, r->gates, r->slot,
		       r->slot_token, r->count, r->frac, &r->aux, &r->z,
		       &r->dropped, r->logits, RN, RE, r->k, r->cap);
}

/* Logits whose top-k+1 values are separated by at least 0.2, so that a
 * 1e-3 perturbation never changes the selection. */
static float *untied_logits(int n, int e)
{
	float *l = malloc((size_t)n * e * sizeof(float));
	for (int t = 0; t < n; t++) {
		for (int i = 0; i < e; i++)
			l[t * e + i] = 0.5f * i + 0.1f * rng_float(&R);
		for (int i = e - 1; i > 0; i--) { /* shuffle the ranking */
			int j = (int)rng_below(&R, (uint64_t)i + 1);
			float tmp = l[t * e + i];
			l[t * e + i] = l[t * e + j];
			l[t * e + j] = tmp;
		}
	}
	return l;
}

static double route_loss(void *ud)
{
	route_case *r = ud;
	route_run(r);
	return dot(r->gates, r->wg, (size_t)RN * r->k) + r->aux_coef * r->aux +
	       r->z_coef * r->z;
}

static void check_router(int k, int cap)
{
	route_case r;
	route_alloc(&r, k, cap);
	r.logits = untied_logits(RN, RE);
	float *dlogits = zeros(RN * RE);
	route_run(&r);
	router_backward(dlogits, r.wg, r.probs, r.lse, r.idx, r.frac,
			r.aux_coef, r.z_coef, RN, RE, k);
	GRAD_OK(k == 1 ? "router top-1" : "router top-2", r.logits, dlogits,
		RN * RE, route_loss, &r, 1e-3f);
	free(dlogits);
	route_free(&r);
}

static void test_router_gradients(void)
{
	check_router(1, moe_capacity(1.25f, RN, RE, 1));
	check_router(2, moe_capacity(1.25f, RN, RE, 2));
	check_router(2, 2); /* tight capacity: drops do not change the router */
}

/* Exact routing on a hand-made case: selection, gates, capacity order,
 * dropped count, and the losses. */
static void test_router_routing_rules(void)
{
	enum { N = 4, E = 2 };
	/* every token prefers expert 1, then expert 0 */
	float logits[N * E] = { 0, 1, 0, 2, 0, 3, 1, 1.5f };
	float probs[N * E], lse[N], gates[N * 2], frac[E], aux, z;
	int idx[N * 2], slot[N * 2], st[E * 3], count[E], dropped;
	router_forward(probs, lse, idx, gates, slot, st, count, frac, &aux, &z,
		       &dropped, logits, N, E, 2, 3);
	TT_CHECK(idx[0] == 1 && idx[1] == 0);
	/* first choices fill expert 1 in token order: tokens 0,1,2; the 4th
	 * token's first choice is dropped, second choices all fit expert 0 */
	TT_CHECK(slot[0] == 0 && slot[2] == 1 && slot[4] == 2 && slot[6] == -1);
	TT_CHECK(slot[1] == 0 && slot[3] == 1 && slot[5] == 2 && slot[7] == -1);
	TT_CHECK(count[0] == 3 && count[1] == 3 && dropped == 2);
	TT_CHECK(st[1 * 3 + 0] == 0 && st[1 * 3 + 2] == 2 && st[0 * 3 + 2] == 2);
	TT_CHECK(fabsf(gates[0] + gates[1] - 1.0f) < 1e-6f);
	TT_CHECK(frac[0] == 0.5f && frac[1] == 0.5f);
	/* aux = E * sum f_e P_e = 2 * 0.5 * (P_0 + P_1) = 1 */
	TT_CHECK(fabsf(aux - 1.0f) < 1e-5f);
	double zz = 0.0;
	for (int n = 0; n < N; n++)
		zz += log(exp(logits[2 * n]) + exp(logits[2 * n + 1])) *
		      log(exp(logits[2 * n]) + exp(logits[2 * n + 1]));
	TT_CHECK(fabs(zz / N - z) < 1e-5);
	/* top-1 gates are the raw probability, ties go to the lower id */
	float tie[2] = { 0.5f, 0.5f };
	router_forward(probs, lse, idx, gates, slot, st, count, frac, &aux, &z,
		       &dropped, tie, 1, 2, 1, 1);
	TT_CHECK(idx[0] == 0 && fabsf(gates[0] - 0.5f) < 1e-6f);
	TT_CHECK(moe_capacity(1.25f, 64, 8, 2) == 20);
	TT_CHECK(moe_capacity(0.0f, 64, 8, 2) == 64);
	TT_CHECK(moe_capacity(0.001f, 64, 8, 2) == 1);
}

/* ---- experts ------------------------------------------------------------- */

typedef struct moe_case {
	route_case r;
	float *x, *out, *xin, *h, *hg, *y, *fcw, *fcb, *pw, *pb, *w;
} moe_case;

static double moe_loss(void *ud)
{
	moe_case *m = ud;
	moe_forward(m->out, m->xin, m->h, m->hg, m->y, m->x, m->r.idx,
		    m->r.slot, m->r.gates, m->r.slot_token, m->r.count, m->fcw,
		    m->fcb, m->pw, m->pb, RN, RC, RH, RE, m->r.k, m->r.cap);
	return dot(m->out, m->w, RN * RC);
}

static void moe_case_init(moe_case *m, int k, int cap)
{
	route_alloc(&m->r, k, cap);
	m->r.logits = untied_logits(RN, RE);
	route_run(&m->r);
	size_t ec = (size_t)RE * cap;
	m->x = randn(RN * RC, 1);
	m->out = zeros(RN * RC);
	m->xin = zeros(ec * RC);
	m->h = zeros(ec * RH);
	m->hg = zeros(ec * RH);
	m->y = zeros(ec * RC);
	m->fcw = randn(RE * RH * RC, 0.5f);
	m->fcb = randn(RE * RH, 0.5f);
	m->pw = randn(RE * RC * RH, 0.5f);
	m->pb = randn(RE * RC, 0.5f);
	m->w = randn(RN * RC, 1);
}

static void moe_case_free(moe_case *m)
{
	float *p[] = { m->x, m->out, m->xin, m->h, m->hg, m->y, m->fcw,
		       m->fcb, m->pw, m->pb, m->w };
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		free(p[i]);
	route_free(&m->r);
}

/* A token whose every assignment was dropped gets a zero output row. */
static int check_dropped_rows_zero(const moe_case *m)
{
	int seen = 0;
	for (int n = 0; n < RN; n++) {
		int kept = 0;
		for (int i = 0; i < m->r.k; i++)
			kept += m->r.slot[n * m->r.k + i] >= 0;
		if (kept)
			continue;
		seen++;
		for (int c = 0; c < RC; c++)
			if (m->out[n * RC + c] != 0.0f)
				return -1;
	}
	return seen;
}

static void check_experts(int k, int cap, int want_drops)
{
	moe_case m;
	moe_case_init(&m, k, cap);
	size_t ec = (size_t)RE * cap;
	float *dx = zeros(RN * RC), *dg = zeros(RN * k);
	float *dfcw = zeros(RE * RH * RC), *dfcb = zeros(RE * RH);
	float *dpw = zeros(RE * RC * RH), *dpb = zeros(RE * RC);
	float *s1 = zeros(ec * RC), *s2 = zeros(ec * RH), *s3 = zeros(ec * RH);
	float *s4 = zeros(ec * RC);
	moe_loss(&m);
	if (want_drops) {
		TT_CHECK(m.r.dropped > 0);
		TT_CHECK(check_dropped_rows_zero(&m) > 0);
	}
	moe_backward(dx, dg, dfcw, dfcb, dpw, dpb, s1, s2, s3, s4, m.w, m.xin,
		     m.h, m.hg, m.y, m.r.idx, m.r.slot, m.r.gates, m.r.count,
		     m.fcw, m.pw, RN, RC, RH, RE, k, cap);
	for (int i = 0; i < RN * k; i++)
		if (m.r.slot[i] < 0)
			TT_CHECK(dg[i] == 0.0f);
	GRAD_OK("moe dx", m.x, dx, RN * RC, moe_loss, &m, 1e-2f);
	GRAD_OK("moe dgates", m.r.gates, dg, RN * k, moe_loss, &m, 1e-2f);
	GRAD_OK("moe dfcw", m.fcw, dfcw, RE * RH * RC, moe_loss, &m, 1e-2f);
	GRAD_OK("moe dfcb", m.fcb, dfcb, RE * RH, moe_loss, &m, 1e-2f);
	GRAD_OK("moe dprojw", m.pw, dpw, RE * RC * RH, moe_loss, &m, 1e-2f);
	GRAD_OK("moe dprojb", m.pb, dpb, RE * RC, moe_loss, &m, 1e-2f);
	float *p[] = { dx, dg, dfcw, dfcb, dpw, dpb, s1, s2, s3, s4 };
	for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
		free(p[i]);
	moe_case_free(&m);
}

static void test_experts_top1(void)
{
	check_experts(1, moe_capacity(0.0f, RN, RE, 1), 0);
	check_experts(1, 2, 1); /* 4 experts x 2 slots < 12 tokens */
}

static void test_experts_top2(void)
{
	check_experts(2, moe_capacity(2.0f, RN, RE, 2), 0);
	check_experts(2, 3, 1);
}

/* ---- optimizer and norm -------------------------------------------------- */

/* 37 values: the vector body and the scalar tail both run. */
static void test_adamw_matches_formula(void)
{
	enum { N = 37 };
	float *p = randn(N, 1), *g = randn(N, 1), *m = zeros(N), *v = zeros(N);
	double pd[N], md[N] = { 0 }, vd[N] = { 0 };
	for (int i = 0; i < N; i++)
		pd[i] = p[i];
	for (int t = 1; t <= 3; t++) {
		adamw_update(p, g, m, v, N, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
		for (int i = 0; i < N; i++) {
			md[i] = 0.9 * md[i] + 0.1 * g[i];
			vd[i] = 0.95 * vd[i] + 0.05 * g[i] * g[i];
			double mh = md[i] / (1 - pow(0.9, t));
			double vh = vd[i] / (1 - pow(0.95, t));
			pd[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + 0.1 * pd[i]);
		}
	}
	double worst = 0.0;
	for (int i = 0; i < N; i++)
		worst = fmax(worst, fabs(p[i] - pd[i]) + fabs(m[i] - md[i]) +
				    fabs(v[i] - vd[i]));
	TT_CHECK(worst < 1e-5);
	free(p); free(g); free(m); free(v);
}

static void test_global_norm(void)
{
	size_t n = 100003;
	float *x = randn(n, 1), a, b;
	double want = 0.0;
	for (size_t i = 0; i < n; i++)
		want += (double)x[i] * x[i];
	global_norm_squared(&a, x, n);
	global_norm_squared(&b, x, n);
	TT_CHECK(fabs(a - want) / want < 1e-6);
	TT_CHECK(memcmp(&a, &b, sizeof a) == 0);
	float one = 3.0f;
	global_norm_squared(&a, &one, 1);
	TT_CHECK(a == 9.0f);
	free(x);
}

/* ---- whole model --------------------------------------------------------- */

enum { WB = 2, WT = 5 };

typedef struct whole {
	gpt *g;
	int inp[WB * WT], tgt[WB * WT];
	uint64_t base_routing;
	int routing_changed;
} whole;

/* A hash of every MoE block's routing (top-k choices and slots), read
 * from the model's insides (gpt_int.h): a top-k flip can move a token's
 * slot without changing any statistic. */
static uint64_t routing_hash(const gpt *g)
{
	uint64_t h = 1469598103934665603ULL;
	int N = WB * WT;
	for (int l = 0; l < g->L; l++) {
		if (!gpt__is_moe(&g->cfg, l))
			continue;
		for (int i = 0; i < N * g->k; i++) {
			h = (h ^ (uint64_t)(g->acts[l].topk[i] + 7)) * 1099511628211ULL;
			h = (h ^ (uint64_t)(g->acts[l].slot[i] + 7)) * 1099511628211ULL;
		}
	}
	return h;
}

static double whole_loss(void *ud)
{
	whole *w = ud;
	float ce;
	gpt_moe_layer_stats st[4];
	if (gpt_forward(w->g, w->inp, w->tgt, WB, WT, &ce) != 0)
		return NAN;
	int n = gpt_moe_stats(w->g, st, 4);
	double obj = ce;
	for (int i = 0; i < n; i++)
		obj += 0.1 * st[i].aux_loss + 0.05 * st[i].z_loss;
	if (routing_hash(w->g) != w->base_routing)
		w->routing_changed = 1;
	return obj;
}

/* Central difference of the objective along parameter i with step h. */
static double whole_central(whole *w, float *p, size_t i, float h)
{
	float orig = p[i];
	p[i] = orig + h;
	double lp = whole_loss(w);
	p[i] = orig - h;
	double lm = whole_loss(w);
	p[i] = orig;
	return (lp - lm) / (2.0 * h);
}

/* Richardson-extrapolated central differences over every parameter: the
 * random weights put some coordinates on sharp curvature, where a plain
 * central difference is off by a few percent. Coordinates whose
 * perturbation changes the routing (a top-k flip) are skipped and counted. */
static void whole_fd(whole *w, const float *grad, size_t n, float h,
		     double *rel, int *skipped)
{
	float *p = gpt_params(w->g);
	double diff2 = 0.0, ref2 = 0.0;
	*skipped = 0;
	for (size_t i = 0; i < n; i++) {
		w->routing_changed = 0;
		double d1 = whole_central(w, p, i, h);
		double d2 = whole_central(w, p, i, 2 * h);
		if (w->routing_changed) {
			(*skipped)++;
			continue;
		}
		double num = (4.0 * d1 - d2) / 3.0;
		diff2 += (num - grad[i]) * (num - grad[i]);
		ref2 += num * num;
	}
	*rel = sqrt(diff2 / ref2);
}

static void test_whole_moe_gpt(void)
{
	gpt_config c = { .vocab = 11, .padded_vocab = 16, .context = 8,
			 .layers = 2, .heads = 2, .d_model = 8, .d_ff = 12,
			 .moe_every = 2, .experts = 4, .top_k = 2,
			 .capacity_factor = 1.0f };
	whole w = { 0 };
	rng_seed(&R, 777); /* independent of the tests before this one */
	TT_CHECK_RC(gpt_new(&w.g, &c, 7), 0);
	TT_REQUIRE(w.g);
	size_t n = gpt_num_params(w.g);
	float *p = gpt_params(w.g);
	/* larger weights than GPT-2 init so every path carries gradient */
	for (size_t i = 0; i < n; i++)
		p[i] += 0.3f * rng_normal(&R);
	for (int i = 0; i < WB * WT; i++) {
		w.inp[i] = (int)rng_below(&R, 11);
		w.tgt[i] = i == 3 ? -1 : (int)rng_below(&R, 11);
	}
	gpt_set_moe_coeffs(w.g, 0.1f, 0.05f);
	float ce;
	gpt_moe_layer_stats st;
	TT_CHECK_RC(gpt_forward(w.g, w.inp, w.tgt, WB, WT, &ce), 0);
	TT_REQUIRE(gpt_moe_stats(w.g, &st, 1) == 1);
	TT_CHECK(st.dropped > 0); /* cf 1.0 with top-2 drops some */
	w.base_routing = routing_hash(w.g);
	gpt_zero_grad(w.g);
	TT_CHECK_RC(gpt_backward(w.g), 0);
	float *grad = malloc(n * sizeof(float));
	memcpy(grad, gpt_grads(w.g), n * sizeof(float));
	double rel;
	int skipped;
	whole_fd(&w, grad, n, 1e-3f, &rel, &skipped);
	fprintf(stderr, "  whole model: %zu params, rel err %.3g, %d skipped\n",
		n, rel, skipped);
	TT_CHECK(rel < 5e-3); /* float forward, h = 1e-3: ~1e-3 is noise */
	TT_CHECK(skipped < (int)(n / 20));
	/* padded wte rows get no gradient */
	for (int i = 11 * 8; i < 16 * 8; i++)
		TT_CHECK(grad[i] == 0.0f);
	free(grad);
	gpt_free(w.g);
}

int main(void)
{
	rng_seed(&R, 12345);
	TT_RUN(test_checker_catches_wrong_gradient);
	TT_RUN(test_encoder);
	TT_RUN(test_layernorm);
	TT_RUN(test_matmul);
	TT_RUN(test_matmul_values_and_accumulation);
	TT_RUN(test_attention);
	TT_RUN(test_mlp);
	TT_RUN(test_gelu_values);
	TT_RUN(test_crossentropy);
	TT_RUN(test_router_gradients);
	TT_RUN(test_router_routing_rules);
	TT_RUN(test_experts_top1);
	TT_RUN(test_experts_top2);
	TT_RUN(test_adamw_matches_formula);
	TT_RUN(test_global_norm);
	TT_RUN(test_whole_moe_gpt);
	return TT_DONE();
}
