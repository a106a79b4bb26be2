#include "ops/checks.h"
#include "ops/launch.h"
#include "ops/ops.h"

namespace tokasaurus::ops {

void kv_write(const at::Tensor& k, const at::Tensor& v, const at::Tensor& k_cache, const at::Tensor& v_cache,
              const at::Tensor& slots, bool check_bounds) {
  constexpr const char* op = "kv_write";
  check_kv_caches(k_cache, v_cache, op);
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  const int64_t heads = k_cache.size(2), dim = k_cache.size(3);
  for (const auto& [t, name] : {std::pair{k, "k"}, std::pair{v, "v"}}) {
    TORCH_CHECK_VALUE(t.dim() == 3 && t.size(1) == heads && t.size(2) == dim, op, ": ", name,
                      " must be [num_tokens, kv_heads=", heads, ", head_dim=", dim, "], got ", t.sizes());
    TORCH_CHECK_VALUE(t.size(0) == slots.numel(), op, ": ", name, " has ", t.size(0), " tokens but slots has ",
                      slots.numel());
    TORCH_CHECK_VALUE(t.scalar_type() == k_cache.scalar_type(), op, ": ", name, " dtype ", t.scalar_type(),
                      " differs from the cache dtype ", k_cache.scalar_type());
    TORCH_CHECK_VALUE(t.stride(2) == 1, op, ": ", name, " must be contiguous in head_dim");
    check_same_device(t, k_cache, op, name);
  }
  check_index(slots, at::kLong, 1, op, "slots");
  check_same_device(slots, k_cache, op, "slots");
  if (check_bounds && slots.numel() > 0) {
    const int64_t max_slot = slots.max().item<int64_t>();
    TORCH_CHECK_VALUE(max_slot < num_slots, op, ": slot ", max_slot, " out of range: the cache has ", num_slots,
                      " slots (num_pages * page_size)");
  }
  KvWriteParams p{};
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.slots = slots.data_ptr<int64_t>();
  p.num_tokens = slots.numel();
  p.kv_heads = heads;
  p.head_dim = dim;
  p.k_token_stride = k.stride(0);
  p.k_head_stride = k.stride(1);
  p.v_token_stride = v.stride(0);
  p.v_head_stride = v.stride(1);
  if (p.num_tokens == 0) return;
  TOKASAURUS_LAUNCH(kv_write, k_cache, p, scalar_kind(k_cache, op, "k_cache"));
}

std::tuple<at::Tensor, at::Tensor> kv_gather_meta(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                  const at::Tensor& block_table, const at::Tensor& seq_lens,
                                                  int64_t total_tokens, bool check_bounds) {
  TORCH_CHECK_VALUE(k_cache.dim() == 4 && v_cache.dim() == 4, "kv_gather: k_cache and v_cache must be "
                    "[num_pages, page_size, kv_heads, head_dim], got ", k_cache.sizes(), " and ", v_cache.sizes());
  TORCH_CHECK_VALUE(total_tokens >= 0, "kv_gather: total_tokens must be >= 0, got ", total_tokens);
  const auto opts = k_cache.options();
  return {at::empty({total_tokens, k_cache.size(2), k_cache.size(3)}, opts),
          at::empty({total_tokens, v_cache.size(2), v_cache.size(3)}, opts)};
}

std::tuple<at::Tensor, at::Tensor> kv_gather(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                             const at::Tensor& block_table, const at::Tensor& seq_lens,
                                             int64_t total_tokens, bool check_bounds) {
  auto [k_out, v_out] = kv_gather_meta(k_cache, v_cache, block_table, seq_lens, total_tokens, check_bounds);
  kv_gather_out(k_cache, v_cache, block_table, seq_lens, total_tokens, check_bounds, k_out, v_out);
  return {k_out, v_out};
}

void kv_gather_out(const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                   const at::Tensor& block_table, const at::Tensor& seq_lens,
                                                   int64_t total_tokens, bool check_bounds, at::Tensor& k_out,
                                                   at::Tensor& v_out) {
  constexpr const char* op = "kv_gather";
  check_kv_caches(k_cache, v_cache, op);
  check_index(block_table, at::kInt, 2, op, "block_table");
  check_index(seq_lens, at::kInt, 1, op, "seq_lens");
  TORCH_CHECK_VALUE(seq_lens.size(0) == block_table.size(0), op, ": seq_lens has ", seq_lens.size(0),
                    " entries but block_table has ", block_table.size(0), " rows");
  check_same_device(block_table, k_cache, op, "block_table");
  check_same_device(seq_lens, k_cache, op, "seq_lens");
  TORCH_CHECK_VALUE(total_tokens >= 0, op, ": total_tokens must be >= 0, got ", total_tokens);
  if (check_bounds) {
    check_pages(block_table, seq_lens, c10::nullopt, k_cache.size(1), k_cache.size(0), op);
    const int64_t sum = seq_lens.sum().item<int64_t>();
    TORCH_CHECK_VALUE(sum == total_tokens, op, ": total_tokens=", total_tokens, " but seq_lens sum to ", sum);
  }
  const std::vector<int64_t> out_shape{total_tokens, k_cache.size(2), k_cache.size(3)};
  check_output(k_out, out_shape, k_cache.scalar_type(), k_cache, op, "k_out");
  check_output(v_out, out_shape, k_cache.scalar_type(), k_cache, op, "v_out");
  const at::Tensor offsets = at::cat({at::zeros({1}, seq_lens.options().dtype(at::kLong)), seq_lens.cumsum(0, at::kLong)});
  KvGatherParams p{};
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.k_out = k_out.data_ptr();
  p.v_out = v_out.data_ptr();
  p.block_table = block_table.data_ptr<int32_t>();
  p.seq_lens = seq_lens.data_ptr<int32_t>();
  p.out_offsets = offsets.data_ptr<int64_t>();
  p.num_seqs = block_table.size(0);
  p.block_table_stride = block_table.size(1);
  p.page_size = k_cache.size(1);
  p.kv_heads = k_cache.size(2);
  p.head_dim = k_cache.size(3);
  if (p.num_seqs > 0 && total_tokens > 0) TOKASAURUS_LAUNCH(kv_gather, k_cache, p, scalar_kind(k_cache, op, "k_cache"));
}

}  // namespace tokasaurus::ops
