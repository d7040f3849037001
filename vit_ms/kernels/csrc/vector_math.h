// Float helpers shared by the C++ kernels: the CPU-dispatched loop attribute, a branch-free select and e^a for
// a <= 0, written so that g++ vectorizes the loops that use them (libm's expf is a scalar call).
#pragma once
#include <cstdint>
#include <cstring>

// The loops are compiled for AVX-512, AVX2 and baseline x86-64, and the widest one the CPU has is picked at load
// time: the library is built without -march=native, since it is cached and may be used on another machine.
// native.py builds with -ffp-contract=off (no FMA contraction), so every version rounds alike and gives the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)  // clones need ifunc
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

namespace vit_ms {

inline uint32_t BitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float FloatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// c ? a : b on the bits. Both values are computed first: g++ does not vectorize a conditional that would compute
// one of them only on one side (a float operation may raise a floating-point exception, -ftrapping-math).
inline float Select(bool c, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(c);
  return FloatOf((BitsOf(a) & mask) | (BitsOf(b) & ~mask));
}

// e^a for a <= 0 (NaN stays NaN): a = n ln2 + r with n an integer and |r| <= ln2 / 2, e^a = 2^n e^r.
inline float ExpNonPositive(float a) {
  constexpr float kMin = -87.3365448f;            // ln of the smallest normal float; below it the result is 0
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;           // 1.5 * 2^23: adding it rounds to an integer, kept in the low bits
  constexpr float kLn2Hi = 0.693359375f;          // ln 2 in two parts; n * kLn2Hi is exact (kLn2Hi has 9 bits)
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float c = Select(a < kMin, kMin, a);
  const float k = c * kLog2e + kRound;
  const float n = k - kRound;
  const float r = (c - n * kLn2Hi) - n * kLn2Lo;
  // e^r = 1 + r + r^2 q(r), q a minimax polynomial for (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2]
  const float q = 0.49999994f + r * (0.166665211f + r * (0.0416684002f + r * (0.00836872216f + r * 0.00138137839f)));
  const float er = 1.0f + (r + r * r * q);
  const float two_n = FloatOf((BitsOf(k) + 127u) << 23);  // n + 127 in the exponent field: 2^n, n in [-126, 0]
  return Select(a < kMin, 0.0f, er * two_n);
}

}  // namespace vit_ms
