// CUDA attention over a paged KV cache, for segments of query rows (see AttentionParams): one CTA per
// (segment, kv head, tile of query rows), where a row is one (token, q head) pair of the heads sharing that kv
// head. Flash-attention structure: the CTA walks the segment's keys in tiles, computing S = Q K^T, an online
// softmax in the log2 domain, and O += P V.
//  - attention_mma_kernel (bf16/fp16, head_dim 64/128): 64-row tiles on tensor cores (mma.sync m16n8k16,
//    fp32 accumulation). This is the Hydragen prefix product: a group's stacked queries times each key tile.
//  - attention_simt_kernel (any dtype, few rows such as decode, and fp32): 16-row tiles on FMA units.
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/common.cuh"
#include "tokasaurus/cuda_kernels.h"

namespace tokasaurus::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Where a CTA's rows come from and which keys each may see.
struct TileRows {
  int64_t segment, kv_head, first_row;  // first_row: index into the segment's q_len * group rows
  int64_t q_begin, q_len, group;
  int64_t kv_begin, kv_len;
  int64_t key_end;  // one past the last key any row of the tile sees
  bool causal;

  __device__ TileRows(const AttentionParams& p, int64_t rows_per_tile) {
    segment = blockIdx.x;
    kv_head = blockIdx.y;
    first_row = static_cast<int64_t>(blockIdx.z) * rows_per_tile;
    group = p.q_heads / p.kv_heads;
    q_begin = p.cu_q[segment];
    q_len = p.cu_q[segment + 1] - q_begin;
    kv_len = p.kv_len[segment];
    kv_begin = p.kv_start ? p.kv_start[segment] : 0;
    causal = p.causal;
    const int64_t last_token = min(q_len - 1, (first_row + rows_per_tile - 1) / group);
    key_end = row_end(last_token);
  }
  __device__ bool empty() const { return first_row >= q_len * group; }
  __device__ bool valid(int64_t row) const { return first_row + row < q_len * group; }
  __device__ int64_t token(int64_t row) const { return (first_row + row) / group; }
  __device__ int64_t head(int64_t row) const { return kv_head * group + (first_row + row) % group; }
  // One past the last key position that token `token` (within the segment) sees.
  __device__ int64_t row_end(int64_t token) const { return causal ? min(kv_len, kv_len - q_len + token + 1) : kv_len; }
  __device__ int64_t out_row(int64_t row) const { return (q_begin + token(row)) * (group * gridDim.y) + head(row); }
};

__device__ __forceinline__ int64_t key_slot(const AttentionParams& p, int64_t segment, int64_t pos) {
  const int32_t page = p.block_table[segment * p.block_table_stride + pos / p.page_size];
  return static_cast<int64_t>(page) * p.page_size + pos % p.page_size;
}

