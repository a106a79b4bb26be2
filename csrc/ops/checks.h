// Argument validation shared by the torch ops: every check names the op and the argument it rejects.
#pragma once

#include <ATen/ATen.h>

#include "tokasaurus/params.h"

namespace tokasaurus::ops {

// The kernels' scalar kind for a float tensor; ValueError for any other dtype.
ScalarKind scalar_kind(const at::Tensor& t, const char* op, const char* name);

// RuntimeError unless `t` lives on the same device as `ref`.
void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name);

// ValueError unless `t` is a contiguous `dim`-dimensional tensor of `dtype`.
void check_index(const at::Tensor& t, at::ScalarType dtype, int64_t dim, const char* op, const char* name);

// ValueError unless the output buffer `t` is contiguous with the given shape and dtype, on the device of `ref`.
void check_output(const at::Tensor& t, at::IntArrayRef sizes, at::ScalarType dtype, const at::Tensor& ref,
                  const char* op, const char* name);

// K and V caches: contiguous [num_pages, page_size, kv_heads, head_dim] of one dtype and device.
void check_kv_caches(const at::Tensor& k_cache, const at::Tensor& v_cache, const char* op);

// Host-side bounds checks over the (small) index tensors; these synchronize with the device, so callers that
// already guarantee valid indices (the engine) pass check_bounds=false.
void check_cu_lens(const at::Tensor& cu_lens, int64_t total, int64_t max_len, const char* op, const char* name,
                   const char* max_name);
void check_pages(const at::Tensor& block_table, const at::Tensor& lens, const c10::optional<at::Tensor>& starts,
                 int64_t page_size, int64_t num_pages, const char* op, const char* table_name = "block_table");

}  // namespace tokasaurus::ops
