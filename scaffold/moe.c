/*
 * moe.c - the Mixture-of-Experts kernels of the CPU reference trainer: the
 * router (softmax, top-k, capacity, load-balancing and z losses) and the
 * experts (dispatch, per-expert GPT-2 MLP, gate-weighted combine). The
 * contract of each function is in layers.h.
 *
 * Capacity assignment is a sequential scan in a fixed order (first choices
 * in token order, then second choices), which is what makes routing
 * deterministic; everything else is parallel over tokens or per expert.
 */
#include "layers.h"
#include "model_omp.h"

#include <math.h>
#include <string.h>


int moe_capacity(float capacity_factor, int N, int E, int k)
{
	if (capacity_factor <= 0.0f)
		return N;
	double want = ceil((double)capacity_factor * N * k / E);
	if (want < 1.0)
		return 1;
	return want > N ? N : (int)want;
}

/* ---- router -------------------------------------------------------------- */

/* Softmax, logsumexp and top-k of one token's router logits. */
static void router_token(float *p, float *lse, int *idx, float *gate,
			 const float *l, int E, int k)
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
	/* strict > keeps the lower id on ties */
	int best = 0;
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

/* Fills slots choice by choice; returns the number of dropped assignments.
 * frac collects the pre-capacity choice counts, normalised here. */
static int router_assign(int *slot, int *slot_token, int *expert_count,
			 float *frac, const int *topk_idx, int N, int E, int k,
			 int cap)
{
	int dropped = 0;
	for (int e = 0; e < E; e++) {
		expert_count[e] = 0;
		frac[e] = 0.0f;
	}
	for (size_t i = 0; i < (size_t)E * cap; i++)
		slot_token[i] = -1;
	for (int i = 0; i < k; i++)
		for (int n = 0; n < N; n++) {
			int e = topk_idx[n * k + i];
			frac[e] += 1.0f;
			if (expert_count[e] < cap) {
				slot[n * k + i] = expert_count[e];
				slot_token[(size_t)e * cap + expert_count[e]] = n;
				expert_count[e]++;
			} else {
				slot[n * k + i] = -1;
				dropped++;
			}
		}
	for (int e = 0; e < E; e++)
		frac[e] /= (float)N * k;
	return dropped;
}

void router_forward(float *probs, float *lse, int *topk_idx, float *gates,
		    int *slot, int *slot_token, int *expert_count, float *frac,
		    float *aux_loss, float *z_loss, int *dropped,
		    const float *logits, int N, int E, int k, int cap)
{
	OMP(parallel for schedule(static) if(PAR((double)N * E * 4)))
	for (int n = 0; n < N; n++)
		router_token(probs + (size_t)n * E, lse + n, topk_idx + n * k,
			     gates + n * k, logits + (size_t)n * E, E, k);
	dropped[0] = router_assign(slot, slot_token, expert_count, frac,
				   topk_idx, N, E, k, cap);
	/* Serial, fixed-order sums: N*E is small next to the matmuls. */
	double aux = 0.0, z = 0.0;
	for (int e = 0; e < E; e++) {
		double pe = 0.0;
		for (int n = 0; n < N; n++)
			pe += probs[(size_t)n * E + e];
		aux += frac[e] * (pe / N);
	}
	for (int n = 0; n < N; n++)
		z += (double)lse[n] * lse[n];
	aux_loss[0] = (float)(aux * E);
	z_loss[0] = (float)(z / N);
}

void router_backward(float *dlogits, const float *dgates, const float *probs,
		     const float *lse, const int *topk_idx, const float *frac,
		     float aux_coef, float z_coef, int N, int E, int k)
{
	OMP(parallel for schedule(static) if(PAR((double)N * E * 4)))
	for (int n = 0; n < N; n++) {
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
			float cross = (dg[0] * p[idx[0]] + dg[1] * p[idx[1]]) /
				      (s * s);
			dp[idx[0]] += dg[0] / s - cross;
			dp[idx[1]] += dg[1] / s - cross;
		}
		/* through the softmax */
		float dot = 0.0f;
		for (int e = 0; e < E; e++)
			dot += p[e] * dp[e];
		/* z = mean_n lse_n^2; d lse / d logit = p */
		float zg = z_coef * 2.0f * lse[n] / N;
		float *dl = dlogits + (size_t)n * E;
		for (int e = 0; e < E; e++)
			dl[e] += p[e] * (dp[e] - dot) + zg * p[e];
	}
}

/* ---- experts ------------------------------------------------------------- */

