// CUDA merge of two partial attention results (Hydragen / split-KV combine), fp32 arithmetic.
#include <cmath>

#include "cuda/common.cuh"
#include "tokasaurus/cuda_kernels.h"

namespace tokasaurus::cuda {
namespace {

template <typename T>
__global__ void merge_kernel(MergeParams p) {
  const int64_t total = p.num_rows * p.head_dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / p.head_dim;
    const float la = p.lse_a[row], lb = p.lse_b[row];
    const float m = fmaxf(la, lb);
    const bool empty = m == -INFINITY;  // both sides saw no key
    const float wa = empty ? 0.0f : __expf(la - m), wb = empty ? 0.0f : __expf(lb - m);
    const float sum = wa + wb;
    const float ca = sum > 0.0f ? wa / sum : 0.0f, cb = sum > 0.0f ? wb / sum : 0.0f;
    const float value = ca * to_float(static_cast<const T*>(p.out_a)[i]) + cb * to_float(static_cast<const T*>(p.out_b)[i]);
    static_cast<T*>(p.out)[i] = from_float<T>(value);
    if (p.lse_out && i % p.head_dim == 0) p.lse_out[row] = sum > 0.0f ? m + logf(sum) : m;
  }
}

}  // namespace

void merge_states(const MergeParams& p, ScalarKind dtype, cudaStream_t stream) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t total = p.num_rows * p.head_dim;
    const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 65535));
    merge_kernel<T><<<blocks, 256, 0, stream>>>(p);
    check_launch("merge_states");
  });
}

}  // namespace tokasaurus::cuda
