// Forward pass of LayerNorm over the last axis, float32, as a MindSpore CPU custom operator
// (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py).
//
// inputs:  x [rows, d], gamma [d], beta [d], epsilon [1]
// outputs: y [rows, d], mean [rows], rstd [rows] (1 / sqrt(var + eps), what layer_norm_grad.cc takes)
//   y = (x - mean) * rstd * gamma + beta, with the mean and the (biased) variance of each row
// Two passes over each row (mean, then the squared deviations: no cancellation for off-centre rows) and one for y,
// rows split over the cores: MindSpore 2.10's CPU LayerNorm kernel takes several times longer (docs/performance.md).
#include <cmath>
#include <cstdint>

#include "parallel.h"
#include "vector_math.h"

namespace {

VECTOR_CLONES void NormalizeRows(const float *x, const float *gamma, const float *beta, float eps, int64_t d,
                                 float *y, float *mean, float *rstd, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const float *xr = x + r * d;
    float sum = 0.0f;
    for (int64_t j = 0; j < d; ++j) sum += xr[j];
    const float m = sum / d;
    float squares = 0.0f;
    for (int64_t j = 0; j < d; ++j) squares += (xr[j] - m) * (xr[j] - m);
    const float s = 1.0f / std::sqrt(squares / d + eps);
    float *yr = y + r * d;
    for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * s * gamma[j] + beta[j];
    mean[r] = m;
    rstd[r] = s;
  }
}

}  // namespace

extern "C" int LayerNormForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *,
                                void *) {
  if (nparam != 7) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]);
  const float *beta = static_cast<const float *>(params[2]);
  const float eps = *static_cast<const float *>(params[3]);
  float *y = static_cast<float *>(params[4]);
  float *mean = static_cast<float *>(params[5]);
  float *rstd = static_cast<float *>(params[6]);
  const int64_t d = shapes[0][ndims[0] - 1];
  int64_t rows = 1;
  for (int i = 0; i < ndims[0] - 1; ++i) rows *= shapes[0][i];
  vit_ms::ParallelFor(rows, [=](int64_t begin, int64_t end) {
    NormalizeRows(x, gamma, beta, eps, d, y, mean, rstd, begin, end);
  }, 64);
  return 0;
}
