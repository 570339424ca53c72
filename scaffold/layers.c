/*
 * layers.c - the dense layer kernels of the CPU reference trainer, written
 * to be read (llm.c's train_gpt2.c is the model): embeddings, layernorm,
 * matmul, causal attention, GELU, residual, fused softmax + cross-entropy,
 * AdamW and the global norm. The MoE router and experts live in moe.c.
 *
 * Parallel loops always write disjoint outputs, and every reduction over
 * rows is done either per column block or over fixed chunks summed in a
 * fixed order, so results are bit-identical across runs with the same
 * thread count (and OpenBLAS partitions sgemm by thread count only).
 */
#include "layers.h"
#include "model_omp.h"

#include "tend_build.h"

#include <math.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if TEND_HAVE_BLAS
#include <cblas.h>
#include <pthread.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif


/* ---- matmul -------------------------------------------------------------- */

#if !TEND_HAVE_BLAS
/* Rows of C one task computes, and the slice of K kept hot in cache. */
#define GEMM_ROWS 8
#define GEMM_KB 128

/* C[i,:] (+)= sum_p A'(i,p) * B[p,:]: the "axpy" form, B not transposed. */
static void gemm_rows_axpy(int ta, int i0, int i1, int N, int K,
			   const float *A, int lda, const float *B, int ldb,
			   float *Cm, int ldc)
{
	for (int p0 = 0; p0 < K; p0 += GEMM_KB) {
		int p1 = p0 + GEMM_KB < K ? p0 + GEMM_KB : K;
		for (int i = i0; i < i1; i++) {
			float *restrict crow = Cm + (size_t)i * ldc;
			for (int p = p0; p < p1; p++) {
				float a = ta ? A[(size_t)p * lda + i]
					     : A[(size_t)i * lda + p];
				const float *restrict brow = B + (size_t)p * ldb;
				OMP(simd)
				for (int j = 0; j < N; j++)
					crow[j] += a * brow[j];
			}
		}
	}
}

/* C[i,j] (+)= dot(A[i,:], B[j,:]): the "dot" form, B transposed, A not. */
static void gemm_rows_dot(int i0, int i1, int N, int K, const float *A,
			  int lda, const float *B, int ldb, float *Cm, int ldc)
{
	for (int i = i0; i < i1; i++) {
		const float *restrict arow = A + (size_t)i * lda;
		for (int j = 0; j < N; j++) {
			const float *restrict brow = B + (size_t)j * ldb;
			float s = 0.0f;
			OMP(simd reduction(+ : s))
			for (int p = 0; p < K; p++)
				s += arow[p] * brow[p];
			Cm[(size_t)i * ldc + j] += s;
		}
	}
}

/* The plain-C gemm for -Dblas=disabled; parallel over blocks of C rows. */
static void gemm_ref(int ta, int tb, int M, int N, int K, const float *A,
		     int lda, const float *B, int ldb, float beta, float *Cm,
		     int ldc)
{
	int nblk = (M + GEMM_ROWS - 1) / GEMM_ROWS;
	OMP(parallel for schedule(static) if(PAR((double)M * N * K)))
	for (int blk = 0; blk < nblk; blk++) {
		int i0 = blk * GEMM_ROWS;
		int i1 = i0 + GEMM_ROWS < M ? i0 + GEMM_ROWS : M;
		if (beta == 0.0f)
			for (int i = i0; i < i1; i++)
				memset(Cm + (size_t)i * ldc, 0,
				       (size_t)N * sizeof(float));
		if (tb && !ta) {
			gemm_rows_dot(i0, i1, N, K, A, lda, B, ldb, Cm, ldc);
		} else if (!tb) {
			gemm_rows_axpy(ta, i0, i1, N, K, A, lda, B, ldb, Cm,
				       ldc);
		} else { /* A^T B^T: unused by the layers, kept for totality */
			for (int i = i0; i < i1; i++)
				for (int j = 0; j < N; j++) {
					float s = 0.0f;
					for (int p = 0; p < K; p++)
						s += A[(size_t)p * lda + i] *
						     B[(size_t)j * ldb + p];
					Cm[(size_t)i * ldc + j] += s;
				}
		}
	}
}
#endif

#if TEND_HAVE_BLAS
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* OpenBLAS runs single-threaded inside our OpenMP threads: its own thread
 * pool would spin against OpenMP's for the same two cores. */
static void blas_single_threaded(void)
{
	openblas_set_num_threads(1);
}

