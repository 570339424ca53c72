/*
 * context.cu - the state every CUDA launcher shares: the cuBLAS handle, the
 * scratch slots, the sticky failure that void launchers report through
 * cuda_check(); the device memory helpers of cuda_kernels.h; bf16
 * conversion and the row-major GEMM wrapper.
 *
 * One process drives one device on the legacy default stream, so every
 * launch is ordered after the previous one; that is what lets scratch be
 * reused without synchronising. Not thread-safe, by design (as the CPU
 * trainer's callers, one thread steps the model).
 */
#include "cuda_int.cuh"

extern "C" {
#include "tend.h"
}

#include <stdarg.h>
#include <stdio.h>

static cublasHandle_t blas;
static struct {
	void *p;
	size_t n;
} scratch[CUDA__NSCR];
static char fail_msg[512];
static int failed;

void cuda__fail(const char *fmt, ...)
{
	if (failed) /* the first failure is the one that explains the rest */
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
	va_end(ap);
	failed = 1;
}

void cuda__launched(const char *what)
{
	cudaError_t e = cudaGetLastError();
	if (e != cudaSuccess)
		cuda__fail("%s: %s", what, cudaGetErrorString(e));
}

int cuda_available(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError(); /* leave no error behind for cuda_check */
		return 0;
	}
	return n > 0;
}

int cuda_check(const char *what)
{
	cudaError_t e = cudaDeviceSynchronize();
	if (e != cudaSuccess)
		cuda__fail("%s", cudaGetErrorString(e));
	e = cudaGetLastError();
	if (e != cudaSuccess)
		cuda__fail("%s", cudaGetErrorString(e));
	if (!failed)
		return 0;
	failed = 0;
	return tend_error_set(TEND_ERROR, "%s: %s", what, fail_msg);
}

int cuda_alloc(void **out, size_t bytes)
{
	*out = NULL;
	void *p = NULL;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		cudaGetLastError();
		return tend_error_set(TEND_ENOMEM,
			"cuda_alloc: %zu bytes: %s", bytes,
			cudaGetErrorString(e));
	}
	e = cudaMemset(p, 0, bytes);
	if (e != cudaSuccess) {
		cudaFree(p);
		return tend_error_set(TEND_ERROR, "cuda_alloc: memset: %s",
				      cudaGetErrorString(e));
	}
	*out = p;
	return 0;
}

void cuda_free(void *p)
{
	if (p)
		cudaFree(p);
}

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k,
		const char *what)
{
	if (bytes == 0)
		return 0;
	cudaError_t e = cudaMemcpy(dst, src, bytes, k);
	if (e != cudaSuccess)
		return tend_error_set(TEND_ERROR, "%s: %zu bytes: %s", what,
				      bytes, cudaGetErrorString(e));
	return 0;
}

int cuda_upload(void *dst_dev, const void *src_host, size_t bytes)
{
	return copy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice,
		    "cuda_upload");
}

int cuda_download(void *dst_host, const void *src_dev, size_t bytes)
{
	return copy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost,
		    "cuda_download");
}

int cuda_zero(void *dst_dev, size_t bytes)
{
	cudaError_t e = cudaMemsetAsync(dst_dev, 0, bytes, 0);
	if (e != cudaSuccess)
		return tend_error_set(TEND_ERROR, "cuda_zero: %s",
				      cudaGetErrorString(e));
	return 0;
}

void cuda_release(void)
{
	for (int i = 0; i < CUDA__NSCR; i++) {
		cudaFree(scratch[i].p);
		scratch[i].p = NULL;
		scratch[i].n = 0;
	}
	if (blas)
		cublasDestroy(blas);
	blas = NULL;
}

