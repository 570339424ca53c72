/*
 * residual.cu - CUDA twins of residual_forward / residual_backward
 * (elementwise; bit-identical to the CPU twin).
 */
#include "cuda_int.cuh"

__global__ static void residual_fwd(float *out, const float *inp1,
				    const float *inp2, int N)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < N)
		out[i] = inp1[i] + inp2[i];
}

__global__ static void residual_bwd(float *dinp1, float *dinp2,
				    const float *dout, int N)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < N) {
		dinp1[i] += dout[i];
		dinp2[i] += dout[i];
	}
}

void cuda_residual_forward(float *out, const float *inp1, const float *inp2,
			   int N)
{
	if (N <= 0)
		return;
	residual_fwd<<<cuda__grid(N, 256), 256>>>(out, inp1, inp2, N);
	cuda__launched("residual_forward");
}

void cuda_residual_backward(float *dinp1, float *dinp2, const float *dout,
			    int N)
{
	if (N <= 0)
		return;
	residual_bwd<<<cuda__grid(N, 256), 256>>>(dinp1, dinp2, dout, N);
	cuda__launched("residual_backward");
}
