// CPU paged KV-cache writes (scatter new tokens into their slots) and gathers (pages -> contiguous rows).
#include <algorithm>
#include <cstring>

#include "cpu/parallel.h"
#include "cpu/scalar.h"
#include "tokasaurus/cpu_kernels.h"

namespace tokasaurus::cpu {
namespace {

template <typename T>
void copy_heads(const T* src, int64_t head_stride, T* dst, int64_t heads, int64_t dim) {
  for (int64_t h = 0; h < heads; ++h) std::memcpy(dst + h * dim, src + h * head_stride, dim * sizeof(T));
}

}  // namespace

void kv_write(const KvWriteParams& p, ScalarKind dtype) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t row = p.kv_heads * p.head_dim;
    at::parallel_for(0, p.num_tokens, 64, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t slot = p.slots[t];
        if (slot < 0) continue;
        copy_heads(static_cast<const T*>(p.k) + t * p.k_token_stride, p.k_head_stride,
                   static_cast<T*>(p.k_cache) + slot * row, p.kv_heads, p.head_dim);
        copy_heads(static_cast<const T*>(p.v) + t * p.v_token_stride, p.v_head_stride,
                   static_cast<T*>(p.v_cache) + slot * row, p.kv_heads, p.head_dim);
      }
    });
  });
}

void kv_gather(const KvGatherParams& p, ScalarKind dtype) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    const int64_t row = p.kv_heads * p.head_dim;
    // One item per (sequence, page): a page's tokens are contiguous in the cache and in the output.
    at::parallel_for(0, p.num_seqs, 1, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        const int32_t* pages = p.block_table + s * p.block_table_stride;
        const int64_t len = p.seq_lens[s];
        for (int64_t first = 0; first < len; first += p.page_size) {
          const int64_t n = std::min(p.page_size, len - first);
          const int64_t src = static_cast<int64_t>(pages[first / p.page_size]) * p.page_size * row;
          const int64_t dst = (p.out_offsets[s] + first) * row;
          std::memcpy(static_cast<T*>(p.k_out) + dst, static_cast<const T*>(p.k_cache) + src, n * row * sizeof(T));
          std::memcpy(static_cast<T*>(p.v_out) + dst, static_cast<const T*>(p.v_cache) + src, n * row * sizeof(T));
        }
      }
    });
  });
}

}  // namespace tokasaurus::cpu
