// CPU attention over a paged KV cache, for segments of query rows (see AttentionParams). Flash-attention
// structure: a tile of query rows (the tokens of a segment times the q heads that share one kv head) walks the
// segment's keys in blocks of kKeyBlock, computing S = Q K^T and O += P V with the register-blocked tile
// product and an online (max-rescaled) softmax. A decode row is a tile of `group` rows; a Hydragen group is a
// tile of up to kMaxTileRows rows that reuses every packed key block across all of its sequences.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/parallel.h"
#include "cpu/scalar.h"
#include "cpu/vec.h"
#include "tokasaurus/cpu_kernels.h"

namespace tokasaurus::cpu {
namespace {

constexpr int64_t kKeyBlock = 64;
constexpr int64_t kMaxTileRows = 96;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct WorkItem {
  int64_t segment;
  int64_t first_token;  // within the segment
  int64_t num_tokens;
  int64_t kv_head;
  int64_t cost;
};

struct Scratch {
  int64_t padded_dim;
  std::vector<float> q, k_t, v, s, acc, row_max, row_sum;
  std::vector<int64_t> row_end;
  Scratch(int64_t rows, int64_t padded_dim)
      : padded_dim(padded_dim),
        q(rows * padded_dim, 0.0f),
        k_t(padded_dim * kKeyBlock, 0.0f),
        v(kKeyBlock * padded_dim, 0.0f),
        s(rows * kKeyBlock, 0.0f),
        acc(rows * padded_dim, 0.0f),
        row_max(rows),
        row_sum(rows),
        row_end(rows) {}
};

template <typename T>
void run_tile(const AttentionParams& p, const WorkItem& w, Scratch& sc) {
  const T* q = static_cast<const T*>(p.q);
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  T* out = static_cast<T*>(p.out);
  const int64_t group = p.q_heads / p.kv_heads;
  const int64_t dim = p.head_dim, pdim = sc.padded_dim;
  const int64_t rows = w.num_tokens * group;
  const int64_t s = w.segment;
  const int64_t q_begin = p.cu_q[s], q_len = p.cu_q[s + 1] - p.cu_q[s];
  const int64_t kv_len = p.kv_len[s];
  const int64_t kv_begin = p.kv_start ? p.kv_start[s] : 0;
  const int32_t* pages = p.block_table + s * p.block_table_stride;

  // Row r is token first_token + r / group, q head kv_head * group + r % group.
  int64_t tile_end = kv_begin;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t token = w.first_token + r / group;
    const int64_t end = p.causal ? std::min(kv_len, kv_len - q_len + token + 1) : kv_len;
    sc.row_end[r] = end;
    tile_end = std::max(tile_end, end);
    const T* src = q + (q_begin + token) * p.q_token_stride + (w.kv_head * group + r % group) * p.q_head_stride;
    float* dst = sc.q.data() + r * pdim;
    for (int64_t d = 0; d < dim; ++d) dst[d] = to_float(src[d]) * p.scale;
    sc.row_max[r] = kNegInf;
    sc.row_sum[r] = 0.0f;
    std::fill(sc.acc.data() + r * pdim, sc.acc.data() + (r + 1) * pdim, 0.0f);
  }

