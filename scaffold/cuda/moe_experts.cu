/*
 * moe_experts.cu - CUDA twins of moe_forward / moe_backward: dispatch of
 * tokens into per-expert buffers, every expert's GPT-2 MLP, and the
 * gate-weighted combine (and their backward), fp32 and _bf16.
 *
 * The CPU twin runs each expert on its expert_count[e] filled rows. The
 * counts live on the device, and reading them back would stall the queue,
 * so here every expert runs on all cap rows as ONE strided-batched GEMM
 * per matmul. Rows past the count are zero inputs: their outputs are never
 * combined, their dy rows are zero, so they add exactly nothing to any
 * gradient. The cost is the unused capacity (25% at capacity factor 1.25;
 * E/k times the work with no capacity limit).
 */
#include "cuda_int.cuh"

#define WARPS 8

/* xin[e, s] = inp[slot_token[e, s]] for filled slots, 0 past the count. */
__global__ static void dispatch(float *xin, const float *inp,
				const int *slot_token, const int *expert_count,
				int C, int cap, int E)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)E * cap * C)
		return;
	size_t row = i / C;
	int c = (int)(i % C), e = (int)(row / cap), s = (int)(row % cap);
	xin[i] = s < expert_count[e]
		? inp[(size_t)slot_token[row] * C + c] : 0.0f;
}

/* out[n] = sum over kept choices, in choice order, of gate * y row. */
__global__ static void combine(float *out, const float *y,
			       const int *topk_idx, const int *slot,
			       const float *gates, int N, int C, int k,
			       int cap)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)N * C)
		return;
	int n = (int)(i / C), c = (int)(i % C);
	float o = 0.0f;
	for (int j = 0; j < k; j++) {
		int s = slot[n * k + j];
		if (s < 0)
			continue;
		size_t row = (size_t)topk_idx[n * k + j] * cap + s;
		o += gates[n * k + j] * y[row * C + c];
	}
	out[i] = o;
}

/* Warp per (token, choice): dgates += <dout, y row>; dy row = gate * dout. */
__global__ static void combine_bwd(float *dgates, float *dy, const float *dout,
				   const float *y, const int *topk_idx,
				   const int *slot, const float *gates, int N,
				   int C, int k, int cap)
{
	int pair = blockIdx.x * WARPS + (threadIdx.x >> 5);
	int lane = threadIdx.x & 31;
	if (pair >= N * k || slot[pair] < 0)
		return;
	const float *d = dout + (size_t)(pair / k) * C;
	size_t row = ((size_t)topk_idx[pair] * cap + slot[pair]) * C;
	float g = gates[pair], dot = 0.0f;
	for (int c = lane; c < C; c += 32) {
		dot += d[c] * y[row + c];
		dy[row + c] = g * d[c];
	}
	dot = cuda__warp_sum(dot);
	if (lane == 0)
		dgates[pair] += dot;
}

/* dinp[n] += dxin rows of n's kept choices, in choice order. */
__global__ static void scatter(float *dinp, const float *dxin,
			       const int *topk_idx, const int *slot, int N,
			       int C, int k, int cap)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)N * C)
		return;
	int n = (int)(i / C), c = (int)(i % C);
	float acc = dinp[i];
	for (int j = 0; j < k; j++) {
		int s = slot[n * k + j];
		if (s >= 0)
			acc += dxin[((size_t)topk_idx[n * k + j] * cap + s) * C + c];
	}
	dinp[i] = acc;
}

/* Operand x as GEMM input: itself, or its bf16 copy in slot. */
static const void *operand(const float *x, size_t n, int slot, int bf16)
{
	return bf16 ? (const void *)cuda__to_bf16(slot, x, n) : (const void *)x;
}

typedef struct moe_dims {
	int N, C, H, E, k, cap, bf16;
} moe_dims;

