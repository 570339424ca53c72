/*
 * attention.cu - CUDA twins of attention_forward / attention_backward
 * (causal multi-head self-attention), as llm.c's attention_forward: cuBLAS
 * batched GEMMs for Q K^T and att V straight on the packed (B,T,3C) qkv
 * rows (no permute copies), and warp-per-row kernels for the causal
 * softmax and its backward.
 *
 * A head's Q is a (T,hs) matrix with row stride 3C at inp + b*T*3C + h*hs:
 * uniform strides over h for a fixed b and over b for a fixed h, so each
 * GEMM is a loop over the smaller of B and NH with the other as the cuBLAS
 * batch. The GEMMs compute the full T x T square (the softmax zeroes the
 * upper triangle), as llm.c does.
 *
 * The _bf16 variants round qkv, dout and the (post-softmax) attention
 * weights to bf16 copies in scratch; the softmax itself stays fp32.
 */
#include "cuda_int.cuh"

#define WARPS 8 /* rows per 256-thread block */

/* In place on att rows (B*NH*T of length T): scores -> causal softmax;
 * att16, when not NULL, gets a bf16 copy. */
__global__ static void softmax_fwd(float *att, __nv_bfloat16 *att16, int rows,
				   int T)
{
	int row = blockIdx.x * WARPS + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	if (row >= rows)
		return;
	int t = row % T;
	float *a = att + (size_t)row * T;
	float m = -INFINITY;
	for (int i = lane; i <= t; i += 32)
		m = fmaxf(m, a[i]);
	m = cuda__warp_max(m);
	float s = 0.0f;
	for (int i = lane; i <= t; i += 32) {
		float e = expf(a[i] - m);
		a[i] = e;
		s += e;
	}
	float inv = 1.0f / cuda__warp_sum(s);
	for (int i = lane; i < T; i += 32) {
		float v = i <= t ? a[i] * inv : 0.0f;
		a[i] = v;
		if (att16)
			att16[(size_t)row * T + i] = __float2bfloat16_rn(v);
	}
}

/* dpre = att * (datt - sum(att * datt)) on the causal part, 0 above. */
__global__ static void softmax_bwd(float *dpre, __nv_bfloat16 *dpre16,
				   const float *att, const float *datt,
				   int rows, int T)
{
	int row = blockIdx.x * WARPS + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	if (row >= rows)
		return;
	int t = row % T;
	size_t off = (size_t)row * T;
	const float *a = att + off, *da = datt + off;
	float dot = 0.0f;
	for (int i = lane; i <= t; i += 32)
		dot += a[i] * da[i];
	dot = cuda__warp_sum(dot);
	for (int i = lane; i < T; i += 32) {
		float v = i <= t ? a[i] * (da[i] - dot) : 0.0f;
		dpre[off + i] = v;
		if (dpre16)
			dpre16[off + i] = __float2bfloat16_rn(v);
	}
}

/* One operand of a per-(b,h) GEMM: base pointer, leading dimension and
 * element offsets between batches b and heads h. */
typedef struct opnd {
	const void *p;
	int ld;
	long long sb, sh;
} opnd;

typedef struct dims {
	int B, T, C, NH, hs, bf16;
} dims;

/* For every (b, h): C_bh = beta * C_bh + alpha * op(A_bh) @ op(B_bh). */
static void bh_gemm(const dims *d, int ta, int tb, int M, int N, int K,
		    float alpha, opnd a, opnd b, float beta, opnd c)
{
	int by_b = d->B <= d->NH; /* loop over b, batch over h */
	int outer = by_b ? d->B : d->NH, batch = by_b ? d->NH : d->B;
	size_t es = d->bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
	for (int o = 0; o < outer; o++) {
		long long oa = o * (by_b ? a.sb : a.sh);
		long long ob = o * (by_b ? b.sb : b.sh);
		long long oc = o * (by_b ? c.sb : c.sh);
		cuda__gemm(ta, tb, M, N, K, alpha, (const char *)a.p + oa * es,
			   a.ld, by_b ? a.sh : a.sb,
			   (const char *)b.p + ob * es, b.ld,
			   by_b ? b.sh : b.sb, beta, (float *)c.p + oc, c.ld,
			   by_b ? c.sh : c.sb, batch, d->bf16);
	}
}

/* Q, K or V (which = 0, 1, 2) of a qkv buffer of element size es. */
static opnd qkv_part(const void *qkv, const dims *d, int which)
{
	size_t es = d->bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
	opnd o = { (const char *)qkv + (size_t)which * d->C * es, 3 * d->C,
		   (long long)d->T * 3 * d->C, d->hs };
	return o;
}

static opnd att_part(const void *att, const dims *d)
{
	long long TT = (long long)d->T * d->T;
	opnd o = { att, d->T, d->NH * TT, TT };
	return o;
}

static opnd rows_part(const void *x, const dims *d)
{
	opnd o = { x, d->C, (long long)d->T * d->C, d->hs };
	return o;
}