  const int64_t token_stride = p.kv_heads * dim;
  for (int64_t block = kv_begin; block < tile_end; block += kKeyBlock) {
    const int64_t keys = std::min(kKeyBlock, tile_end - block);
    for (int64_t j = 0; j < keys; ++j) {
      const int64_t pos = block + j;
      const int64_t slot = static_cast<int64_t>(pages[pos / p.page_size]) * p.page_size + pos % p.page_size;
      const T* k_src = k_cache + slot * token_stride + w.kv_head * dim;
      const T* v_src = v_cache + slot * token_stride + w.kv_head * dim;
      float* v_dst = sc.v.data() + j * pdim;
      for (int64_t d = 0; d < dim; ++d) {
        sc.k_t[d * kKeyBlock + j] = to_float(k_src[d]);
        v_dst[d] = to_float(v_src[d]);
      }
    }
    matmul<false>(sc.q.data(), pdim, sc.k_t.data(), kKeyBlock, sc.s.data(), kKeyBlock, rows, kKeyBlock, pdim);

    for (int64_t r = 0; r < rows; ++r) {
      float* srow = sc.s.data() + r * kKeyBlock;
      const int64_t valid = std::min(keys, sc.row_end[r] - block);
      if (valid <= 0) {
        std::fill(srow, srow + kKeyBlock, 0.0f);
        continue;
      }
      std::fill(srow + valid, srow + kKeyBlock, kNegInf);
      vfloat vmax = vload(srow);
      for (int64_t j = kLanes; j < kKeyBlock; j += kLanes) {
        const vfloat x = vload(srow + j);
        vmax = x > vmax ? x : vmax;
      }
      const float new_max = std::max(sc.row_max[r], hmax(vmax));
      const float alpha = std::exp(sc.row_max[r] - new_max);  // 0 on the first block (max was -inf)
      const vfloat vnew_max = vbroadcast(new_max);
      vfloat vsum{};
      for (int64_t j = 0; j < kKeyBlock; j += kLanes) {
        const vfloat e = vexp(vload(srow + j) - vnew_max);
        vstore(srow + j, e);
        vsum += e;
      }
      sc.row_sum[r] = sc.row_sum[r] * alpha + hsum(vsum);
      sc.row_max[r] = new_max;
      if (alpha != 1.0f) {
        float* arow = sc.acc.data() + r * pdim;
        for (int64_t d = 0; d < pdim; ++d) arow[d] *= alpha;
      }
    }
    matmul<true>(sc.s.data(), kKeyBlock, sc.v.data(), pdim, sc.acc.data(), pdim, rows, pdim, kKeyBlock);
  }

  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = (q_begin + w.first_token + r / group) * p.q_heads + w.kv_head * group + r % group;
    T* dst = out + row * dim;
    const float sum = sc.row_sum[r];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const float* arow = sc.acc.data() + r * pdim;
    for (int64_t d = 0; d < dim; ++d) dst[d] = from_float<T>(arow[d] * inv);
    p.lse[row] = sum > 0.0f ? sc.row_max[r] + std::log(sum) : kNegInf;
  }
}

std::vector<WorkItem> plan_tiles(const AttentionParams& p) {
  const int64_t group = p.q_heads / p.kv_heads;
  const int64_t tokens_per_tile = std::max<int64_t>(1, kMaxTileRows / group);
  std::vector<WorkItem> items;
  for (int64_t s = 0; s < p.num_segments; ++s) {
    const int64_t q_len = p.cu_q[s + 1] - p.cu_q[s];
    const int64_t keys = p.kv_len[s] - (p.kv_start ? p.kv_start[s] : 0);
    for (int64_t t = 0; t < q_len; t += tokens_per_tile) {
      const int64_t n = std::min(tokens_per_tile, q_len - t);
      for (int64_t h = 0; h < p.kv_heads; ++h) items.push_back({s, t, n, h, (n * group + 8) * keys});
    }
  }
  // Longest first, so the last items handed out are the short ones.
  std::stable_sort(items.begin(), items.end(), [](const WorkItem& a, const WorkItem& b) { return a.cost > b.cost; });
  return items;
}

}  // namespace

void attention(const AttentionParams& p, ScalarKind dtype) {
  const std::vector<WorkItem> items = plan_tiles(p);
  const int64_t group = p.q_heads / p.kv_heads;
  const int64_t max_rows = std::max<int64_t>(1, kMaxTileRows / group) * group;
  const int64_t padded_dim = (p.head_dim + 2 * kLanes - 1) / (2 * kLanes) * (2 * kLanes);
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_items(
        static_cast<int64_t>(items.size()), [&] { return Scratch(max_rows, padded_dim); },
        [&](Scratch& sc, int64_t i) { run_tile<T>(p, items[i], sc); });
  });
}

}  // namespace tokasaurus::cpu
