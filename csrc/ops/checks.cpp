#include "ops/checks.h"

namespace tokasaurus::ops {

ScalarKind scalar_kind(const at::Tensor& t, const char* op, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat: return ScalarKind::kFloat32;
    case at::kBFloat16: return ScalarKind::kBFloat16;
    case at::kHalf: return ScalarKind::kFloat16;
    default:
      TORCH_CHECK_VALUE(false, op, ": ", name, " must be float32, bfloat16 or float16, got ", t.scalar_type());
  }
}

void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but the other arguments are on ",
              ref.device());
}

void check_index(const at::Tensor& t, at::ScalarType dtype, int64_t dim, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == dim, op, ": ", name, " must have ", dim, " dimensions, got shape ", t.sizes());
  TORCH_CHECK_VALUE(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

void check_output(const at::Tensor& t, at::IntArrayRef sizes, at::ScalarType dtype, const at::Tensor& ref,
                  const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.sizes() == sizes, op, ": ", name, " must have shape ", sizes, ", got ", t.sizes());
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), op, ": ", name, " must be contiguous");
  check_same_device(t, ref, op, name);
}

void check_kv_caches(const at::Tensor& k_cache, const at::Tensor& v_cache, const char* op) {
  TORCH_CHECK_VALUE(k_cache.dim() == 4, op, ": k_cache must be [num_pages, page_size, kv_heads, head_dim], got ",
                    k_cache.sizes());
  TORCH_CHECK_VALUE(v_cache.sizes() == k_cache.sizes(), op, ": v_cache shape ", v_cache.sizes(),
                    " differs from k_cache shape ", k_cache.sizes());
  TORCH_CHECK_VALUE(v_cache.scalar_type() == k_cache.scalar_type(), op, ": v_cache dtype ", v_cache.scalar_type(),
                    " differs from k_cache dtype ", k_cache.scalar_type());
  for (int64_t d = 0; d < 4; ++d)
    TORCH_CHECK_VALUE(k_cache.size(d) > 0, op, ": every k_cache dimension [num_pages, page_size, kv_heads, head_dim] ",
                      "must be positive, got ", k_cache.sizes());
  TORCH_CHECK_VALUE(k_cache.is_contiguous() && v_cache.is_contiguous(), op, ": k_cache and v_cache must be contiguous");
  check_same_device(v_cache, k_cache, op, "v_cache");
  scalar_kind(k_cache, op, "k_cache");
}

void check_cu_lens(const at::Tensor& cu_lens, int64_t total, int64_t max_len, const char* op, const char* name,
                   const char* max_name) {
  const at::Tensor cu = cu_lens.cpu();
  const int32_t* c = cu.data_ptr<int32_t>();
  const int64_t n = cu.numel() - 1;
  TORCH_CHECK_VALUE(c[0] == 0, op, ": ", name, "[0] must be 0, got ", c[0]);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = c[i + 1] - c[i];
    TORCH_CHECK_VALUE(len >= 0, op, ": ", name, " must be non-decreasing, but entry ", i + 1, " (", c[i + 1],
                      ") < entry ", i, " (", c[i], ")");
    TORCH_CHECK_VALUE(len <= max_len, op, ": segment ", i, " has ", len, " queries, more than ", max_name, "=", max_len);
  }
  TORCH_CHECK_VALUE(c[n] == total, op, ": ", name, "[-1] must equal the number of query rows ", total, ", got ", c[n]);
}

void check_pages(const at::Tensor& block_table, const at::Tensor& lens, const c10::optional<at::Tensor>& starts,
                 int64_t page_size, int64_t num_pages, const char* op, const char* table_name) {
  const at::Tensor bt = block_table.cpu(), ln = lens.cpu();
  const at::Tensor st = starts.has_value() ? starts->cpu() : at::Tensor();
  const int64_t width = bt.size(1);
  for (int64_t s = 0; s < bt.size(0); ++s) {
    const int64_t len = ln.data_ptr<int32_t>()[s];
    const int64_t start = st.defined() ? st.data_ptr<int32_t>()[s] : 0;
    TORCH_CHECK_VALUE(len >= 0, op, ": length of sequence ", s, " is negative (", len, ")");
    TORCH_CHECK_VALUE(start >= 0 && start <= len, op, ": kv_start of sequence ", s, " (", start,
                      ") must lie in [0, kv_len=", len, "]");
    const int64_t needed = (len + page_size - 1) / page_size;
    TORCH_CHECK_VALUE(needed <= width, op, ": sequence ", s, " has ", len, " tokens, needing ", needed,
                      " pages of ", page_size, ", but ", table_name, " has only ", width, " columns");
    const int32_t* row = bt.data_ptr<int32_t>() + s * width;
    for (int64_t i = start / page_size; i < needed; ++i)
      TORCH_CHECK_VALUE(row[i] >= 0 && row[i] < num_pages, op, ": page index out of range: ", table_name, "[", s, "][", i,
                        "] = ", row[i], " but the cache has ", num_pages, " pages");
  }
}

}  // namespace tokasaurus::ops