// ---------------------------------------------------------------------------------------------------------------
// SIMT kernel: 128 threads, 16 rows, 32 KB of K/V tile (8 keys at D=256: static shared memory stays under 48 KB);
// 8 threads own each row in the softmax and PV.
template <typename T, int D>
__global__ void __launch_bounds__(128) attention_simt_kernel(AttentionParams p) {
  constexpr int kRows = 16, kKeys = D >= 256 ? 8 : 4096 / D, kThreads = 128, kPerRow = kThreads / kRows;
  __shared__ float q_s[kRows][D];
  __shared__ float k_s[kKeys][D + 1];
  __shared__ float v_s[kKeys][D];
  __shared__ float p_s[kRows][kKeys];
  __shared__ int64_t end_s[kRows];

  const TileRows tile(p, kRows);
  if (tile.empty()) return;
  const int tid = threadIdx.x;
  const T* q = static_cast<const T*>(p.q);
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  const float scale = p.scale * kLog2e;

  for (int i = tid; i < kRows * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float x = 0.0f;
    if (tile.valid(r))
      x = to_float(q[(tile.q_begin + tile.token(r)) * p.q_token_stride + tile.head(r) * p.q_head_stride + d]) * scale;
    q_s[r][d] = x;
  }
  if (tid < kRows) end_s[tid] = tile.valid(tid) ? tile.row_end(tile.token(tid)) : tile.kv_begin;

  const int row = tid / kPerRow, sub = tid % kPerRow;
  float acc[D / kPerRow];
#pragma unroll
  for (int i = 0; i < D / kPerRow; ++i) acc[i] = 0.0f;
  float row_max = -INFINITY, row_sum = 0.0f;
  const int64_t token_stride = p.kv_heads * D;

  for (int64_t block = tile.kv_begin; block < tile.key_end; block += kKeys) {
    __syncthreads();  // previous tile fully consumed (and q_s/end_s written, on the first pass)
    for (int i = tid; i < kKeys * D; i += kThreads) {
      const int j = i / D, d = i % D;
      const int64_t pos = block + j;
      float kx = 0.0f, vx = 0.0f;
      if (pos < tile.key_end) {
        const int64_t src = key_slot(p, tile.segment, pos) * token_stride + tile.kv_head * D + d;
        kx = to_float(k_cache[src]);
        vx = to_float(v_cache[src]);
      }
      k_s[j][d] = kx;
      v_s[j][d] = vx;
    }
    __syncthreads();
    for (int i = tid; i < kRows * kKeys; i += kThreads) {
      const int r = i / kKeys, j = i % kKeys;
      float s = 0.0f;
#pragma unroll 16
      for (int d = 0; d < D; ++d) s += q_s[r][d] * k_s[j][d];
      p_s[r][j] = block + j < end_s[r] ? s : -INFINITY;
    }
    __syncthreads();
    float tile_max = -INFINITY;
    for (int j = sub; j < kKeys; j += kPerRow) tile_max = fmaxf(tile_max, p_s[row][j]);
#pragma unroll
    for (int offset = kPerRow / 2; offset > 0; offset /= 2)
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
    const float new_max = fmaxf(row_max, tile_max);
    // A row that has seen no key yet keeps max -inf; subtracting 0 instead keeps exp2 finite (it yields 0s).
    // (No early `continue` here: every lane of the warp must reach the shuffles below.)
    const float use_max = new_max == -INFINITY ? 0.0f : new_max;
    const float alpha = exp2f(row_max - use_max);
    float part = 0.0f;
    for (int j = sub; j < kKeys; j += kPerRow) {
      const float e = exp2f(p_s[row][j] - use_max);
      p_s[row][j] = e;
      part += e;
    }
#pragma unroll
    for (int offset = kPerRow / 2; offset > 0; offset /= 2) part += __shfl_xor_sync(0xffffffffu, part, offset);
    row_sum = row_sum * alpha + part;
    row_max = new_max;
    __syncwarp();
#pragma unroll
    for (int i = 0; i < D / kPerRow; ++i) {
      float a = acc[i] * alpha;
      for (int j = 0; j < kKeys; ++j) a += p_s[row][j] * v_s[j][sub + i * kPerRow];
      acc[i] = a;
    }
  }

  if (!tile.valid(row)) return;
  const int64_t out_row = tile.out_row(row);
  const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
  T* out = static_cast<T*>(p.out) + out_row * D;
#pragma unroll
  for (int i = 0; i < D / kPerRow; ++i) out[sub + i * kPerRow] = from_float<T>(acc[i] * inv);
  if (sub == 0) p.lse[out_row] = row_sum > 0.0f ? (row_max + log2f(row_sum)) * kLn2 : -INFINITY;
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor-core kernel: 4 warps x 16 rows, 64 keys per tile, fragments of mma.sync.m16n8k16 (fp32 accumulate).
// Thread (g = lane / 4, t = lane % 4) holds rows g and g + 8 of its warp's 16, keys/cols 2t, 2t + 1 of each 8.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <typename T>
__device__ __forceinline__ uint32_t pack2(T lo, T hi) {
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&lo)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
}

template <typename T>
__device__ __forceinline__ void mma_16x8x16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

template <int D>
constexpr int kMmaStride = D + 8;  // padded smem row (elements): fragment loads hit distinct banks
constexpr int kMmaRows = 64, kMmaKeys = 64;

