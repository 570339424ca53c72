/*
 * adamw.cu - CUDA twin of adamw_update: the elementwise AdamW step with
 * decoupled weight decay. The bias corrections are computed on the host
 * with the CPU twin's own expressions, so both use the same constants.
 */
#include "cuda_int.cuh"

__global__ static void adamw_kernel(float *params, const float *grads,
				    float *m, float *v, size_t n, float lr,
				    float beta1, float beta2, float eps,
				    float weight_decay, float c1, float c2)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n)
		return;
	float g = grads[i];
	float mi = beta1 * m[i] + (1.0f - beta1) * g;
	float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
	m[i] = mi;
	v[i] = vi;
	float mhat = mi / c1, vhat = vi / c2;
	params[i] -= lr * (mhat / (sqrtf(vhat) + eps) +
			   weight_decay * params[i]);
}

void cuda_adamw_update(float *params, const float *grads, float *m, float *v,
		       size_t n, float lr, float beta1, float beta2, float eps,
		       float weight_decay, int t)
{
	if (n == 0)
		return;
	float c1 = 1.0f - powf(beta1, (float)t);
	float c2 = 1.0f - powf(beta2, (float)t);
	adamw_kernel<<<cuda__grid(n, 256), 256>>>(params, grads, m, v, n, lr,
						  beta1, beta2, eps,
						  weight_decay, c1, c2);
	cuda__launched("adamw_update");
}