/* Below this many multiply-adds one thread is faster than a fork. */
#define GEMM_SPLIT_MIN (1 << 18)

/* cblas_sgemm with C split into one block of rows or columns per OpenMP
 * thread, along its larger side. Each element is still computed by one
 * sgemm with the same K loop, so the result does not depend on the split. */
static void gemm_blas(int ta, int tb, int M, int N, int K, const float *A,
		      int lda, const float *B, int ldb, float beta, float *Cm,
		      int ldc)
{
	pthread_once(&blas_once, blas_single_threaded);
	int nt = 1;
#ifdef _OPENMP
	/* inside a parallel region (MoE experts) this thread does it all */
	if ((double)M * N * K >= GEMM_SPLIT_MIN && !omp_in_parallel())
		nt = omp_get_max_threads();
#endif
	int split_n = N >= M, len = split_n ? N : M;
	int chunk = (len + nt - 1) / nt;
	chunk = (chunk + 15) / 16 * 16; /* whole SIMD tiles per thread */
	OMP(parallel for num_threads(nt) schedule(static, 1) if(nt > 1))
	for (int t = 0; t < nt; t++) {
		int a0 = t * chunk, a1 = a0 + chunk < len ? a0 + chunk : len;
		if (a0 >= a1)
			continue;
		const float *As = A, *Bs = B;
		float *Cs = Cm;
		int m = M, n = N;
		if (split_n) {
			Bs = tb ? B + (size_t)a0 * ldb : B + a0;
			Cs = Cm + a0;
			n = a1 - a0;
		} else {
			As = ta ? A + a0 : A + (size_t)a0 * lda;
			Cs = Cm + (size_t)a0 * ldc;
			m = a1 - a0;
		}
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
			    tb ? CblasTrans : CblasNoTrans, m, n, K, 1.0f, As,
			    lda, Bs, ldb, beta, Cs, ldc);
	}
}
#endif

/* C (M,N) = beta * C + op(A) (M,K) @ op(B) (K,N), row-major, beta 0 or 1. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
		 const float *B, int ldb, float beta, float *Cm, int ldc)
{
	if (M <= 0 || N <= 0)
		return;
	if (K <= 0) {
		if (beta == 0.0f)
			for (int i = 0; i < M; i++)
				memset(Cm + (size_t)i * ldc, 0,
				       (size_t)N * sizeof(float));
		return;
	}
#if TEND_HAVE_BLAS
	gemm_blas(ta, tb, M, N, K, A, lda, B, ldb, beta, Cm, ldc);
#else
	gemm_ref(ta, tb, M, N, K, A, lda, B, ldb, beta, Cm, ldc);
#endif
}

/* Column blocks for reductions over rows (bias and layernorm gradients):
 * each block is owned by one thread and summed in row order. */
#define COL_BLOCK 64

void matmul_forward(float *out, const float *inp, const float *weight,
		    const float *bias, int N, int C, int OC)
{
	gemm(0, 1, N, OC, C, inp, C, weight, C, 0.0f, out, OC);
	if (!bias)
		return;
	OMP(parallel for schedule(static) if(PAR((double)N * OC)))
	for (int n = 0; n < N; n++) {
		float *restrict row = out + (size_t)n * OC;
		OMP(simd)
		for (int o = 0; o < OC; o++)
			row[o] += bias[o];
	}
}

/* dst (OC) += column sums of src (N,OC). */
static void column_sums_add(float *dst, const float *src, int N, int OC)
{
	int nblk = (OC + COL_BLOCK - 1) / COL_BLOCK;
	OMP(parallel for schedule(static) if(PAR((double)N * OC)))
	for (int blk = 0; blk < nblk; blk++) {
		int o0 = blk * COL_BLOCK;
		int o1 = o0 + COL_BLOCK < OC ? o0 + COL_BLOCK : OC;
		float acc[COL_BLOCK] = {0};
		for (int n = 0; n < N; n++)
			OMP(simd)
			for (int o = o0; o < o1; o++)
				acc[o - o0] += src[(size_t)n * OC + o];
		for (int o = o0; o < o1; o++)
			dst[o] += acc[o - o0];
	}
}

