#include <cmath>

#include "ops/checks.h"
#include "ops/launch.h"
#include "ops/ops.h"

namespace tokasaurus::ops {
namespace {

// Argument names as each op's schema spells them, for error messages.
struct AttentionArgNames {
  const char* op;
  const char* cu_q_lens;
  const char* block_table;
  const char* kv_lens;
  const char* max_q_len;
};
constexpr AttentionArgNames kPagedNames{"paged_attention", "cu_q_lens", "block_table", "kv_lens", "max_q_len"};
constexpr AttentionArgNames kPrefixNames{"hydragen_prefix_attention", "cu_group_q_lens", "prefix_block_table",
                                         "prefix_lens", "max_group_q_len"};

void run_attention(const AttentionArgNames& names, const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                   const at::Tensor& cu_q_lens, const at::Tensor& block_table, const at::Tensor& kv_lens,
                   const c10::optional<at::Tensor>& kv_starts, double scale, int64_t max_q_len, bool check_bounds,
                   bool causal, at::Tensor& out, at::Tensor& lse) {
  const char* op = names.op;
  check_kv_caches(k_cache, v_cache, op);
  const int64_t kv_heads = k_cache.size(2), dim = k_cache.size(3);
  TORCH_CHECK_VALUE(q.dim() == 3, op, ": q must be [num_tokens, q_heads, head_dim], got ", q.sizes());
  TORCH_CHECK_VALUE(q.size(2) == dim, op, ": q head_dim ", q.size(2), " differs from the cache head_dim ", dim);
  TORCH_CHECK_VALUE(q.size(1) % kv_heads == 0, op, ": q_heads (", q.size(1), ") must be a multiple of kv_heads (",
                    kv_heads, ")");
  TORCH_CHECK_VALUE(q.scalar_type() == k_cache.scalar_type(), op, ": q dtype ", q.scalar_type(),
                    " differs from the cache dtype ", k_cache.scalar_type());
  TORCH_CHECK_VALUE(q.stride(2) == 1, op, ": q must be contiguous in head_dim");
  TORCH_CHECK_VALUE(std::isfinite(scale) && scale > 0, op, ": scale must be a positive finite number, got ", scale);
  check_same_device(q, k_cache, op, "q");
  check_index(cu_q_lens, at::kInt, 1, op, names.cu_q_lens);
  check_index(block_table, at::kInt, 2, op, names.block_table);
  check_index(kv_lens, at::kInt, 1, op, names.kv_lens);
  const int64_t segments = kv_lens.size(0);
  TORCH_CHECK_VALUE(cu_q_lens.size(0) == segments + 1, op, ": ", names.cu_q_lens, " must have ", segments + 1,
                    " entries (one more than ", names.kv_lens, "), got ", cu_q_lens.size(0));
  TORCH_CHECK_VALUE(block_table.size(0) == segments, op, ": ", names.block_table, " has ", block_table.size(0),
                    " rows but ", names.kv_lens, " has ", segments, " entries");
  TORCH_CHECK_VALUE(segments > 0 || q.size(0) == 0, op, ": ", q.size(0), " query rows but no sequences (",
                    names.kv_lens, " is empty)");
  for (const auto& [t, name] : {std::pair{cu_q_lens, names.cu_q_lens}, std::pair{block_table, names.block_table},
                                std::pair{kv_lens, names.kv_lens}})
    check_same_device(t, q, op, name);
  if (kv_starts.has_value()) {
    check_index(*kv_starts, at::kInt, 1, op, "kv_starts");
    TORCH_CHECK_VALUE(kv_starts->size(0) == segments, op, ": kv_starts has ", kv_starts->size(0),
                      " entries but kv_lens has ", segments);
    check_same_device(*kv_starts, q, op, "kv_starts");
  }
  TORCH_CHECK_VALUE(max_q_len >= 0, op, ": ", names.max_q_len, " must be >= 0, got ", max_q_len);
  if (check_bounds && segments > 0) {
    check_cu_lens(cu_q_lens, q.size(0), max_q_len, op, names.cu_q_lens, names.max_q_len);
    check_pages(block_table, kv_lens, kv_starts, k_cache.size(1), k_cache.size(0), op, names.block_table);
  }

  check_output(out, q.sizes(), q.scalar_type(), q, op, "out");
  check_output(lse, {q.size(0), q.size(1)}, at::kFloat, q, op, "lse");
  AttentionParams p{};
  p.q = q.data_ptr();
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.cu_q = cu_q_lens.data_ptr<int32_t>();
  p.block_table = block_table.data_ptr<int32_t>();
  p.kv_len = kv_lens.data_ptr<int32_t>();
  p.kv_start = kv_starts.has_value() ? kv_starts->data_ptr<int32_t>() : nullptr;
  p.num_segments = segments;
  p.num_q = q.size(0);
  p.max_q_per_segment = max_q_len;
  p.block_table_stride = block_table.size(1);
  p.page_size = k_cache.size(1);
  p.q_heads = q.size(1);
  p.kv_heads = kv_heads;
  p.head_dim = dim;
  p.q_token_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.scale = static_cast<float>(scale);
  p.causal = causal;
  if (segments > 0 && q.size(0) > 0) TOKASAURUS_LAUNCH(attention, q, p, scalar_kind(q, op, "q"));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> attention_meta(const at::Tensor& q) {
  TORCH_CHECK_VALUE(q.dim() == 3, "attention: q must be [num_tokens, q_heads, head_dim], got ", q.sizes());
  return {at::empty(q.sizes(), q.options()), at::empty({q.size(0), q.size(1)}, q.options().dtype(at::kFloat))};
}

void paged_attention_out(const at::Tensor& q, const at::Tensor& k_cache,
                                                         const at::Tensor& v_cache, const at::Tensor& cu_q_lens,
                                                         const at::Tensor& block_table, const at::Tensor& kv_lens,
                                                         const c10::optional<at::Tensor>& kv_starts, double scale,
                                                         int64_t max_q_len, bool check_bounds, at::Tensor& out,
                                                         at::Tensor& lse) {
  run_attention(kPagedNames, q, k_cache, v_cache, cu_q_lens, block_table, kv_lens, kv_starts, scale, max_q_len,
                check_bounds, /*causal=*/true, out, lse);
}

std::tuple<at::Tensor, at::Tensor> paged_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                                   const at::Tensor& v_cache, const at::Tensor& cu_q_lens,
                                                   const at::Tensor& block_table, const at::Tensor& kv_lens,
                                                   const c10::optional<at::Tensor>& kv_starts, double scale,
                                                   int64_t max_q_len, bool check_bounds) {
  auto [out, lse] = attention_meta(q);
  paged_attention_out(q, k_cache, v_cache, cu_q_lens, block_table, kv_lens, kv_starts, scale, max_q_len,
                      check_bounds, out, lse);
  return {out, lse};
}

void hydragen_prefix_attention_out(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& cu_group_q_lens,
    const at::Tensor& prefix_block_table, const at::Tensor& prefix_lens, double scale, int64_t max_group_q_len,
    bool check_bounds, at::Tensor& out, at::Tensor& lse) {
  run_attention(kPrefixNames, q, k_cache, v_cache, cu_group_q_lens, prefix_block_table, prefix_lens,
                c10::nullopt, scale, max_group_q_len, check_bounds, /*causal=*/false, out, lse);
}

std::tuple<at::Tensor, at::Tensor> hydragen_prefix_attention(const at::Tensor& q, const at::Tensor& k_cache,
                                                             const at::Tensor& v_cache,
                                                             const at::Tensor& cu_group_q_lens,
                                                             const at::Tensor& prefix_block_table,
                                                             const at::Tensor& prefix_lens, double scale,
                                                             int64_t max_group_q_len, bool check_bounds) {
  auto [out, lse] = attention_meta(q);
  hydragen_prefix_attention_out(q, k_cache, v_cache, cu_group_q_lens, prefix_block_table, prefix_lens, scale,
                                max_group_q_len, check_bounds, out, lse);
  return {out, lse};
}

}  // namespace tokasaurus::ops
