// AdamW's update of one parameter and the sum of squares that gradient clipping needs, float32, as MindSpore CPU
// custom operators (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py; used by vit_ms/optim.py).
//
// AdamWUpdate: param, m, v, grad, step [7], own [2] -> placeholder [1]; param, m and v are updated in place
//   step = (lr, beta1, beta2, eps, 1 - beta1^t, 1 - beta2^t, grad scale), own = (lr multiplier, weight decay)
//   g = grad * scale;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   param = param (1 - lr' wd) - lr' / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps),  lr' = lr * multiplier
//   PyTorch's AdamW (decoupled weight decay from the weights before the step), with the clipping factor applied
//   as the gradient is read. MindSpore's kernels need three passes for this (the gradient's scaling, the decay,
//   Adam); this is one, split over the cores.
// SumOfSquares: x -> [1] the sum of x^2, accumulated in double in fixed blocks (the same result on any core count).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "parallel.h"
#include "vector_math.h"

namespace {

using vit_ms::ParallelFor;

constexpr int64_t kBlock = 1 << 14;  // elements per partial sum

int64_t Elements(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

struct Step {
  float beta1, beta2, eps, scale, decay, step_size, inv_sqrt_bias2;
};

VECTOR_CLONES void Update(const Step &s, float *param, float *m, float *v, const float *grad, int64_t begin,
                          int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = grad[i] * s.scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * (g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * s.decay - s.step_size * mi / (std::sqrt(vi) * s.inv_sqrt_bias2 + s.eps);
  }
}

// 16 running sums, so that the loop vectorizes (one sum would be a chain of dependent additions)
VECTOR_CLONES double BlockSumOfSquares(const float *x, int64_t begin, int64_t end) {
  double lanes[16] = {};
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    for (int k = 0; k < 16; ++k) lanes[k] += static_cast<double>(x[i + k]) * x[i + k];
  }
  double sum = 0.0;
  for (; i < end; ++i) sum += static_cast<double>(x[i]) * x[i];
  for (double lane : lanes) sum += lane;
  return sum;
}

}  // namespace

extern "C" int AdamWUpdate(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  if (nparam != 7) return 1;
  float *param = static_cast<float *>(params[0]);
  float *m = static_cast<float *>(params[1]);
  float *v = static_cast<float *>(params[2]);
  const float *grad = static_cast<const float *>(params[3]);
  const float *h = static_cast<const float *>(params[4]);
  const float *own = static_cast<const float *>(params[5]);
  const float lr = h[0] * own[0];
  const Step s{h[1], h[2], h[3], h[6], 1.0f - lr * own[1], lr / h[4], static_cast<float>(1.0 / std::sqrt(h[5]))};
  ParallelFor(Elements(ndims[0], shapes[0]), [&](int64_t begin, int64_t end) {
    Update(s, param, m, v, grad, begin, end);
  }, 1 << 15);
  *static_cast<float *>(params[6]) = 0.0f;
  return 0;
}

extern "C" int SumOfSquares(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  if (nparam != 2) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const int64_t n = Elements(ndims[0], shapes[0]);
  std::vector<double> partial((n + kBlock - 1) / kBlock);
  ParallelFor(static_cast<int64_t>(partial.size()), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) partial[b] = BlockSumOfSquares(x, b * kBlock, std::min(n, (b + 1) * kBlock));
  }, 2);
  double sum = 0.0;
  for (double p : partial) sum += p;
  *static_cast<float *>(params[1]) = static_cast<float>(sum);
  return 0;
}
