// Parameter structs shared by the CPU and CUDA kernels. Plain data only (sizes, strides, raw pointers) so
// the kernels stay framework-free; the torch glue in csrc/ops fills them after checking the tensors.
#pragma once

#include <cstdint>

namespace tokasaurus {

enum class ScalarKind : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Scatter `num_tokens` new K/V rows into a paged cache laid out [num_pages, page_size, kv_heads, head_dim].
struct KvWriteParams {
  const void* k;  // [num_tokens, kv_heads, head_dim], row stride k_token_stride, head stride k_head_stride
  const void* v;
  void* k_cache;  // contiguous [num_pages, page_size, kv_heads, head_dim]
  void* v_cache;
  const int64_t* slots;  // [num_tokens]; slot = page * page_size + offset; negative = skip (padding)
  int64_t num_tokens;
  int64_t kv_heads;
  int64_t head_dim;
  int64_t k_token_stride, k_head_stride;
  int64_t v_token_stride, v_head_stride;
};

// Copy the first seq_lens[s] tokens of each sequence's pages into contiguous [total_tokens, kv_heads, head_dim].
struct KvGatherParams {
  const void* k_cache;  // contiguous [num_pages, page_size, kv_heads, head_dim]
  const void* v_cache;
  void* k_out;  // contiguous [total_tokens, kv_heads, head_dim]
  void* v_out;
  const int32_t* block_table;  // [num_seqs, block_table_stride]
  const int32_t* seq_lens;     // [num_seqs]
  const int64_t* out_offsets;  // [num_seqs + 1]: exclusive prefix sum of seq_lens
  int64_t num_seqs;
  int64_t block_table_stride;
  int64_t page_size;
  int64_t kv_heads;
  int64_t head_dim;
};

// One attention launch over "segments". A segment is a run of query rows q[cu_q[s] : cu_q[s+1]] that attends to
// the keys at positions [kv_start[s], kv_len[s]) of the page list block_table[s]. Paged attention makes one
// segment per sequence (causal: the last query sits at position kv_len - 1); the Hydragen prefix op makes one
// segment per group of sequences sharing a prefix (non-causal: every query sees the whole prefix). Writing both
// as one kernel is what lets the prefix product be a matrix-matrix product: a segment's query rows times each
// of its key tiles.
struct AttentionParams {
  const void* q;  // [num_q, q_heads, head_dim], strides below
  const void* k_cache;  // contiguous [num_pages, page_size, kv_heads, head_dim]
  const void* v_cache;
  void* out;    // contiguous [num_q, q_heads, head_dim], dtype of q
  float* lse;   // contiguous [num_q, q_heads], natural log; -inf for a row with no keys
  const int32_t* cu_q;         // [num_segments + 1]
  const int32_t* block_table;  // [num_segments, block_table_stride]
  const int32_t* kv_len;       // [num_segments]
  const int32_t* kv_start;     // [num_segments] or nullptr (= 0)
  int64_t num_segments;
  int64_t num_q;
  int64_t max_q_per_segment;  // for grid sizing
  int64_t block_table_stride;
  int64_t page_size;
  int64_t q_heads;
  int64_t kv_heads;
  int64_t head_dim;
  int64_t q_token_stride, q_head_stride;
  float scale;  // softmax scale, e.g. 1/sqrt(head_dim)
  bool causal;
};

// out = (exp(lse_a) * out_a + exp(lse_b) * out_b) / (exp(lse_a) + exp(lse_b)) per row and head, computed
// max-subtracted in fp32; lse_out = log(exp(lse_a) + exp(lse_b)).
struct MergeParams {
  const void* out_a;
  const float* lse_a;
  const void* out_b;
  const float* lse_b;
  void* out;
  float* lse_out;  // may be nullptr
  int64_t num_rows;  // num_q * heads
  int64_t head_dim;
};

}  // namespace tokasaurus