void matmul_backward(float *dinp, float *dweight, float *dbias,
		     const float *dout, const float *inp, const float *weight,
		     int N, int C, int OC)
{
	if (dinp)
		gemm(0, 0, N, C, OC, dout, OC, weight, C, 1.0f, dinp, C);
	gemm(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
	if (dbias)
		column_sums_add(dbias, dout, N, OC);
}

/* ---- embeddings ---------------------------------------------------------- */

void encoder_forward(float *out, const int *inp, const float *wte,
		     const float *wpe, int B, int T, int C)
{
	OMP(parallel for collapse(2) schedule(static) if(PAR((double)B * T * C)))
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			float *o = out + ((size_t)b * T + t) * C;
			const float *te = wte + (size_t)inp[b * T + t] * C;
			const float *pe = wpe + (size_t)t * C;
			OMP(simd)
			for (int c = 0; c < C; c++)
				o[c] = te[c] + pe[c];
		}
}

void encoder_backward(float *dwte, float *dwpe, const float *dout,
		      const int *inp, int B, int T, int C)
{
	/* Serial on purpose: repeated tokens scatter into the same dwte row,
	 * and this is a tiny share of the step (B*T*C adds). */
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			const float *d = dout + ((size_t)b * T + t) * C;
			float *dte = dwte + (size_t)inp[b * T + t] * C;
			float *dpe = dwpe + (size_t)t * C;
			OMP(simd)
			for (int c = 0; c < C; c++) {
				dte[c] += d[c];
				dpe[c] += d[c];
			}
		}
}

/* ---- layernorm ----------------------------------------------------------- */

#define LN_EPS 1e-5f

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
		       const float *weight, const float *bias, int N, int C)
{
	OMP(parallel for schedule(static) if(PAR((double)N * C)))
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float m = 0.0f, v = 0.0f;
		OMP(simd reduction(+ : m))
		for (int c = 0; c < C; c++)
			m += x[c];
		m /= C;
		OMP(simd reduction(+ : v))
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		v /= C;
		float s = 1.0f / sqrtf(v + LN_EPS);
		float *o = out + (size_t)n * C;
		OMP(simd)
		for (int c = 0; c < C; c++)
			o[c] = (x[c] - m) * s * weight[c] + bias[c];
		mean[n] = m;
		rstd[n] = s;
	}
}

/* dweight += sum_n dout * xhat, dbias += sum_n dout, per column block. */
static void layernorm_param_grads(float *dweight, float *dbias,
				  const float *dout, const float *inp,
				  const float *mean, const float *rstd, int N,
				  int C)
{
	int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
	OMP(parallel for schedule(static) if(PAR((double)N * C)))
	for (int blk = 0; blk < nblk; blk++) {
		int c0 = blk * COL_BLOCK;
		int c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
		float dw[COL_BLOCK] = {0}, db[COL_BLOCK] = {0};
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C;
			const float *d = dout + (size_t)n * C;
			OMP(simd)
			for (int c = c0; c < c1; c++) {
				dw[c - c0] += d[c] * (x[c] - mean[n]) * rstd[n];
				db[c - c0] += d[c];
			}
		}
		for (int c = c0; c < c1; c++) {
			dweight[c] += dw[c - c0];
			dbias[c] += db[c - c0];
		}
	}
}

void layernorm_backward(float *dinp, float *dweight, float *dbias,
			const float *dout, const float *inp,
			const float *weight, const float *mean,
			const float *rstd, int N, int C)
{
	OMP(parallel for schedule(static) if(PAR((double)N * C)))
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		const float *d = dout + (size_t)n * C;
		float *di = dinp + (size_t)n * C;
		float m = mean[n], s = rstd[n];
		/* the two reductions of the layernorm backward */
		float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
		OMP(simd reduction(+ : dnorm_mean, dnorm_norm_mean))
		for (int c = 0; c < C; c++) {
			float dnorm = weight[c] * d[c];
			dnorm_mean += dnorm;
			dnorm_norm_mean += dnorm * (x[c] - m) * s;
		}
		dnorm_mean /= C;
		dnorm_norm_mean /= C;
		OMP(simd)
		for (int c = 0; c < C; c++) {
			float xhat = (x[c] - m) * s;
			float dnorm = weight[c] * d[c];
			di[c] += (dnorm - dnorm_mean - xhat * dnorm_norm_mean) * s;
		}
	}
	layernorm_param_grads(dweight, dbias, dout, inp, mean, rstd, N, C);
}

/* ---- attention ----------------------------------------------------------- */

