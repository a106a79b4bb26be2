// CUDA paged KV-cache write (scatter) and gather: bandwidth-bound copies, 16 bytes per thread where aligned.
#include <cstdint>

#include "cuda/common.cuh"
#include "tokasaurus/cuda_kernels.h"

namespace tokasaurus::cuda {
namespace {

// One block per token; moves its kv_heads x head_dim row in units of `Vec` (uint4 for 16-byte moves, or the
// scalar type itself), `vecs_per_head` per head.
template <typename Vec>
__global__ void kv_write_kernel(KvWriteParams p, int64_t vecs_per_head, int64_t elems_per_vec) {
  const int64_t token = blockIdx.x;
  const int64_t slot = p.slots[token];
  if (slot < 0) return;
  const int64_t row_vecs = p.kv_heads * vecs_per_head;
  for (int64_t i = threadIdx.x; i < row_vecs; i += blockDim.x) {
    const int64_t head = i / vecs_per_head, v = i % vecs_per_head;
    // Strides are in elements; the host checked they are whole vectors when Vec is 16 bytes.
    const int64_t src_k = (token * p.k_token_stride + head * p.k_head_stride) / elems_per_vec + v;
    const int64_t src_v = (token * p.v_token_stride + head * p.v_head_stride) / elems_per_vec + v;
    const int64_t dst = slot * row_vecs + i;
    reinterpret_cast<Vec*>(p.k_cache)[dst] = reinterpret_cast<const Vec*>(p.k)[src_k];
    reinterpret_cast<Vec*>(p.v_cache)[dst] = reinterpret_cast<const Vec*>(p.v)[src_v];
  }
}

// One block per (sequence, page): a page's tokens are contiguous in the cache and in the output.
template <typename Vec>
__global__ void kv_gather_kernel(KvGatherParams p, int64_t row_vecs) {
  const int64_t seq = blockIdx.x;
  const int64_t len = p.seq_lens[seq];
  for (int64_t first = blockIdx.y * p.page_size; first < len; first += gridDim.y * p.page_size) {
    const int64_t n = min(p.page_size, len - first) * row_vecs;
    const int64_t src = static_cast<int64_t>(p.block_table[seq * p.block_table_stride + first / p.page_size]) *
                        p.page_size * row_vecs;
    const int64_t dst = (p.out_offsets[seq] + first) * row_vecs;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      reinterpret_cast<Vec*>(p.k_out)[dst + i] = reinterpret_cast<const Vec*>(p.k_cache)[src + i];
      reinterpret_cast<Vec*>(p.v_out)[dst + i] = reinterpret_cast<const Vec*>(p.v_cache)[src + i];
    }
  }
}

}  // namespace

void kv_write(const KvWriteParams& p, ScalarKind dtype, cudaStream_t stream) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t per_vec = sizeof(uint4) / sizeof(T);
    const bool vectorize = p.head_dim % per_vec == 0 && p.k_token_stride % per_vec == 0 &&
                           p.k_head_stride % per_vec == 0 && p.v_token_stride % per_vec == 0 &&
                           p.v_head_stride % per_vec == 0 && aligned16(p.k) && aligned16(p.v) &&
                           aligned16(p.k_cache) && aligned16(p.v_cache);
    if (vectorize) {
      kv_write_kernel<uint4><<<p.num_tokens, 128, 0, stream>>>(p, p.head_dim / per_vec, per_vec);
    } else {
      kv_write_kernel<T><<<p.num_tokens, 128, 0, stream>>>(p, p.head_dim, 1);
    }
    check_launch("kv_write");
  });
}

void kv_gather(const KvGatherParams& p, ScalarKind dtype, cudaStream_t stream) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int64_t per_vec = sizeof(uint4) / sizeof(T);
    const int64_t row = p.kv_heads * p.head_dim;
    const dim3 grid(p.num_seqs, 32);
    if (row % per_vec == 0 && aligned16(p.k_cache) && aligned16(p.v_cache) && aligned16(p.k_out) &&
        aligned16(p.v_out)) {
      kv_gather_kernel<uint4><<<grid, 256, 0, stream>>>(p, row / per_vec);
    } else {
      kv_gather_kernel<T><<<grid, 256, 0, stream>>>(p, row);
    }
    check_launch("kv_gather");
  });
}

}  // namespace tokasaurus::cuda
