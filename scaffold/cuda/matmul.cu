/*
 * matmul.cu - CUDA twins of matmul_forward / matmul_backward over cuBLAS,
 * in fp32 and with bf16 operands (the _bf16 launchers), plus the bias
 * helpers the MoE experts share.
 *
 * The bf16 path rounds the activations and the weights to bf16 copies in
 * scratch (the fp32 master weights stay untouched), multiplies on the
 * tensor cores and accumulates and stores in fp32. Bias adds and bias
 * gradients stay fp32.
 */
#include "cuda_int.cuh"

/* out[z, r, c] += bias[z, c]. */
__global__ static void bias_add_kernel(float *out, const float *bias,
				       int rows, int cols, int batch)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)batch * rows * cols)
		return;
	size_t z = i / ((size_t)rows * cols);
	out[i] += bias[z * cols + i % cols];
}

void cuda__bias_add(float *out, const float *bias, int rows, int cols,
		    int batch)
{
	size_t n = (size_t)batch * rows * cols;
	if (n == 0)
		return;
	bias_add_kernel<<<cuda__grid(n, 256), 256>>>(out, bias, rows, cols,
						     batch);
	cuda__launched("bias_add");
}

struct dout_term {
	const float *dout;
	int rows, cols;
	__device__ void operator()(int z, int r, int c, float *v) const
	{
		v[0] = dout[((size_t)z * rows + r) * cols + c];
	}
};

void cuda__bias_grad(float *dbias, const float *dout, int rows, int cols,
		     int batch)
{
	dout_term f = { dout, rows, cols };
	cuda__colsum<1>(dbias, NULL, cols, f, rows, cols, batch);
}

static void matmul_fwd(float *out, const float *inp, const float *weight,
		       const float *bias, int N, int C, int OC, int bf16)
{
	const void *a = inp, *w = weight;
	if (bf16) {
		a = cuda__to_bf16(CUDA__SCR_A, inp, (size_t)N * C);
		w = cuda__to_bf16(CUDA__SCR_B, weight, (size_t)OC * C);
		if (!a || !w)
			return;
	}
	/* out (N,OC) = inp (N,C) @ weight (OC,C)^T */
	cuda__gemm(0, 1, N, OC, C, 1.0f, a, C, 0, w, C, 0, 0.0f, out, OC, 0, 1,
		   bf16);
	if (bias)
		cuda__bias_add(out, bias, N, OC, 1);
}

static void matmul_bwd(float *dinp, float *dweight, float *dbias,
		       const float *dout, const float *inp,
		       const float *weight, int N, int C, int OC, int bf16)
{
	const void *d = dout, *a = inp, *w = weight;
	if (bf16) {
		d = cuda__to_bf16(CUDA__SCR_A, dout, (size_t)N * OC);
		a = cuda__to_bf16(CUDA__SCR_C, inp, (size_t)N * C);
		w = dinp ? cuda__to_bf16(CUDA__SCR_B, weight, (size_t)OC * C)
			 : NULL;
		if (!d || !a || (dinp && !w))
			return;
	}
	/* dinp (N,C) += dout (N,OC) @ weight (OC,C) */
	if (dinp)
		cuda__gemm(0, 0, N, C, OC, 1.0f, d, OC, 0, w, C, 0, 1.0f, dinp,
			   C, 0, 1, bf16);
	/* dweight (OC,C) += dout^T (OC,N) @ inp (N,C) */
	cuda__gemm(1, 0, OC, C, N, 1.0f, d, OC, 0, a, C, 0, 1.0f, dweight, C,
		   0, 1, bf16);
	if (dbias)
		cuda__bias_grad(dbias, dout, N, OC, 1);
}

void cuda_matmul_forward(float *out, const float *inp, const float *weight,
			 const float *bias, int N, int C, int OC)
{
	matmul_fwd(out, inp, weight, bias, N, C, OC, 0);
}

void cuda_matmul_backward(float *dinp, float *dweight, float *dbias,
			  const float *dout, const float *inp,
			  const float *weight, int N, int C, int OC)
{
	matmul_bwd(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0);
}

void cuda_matmul_forward_bf16(float *out, const float *inp,
			      const float *weight, const float *bias, int N,
			      int C, int OC)
{
	matmul_fwd(out, inp, weight, bias, N, C, OC, 1);
}

void cuda_matmul_backward_bf16(float *dinp, float *dweight, float *dbias,
			       const float *dout, const float *inp,
			       const float *weight, int N, int C, int OC)
{
	matmul_bwd(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 1);
}
