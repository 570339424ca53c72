/*
 * layernorm.cu - CUDA twins of layernorm_forward / layernorm_backward.
 *
 * One warp per row for the per-row statistics and the input gradient; the
 * weight and bias gradients are column sums over rows, done by the
 * deterministic two-stage reduction of cuda_int.cuh (no atomics).
 */
#include "cuda_int.cuh"

#define LN_EPS 1e-5f
#define ROWS_PER_BLOCK 8 /* warps of a 256-thread block */

__global__ static void ln_fwd(float *out, float *mean, float *rstd,
			      const float *inp, const float *weight,
			      const float *bias, int N, int C)
{
	int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	if (row >= N)
		return;
	const float *x = inp + (size_t)row * C;
	float s = 0.0f;
	for (int c = lane; c < C; c += 32)
		s += x[c];
	float m = cuda__warp_sum(s) / C;
	float v = 0.0f;
	for (int c = lane; c < C; c += 32) {
		float d = x[c] - m;
		v += d * d;
	}
	v = cuda__warp_sum(v) / C;
	float r = 1.0f / sqrtf(v + LN_EPS);
	float *o = out + (size_t)row * C;
	for (int c = lane; c < C; c += 32)
		o[c] = (x[c] - m) * r * weight[c] + bias[c];
	if (lane == 0) {
		mean[row] = m;
		rstd[row] = r;
	}
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd,
			    const float *inp, const float *weight,
			    const float *bias, int N, int C)
{
	if (N <= 0)
		return;
	ln_fwd<<<cuda__grid(N, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK>>>(
		out, mean, rstd, inp, weight, bias, N, C);
	cuda__launched("layernorm_forward");
}

__global__ static void ln_bwd_inp(float *dinp, const float *dout,
				  const float *inp, const float *weight,
				  const float *mean, const float *rstd, int N,
				  int C)
{
	int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	if (row >= N)
		return;
	const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
	float *di = dinp + (size_t)row * C;
	float m = mean[row], s = rstd[row];
	float dm = 0.0f, dnm = 0.0f; /* the two reductions of the backward */
	for (int c = lane; c < C; c += 32) {
		float dnorm = weight[c] * d[c];
		dm += dnorm;
		dnm += dnorm * (x[c] - m) * s;
	}
	dm = cuda__warp_sum(dm) / C;
	dnm = cuda__warp_sum(dnm) / C;
	for (int c = lane; c < C; c += 32) {
		float xhat = (x[c] - m) * s;
		float dnorm = weight[c] * d[c];
		di[c] += (dnorm - dm - xhat * dnm) * s;
	}
}

/* Per element: (dout * xhat, dout) for dweight and dbias. */
struct ln_param_terms {
	const float *dout, *inp, *mean, *rstd;
	int C;
	__device__ void operator()(int, int r, int c, float *v) const
	{
		size_t i = (size_t)r * C + c;
		v[0] = dout[i] * (inp[i] - mean[r]) * rstd[r];
		v[1] = dout[i];
	}
};

void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias,
			     const float *dout, const float *inp,
			     const float *weight, const float *mean,
			     const float *rstd, int N, int C)
{
	if (N <= 0)
		return;
	ln_bwd_inp<<<cuda__grid(N, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK>>>(
		dinp, dout, inp, weight, mean, rstd, N, C);
	cuda__launched("layernorm_backward");
	ln_param_terms f = { dout, inp, mean, rstd, C };
	cuda__colsum<2>(dweight, dbias, 0, f, N, C, 1);
}
