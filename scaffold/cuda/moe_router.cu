/*
 * moe_router.cu - CUDA twins of router_forward / router_backward: softmax,
 * top-k (k = 1 or 2) and gates per token, the capacity assignment, and the
 * load-balancing and z losses.
 *
 * The CPU twin assigns slots in one sequential scan (every first choice in
 * token order, then every second choice). Here one block per expert walks
 * the same sequence and numbers its own assignments with a block prefix
 * sum, which gives each assignment exactly the slot the scan gives it.
 */
#include "cuda_int.cuh"

extern "C" {
#include "layers.h" /* MOE_MAX_EXPERTS */
}

#define ASSIGN_THREADS 1024

/* Softmax, logsumexp, top-k and gates of one token: the CPU code. */
__device__ static void router_token(float *p, float *lse, int *idx,
				    float *gate, const float *l, int E, int k)
{
	float maxv = l[0];
	for (int e = 1; e < E; e++)
		if (l[e] > maxv)
			maxv = l[e];
	float sum = 0.0f;
	for (int e = 0; e < E; e++) {
		p[e] = expf(l[e] - maxv);
		sum += p[e];
	}
	for (int e = 0; e < E; e++)
		p[e] /= sum;
	*lse = maxv + logf(sum);
	int best = 0; /* strict > keeps the lower id on ties */
	for (int e = 1; e < E; e++)
		if (p[e] > p[best])
			best = e;
	idx[0] = best;
	if (k == 1) {
		gate[0] = p[best];
		return;
	}
	int second = best == 0 ? 1 : 0;
	for (int e = 0; e < E; e++)
		if (e != best && p[e] > p[second])
			second = e;
	idx[1] = second;
	float s = p[best] + p[second];
	gate[0] = p[best] / s;
	gate[1] = p[second] / s;
}

__global__ static void router_tokens(float *probs, float *lse, int *topk_idx,
				     float *gates, const float *logits, int N,
				     int E, int k)
{
	int n = blockIdx.x * blockDim.x + threadIdx.x;
	if (n < N)
		router_token(probs + (size_t)n * E, lse + n, topk_idx + n * k,
			     gates + n * k, logits + (size_t)n * E, E, k);
}

/* Exclusive prefix sum of flag over the block; *total = the block's sum. */
__device__ static int block_exclusive_scan(int flag, int *total)
{
	__shared__ int warp_tot[32];
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nwarps = blockDim.x >> 5, v = flag;
	for (int o = 1; o < 32; o <<= 1) {
		int y = __shfl_up_sync(0xffffffffu, v, o);
		if (lane >= o)
			v += y;
	}
	__syncthreads(); /* the previous call's readers are done */
	if (lane == 31)
		warp_tot[warp] = v;
	__syncthreads();
	if (warp == 0) {
		int w = lane < nwarps ? warp_tot[lane] : 0;
		for (int o = 1; o < 32; o <<= 1) {
			int y = __shfl_up_sync(0xffffffffu, w, o);
			if (lane >= o)
				w += y;
		}
		warp_tot[lane] = w;
	}
	__syncthreads();
	*total = warp_tot[nwarps - 1];
	return (warp ? warp_tot[warp - 1] : 0) + v - flag;
}

/* Block e: slots of expert e, in the order (choice, token). */
__global__ static void router_assign(int *slot, int *slot_token,
				     int *expert_count, float *frac,
				     const int *topk_idx, int N, int k,
				     int cap)
{
	int e = blockIdx.x, all = N * k, base = 0;
	for (int j0 = 0; j0 < all; j0 += blockDim.x) {
		int j = j0 + threadIdx.x, i = j / N, n = j % N, tot;
		int flag = j < all && topk_idx[n * k + i] == e;
		int pos = base + block_exclusive_scan(flag, &tot);
		if (flag) {
			slot[n * k + i] = pos < cap ? pos : -1;
			if (pos < cap)
				slot_token[(size_t)e * cap + pos] = n;
		}
		base += tot;
	}
	int cnt = base < cap ? base : cap;
	for (int s = cnt + threadIdx.x; s < cap; s += blockDim.x)
		slot_token[(size_t)e * cap + s] = -1;
	if (threadIdx.x == 0) {
		expert_count[e] = cnt;
		frac[e] = (float)base / ((float)N * k);
	}
}