/* One query row: att_row (T, first t+1 used) and the output head slice. */
static void attention_row(float *out_h, float *att_row, const float *inp_bt,
			  const float *inp_b, int t, int T, int C, int hs,
			  int h)
{
	const float *q = inp_bt + h * hs;
	float scale = 1.0f / sqrtf((float)hs);
	float maxv = -INFINITY;
	for (int t2 = 0; t2 <= t; t2++) {
		const float *k = inp_b + (size_t)t2 * 3 * C + C + h * hs;
		float s = 0.0f;
		OMP(simd reduction(+ : s))
		for (int i = 0; i < hs; i++)
			s += q[i] * k[i];
		s *= scale;
		att_row[t2] = s;
		if (s > maxv)
			maxv = s;
	}
	float sum = 0.0f;
	for (int t2 = 0; t2 <= t; t2++) {
		att_row[t2] = expf(att_row[t2] - maxv);
		sum += att_row[t2];
	}
	float inv = 1.0f / sum;
	for (int t2 = 0; t2 < T; t2++)
		att_row[t2] = t2 <= t ? att_row[t2] * inv : 0.0f;
	for (int i = 0; i < hs; i++)
		out_h[i] = 0.0f;
	for (int t2 = 0; t2 <= t; t2++) {
		const float *v = inp_b + (size_t)t2 * 3 * C + 2 * C + h * hs;
		OMP(simd)
		for (int i = 0; i < hs; i++)
			out_h[i] += att_row[t2] * v[i];
	}
}

void attention_forward(float *out, float *att, const float *inp,
		       int B, int T, int C, int NH)
{
	int hs = C / NH;
	OMP(parallel for collapse(3) schedule(static) if(PAR((double)B * T * T * C)))
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++)
			for (int h = 0; h < NH; h++) {
				const float *inp_b = inp + (size_t)b * T * 3 * C;
				attention_row(out + ((size_t)b * T + t) * C + h * hs,
					      att + (((size_t)b * NH + h) * T + t) * T,
					      inp_b + (size_t)t * 3 * C, inp_b,
					      t, T, C, hs, h);
			}
}

/* Backward of one (b, h) pair; writes only head h's slices of batch b. */
static void attention_backward_bh(float *dinp_b, float *dpreatt_bh,
				  float *datt_bh, const float *dout_b,
				  const float *inp_b, const float *att_bh,
				  int T, int C, int hs, int h)
{
	float scale = 1.0f / sqrtf((float)hs);
	for (int t = 0; t < T; t++) {
		const float *att_row = att_bh + (size_t)t * T;
		float *datt_row = datt_bh + (size_t)t * T;
		float *dpre_row = dpreatt_bh + (size_t)t * T;
		const float *dout_h = dout_b + (size_t)t * C + h * hs;
		/* out = att @ v */
		for (int t2 = 0; t2 <= t; t2++) {
			const float *v = inp_b + (size_t)t2 * 3 * C + 2 * C + h * hs;
			float *dv = dinp_b + (size_t)t2 * 3 * C + 2 * C + h * hs;
			float s = 0.0f;
			OMP(simd reduction(+ : s))
			for (int i = 0; i < hs; i++) {
				s += v[i] * dout_h[i];
				dv[i] += att_row[t2] * dout_h[i];
			}
			datt_row[t2] = s;
		}
		/* softmax: dpre = att * (datt - sum(att * datt)) */
		float dot = 0.0f;
		for (int t2 = 0; t2 <= t; t2++)
			dot += att_row[t2] * datt_row[t2];
		for (int t2 = 0; t2 <= t; t2++)
			dpre_row[t2] = att_row[t2] * (datt_row[t2] - dot);
		for (int t2 = t + 1; t2 < T; t2++)
			datt_row[t2] = dpre_row[t2] = 0.0f;
		/* pre = scale * q . k */
		const float *q = inp_b + (size_t)t * 3 * C + h * hs;
		float *dq = dinp_b + (size_t)t * 3 * C + h * hs;
		for (int t2 = 0; t2 <= t; t2++) {
			const float *k = inp_b + (size_t)t2 * 3 * C + C + h * hs;
			float *dk = dinp_b + (size_t)t2 * 3 * C + C + h * hs;
			float g = dpre_row[t2] * scale;
			OMP(simd)
			for (int i = 0; i < hs; i++) {
				dq[i] += k[i] * g;
				dk[i] += q[i] * g;
			}
		}
	}
}

