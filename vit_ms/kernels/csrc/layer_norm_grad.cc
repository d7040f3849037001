// Backward pass of LayerNorm over the last axis, float32, as a MindSpore CPU custom operator
// (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py).
//
// inputs:  x [rows, d], dy [rows, d], mean [rows], rstd [rows] (1 / sqrt(var + eps)), gamma [d]
// outputs: dx [rows, d], dgamma [d], dbeta [d]
//   xhat = (x - mean) * rstd,  g = dy * gamma
//   dx = (g - mean_j(g) - xhat * mean_j(g * xhat)) * rstd,  dgamma = sum_rows(dy * xhat),  dbeta = sum_rows(dy)
// One pass over each row for the row sums and the column sums, one for dx: MindSpore 2.10's CPU LayerNormGrad
// kernel reads the data many more times (figures: docs/performance.md).
#include <cstdint>

extern "C" int LayerNormGrad(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  (void)dtypes;
  (void)stream;
  (void)extra;
  if (nparam != 8) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  const float *mean = static_cast<const float *>(params[2]);
  const float *rstd = static_cast<const float *>(params[3]);
  const float *gamma = static_cast<const float *>(params[4]);
  float *dx = static_cast<float *>(params[5]);
  float *dgamma = static_cast<float *>(params[6]);
  float *dbeta = static_cast<float *>(params[7]);
  const int64_t d = shapes[0][ndims[0] - 1];
  int64_t rows = 1;
  for (int i = 0; i < ndims[0] - 1; ++i) rows *= shapes[0][i];

  for (int64_t j = 0; j < d; ++j) dgamma[j] = dbeta[j] = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * d, *dyr = dy + r * d;
    const float m = mean[r], s = rstd[r];
    float sum_g = 0.0f, sum_gxhat = 0.0f;
    for (int64_t j = 0; j < d; ++j) {
      const float xhat = (xr[j] - m) * s, g = dyr[j] * gamma[j];
      sum_g += g;
      sum_gxhat += g * xhat;
      dgamma[j] += dyr[j] * xhat;
      dbeta[j] += dyr[j];
    }
    const float mean_g = sum_g / d, mean_gxhat = sum_gxhat / d;
    float *dxr = dx + r * d;
    for (int64_t j = 0; j < d; ++j) {
      const float xhat = (xr[j] - m) * s;
      dxr[j] = (dyr[j] * gamma[j] - mean_g - xhat * mean_gxhat) * s;
    }
  }
  return 0;
}
