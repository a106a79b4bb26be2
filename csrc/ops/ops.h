// The torch-facing ops: validate tensors, fill the kernels' params structs, launch on the tensors' device.
// Schemas and documentation live in csrc/register.cpp and tokasaurus_ext/ops.py.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace tokasaurus::ops {

void kv_write(const at::Tensor& k, const at::Tensor& v, const at::Tensor& k_cache, const at::Tensor& v_cache,
              const at::Tensor& slots, bool check_bounds);

std::tuple<at::Tensor, at::Tensor> kv_gather(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                             const at::Tensor& block_table, const at::Tensor& seq_lens,
                                             int64_t total_tokens, bool check_bounds);

std::tuple<at::Tensor, at::Tensor> paged_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                                   const at::Tensor& v_cache, const at::Tensor& cu_q_lens,
                                                   const at::Tensor& block_table, const at::Tensor& kv_lens,
                                                   const c10::optional<at::Tensor>& kv_starts, double scale,
                                                   int64_t max_q_len, bool check_bounds);

std::tuple<at::Tensor, at::Tensor> hydragen_prefix_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                                             const at::Tensor& v_cache,
                                                             const at::Tensor& cu_group_q_lens,
                                                             const at::Tensor& prefix_block_table,
                                                             const at::Tensor& prefix_lens, double scale,
                                                             int64_t max_group_q_len, bool check_bounds);

std::tuple<at::Tensor, at::Tensor> merge_attention_states(const at::Tensor& out_a, const at::Tensor& lse_a,
                                                          const at::Tensor& out_b, const at::Tensor& lse_b);

// `.out` overloads write into caller-owned buffers (static buffers for CUDA graphs; NaN-poisoned in tests).
void kv_gather_out(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                   const at::Tensor& block_table, const at::Tensor& seq_lens,
                                                   int64_t total_tokens, bool check_bounds, at::Tensor& k_out,
                                                   at::Tensor& v_out);
void paged_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                                         const at::Tensor& v_cache, const at::Tensor& cu_q_lens,
                                                         const at::Tensor& block_table, const at::Tensor& kv_lens,
                                                         const c10::optional<at::Tensor>& kv_starts, double scale,
                                                         int64_t max_q_len, bool check_bounds, at::Tensor& out,
                                                         at::Tensor& lse);
void hydragen_prefix_attention_out(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& cu_group_q_lens,
    const at::Tensor& prefix_block_table, const at::Tensor& prefix_lens, double scale, int64_t max_group_q_len,
    bool check_bounds, at::Tensor& out, at::Tensor& lse);
void merge_attention_states_out(const at::Tensor& out_a, const at::Tensor& lse_a,
                                                                const at::Tensor& out_b, const at::Tensor& lse_b,
                                                                at::Tensor& out, at::Tensor& lse);

// Meta (fake) implementations: output shapes only, so the ops trace under torch.compile and CUDA graphs.
std::tuple<at::Tensor, at::Tensor> kv_gather_meta(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                  const at::Tensor& block_table, const at::Tensor& seq_lens,
                                                  int64_t total_tokens, bool check_bounds);
std::tuple<at::Tensor, at::Tensor> attention_meta(const at::Tensor& q);

}  // namespace tokasaurus::ops
