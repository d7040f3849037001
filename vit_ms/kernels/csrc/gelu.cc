// Exact GELU, y = x * Phi(x) with Phi the standard normal CDF, float32, as MindSpore CPU custom operators
// (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py).
//
// GeluForward:  x -> (y = x * Phi(x), Phi(x))          Phi(x) is kept for the backward pass: erf is the costly part
// GeluBackward: x, Phi(x), dy -> dx = dy * (Phi(x) + x * phi(x)),  phi the standard normal density
// MindSpore 2.10 evaluates erf on one CPU core and differentiates the formula through Pow, Exp and several
// element-wise products; here each pass is one loop, split over the cores.
//
// Phi and exp are written out below as branch-free float code rather than calls to std::erf / std::exp, so that
// g++ vectorizes both loops (libm's functions are scalar calls). They stay within a few float32 roundings of the
// float64 values (tests/test_model.py checks that against math.erfc).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "parallel.h"
#include "vector_math.h"

namespace {

using vit_ms::ExpNonPositive;
using vit_ms::ParallelFor;
using vit_ms::Select;

constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// Phi(x) = base + rest with base in {0, 1/2, 1}, so that x * Phi(x) can be formed as x * base (exact) + x * rest
// without rounding Phi first. Both forms below are computed and one is selected: the loops have no branches.
struct CdfParts {
  float base, rest;
};

inline CdfParts NormalCdf(float x) {
  const float u = x * x;
  // |x| < 1: Phi = 1/2 + x P(x^2), P a minimax polynomial for erf(x / sqrt 2) / (2x)
  const float p = 0.398942292f + u * (-0.066490382f + u * (0.00997355022f + u * (-0.00118728797f +
                  u * (0.000115319315f + u * (-9.27313977e-06f + u * 5.36846017e-07f)))));
  // |x| >= 1: h = Phi(-|x|) = e^(-x^2/2) t Q(t), t = 1 / (1 + 0.4 |x|): the form of Abramowitz-Stegun 7.1.26,
  // with Q a minimax polynomial of higher degree, fitted for |x| in [1, 14] (ExpNonPositive gives 0 beyond 13.3).
  // Phi = 1 - h for x > 0, h for x < 0.
  const float t = 1.0f / (1.0f + 0.4f * std::abs(x));
  const float tq = t * (0.159578085f + t * (0.159556881f + t * (0.134096235f + t * (0.0841912404f +
                   t * (0.0056109135f + t * (0.0262483526f + t * (-0.203962564f + t * (0.191629052f +
                   t * -0.0570771433f))))))));
  const float h = ExpNonPositive(-0.5f * u) * tq;
  const bool small = std::abs(x) < 1.0f, positive = x > 0.0f;
  return {Select(small, 0.5f, Select(positive, 1.0f, 0.0f)), Select(small, x * p, Select(positive, -h, h))};
}

// x clamped where the factor it multiplies is 0 anyway (base for x < -1, rest and phi(x) for |x| > 13.3): an
// infinite x then gives 0 rather than inf * 0 = NaN, a finite x the same values.
inline float ClampBoth(float x) { return Select(x < -20.0f, -20.0f, Select(x > 20.0f, 20.0f, x)); }

VECTOR_CLONES void GeluForwardRange(const float *x, float *y, float *cdf, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float xc = ClampBoth(x[i]);
    const CdfParts phi = NormalCdf(xc);
    cdf[i] = phi.base + phi.rest;
    y[i] = Select(x[i] < -20.0f, -20.0f, x[i]) * phi.base + xc * phi.rest;
  }
}

VECTOR_CLONES void GeluBackwardRange(const float *x, const float *cdf, const float *dy, float *dx, int64_t begin,
                                     int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float xc = ClampBoth(x[i]);
    dx[i] = dy[i] * (cdf[i] + xc * kInvSqrt2Pi * ExpNonPositive(-0.5f * xc * xc));
  }
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
  ParallelFor(Elements(ndims[0], shapes[0]),
              [=](int64_t begin, int64_t end) { GeluForwardRange(x, y, cdf, begin, end); });
  return 0;
}

extern "C" int GeluBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  if (nparam != 4) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *cdf = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  ParallelFor(Elements(ndims[0], shapes[0]),
              [=](int64_t begin, int64_t end) { GeluBackwardRange(x, cdf, dy, dx, begin, end); });
  return 0;
}
