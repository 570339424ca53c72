/*
 * encoder.cu - CUDA twins of encoder_forward / encoder_backward (token +
 * position embeddings).
 *
 * The backward must add every position's gradient into its token's wte row.
 * Atomics would make the sum order (and so the bits) vary run to run, so
 * the positions are grouped by token on the host (the ids are B*T ints, a
 * small copy) and one block per distinct token adds its rows in position
 * order: the same order, and so the same bits, as the CPU twin.
 */
#include "cuda_int.cuh"

#include <stdlib.h>
#include <string.h>

__global__ static void encoder_fwd(float *out, const int *inp,
				   const float *wte, const float *wpe, int N,
				   int T, int C)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)N * C)
		return;
	int n = (int)(i / C), c = (int)(i % C), t = n % T;
	out[i] = wte[(size_t)inp[n] * C + c] + wpe[(size_t)t * C + c];
}

void cuda_encoder_forward(float *out, const int *inp, const float *wte,
			  const float *wpe, int B, int T, int C)
{
	size_t n = (size_t)B * T * C;
	if (n == 0)
		return;
	encoder_fwd<<<cuda__grid(n, 256), 256>>>(out, inp, wte, wpe, B * T, T,
						 C);
	cuda__launched("encoder_forward");
}

/* dwpe[t, c] += sum over b of dout[b, t, c], b ascending. */
__global__ static void encoder_bwd_wpe(float *dwpe, const float *dout, int B,
				       int T, int C)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (size_t)T * C)
		return;
	float acc = dwpe[i];
	for (int b = 0; b < B; b++)
		acc += dout[(size_t)b * T * C + i];
	dwpe[i] = acc;
}

/* Block u owns distinct token seg_tok[u]; its positions are
 * order[seg[u] .. seg[u+1]), ascending. */
__global__ static void encoder_bwd_wte(float *dwte, const float *dout,
				       const int *order, const int *seg,
				       const int *seg_tok, int C)
{
	int u = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	float *row = dwte + (size_t)seg_tok[u] * C;
	float acc = row[c];
	for (int j = seg[u]; j < seg[u + 1]; j++)
		acc += dout[(size_t)order[j] * C + c];
	row[c] = acc;
}

/* Groups positions by token: idx = order (N) | seg (U+1) | seg_tok (U).
 * Returns U, or -1 (failure recorded) on a negative id or no memory. */
static int group_by_token(int *idx, const int *ids, int N)
{
	int maxtok = 0, u = 0;
	for (int n = 0; n < N; n++) {
		if (ids[n] < 0) {
			cuda__fail("encoder_backward: token %d at %d", ids[n],
				   n);
			return -1;
		}
		maxtok = ids[n] > maxtok ? ids[n] : maxtok;
	}
	int *start = (int *)calloc((size_t)maxtok + 2, sizeof(int));
	if (!start) {
		cuda__fail("encoder_backward: out of host memory");
		return -1;
	}
	for (int n = 0; n < N; n++) /* counting sort, stable */
		start[ids[n] + 1]++;
	for (int v = 0; v <= maxtok; v++) {
		if (start[v + 1] > 0)
			u++;
		start[v + 1] += start[v];
	}
	int *order = idx, *seg = idx + N, *seg_tok = idx + N + u + 1, s = 0;
	for (int v = 0; v <= maxtok; v++)
		if (start[v + 1] > start[v]) {
			seg[s] = start[v];
			seg_tok[s++] = v;
		}
	seg[u] = N;
	for (int n = 0; n < N; n++)
		order[start[ids[n]]++] = n;
	free(start);
	return u;
}

void cuda_encoder_backward(float *dwte, float *dwpe, const float *dout,
			   const int *inp, int B, int T, int C)
{
	int N = B * T;
	if (N <= 0 || C <= 0)
		return;
	encoder_bwd_wpe<<<cuda__grid((size_t)T * C, 256), 256>>>(dwpe, dout,
								  B, T, C);
	cuda__launched("encoder_backward(wpe)");
	/* ids (N) then order (N), seg (<= N+1), seg_tok (<= N) */
	int *host = (int *)malloc(sizeof(int) * (4 * (size_t)N + 1));
	int *dev = (int *)cuda__scratch(CUDA__SCR_IDX,
					sizeof(int) * (3 * (size_t)N + 1));
	if (!host || !dev) {
		if (!host)
			cuda__fail("encoder_backward: out of host memory");
		free(host);
		return;
	}
	cudaError_t e = cudaMemcpy(host, inp, sizeof(int) * N,
				   cudaMemcpyDeviceToHost);
	int u = e == cudaSuccess ? group_by_token(host + N, host, N) : -1;
	if (e != cudaSuccess)
		cuda__fail("encoder_backward: %s", cudaGetErrorString(e));
	if (u > 0)
		e = cudaMemcpy(dev, host + N, sizeof(int) * ((size_t)N +
			       2 * (size_t)u + 1), cudaMemcpyHostToDevice);
	free(host);
	if (e != cudaSuccess)
		cuda__fail("encoder_backward: %s", cudaGetErrorString(e));
	if (u <= 0 || e != cudaSuccess)
		return;
	dim3 grid(u, (C + 127) / 128);
	encoder_bwd_wte<<<grid, 128>>>(dwte, dout, dev, dev + N, dev + N + u + 1,
				       C);
	cuda__launched("encoder_backward(wte)");
}
