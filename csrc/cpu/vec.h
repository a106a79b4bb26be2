// An fp32 vector as wide as one register of the build's target (GCC vector extension: 16 lanes with AVX-512, 8
// otherwise), a vectorized exp, and the register-blocked C += A * B tile product that both halves of the
// attention kernel (S = Q K^T and O += P V) run on.
#pragma once

#include <cstdint>
#include <cstring>

namespace tokasaurus::cpu {

#ifdef __AVX512F__
constexpr int kLanes = 16;
constexpr int kTileRows = 8;  // 8 x 2 accumulators of the 32 vector registers
#else
constexpr int kLanes = 8;
constexpr int kTileRows = 4;  // 4 x 2 accumulators of the 16 vector registers
#endif
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t vint __attribute__((vector_size(kLanes * sizeof(int32_t))));

inline vfloat vload(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }
inline vfloat vbroadcast(float x) { return vfloat{} + x; }

// exp(x) for x <= 0 (softmax arguments after max subtraction), relative error ~2e-7; -inf and anything below
// -87 give 0. Range reduction to 2^n * 2^f with f in [-0.5, 0.5] and a degree-6 polynomial for 2^f.
inline vfloat vexp(vfloat x) {
  const vfloat t = x * 1.44269504088896341f;
  const vint underflow = t < -126.0f;
  const vfloat tc = t < -126.0f ? vbroadcast(-126.0f) : t;
  const vfloat n = __builtin_convertvector(__builtin_convertvector(tc + (tc < 0 ? -0.5f : 0.5f), vint), vfloat);
  const vfloat f = tc - n;
  vfloat p = vbroadcast(1.535336188319500e-4f);
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  const vint bits = (__builtin_convertvector(n, vint) + 127) << 23;
  vfloat scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const vfloat r = p * scale;
  return underflow ? vbroadcast(0.0f) : r;
}

inline float hmax(vfloat v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
inline float hsum(vfloat v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// C[MR x 2*kLanes] (+)= A[MR x k] * B[k x 2*kLanes]; A row stride lda, B row stride ldb, C row stride ldc.
// The MR x 32 accumulators stay in registers for the whole k loop.
template <int MR, bool kAccumulate>
inline void tile_product(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                         int64_t k) {
  vfloat acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) {
    acc0[r] = kAccumulate ? vload(c + r * ldc) : vfloat{};
    acc1[r] = kAccumulate ? vload(c + r * ldc + kLanes) : vfloat{};
  }
  for (int64_t i = 0; i < k; ++i) {
    const vfloat b0 = vload(b + i * ldb);
    const vfloat b1 = vload(b + i * ldb + kLanes);
    for (int r = 0; r < MR; ++r) {
      const vfloat ar = vbroadcast(a[r * lda + i]);
      acc0[r] += ar * b0;
      acc1[r] += ar * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    vstore(c + r * ldc, acc0[r]);
    vstore(c + r * ldc + kLanes, acc1[r]);
  }
}

// C[m x n] (+)= A[m x k] * B[k x n] for n a multiple of 2*kLanes, in kTileRows-row blocks plus leftovers.
template <bool kAccumulate>
inline void matmul(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t m,
                   int64_t n, int64_t k) {
  for (int64_t col = 0; col < n; col += 2 * kLanes) {
    int64_t row = 0;
    for (; row + kTileRows <= m; row += kTileRows)
      tile_product<kTileRows, kAccumulate>(a + row * lda, lda, b + col, ldb, c + row * ldc + col, ldc, k);
    for (; row + 2 <= m; row += 2)
      tile_product<2, kAccumulate>(a + row * lda, lda, b + col, ldb, c + row * ldc + col, ldc, k);
    for (; row < m; ++row)
      tile_product<1, kAccumulate>(a + row * lda, lda, b + col, ldb, c + row * ldc + col, ldc, k);
  }
}

}  // namespace tokasaurus::cpu
