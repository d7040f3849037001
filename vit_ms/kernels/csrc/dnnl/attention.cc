// Multi-head self-attention softmax(q @ k.T * scale) @ v and its backward pass, float32, as MindSpore CPU custom
// operators (ops.Custom with func_type="aot"; built by vit_ms/kernels/native.py and linked against the oneDNN library
// that MindSpore ships). The (image, head) pairs are split over the cores; each is computed with oneDNN's
// single-threaded sgemm, reading q, k and v where the qkv layer wrote them and writing the output where the
// projection reads it. MindSpore's path transposes qkv into heads and the output back, and runs BatchMatMul, Softmax
// and their gradients as separate kernels (figures: docs/performance.md).
//
// AttentionForward:  qkv [B, T, 3, H, d]                                   -> out [B, T, H, d], probs [B, H, T, T]
// AttentionBackward: qkv [B, T, 3, H, d], probs [B, H, T, T], dout [B, T, H, d] -> dqkv [B, T, 3, H, d]
// scale = 1 / sqrt(d). probs (the softmax) is kept by the forward pass for the backward pass.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../parallel.h"
#include "../vector_math.h"

// oneDNN's C API (include/oneapi/dnnl/dnnl.h, the same in oneDNN 2 and 3): row-major C = alpha op(A) op(B) + beta C,
// op(X) = X or X.T (trans 'N' or 'T'), lda, ldb, ldc the distance between rows; 0 on success. MindSpore's oneDNN is
// built for the threadpool runtime, where this call runs on the calling thread.
extern "C" int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                          int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

namespace {

const auto Sgemm = dnnl_sgemm;

struct Shape {
  int64_t batch, tokens, heads, dim;  // B, T, H, d
  explicit Shape(const int64_t *qkv) : batch(qkv[0]), tokens(qkv[1]), heads(qkv[3]), dim(qkv[4]) {}
  int64_t row() const { return heads * dim; }                    // D: one token's output, one of q, k, v
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(dim)); }
  // offsets of head h of image b: its q in qkv (k and v follow at + D and + 2D, rows 3D apart), its output rows
  // (D apart), its T x T probabilities
  int64_t qkv_at(int64_t b, int64_t h) const { return b * tokens * 3 * row() + h * dim; }
  int64_t out_at(int64_t b, int64_t h) const { return b * tokens * row() + h * dim; }
  int64_t probs_at(int64_t b, int64_t h) const { return (b * heads + h) * tokens * tokens; }
};

// each row of s [rows, n] replaced by its softmax
VECTOR_CLONES void SoftmaxRows(float *s, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float *row = s + r * n;
    float top = row[0];
    for (int64_t j = 1; j < n; ++j) top = row[j] > top ? row[j] : top;
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      row[j] = vit_ms::ExpNonPositive(row[j] - top);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  }
}

// dS = P * (dP - rowsum(dP * P)) in place of dP: the softmax's backward pass
VECTOR_CLONES void SoftmaxBackwardRows(const float *p, float *dp, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *pr = p + r * n;
    float *dr = dp + r * n;
    float dot = 0.0f;
    for (int64_t j = 0; j < n; ++j) dot += pr[j] * dr[j];
    for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - dot);
  }
}

// fn(b, h) for every image and head, split over the cores
template <typename Body>
void ForEachHead(const Shape &s, Body fn) {
  vit_ms::ParallelFor(s.batch * s.heads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i / s.heads, i % s.heads);
  }, 1);
}

}  // namespace

extern "C" int AttentionForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *,
                                void *) {
  if (nparam != 3 || ndims[0] != 5 || shapes[0][2] != 3) return 1;
  const Shape s(shapes[0]);
  const float *qkv = static_cast<const float *>(params[0]);
  float *out = static_cast<float *>(params[1]);
  float *probs = static_cast<float *>(params[2]);
  const int64_t t = s.tokens, d = s.dim, ld = 3 * s.row();
  std::atomic<int> status{0};
  ForEachHead(s, [&](int64_t b, int64_t h) {
    const float *q = qkv + s.qkv_at(b, h), *k = q + s.row(), *v = k + s.row();
    float *p = probs + s.probs_at(b, h);
    int failed = Sgemm('N', 'T', t, t, d, s.scale(), q, ld, k, ld, 0.0f, p, t);   // scores = q @ k.T * scale
    SoftmaxRows(p, t, t);
    failed |= Sgemm('N', 'N', t, d, t, 1.0f, p, t, v, ld, 0.0f, out + s.out_at(b, h), s.row());  // probs @ v
    if (failed) status = failed;
  });
  return status.load();
}

extern "C" int AttentionBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **, void *,
                                 void *) {
  if (nparam != 4 || ndims[0] != 5 || shapes[0][2] != 3) return 1;
  const Shape s(shapes[0]);
  const float *qkv = static_cast<const float *>(params[0]);
  const float *probs = static_cast<const float *>(params[1]);
  const float *dout = static_cast<const float *>(params[2]);
  float *dqkv = static_cast<float *>(params[3]);
  const int64_t t = s.tokens, d = s.dim, ld = 3 * s.row();
  std::atomic<int> status{0};
  ForEachHead(s, [&](int64_t b, int64_t h) {
    thread_local std::vector<float> scratch;
    scratch.resize(t * t);
    float *ds = scratch.data();
    const float *q = qkv + s.qkv_at(b, h), *k = q + s.row(), *v = k + s.row();
    const float *p = probs + s.probs_at(b, h), *dy = dout + s.out_at(b, h);
    float *dq = dqkv + s.qkv_at(b, h), *dk = dq + s.row(), *dv = dk + s.row();
    int failed = Sgemm('T', 'N', t, d, t, 1.0f, p, t, dy, s.row(), 0.0f, dv, ld);      // dv = probs.T @ dout
    failed |= Sgemm('N', 'T', t, t, d, 1.0f, dy, s.row(), v, ld, 0.0f, ds, t);         // dprobs = dout @ v.T
    SoftmaxBackwardRows(p, ds, t, t);                                                   // dscores
    failed |= Sgemm('N', 'N', t, d, t, s.scale(), ds, t, k, ld, 0.0f, dq, ld);         // dq = dscores @ k * scale
    failed |= Sgemm('T', 'N', t, d, t, s.scale(), ds, t, q, ld, 0.0f, dk, ld);         // dk = dscores.T @ q * scale
    if (failed) status = failed;
  });
  return status.load();
}