void moe_forward(float *out, float *xin, float *h, float *hg, float *y,
		 const float *inp, const int *topk_idx, const int *slot,
		 const float *gates, const int *slot_token,
		 const int *expert_count, const float *fcw, const float *fcb,
		 const float *projw, const float *projb,
		 int N, int C, int H, int E, int k, int cap)
{
	/* dispatch: gather each expert's tokens into its buffer */
	OMP(parallel for schedule(static) if(PAR((double)N * k * C)))
	for (int e = 0; e < E; e++)
		for (int s = 0; s < expert_count[e]; s++)
			memcpy(xin + ((size_t)e * cap + s) * C,
			       inp + (size_t)slot_token[(size_t)e * cap + s] * C,
			       (size_t)C * sizeof(float));
	/* each expert's MLP on its filled rows, one expert per thread: the
	 * kernels called inside run on that thread alone (nested regions are
	 * serial), so an expert's result does not depend on who ran it */
	OMP(parallel for schedule(dynamic, 1) if(PAR((double)N * k * C * H)))
	for (int e = 0; e < E; e++) {
		int cnt = expert_count[e];
		if (cnt == 0)
			continue;
		size_t hoff = (size_t)e * cap * H, coff = (size_t)e * cap * C;
		matmul_forward(h + hoff, xin + coff, fcw + (size_t)e * H * C,
			       fcb + (size_t)e * H, cnt, C, H);
		gelu_forward(hg + hoff, h + hoff, cnt * H);
		matmul_forward(y + coff, hg + hoff, projw + (size_t)e * C * H,
			       projb + (size_t)e * C, cnt, H, C);
	}
	/* combine: gate-weighted sum of the kept assignments, in choice order */
	OMP(parallel for schedule(static) if(PAR((double)N * k * C)))
	for (int n = 0; n < N; n++) {
		float *o = out + (size_t)n * C;
		memset(o, 0, (size_t)C * sizeof(float));
		for (int i = 0; i < k; i++) {
			int s = slot[n * k + i];
			if (s < 0)
				continue;
			const float *ye = y + ((size_t)topk_idx[n * k + i] * cap + s) * C;
			float g = gates[n * k + i];
			OMP(simd)
			for (int c = 0; c < C; c++)
				o[c] += g * ye[c];
		}
	}
}

/* dgates and the gate-scaled dy rows, per token. */
static void moe_combine_backward(float *dgates, float *dy, const float *dout,
				 const float *y, const int *topk_idx,
				 const int *slot, const float *gates, int N,
				 int C, int k, int cap)
{
	OMP(parallel for schedule(static) if(PAR((double)N * k * C)))
	for (int n = 0; n < N; n++) {
		const float *d = dout + (size_t)n * C;
		for (int i = 0; i < k; i++) {
			int s = slot[n * k + i];
			if (s < 0)
				continue;
			size_t row = ((size_t)topk_idx[n * k + i] * cap + s) * C;
			float g = gates[n * k + i], dot = 0.0f;
			OMP(simd reduction(+ : dot))
			for (int c = 0; c < C; c++) {
				dot += d[c] * y[row + c];
				dy[row + c] = g * d[c];
			}
			dgates[n * k + i] += dot;
		}
	}
}

void moe_backward(float *dinp, float *dgates, float *dfcw, float *dfcb,
		  float *dprojw, float *dprojb, float *dxin, float *dh,
		  float *dhg, float *dy, const float *dout, const float *xin,
		  const float *h, const float *hg, const float *y,
		  const int *topk_idx, const int *slot, const float *gates,
		  const int *expert_count, const float *fcw,
		  const float *projw, int N, int C, int H, int E, int k,
		  int cap)
{
	moe_combine_backward(dgates, dy, dout, y, topk_idx, slot, gates, N, C,
			     k, cap);
	OMP(parallel for schedule(dynamic, 1) if(PAR((double)N * k * C * H)))
	for (int e = 0; e < E; e++) {
		int cnt = expert_count[e];
		if (cnt == 0)
			continue;
		size_t hoff = (size_t)e * cap * H, coff = (size_t)e * cap * C;
		memset(dhg + hoff, 0, (size_t)cnt * H * sizeof(float));
		memset(dh + hoff, 0, (size_t)cnt * H * sizeof(float));
		memset(dxin + coff, 0, (size_t)cnt * C * sizeof(float));
		matmul_backward(dhg + hoff, dprojw + (size_t)e * C * H,
				dprojb + (size_t)e * C, dy + coff, hg + hoff,
				projw + (size_t)e * C * H, cnt, H, C);
		gelu_backward(dh + hoff, h + hoff, dhg + hoff, cnt * H);
		matmul_backward(dxin + coff, dfcw + (size_t)e * H * C,
				dfcb + (size_t)e * H, dh + hoff,
				xin + coff, fcw + (size_t)e * H * C, cnt, C, H);
	}
	/* scatter back to the tokens, in choice order */
	OMP(parallel for schedule(static) if(PAR((double)N * k * C)))
	for (int n = 0; n < N; n++) {
		float *di = dinp + (size_t)n * C;
		for (int i = 0; i < k; i++) {
			int s = slot[n * k + i];
			if (s < 0)
				continue;
			const float *dx = dxin +
				((size_t)topk_idx[n * k + i] * cap + s) * C;
			OMP(simd)
			for (int c = 0; c < C; c++)
				di[c] += dx[c];
		}
	}
}
