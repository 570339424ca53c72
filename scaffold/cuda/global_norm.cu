/*
 * global_norm.cu - CUDA twin of global_norm_squared: the sum of squares of
 * all gradients, accumulated in double. A fixed grid of NORM_BLOCKS blocks
 * each reduce a fixed grid-stride subset to one partial, and one block adds
 * the partials in a fixed tree: deterministic, without atomics, on any
 * device. (The partition differs from the twin's 64 chunks, so the result
 * matches it to double rounding, not bit for bit.)
 */
#include "cuda_int.cuh"

#define NORM_BLOCKS 1024
#define NORM_THREADS 256

__global__ static void norm_part(double *part, const float *x, size_t n)
{
	double s = 0.0;
	size_t stride = (size_t)NORM_BLOCKS * NORM_THREADS;
	for (size_t i = (size_t)blockIdx.x * NORM_THREADS + threadIdx.x; i < n;
	     i += stride)
		s += (double)x[i] * x[i];
	s = cuda__block_sum(s);
	if (threadIdx.x == 0)
		part[blockIdx.x] = s;
}

__global__ static void norm_final(float *out, const double *part)
{
	double s = 0.0;
	for (int i = threadIdx.x; i < NORM_BLOCKS; i += blockDim.x)
		s += part[i];
	s = cuda__block_sum(s);
	if (threadIdx.x == 0)
		out[0] = (float)s;
}

void cuda_global_norm_squared(float *out, const float *values, size_t count)
{
	double *part = (double *)cuda__scratch(CUDA__SCR_RED,
					       NORM_BLOCKS * sizeof(double));
	if (!part)
		return;
	norm_part<<<NORM_BLOCKS, NORM_THREADS>>>(part, values, count);
	cuda__launched("global_norm_squared");
	norm_final<<<1, NORM_THREADS>>>(out, part);
	cuda__launched("global_norm_squared");
}
