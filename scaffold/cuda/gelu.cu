/*
 * gelu.cu - CUDA twins of gelu_forward / gelu_backward (GPT-2's tanh
 * approximation), written with the CPU twin's exact formula.
 */
#include "cuda_int.cuh"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

__global__ static void gelu_fwd(float *out, const float *inp, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	float x = inp[i];
	float cube = 0.044715f * x * x * x;
	out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + cube)));
}

__global__ static void gelu_bwd(float *dinp, const float *inp,
				const float *dout, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	float x = inp[i];
	float cube = 0.044715f * x * x * x;
	float arg = GELU_SCALE * (x + cube);
	float th = tanhf(arg);
	float ch = coshf(arg);
	float sech2 = 1.0f / (ch * ch);
	float g = 0.5f * (1.0f + th) + x * 0.5f * sech2 * GELU_SCALE *
		  (1.0f + 3.0f * 0.044715f * x * x);
	dinp[i] += g * dout[i];
}

void cuda__gelu_forward(float *out, const float *inp, size_t n)
{
	if (n == 0)
		return;
	gelu_fwd<<<cuda__grid(n, 256), 256>>>(out, inp, n);
	cuda__launched("gelu_forward");
}

void cuda__gelu_backward(float *dinp, const float *inp, const float *dout,
			 size_t n)
{
	if (n == 0)
		return;
	gelu_bwd<<<cuda__grid(n, 256), 256>>>(dinp, inp, dout, n);
	cuda__launched("gelu_backward");
}

void cuda_gelu_forward(float *out, const float *inp, int N)
{
	cuda__gelu_forward(out, inp, N > 0 ? (size_t)N : 0);
}

void cuda_gelu_backward(float *dinp, const float *inp, const float *dout,
			int N)
{
	cuda__gelu_backward(dinp, inp, dout, N > 0 ? (size_t)N : 0);
}
