// Exact GELU, y = x * Phi(x) with Phi the standard normal CDF, float32, as MindSpore CPU custom operators
// (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py).
//
// GeluForward:  x -> (y = x * Phi(x), Phi(x))          Phi(x) is kept for the backward pass: erf is the costly part
// GeluBackward: x, Phi(x), dy -> dx = dy * (Phi(x) + x * phi(x)),  phi the standard normal density
// MindSpore 2.10 evaluates erf on one CPU core and differentiates the formula through Pow, Exp and several
// element-wise products; here each pass is one loop, split over the cores.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

template <typename Body>
void ParallelFor(int64_t n, Body body) {
  constexpr int64_t kMinPerThread = 1 << 16;  // small tensors: thread start-up would cost more than it saves
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::max<int64_t>(1, std::min(cores, n / kMinPerThread));
  const int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (int64_t t = 1; t < threads; ++t) {
    workers.emplace_back(body, t * chunk, std::min(n, (t + 1) * chunk));
  }
  body(0, std::min(n, chunk));
  for (auto &w : workers) w.join();
}

int64_t Elements(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

}  // namespace

extern "C" int GeluForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  if (nparam != 3) return 1;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  float *cdf = static_cast<float *>(params[2]);
  ParallelFor(Elements(ndims[0], shapes[0]), [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      cdf[i] = 0.5f + 0.5f * std::erf(x[i] * kSqrtHalf);
      y[i] = x[i] * cdf[i];
    }
  });
  return 0;
}

extern "C" int GeluBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  if (nparam != 4) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *cdf = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  ParallelFor(Elements(ndims[0], shapes[0]), [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      dx[i] = dy[i] * (cdf[i] + x[i] * kInvSqrt2Pi * std::exp(-0.5f * x[i] * x[i]));
    }
  });
  return 0;
}
