// Shared pieces of the CUDA kernels: storage types and conversions, launch checks. Framework-free.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "tokasaurus/params.h"

namespace tokasaurus::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

// Throws (the torch glue turns it into a Python RuntimeError) if the last launch failed.
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("tokasaurus CUDA kernel ") + kernel + ": " +
                                                   cudaGetErrorString(err));
}

// Calls fn(T{}) with T the CUDA storage type named by `dtype`.
template <typename Fn>
void dispatch_scalar(ScalarKind dtype, Fn&& fn) {
  switch (dtype) {
    case ScalarKind::kFloat32: fn(float{}); return;
    case ScalarKind::kBFloat16: fn(__nv_bfloat16{}); return;
    case ScalarKind::kFloat16: fn(__half{}); return;
  }
  throw std::invalid_argument("tokasaurus: unsupported scalar kind");
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace tokasaurus::cuda