void *cuda__scratch(int slot, size_t bytes)
{
	if (scratch[slot].n >= bytes && scratch[slot].p)
		return scratch[slot].p;
	/* Queued kernels may still read the old buffer: wait for them
	 * (cudaFree would too). Growth happens on the first steps only;
	 * 1/8 headroom avoids creeping reallocations. */
	if (scratch[slot].p) {
		cudaError_t w = cudaDeviceSynchronize();
		if (w != cudaSuccess)
			cuda__fail("scratch: %s", cudaGetErrorString(w));
		cudaFree(scratch[slot].p);
	}
	scratch[slot].p = NULL;
	scratch[slot].n = 0;
	size_t want = bytes + bytes / 8;
	cudaError_t e = cudaMalloc(&scratch[slot].p, want ? want : 1);
	if (e != cudaSuccess) {
		cudaGetLastError();
		scratch[slot].p = NULL;
		cuda__fail("scratch slot %d: %zu bytes: %s", slot, want,
			   cudaGetErrorString(e));
		return NULL;
	}
	scratch[slot].n = want;
	return scratch[slot].p;
}

/* ---- bf16 conversion and elementwise helpers ------------------------------------ */

__global__ static void to_bf16_kernel(__nv_bfloat16 *dst, const float *src,
				      size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += stride)
		dst[i] = __float2bfloat16_rn(src[i]);
}

/* Grid-stride kernels use at most this many blocks: enough to fill any
 * current GPU, few enough to launch cheaply. */
#define GRID_STRIDE_BLOCKS 4096u

static unsigned stride_grid(size_t n)
{
	unsigned g = cuda__grid(n, 256);
	return g < 1 ? 1 : g > GRID_STRIDE_BLOCKS ? GRID_STRIDE_BLOCKS : g;
}

__nv_bfloat16 *cuda__to_bf16(int slot, const float *src, size_t n)
{
	__nv_bfloat16 *dst = (__nv_bfloat16 *)cuda__scratch(
		slot, n * sizeof(__nv_bfloat16));
	if (!dst)
		return NULL;
	to_bf16_kernel<<<stride_grid(n), 256>>>(dst, src, n);
	cuda__launched("to_bf16");
	return dst;
}

__global__ static void scale_kernel(float *x, float s, size_t n)
{
	size_t stride = (size_t)gridDim.x * blockDim.x;
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
	     i += stride)
		x[i] *= s;
}

void cuda__scale(float *x, float s, size_t n)
{
	if (n == 0)
		return;
	scale_kernel<<<stride_grid(n), 256>>>(x, s, n);
	cuda__launched("scale");
}

/* ---- GEMM ---------------------------------------------------------------------- */

static cublasHandle_t handle(void)
{
	if (blas)
		return blas;
	cublasStatus_t st = cublasCreate(&blas);
	if (st != CUBLAS_STATUS_SUCCESS) {
		blas = NULL;
		cuda__fail("cublasCreate: %s", cublasGetStatusString(st));
		return NULL;
	}
	/* plain fp32 for float operands: no TF32 behind our back */
	cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
	return blas;
}

/* cuBLAS is column-major: a row-major (M,N) C is a column-major (N,M) C^T,
 * and C^T = op(B)^T op(A)^T, so the operands swap places and M, N swap. */
void cuda__gemm(int ta, int tb, int M, int N, int K, float alpha,
		const void *A, int lda, long long sA, const void *B, int ldb,
		long long sB, float beta, float *C, int ldc, long long sC,
		int batch, int bf16)
{
	if (M <= 0 || N <= 0 || batch <= 0)
		return;
	cublasHandle_t h = handle();
	if (!h)
		return;
	cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
	cublasStatus_t st = cublasGemmStridedBatchedEx(h,
		tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
		N, M, K, &alpha, B, t, ldb, sB, A, t, lda, sA, &beta, C,
		CUDA_R_32F, ldc, sC, batch, CUBLAS_COMPUTE_32F,
		CUBLAS_GEMM_DEFAULT);
	if (st != CUBLAS_STATUS_SUCCESS)
		cuda__fail("cublasGemmStridedBatchedEx (M=%d N=%d K=%d "
			   "batch=%d bf16=%d): %s", M, N, K, batch, bf16,
			   cublasGetStatusString(st));
}