void attention_backward(float *dinp, float *dpreatt, float *datt,
			const float *dout, const float *inp, const float *att,
			int B, int T, int C, int NH)
{
	int hs = C / NH;
	/* Parallel over (b, h): key/value gradients of position t2 collect
	 * from every later query, so splitting over t would race. */
	OMP(parallel for collapse(2) schedule(static) if(PAR((double)B * T * T * C)))
	for (int b = 0; b < B; b++)
		for (int h = 0; h < NH; h++) {
			size_t bh = ((size_t)b * NH + h) * T * T;
			attention_backward_bh(dinp + (size_t)b * T * 3 * C,
					      dpreatt + bh, datt + bh,
					      dout + (size_t)b * T * C,
					      inp + (size_t)b * T * 3 * C,
					      att + bh, T, C, hs, h);
		}
}

/* ---- pointwise ----------------------------------------------------------- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through one expf: glibc's tanhf goes through expm1f and was the
 * top non-matmul cost of a GPT-2 step. Saturates cleanly (expf -> inf
 * gives 1, expf -> 0 gives -1); absolute error ~1e-7. */
static inline float tanh_via_exp(float x)
{
	return 1.0f - 2.0f / (1.0f + expf(2.0f * x));
}

void gelu_forward(float *out, const float *inp, int N)
{
	OMP(parallel for schedule(static) if(PAR(N * 16)))
	for (int i = 0; i < N; i++) {
		float x = inp[i];
		float cube = 0.044715f * x * x * x;
		out[i] = 0.5f * x * (1.0f + tanh_via_exp(GELU_SCALE * (x + cube)));
	}
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int N)
{
	OMP(parallel for schedule(static) if(PAR(N * 16)))
	for (int i = 0; i < N; i++) {
		float x = inp[i];
		float cube = 0.044715f * x * x * x;
		float th = tanh_via_exp(GELU_SCALE * (x + cube));
		float sech2 = 1.0f - th * th;
		float g = 0.5f * (1.0f + th) + x * 0.5f * sech2 * GELU_SCALE *
			  (1.0f + 3.0f * 0.044715f * x * x);
		dinp[i] += g * dout[i];
	}
}

void residual_forward(float *out, const float *inp1, const float *inp2, int N)
{
	OMP(parallel for schedule(static) if(PAR(N)))
	for (int i = 0; i < N; i++)
		out[i] = inp1[i] + inp2[i];
}

void residual_backward(float *dinp1, float *dinp2, const float *dout, int N)
{
	OMP(parallel for schedule(static) if(PAR(N)))
	for (int i = 0; i < N; i++) {
		dinp1[i] += dout[i];
		dinp2[i] += dout[i];
	}
}

/* ---- loss ---------------------------------------------------------------- */

void softmax_crossentropy_forward(float *losses, float *probs,
				  const float *logits, const int *targets,
				  int N, int V, int Vp)
{
	OMP(parallel for schedule(static) if(PAR((double)N * V)))
	for (int n = 0; n < N; n++) {
		const float *l = logits + (size_t)n * Vp;
		float *p = probs + (size_t)n * Vp;
		float maxv = -INFINITY;
		OMP(simd reduction(max : maxv))
		for (int i = 0; i < V; i++)
			if (l[i] > maxv)
				maxv = l[i];
		float sum = 0.0f;
		for (int i = 0; i < V; i++) {
			p[i] = expf(l[i] - maxv);
			sum += p[i];
		}
		float inv = 1.0f / sum;
		OMP(simd)
		for (int i = 0; i < V; i++)
			p[i] *= inv;
		for (int i = V; i < Vp; i++)
			p[i] = 0.0f;
		/* -log softmax from the logits, exact even when p underflows */
		losses[n] = targets[n] < 0 ? 0.0f
			: (maxv + logf(sum)) - l[targets[n]];
	}
}

void softmax_crossentropy_backward(float *dlogits, const float *dlosses,
				   const float *probs, const int *targets,
				   int N, int V, int Vp)
{
	OMP(parallel for schedule(static) if(PAR((double)N * V)))
	for (int n = 0; n < N; n++) {
		if (targets[n] < 0)
			continue;
		float *dl = dlogits + (size_t)n * Vp;
		const float *p = probs + (size_t)n * Vp;
		float d = dlosses[n];
		OMP(simd)
		for (int i = 0; i < V; i++)
			dl[i] += p[i] * d;
		dl[targets[n]] -= d;
	}
}

/* ---- optimizer ----------------------------------------------------------- */

