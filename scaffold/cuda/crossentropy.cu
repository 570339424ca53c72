/*
 * crossentropy.cu - CUDA twins of softmax_crossentropy_forward / _backward:
 * the fused softmax over the first V of Vp columns and the per-position
 * cross-entropy, one block per row.
 */
#include "cuda_int.cuh"

#define CE_THREADS 512

__global__ static void ce_fwd(float *losses, float *probs,
			      const float *logits, const int *targets, int V,
			      int Vp)
{
	size_t row = blockIdx.x;
	const float *l = logits + row * Vp;
	float *p = probs + row * Vp;
	float m = -INFINITY;
	for (int i = threadIdx.x; i < V; i += blockDim.x)
		m = fmaxf(m, l[i]);
	m = cuda__block_max(m);
	float s = 0.0f;
	for (int i = threadIdx.x; i < V; i += blockDim.x) {
		float e = expf(l[i] - m);
		p[i] = e;
		s += e;
	}
	s = cuda__block_sum(s);
	float inv = 1.0f / s;
	for (int i = threadIdx.x; i < V; i += blockDim.x)
		p[i] *= inv; /* each thread rescales what it wrote */
	for (int i = V + threadIdx.x; i < Vp; i += blockDim.x)
		p[i] = 0.0f;
	if (threadIdx.x == 0) {
		/* -log softmax from the logits, exact even when p underflows */
		int t = targets[row];
		losses[row] = t < 0 ? 0.0f : (m + logf(s)) - l[t];
	}
}

void cuda_softmax_crossentropy_forward(float *losses, float *probs,
				       const float *logits, const int *targets,
				       int N, int V, int Vp)
{
	if (N <= 0)
		return;
	ce_fwd<<<N, CE_THREADS>>>(losses, probs, logits, targets, V, Vp);
	cuda__launched("softmax_crossentropy_forward");
}

__global__ static void ce_bwd(float *dlogits, const float *dlosses,
			      const float *probs, const int *targets, int N,
			      int V, int Vp)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)N * Vp)
		return;
	int n = (int)(i / Vp), c = (int)(i % Vp), t = targets[n];
	if (t < 0 || c >= V)
		return;
	float d = dlosses[n];
	float v = dlogits[i] + probs[i] * d;
	if (c == t) /* the twin's `dl[target] -= d` after the += */
		v -= d;
	dlogits[i] = v;
}

void cuda_softmax_crossentropy_backward(float *dlogits, const float *dlosses,
					const float *probs,
					const int *targets, int N, int V,
					int Vp)
{
	size_t n = N > 0 ? (size_t)N * Vp : 0;
	if (n == 0)
		return;
	ce_bwd<<<cuda__grid(n, 256), 256>>>(dlogits, dlosses, probs, targets,
					    N, V, Vp);
	cuda__launched("softmax_crossentropy_backward");
}