static void att_fwd(float *out, float *att, const float *inp, dims d)
{
	size_t nqkv = (size_t)d.B * d.T * 3 * d.C;
	size_t natt = (size_t)d.B * d.NH * d.T * d.T;
	int rows = d.B * d.NH * d.T;
	const void *qkv = inp;
	__nv_bfloat16 *att16 = NULL;
	if (d.bf16) {
		qkv = cuda__to_bf16(CUDA__SCR_A, inp, nqkv);
		att16 = (__nv_bfloat16 *)cuda__scratch(CUDA__SCR_B,
			natt * sizeof(__nv_bfloat16));
		if (!qkv || !att16)
			return;
	}
	float scale = 1.0f / sqrtf((float)d.hs);
	/* att (T,T) = scale * Q (T,hs) @ K^T, then the causal softmax */
	bh_gemm(&d, 0, 1, d.T, d.T, d.hs, scale, qkv_part(qkv, &d, 0),
		qkv_part(qkv, &d, 1), 0.0f, att_part(att, &d));
	softmax_fwd<<<cuda__grid(rows, WARPS), 32 * WARPS>>>(att, att16, rows,
							       d.T);
	cuda__launched("attention_forward(softmax)");
	/* out (T,hs) = att (T,T) @ V (T,hs) */
	bh_gemm(&d, 0, 0, d.T, d.hs, d.T, 1.0f,
		att_part(att16 ? (const void *)att16 : att, &d),
		qkv_part(qkv, &d, 2), 0.0f, rows_part(out, &d));
}

static void att_bwd(float *dinp, float *dpreatt, float *datt,
		    const float *dout, const float *inp, const float *att,
		    dims d)
{
	size_t nqkv = (size_t)d.B * d.T * 3 * d.C;
	size_t natt = (size_t)d.B * d.NH * d.T * d.T;
	int rows = d.B * d.NH * d.T;
	const void *qkv = inp, *dy = dout, *a = att, *dp = dpreatt;
	__nv_bfloat16 *dpre16 = NULL;
	if (d.bf16) {
		qkv = cuda__to_bf16(CUDA__SCR_A, inp, nqkv);
		a = cuda__to_bf16(CUDA__SCR_B, att, natt);
		dy = cuda__to_bf16(CUDA__SCR_C, dout, (size_t)d.B * d.T * d.C);
		dpre16 = (__nv_bfloat16 *)cuda__scratch(CUDA__SCR_D,
			natt * sizeof(__nv_bfloat16));
		dp = dpre16;
		if (!qkv || !a || !dy || !dpre16)
			return;
	}
	float scale = 1.0f / sqrtf((float)d.hs);
	/* datt (T,T) = dout (T,hs) @ V^T; always fp32 out */
	bh_gemm(&d, 0, 1, d.T, d.T, d.hs, 1.0f, rows_part(dy, &d),
		qkv_part(qkv, &d, 2), 0.0f, att_part(datt, &d));
	/* dV (T,hs) += att^T (T,T) @ dout (T,hs) */
	dims df = d;
	df.bf16 = 0; /* dinp is always fp32; only its offsets are used */
	opnd dv = qkv_part(dinp, &df, 2), dq = qkv_part(dinp, &df, 0),
	     dk = qkv_part(dinp, &df, 1);
	bh_gemm(&d, 1, 0, d.T, d.hs, d.T, 1.0f, att_part(a, &d),
		rows_part(dy, &d), 1.0f, dv);
	softmax_bwd<<<cuda__grid(rows, WARPS), 32 * WARPS>>>(dpreatt, dpre16,
							       att, datt, rows,
							       d.T);
	cuda__launched("attention_backward(softmax)");
	/* dQ += scale * dpre @ K; dK += scale * dpre^T @ Q */
	bh_gemm(&d, 0, 0, d.T, d.hs, d.T, scale, att_part(dp, &d),
		qkv_part(qkv, &d, 1), 1.0f, dq);
	bh_gemm(&d, 1, 0, d.T, d.hs, d.T, scale, att_part(dp, &d),
		qkv_part(qkv, &d, 0), 1.0f, dk);
}

static dims make_dims(int B, int T, int C, int NH, int bf16)
{
	dims d = { B, T, C, NH, C / NH, bf16 };
	return d;
}

void cuda_attention_forward(float *out, float *att, const float *inp,
			    int B, int T, int C, int NH)
{
	if (B > 0 && T > 0)
		att_fwd(out, att, inp, make_dims(B, T, C, NH, 0));
}

void cuda_attention_backward(float *dinp, float *dpreatt, float *datt,
			     const float *dout, const float *inp,
			     const float *att, int B, int T, int C, int NH)
{
	if (B > 0 && T > 0)
		att_bwd(dinp, dpreatt, datt, dout, inp, att,
			make_dims(B, T, C, NH, 0));
}

void cuda_attention_forward_bf16(float *out, float *att, const float *inp,
				 int B, int T, int C, int NH)
{
	if (B > 0 && T > 0)
		att_fwd(out, att, inp, make_dims(B, T, C, NH, 1));
}

void cuda_attention_backward_bf16(float *dinp, float *dpreatt, float *datt,
				  const float *dout, const float *inp,
				  const float *att, int B, int T, int C,
				  int NH)
{
	if (B > 0 && T > 0)
		att_bwd(dinp, dpreatt, datt, dout, inp, att,
			make_dims(B, T, C, NH, 1));
}