/* AdamW over one contiguous range. sqrtf may set errno, so gcc keeps this
 * loop scalar under the project's flags; the SSE2 path (x86-64 baseline)
 * computes the same formula four lanes at a time, and the scalar loop
 * stays the definition and finishes the tail. */
static void adamw_range(float *restrict p, const float *restrict g,
			float *restrict m, float *restrict v, size_t n,
			float lr, float beta1, float beta2, float eps,
			float wd, float inv1, float inv2)
{
	size_t i = 0;
#ifdef __SSE2__
	__m128 b1 = _mm_set1_ps(beta1), b2 = _mm_set1_ps(beta2);
	__m128 c1 = _mm_set1_ps(1.0f - beta1), c2 = _mm_set1_ps(1.0f - beta2);
	__m128 i1 = _mm_set1_ps(inv1), i2 = _mm_set1_ps(inv2);
	__m128 ve = _mm_set1_ps(eps), vl = _mm_set1_ps(lr);
	__m128 vw = _mm_set1_ps(wd);
	for (; i + 4 <= n; i += 4) {
		__m128 gi = _mm_loadu_ps(g + i), pi = _mm_loadu_ps(p + i);
		__m128 mi = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m + i)),
				       _mm_mul_ps(c1, gi));
		__m128 vi = _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(v + i)),
				       _mm_mul_ps(_mm_mul_ps(c2, gi), gi));
		_mm_storeu_ps(m + i, mi);
		_mm_storeu_ps(v + i, vi);
		__m128 den = _mm_add_ps(_mm_sqrt_ps(_mm_mul_ps(vi, i2)), ve);
		__m128 upd = _mm_add_ps(_mm_div_ps(_mm_mul_ps(mi, i1), den),
					_mm_mul_ps(vw, pi));
		_mm_storeu_ps(p + i, _mm_sub_ps(pi, _mm_mul_ps(vl, upd)));
	}
#endif
	for (; i < n; i++) {
		float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
		float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
		m[i] = mi;
		v[i] = vi;
		p[i] -= lr * (mi * inv1 / (sqrtf(vi * inv2) + eps) + wd * p[i]);
	}
}

#define ADAMW_CHUNK 16384

void adamw_update(float *params, const float *grads, float *m, float *v,
		  size_t n, float lr, float beta1, float beta2, float eps,
		  float weight_decay, int t)
{
	float inv1 = 1.0f / (1.0f - powf(beta1, (float)t));
	float inv2 = 1.0f / (1.0f - powf(beta2, (float)t));
	long nchunks = (long)((n + ADAMW_CHUNK - 1) / ADAMW_CHUNK);
	OMP(parallel for schedule(static) if(PAR(n)))
	for (long c = 0; c < nchunks; c++) {
		size_t i = (size_t)c * ADAMW_CHUNK;
		size_t len = n - i < ADAMW_CHUNK ? n - i : ADAMW_CHUNK;
		adamw_range(params + i, grads + i, m + i, v + i, len, lr, beta1,
			    beta2, eps, weight_decay, inv1, inv2);
	}
}

#define NORM_CHUNKS 64

/* Sum of squares of n values: 8 float lanes over blocks of 512, each
 * block total added in double, all in a fixed order. */
static double sum_squares(const float *x, size_t n)
{
	double total = 0.0;
	for (size_t b = 0; b < n; b += 512) {
		size_t e = b + 512 < n ? b + 512 : n;
		float lane[8] = { 0 };
		size_t i = b;
		for (; i + 8 <= e; i += 8)
			for (int j = 0; j < 8; j++)
				lane[j] += x[i + j] * x[i + j];
		for (; i < e; i++)
			lane[0] += x[i] * x[i];
		total += ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
			 ((lane[4] + lane[5]) + (lane[6] + lane[7]));
	}
	return total;
}

void global_norm_squared(float *out, const float *values, size_t count)
{
	double part[NORM_CHUNKS];
	/* Chunks depend on count only, never on the thread count. */
	OMP(parallel for schedule(static) if(PAR(count)))
	for (int c = 0; c < NORM_CHUNKS; c++) {
		size_t i0 = count * (size_t)c / NORM_CHUNKS;
		size_t i1 = count * (size_t)(c + 1) / NORM_CHUNKS;
		part[c] = sum_squares(values + i0, i1 - i0);
	}
	double sum = 0.0;
	for (int c = 0; c < NORM_CHUNKS; c++)
		sum += part[c];
	out[0] = (float)sum;
}
