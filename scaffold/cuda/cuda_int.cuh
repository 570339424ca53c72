/*
 * cuda_int.cuh - private to the CUDA files (scaffold/cuda/ and
 * gpt_cuda.cu): the sticky error, scratch buffers, bf16 conversion, the
 * row-major GEMM wrapper, and the reduction helpers the kernels share.
 *
 * Scratch: launchers borrow device buffers by slot. Slots grow and are
 * reused from one launch to the next (all work is on one stream, so a
 * later kernel never overtakes an earlier one). A launcher must not hold a
 * slot across a call that borrows the same slot; the slots are assigned:
 *   A, B, C, D  bf16 copies of GEMM operands (matmul, attention, MoE _bf16)
 *   RED         partial sums of the column-sum and norm reductions
 *   IDX         index lists (encoder backward)
 */
#ifndef CUDA_INT_CUH
#define CUDA_INT_CUH

#include "cuda_kernels.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

enum {
	CUDA__SCR_A, CUDA__SCR_B, CUDA__SCR_C, CUDA__SCR_D, CUDA__SCR_RED,
	CUDA__SCR_IDX, CUDA__NSCR
};

/* Records the first failure since the last cuda_check (printf-style). */
void cuda__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After a kernel launch: records a launch error under the name what. */
void cuda__launched(const char *what);

/* A device buffer of at least bytes for slot; NULL (failure recorded) when
 * it cannot be had. Contents are undefined. */
void *cuda__scratch(int slot, size_t bytes);

/* Rounds n floats to bf16 into slot's buffer; NULL on failure. */
__nv_bfloat16 *cuda__to_bf16(int slot, const float *src, size_t n);

/* Row-major GEMM, batched with strides (in elements), as layers.c's gemm:
 * C (M,N) = beta * C + alpha * op(A) (M,K) @ op(B) (K,N), op = transpose
 * when ta / tb. A and B are float (bf16 = 0) or __nv_bfloat16 (bf16 = 1);
 * C is float; accumulation is fp32 (no TF32). */
void cuda__gemm(int ta, int tb, int M, int N, int K, float alpha,
		const void *A, int lda, long long sA, const void *B, int ldb,
		long long sB, float beta, float *C, int ldc, long long sC,
		int batch, int bf16);

/* x (n) *= s. */
void cuda__scale(float *x, float s, size_t n);

/* Batched bias, batch z of (rows, cols) matrices (matmul.cu):
 * out[z,r,c] += bias[z,c]; dbias[z,c] += sum_r dout[z,r,c] (uses RED). */
void cuda__bias_add(float *out, const float *bias, int rows, int cols,
		    int batch);
void cuda__bias_grad(float *dbias, const float *dout, int rows, int cols,
		     int batch);

/* GELU over n values, for the MoE experts (gelu.cu). */
void cuda__gelu_forward(float *out, const float *inp, size_t n);
void cuda__gelu_backward(float *dinp, const float *inp, const float *dout,
			 size_t n);

static inline unsigned cuda__grid(size_t n, int threads)
{
	return (unsigned)((n + (size_t)threads - 1) / (size_t)threads);
}

/* ---- reductions ---------------------------------------------------------------- */

template <class T> __device__ inline T cuda__warp_sum(T v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

__device__ inline float cuda__warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Sum over a block of up to 1024 threads (blockDim.x a multiple of 32);
 * every thread gets the result. Fixed tree: deterministic. */
template <class T> __device__ inline T cuda__block_sum(T v)
{
	__shared__ T part[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nwarps = blockDim.x >> 5;
	v = cuda__warp_sum(v);
	__syncthreads(); /* part may still be read by a previous call */
	if (lane == 0)
		part[warp] = v;
	__syncthreads();
	T s = lane < nwarps ? part[lane] : (T)0;
	return cuda__warp_sum(s);
}

__device__ inline float cuda__block_max(float v)
{
	__shared__ float part[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nwarps = blockDim.x >> 5;
	v = cuda__warp_max(v);
	__syncthreads();
	if (lane == 0)
		part[warp] = v;
	__syncthreads();
	float s = lane < nwarps ? part[lane] : -INFINITY;
	return cuda__warp_max(s);
}

/* ---- column sums over rows, deterministic -------------------------------------
 *
 * dst_o[z * dst_stride + c] += sum_r f(z, r, c)[o] for NO outputs o, rows r
 * in [0, rows), columns c in [0, cols), batch z. Stage 1: a (32 x 8) block
 * owns 32 columns of one fixed chunk of rows; stage 2 adds the chunks in
 * order. The chunking depends on rows only, so results are reproducible. */

#define CUDA__CS_ROWS 8

static inline int cuda__cs_chunks(int rows)
{
	int c = rows / 128;
	return c < 1 ? 1 : c > 128 ? 128 : c;
}

template <int NO, class F>
__global__ void cuda__colsum_part(float *part, F f, int rows, int cols,
				  int chunks)
{
	__shared__ float sh[NO][CUDA__CS_ROWS][32];
	int c = blockIdx.x * 32 + threadIdx.x, ch = blockIdx.y, z = blockIdx.z;
	int r0 = (int)((long long)rows * ch / chunks);
	int r1 = (int)((long long)rows * (ch + 1) / chunks);
	float acc[NO];
	for (int o = 0; o < NO; o++)
		acc[o] = 0.0f;
	if (c < cols)
		for (int r = r0 + threadIdx.y; r < r1; r += CUDA__CS_ROWS) {
			float v[NO];
			f(z, r, c, v);
			for (int o = 0; o < NO; o++)
				acc[o] += v[o];
		}
	for (int o = 0; o < NO; o++)
		sh[o][threadIdx.y][threadIdx.x] = acc[o];
	__syncthreads();
	if (threadIdx.y != 0 || c >= cols)
		return;
	for (int o = 0; o < NO; o++) {
		float s = 0.0f;
		for (int y = 0; y < CUDA__CS_ROWS; y++)
			s += sh[o][y][threadIdx.x];
		part[(((size_t)z * chunks + ch) * cols + c) * NO + o] = s;
	}
}

template <int NO>
__global__ void cuda__colsum_final(float *dst0, float *dst1,
				   long long dst_stride, const float *part,
				   int cols, int chunks, int batch)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)cols * batch)
		return;
	int z = (int)(i / cols), c = (int)(i % cols);
	float *dst[2] = { dst0, dst1 };
	for (int o = 0; o < NO; o++) {
		float s = 0.0f;
		for (int ch = 0; ch < chunks; ch++)
			s += part[(((size_t)z * chunks + ch) * cols + c) * NO + o];
		dst[o][(size_t)z * dst_stride + c] += s;
	}
}

template <int NO, class F>
void cuda__colsum(float *dst0, float *dst1, long long dst_stride, F f,
		  int rows, int cols, int batch)
{
	if (rows <= 0 || cols <= 0 || batch <= 0)
		return;
	int chunks = cuda__cs_chunks(rows);
	float *part = (float *)cuda__scratch(CUDA__SCR_RED, sizeof(float) * NO *
					     (size_t)chunks * cols * batch);
	if (!part)
		return;
	dim3 grid((cols + 31) / 32, chunks, batch), block(32, CUDA__CS_ROWS);
	cuda__colsum_part<NO, F><<<grid, block>>>(part, f, rows, cols, chunks);
	cuda__launched("colsum_part");
	cuda__colsum_final<NO><<<cuda__grid((size_t)cols * batch, 256), 256>>>(
		dst0, dst1, dst_stride, part, cols, chunks, batch);
	cuda__launched("colsum_final");
}

#endif