static void moe_fwd(float *out, float *xin, float *h, float *hg, float *y,
		    const float *inp, const int *topk_idx, const int *slot,
		    const float *gates, const int *slot_token,
		    const int *expert_count, const float *fcw,
		    const float *fcb, const float *projw, const float *projb,
		    moe_dims d)
{
	int C = d.C, H = d.H, E = d.E, cap = d.cap;
	size_t nx = (size_t)E * cap * C, nh = (size_t)E * cap * H;
	size_t nw = (size_t)E * H * C;
	dispatch<<<cuda__grid(nx, 256), 256>>>(xin, inp, slot_token,
					       expert_count, C, cap, E);
	cuda__launched("moe_forward(dispatch)");
	const void *x = operand(xin, nx, CUDA__SCR_A, d.bf16);
	const void *w1 = operand(fcw, nw, CUDA__SCR_B, d.bf16);
	if (!x || !w1)
		return;
	/* h_e (cap,H) = xin_e (cap,C) @ fcw_e (H,C)^T + fcb_e */
	cuda__gemm(0, 1, cap, H, C, 1.0f, x, C, (long long)cap * C, w1, C,
		   (long long)H * C, 0.0f, h, H, (long long)cap * H, E, d.bf16);
	cuda__bias_add(h, fcb, cap, H, E);
	cuda__gelu_forward(hg, h, nh);
	const void *g = operand(hg, nh, CUDA__SCR_A, d.bf16);
	const void *w2 = operand(projw, nw, CUDA__SCR_B, d.bf16);
	if (!g || !w2)
		return;
	/* y_e (cap,C) = hg_e (cap,H) @ projw_e (C,H)^T + projb_e */
	cuda__gemm(0, 1, cap, C, H, 1.0f, g, H, (long long)cap * H, w2, H,
		   (long long)C * H, 0.0f, y, C, (long long)cap * C, E, d.bf16);
	cuda__bias_add(y, projb, cap, C, E);
	combine<<<cuda__grid((size_t)d.N * C, 256), 256>>>(
		out, y, topk_idx, slot, gates, d.N, C, d.k, cap);
	cuda__launched("moe_forward(combine)");
}

/* Through the second expert matmul and the GELU: dy -> dh. */
static void experts_bwd_proj(float *dprojw, float *dprojb, float *dh,
			     float *dhg, const float *dy, const float *h,
			     const float *hg, const float *projw, moe_dims d)
{
	int C = d.C, H = d.H, E = d.E, cap = d.cap;
	size_t nx = (size_t)E * cap * C, nh = (size_t)E * cap * H;
	const void *dyv = operand(dy, nx, CUDA__SCR_A, d.bf16);
	const void *w2 = operand(projw, (size_t)E * C * H, CUDA__SCR_B, d.bf16);
	const void *hgv = operand(hg, nh, CUDA__SCR_C, d.bf16);
	if (!dyv || !w2 || !hgv)
		return;
	/* dhg_e (cap,H) = dy_e (cap,C) @ projw_e (C,H) */
	cuda__gemm(0, 0, cap, H, C, 1.0f, dyv, C, (long long)cap * C, w2, H,
		   (long long)C * H, 0.0f, dhg, H, (long long)cap * H, E,
		   d.bf16);
	/* dprojw_e (C,H) += dy_e^T (C,cap) @ hg_e (cap,H) */
	cuda__gemm(1, 0, C, H, cap, 1.0f, dyv, C, (long long)cap * C, hgv, H,
		   (long long)cap * H, 1.0f, dprojw, H, (long long)C * H, E,
		   d.bf16);
	cuda__bias_grad(dprojb, dy, cap, C, E);
	cudaMemsetAsync(dh, 0, nh * sizeof(float), 0);
	cuda__gelu_backward(dh, h, dhg, nh);
}

/* Through the first expert matmul: dh -> dxin. */
static void experts_bwd_fc(float *dfcw, float *dfcb, float *dxin,
			   const float *dh, const float *xin,
			   const float *fcw, moe_dims d)
{
	int C = d.C, H = d.H, E = d.E, cap = d.cap;
	size_t nx = (size_t)E * cap * C, nh = (size_t)E * cap * H;
	const void *dhv = operand(dh, nh, CUDA__SCR_A, d.bf16);
	const void *w1 = operand(fcw, (size_t)E * H * C, CUDA__SCR_B, d.bf16);
	const void *xv = operand(xin, nx, CUDA__SCR_C, d.bf16);
	if (!dhv || !w1 || !xv)
		return;
	/* dxin_e (cap,C) = dh_e (cap,H) @ fcw_e (H,C) */
	cuda__gemm(0, 0, cap, C, H, 1.0f, dhv, H, (long long)cap * H, w1, C,
		   (long long)H * C, 0.0f, dxin, C, (long long)cap * C, E,
		   d.bf16);
	/* dfcw_e (H,C) += dh_e^T (H,cap) @ xin_e (cap,C) */
	cuda__gemm(1, 0, H, C, cap, 1.0f, dhv, H, (long long)cap * H, xv, C,
		   (long long)cap * C, 1.0f, dfcw, C, (long long)H * C, E,
		   d.bf16);
	cuda__bias_grad(dfcb, dh, cap, H, E);
}

