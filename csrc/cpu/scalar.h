// Storage types of the CPU kernels and their conversions to the fp32 used for all arithmetic.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "tokasaurus/params.h"

namespace tokasaurus::cpu {

struct BFloat16 {
  uint16_t bits;
};
using Half = _Float16;

inline float to_float(float x) { return x; }
inline float to_float(Half x) { return static_cast<float>(x); }
inline float to_float(BFloat16 x) {
  uint32_t bits = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <typename T>
inline T from_float(float x);
template <>
inline float from_float<float>(float x) { return x; }
template <>
inline Half from_float<Half>(float x) { return static_cast<Half>(x); }
template <>
inline BFloat16 from_float<BFloat16>(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<uint16_t>((bits >> 16) | 0x40)};  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return BFloat16{static_cast<uint16_t>(bits >> 16)};
}

// Calls fn(T{}) with T the storage type named by `dtype`.
template <typename Fn>
void dispatch_scalar(ScalarKind dtype, Fn&& fn) {
  switch (dtype) {
    case ScalarKind::kFloat32: fn(float{}); return;
    case ScalarKind::kBFloat16: fn(BFloat16{}); return;
    case ScalarKind::kFloat16: fn(Half{}); return;
  }
  throw std::invalid_argument("tokasaurus: unsupported scalar kind");
}

}  // namespace tokasaurus::cpu