/* One block: the two losses (double sums, as the twin) and the drops. */
__global__ static void router_losses(float *aux_loss, float *z_loss,
				     int *dropped, const float *probs,
				     const float *lse, const float *frac,
				     const int *expert_count, int N, int E,
				     int k)
{
	double z = 0.0, aux = 0.0;
	for (int n = threadIdx.x; n < N; n += blockDim.x)
		z += (double)lse[n] * lse[n];
	z = cuda__block_sum(z);
	for (int e = 0; e < E; e++) {
		double pe = 0.0;
		for (int n = threadIdx.x; n < N; n += blockDim.x)
			pe += probs[(size_t)n * E + e];
		pe = cuda__block_sum(pe);
		aux += frac[e] * (pe / N);
	}
	if (threadIdx.x != 0)
		return;
	int kept = 0;
	for (int e = 0; e < E; e++)
		kept += expert_count[e];
	aux_loss[0] = (float)(aux * E);
	z_loss[0] = (float)(z / N);
	dropped[0] = N * k - kept;
}

void cuda_router_forward(float *probs, float *lse, int *topk_idx,
			 float *gates, int *slot, int *slot_token,
			 int *expert_count, float *frac, float *aux_loss,
			 float *z_loss, int *dropped, const float *logits,
			 int N, int E, int k, int cap)
{
	if (N <= 0 || E <= 0)
		return;
	router_tokens<<<cuda__grid(N, 128), 128>>>(probs, lse, topk_idx, gates,
						   logits, N, E, k);
	cuda__launched("router_forward(tokens)");
	router_assign<<<E, ASSIGN_THREADS>>>(slot, slot_token, expert_count,
					     frac, topk_idx, N, k, cap);
	cuda__launched("router_forward(assign)");
	router_losses<<<1, 1024>>>(aux_loss, z_loss, dropped, probs, lse, frac,
				   expert_count, N, E, k);
	cuda__launched("router_forward(losses)");
}

__global__ static void router_bwd(float *dlogits, const float *dgates,
				  const float *probs, const float *lse,
				  const int *topk_idx, const float *frac,
				  float aux_coef, float z_coef, int N, int E,
				  int k)
{
	int n = blockIdx.x * blockDim.x + threadIdx.x;
	if (n >= N)
		return;
	const float *p = probs + (size_t)n * E;
	const int *idx = topk_idx + n * k;
	const float *dg = dgates + n * k;
	float dp[MOE_MAX_EXPERTS];
	/* aux = E * sum_e frac_e * mean_n p[n,e] */
	for (int e = 0; e < E; e++)
		dp[e] = aux_coef * E * frac[e] / N;
	if (k == 1) {
		dp[idx[0]] += dg[0];
	} else {
		/* gate_i = p_i / S, S = p_0 + p_1 */
		float s = p[idx[0]] + p[idx[1]];
		float cross = (dg[0] * p[idx[0]] + dg[1] * p[idx[1]]) / (s * s);
		dp[idx[0]] += dg[0] / s - cross;
		dp[idx[1]] += dg[1] / s - cross;
	}
	float dot = 0.0f; /* through the softmax */
	for (int e = 0; e < E; e++)
		dot += p[e] * dp[e];
	float zg = z_coef * 2.0f * lse[n] / N; /* d lse / d logit = p */
	float *dl = dlogits + (size_t)n * E;
	for (int e = 0; e < E; e++)
		dl[e] += p[e] * (dp[e] - dot) + zg * p[e];
}

void cuda_router_backward(float *dlogits, const float *dgates,
			  const float *probs, const float *lse,
			  const int *topk_idx, const float *frac,
			  float aux_coef, float z_coef, int N, int E, int k)
{
	if (N <= 0)
		return;
	router_bwd<<<cuda__grid(N, 128), 128>>>(dlogits, dgates, probs, lse,
						topk_idx, frac, aux_coef,
						z_coef, N, E, k);
	cuda__launched("router_backward");
}