template <typename T, int D>
__global__ void __launch_bounds__(128) attention_mma_kernel(AttentionParams p) {
  constexpr int S = kMmaStride<D>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);
  T* k_s = q_s + kMmaRows * S;
  T* v_s = k_s + kMmaKeys * S;

  const TileRows tile(p, kMmaRows);
  if (tile.empty()) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const T* q = static_cast<const T*>(p.q);
  const T* k_cache = static_cast<const T*>(p.k_cache);
  const T* v_cache = static_cast<const T*>(p.v_cache);
  constexpr int kVec = 8;  // elements per 16-byte move

  for (int i = tid; i < kMmaRows * D / kVec; i += 128) {
    const int r = i / (D / kVec), c = (i % (D / kVec)) * kVec;
    uint4 x = make_uint4(0, 0, 0, 0);
    if (tile.valid(r))
      x = *reinterpret_cast<const uint4*>(
          q + (tile.q_begin + tile.token(r)) * p.q_token_stride + tile.head(r) * p.q_head_stride + c);
    *reinterpret_cast<uint4*>(q_s + r * S + c) = x;
  }
  __syncthreads();
  // This warp's Q fragments stay in registers for the whole key loop.
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kt = 0; kt < D / 16; ++kt) {
    qf[kt][0] = *reinterpret_cast<const uint32_t*>(q_s + r0 * S + kt * 16 + 2 * t);
    qf[kt][1] = *reinterpret_cast<const uint32_t*>(q_s + r1 * S + kt * 16 + 2 * t);
    qf[kt][2] = *reinterpret_cast<const uint32_t*>(q_s + r0 * S + kt * 16 + 2 * t + 8);
    qf[kt][3] = *reinterpret_cast<const uint32_t*>(q_s + r1 * S + kt * 16 + 2 * t + 8);
  }
  const int64_t end0 = tile.valid(r0) ? tile.row_end(tile.token(r0)) : tile.kv_begin;
  const int64_t end1 = tile.valid(r1) ? tile.row_end(tile.token(r1)) : tile.kv_begin;
  const float scale = p.scale * kLog2e;

  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  float max0 = -INFINITY, max1 = -INFINITY, sum0 = 0.0f, sum1 = 0.0f;
  const int64_t token_stride = p.kv_heads * D;

  for (int64_t block = tile.kv_begin; block < tile.key_end; block += kMmaKeys) {
    __syncthreads();  // all warps are done with the previous K/V tile
    for (int i = tid; i < kMmaKeys * D / kVec; i += 128) {
      const int j = i / (D / kVec), c = (i % (D / kVec)) * kVec;
      const int64_t pos = block + j;
      uint4 kx = make_uint4(0, 0, 0, 0), vx = kx;
      if (pos < tile.key_end) {
        const int64_t src = key_slot(p, tile.segment, pos) * token_stride + tile.kv_head * D + c;
        kx = *reinterpret_cast<const uint4*>(k_cache + src);
        vx = *reinterpret_cast<const uint4*>(v_cache + src);
      }
      *reinterpret_cast<uint4*>(k_s + j * S + c) = kx;
      *reinterpret_cast<uint4*>(v_s + j * S + c) = vx;
    }
    __syncthreads();

    float s[kMmaKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kMmaKeys / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
      const T* krow = k_s + (nt * 8 + g) * S + 2 * t;
#pragma unroll
      for (int kt = 0; kt < D / 16; ++kt) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + kt * 16);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + kt * 16 + 8);
        mma_16x8x16<T>(s[nt], qf[kt], b0, b1);
      }
    }
    float tmax0 = -INFINITY, tmax1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kMmaKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t pos = block + nt * 8 + 2 * t + e;
        s[nt][e] = pos < end0 ? s[nt][e] * scale : -INFINITY;
        s[nt][2 + e] = pos < end1 ? s[nt][2 + e] * scale : -INFINITY;
        tmax0 = fmaxf(tmax0, s[nt][e]);
        tmax1 = fmaxf(tmax1, s[nt][2 + e]);
      }
    }
#pragma unroll
    for (int offset = 1; offset < 4; offset *= 2) {
      tmax0 = fmaxf(tmax0, __shfl_xor_sync(0xffffffffu, tmax0, offset));
      tmax1 = fmaxf(tmax1, __shfl_xor_sync(0xffffffffu, tmax1, offset));
    }
    const float new0 = fmaxf(max0, tmax0), new1 = fmaxf(max1, tmax1);
    // A row that has seen no key yet keeps max -inf; subtracting 0 instead keeps exp2 finite (it yields 0s).
    const float use0 = new0 == -INFINITY ? 0.0f : new0, use1 = new1 == -INFINITY ? 0.0f : new1;
    const float alpha0 = exp2f(max0 - use0), alpha1 = exp2f(max1 - use1);
    max0 = new0;
    max1 = new1;
    float part0 = 0.0f, part1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kMmaKeys / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - use0);
      s[nt][1] = exp2f(s[nt][1] - use0);
      s[nt][2] = exp2f(s[nt][2] - use1);
      s[nt][3] = exp2f(s[nt][3] - use1);
      part0 += s[nt][0] + s[nt][1];
      part1 += s[nt][2] + s[nt][3];
    }
    sum0 = sum0 * alpha0 + part0;  // per-thread partial sums; the quad is summed once at the end
    sum1 = sum1 * alpha1 + part1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      acc[dt][0] *= alpha0;
      acc[dt][1] *= alpha0;
      acc[dt][2] *= alpha1;
      acc[dt][3] *= alpha1;
    }
    // P (the S accumulators, as 16-bit A fragments) times V.