static void moe_bwd(float *dinp, float *dgates, float *dfcw, float *dfcb,
		    float *dprojw, float *dprojb, float *dxin, float *dh,
		    float *dhg, float *dy, const float *dout, const float *xin,
		    const float *h, const float *hg, const float *y,
		    const int *topk_idx, const int *slot, const float *gates,
		    const float *fcw, const float *projw, moe_dims d)
{
	size_t nx = (size_t)d.E * d.cap * d.C;
	cudaMemsetAsync(dy, 0, nx * sizeof(float), 0);
	combine_bwd<<<cuda__grid((size_t)d.N * d.k, WARPS), 32 * WARPS>>>(
		dgates, dy, dout, y, topk_idx, slot, gates, d.N, d.C, d.k,
		d.cap);
	cuda__launched("moe_backward(combine)");
	experts_bwd_proj(dprojw, dprojb, dh, dhg, dy, h, hg, projw, d);
	experts_bwd_fc(dfcw, dfcb, dxin, dh, xin, fcw, d);
	scatter<<<cuda__grid((size_t)d.N * d.C, 256), 256>>>(
		dinp, dxin, topk_idx, slot, d.N, d.C, d.k, d.cap);
	cuda__launched("moe_backward(scatter)");
}

void cuda_moe_forward(float *out, float *xin, float *h, float *hg, float *y,
		      const float *inp, const int *topk_idx, const int *slot,
		      const float *gates, const int *slot_token,
		      const int *expert_count, const float *fcw,
		      const float *fcb, const float *projw, const float *projb,
		      int N, int C, int H, int E, int k, int cap)
{
	moe_dims d = { N, C, H, E, k, cap, 0 };
	if (N > 0 && cap > 0)
		moe_fwd(out, xin, h, hg, y, inp, topk_idx, slot, gates,
			slot_token, expert_count, fcw, fcb, projw, projb, d);
}

void cuda_moe_forward_bf16(float *out, float *xin, float *h, float *hg,
			   float *y, const float *inp, const int *topk_idx,
			   const int *slot, const float *gates,
			   const int *slot_token, const int *expert_count,
			   const float *fcw, const float *fcb,
			   const float *projw, const float *projb, int N,
			   int C, int H, int E, int k, int cap)
{
	moe_dims d = { N, C, H, E, k, cap, 1 };
	if (N > 0 && cap > 0)
		moe_fwd(out, xin, h, hg, y, inp, topk_idx, slot, gates,
			slot_token, expert_count, fcw, fcb, projw, projb, d);
}

void cuda_moe_backward(float *dinp, float *dgates, float *dfcw, float *dfcb,
		       float *dprojw, float *dprojb, float *dxin, float *dh,
		       float *dhg, float *dy, const float *dout,
		       const float *xin, const float *h, const float *hg,
		       const float *y, const int *topk_idx, const int *slot,
		       const float *gates, const int *expert_count,
		       const float *fcw, const float *projw, int N, int C,
		       int H, int E, int k, int cap)
{
	(void)expert_count; /* rows past the count carry zeros, see above */
	moe_dims d = { N, C, H, E, k, cap, 0 };
	if (N > 0 && cap > 0)
		moe_bwd(dinp, dgates, dfcw, dfcb, dprojw, dprojb, dxin, dh,
			dhg, dy, dout, xin, h, hg, y, topk_idx, slot, gates,
			fcw, projw, d);
}

void cuda_moe_backward_bf16(float *dinp, float *dgates, float *dfcw,
			    float *dfcb, float *dprojw, float *dprojb,
			    float *dxin, float *dh, float *dhg, float *dy,
			    const float *dout, const float *xin,
			    const float *h, const float *hg, const float *y,
			    const int *topk_idx, const int *slot,
			    const float *gates, const int *expert_count,
			    const float *fcw, const float *projw, int N,
			    int C, int H, int E, int k, int cap)
{
	(void)expert_count;
	moe_dims d = { N, C, H, E, k, cap, 1 };
	if (N > 0 && cap > 0)
		moe_bwd(dinp, dgates, dfcw, dfcb, dprojw, dprojb, dxin, dh,
			dhg, dy, dout, xin, h, hg, y, topk_idx, slot, gates,
			fcw, projw, d);
}