#pragma unroll
    for (int kt = 0; kt < kMmaKeys / 16; ++kt) {
      const uint32_t a[4] = {pack2<T>(s[2 * kt][0], s[2 * kt][1]), pack2<T>(s[2 * kt][2], s[2 * kt][3]),
                             pack2<T>(s[2 * kt + 1][0], s[2 * kt + 1][1]),
                             pack2<T>(s[2 * kt + 1][2], s[2 * kt + 1][3])};
      const T* v0 = v_s + (kt * 16 + 2 * t) * S + g;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        const T* v = v0 + dt * 8;
        const uint32_t b0 = pack2<T>(v[0], v[S]);
        const uint32_t b1 = pack2<T>(v[8 * S], v[9 * S]);
        mma_16x8x16<T>(acc[dt], a, b0, b1);
      }
    }
  }

#pragma unroll
  for (int offset = 1; offset < 4; offset *= 2) {
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, offset);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, offset);
  }
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = half ? r1 : r0;
    if (!tile.valid(r)) continue;
    const float sum = half ? sum1 : sum0, mx = half ? max1 : max0;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int64_t out_row = tile.out_row(r);
    T* dst = out + out_row * D + 2 * t;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      *reinterpret_cast<uint32_t*>(dst + dt * 8) = pack2<T>(acc[dt][2 * half] * inv, acc[dt][2 * half + 1] * inv);
    if (t == 0) p.lse[out_row] = sum > 0.0f ? (mx + log2f(sum)) * kLn2 : -INFINITY;
  }
}

// `rows`: the most query rows (tokens x q heads per kv head) any segment has; one grid z-slice per tile of them.
template <typename Kernel>
void launch(Kernel kernel, const AttentionParams& p, int64_t rows, int64_t rows_per_tile, size_t smem,
            cudaStream_t stream) {
  const int64_t tiles = (rows + rows_per_tile - 1) / rows_per_tile;
  if (tiles == 0) return;
  if (tiles > 65535 || p.num_segments > 2147483647 || p.kv_heads > 65535)
    throw std::invalid_argument("tokasaurus attention: launch grid too large (too many query rows in a segment)");
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  kernel<<<dim3(p.num_segments, p.kv_heads, tiles), 128, smem, stream>>>(p);
  check_launch("attention");
}

template <typename T, int D>
void launch_for_dim(const AttentionParams& p, cudaStream_t stream) {
  const int64_t rows = p.max_q_per_segment * (p.q_heads / p.kv_heads);
  // Tensor cores pay off once a tile has more rows than an FMA tile (16): prefill chunks, Hydragen groups.
  if constexpr (!std::is_same_v<T, float> && D <= 128) {
    if (rows > 16 && aligned16(p.q) && aligned16(p.k_cache) && aligned16(p.v_cache) && p.q_token_stride % 8 == 0 &&
        p.q_head_stride % 8 == 0) {
      const size_t smem = size_t(kMmaRows + 2 * kMmaKeys) * kMmaStride<D> * sizeof(T);
      launch(attention_mma_kernel<T, D>, p, rows, kMmaRows, smem, stream);
      return;
    }
  }
  launch(attention_simt_kernel<T, D>, p, rows, 16, 0, stream);
}

}  // namespace

void attention(const AttentionParams& p, ScalarKind dtype, cudaStream_t stream) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (p.head_dim) {
      case 64: launch_for_dim<T, 64>(p, stream); return;
      case 128: launch_for_dim<T, 128>(p, stream); return;
      case 256: launch_for_dim<T, 256>(p, stream); return;
      default:
        throw std::invalid_argument("tokasaurus attention: head_dim " + std::to_string(p.head_dim) +
                                    " is not supported on CUDA (64, 128 or 256)");
    }
  });
}

}  // namespace tokasaurus::cuda
