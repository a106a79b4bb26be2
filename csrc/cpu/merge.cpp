// CPU merge of two partial attention results over disjoint key sets (the Hydragen / split-KV combine rule).
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/scalar.h"
#include "cpu/parallel.h"
#include "tokasaurus/cpu_kernels.h"

namespace tokasaurus::cpu {

void merge_states(const MergeParams& p, ScalarKind dtype) {
  dispatch_scalar(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* a = static_cast<const T*>(p.out_a);
    const T* b = static_cast<const T*>(p.out_b);
    T* out = static_cast<T*>(p.out);
    at::parallel_for(0, p.num_rows, 256, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float la = p.lse_a[r], lb = p.lse_b[r];
        const float m = std::max(la, lb);
        // Both empty: nothing attended, the result is empty too (zeros, lse -inf).
        const float wa = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(la - m);
        const float wb = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(lb - m);
        const float sum = wa + wb;
        const float ca = sum > 0.0f ? wa / sum : 0.0f, cb = sum > 0.0f ? wb / sum : 0.0f;
        const T* ra = a + r * p.head_dim;
        const T* rb = b + r * p.head_dim;
        T* ro = out + r * p.head_dim;
        for (int64_t d = 0; d < p.head_dim; ++d) ro[d] = from_float<T>(ca * to_float(ra[d]) + cb * to_float(rb[d]));
        if (p.lse_out) p.lse_out[r] = sum > 0.0f ? m + std::log(sum) : m;
      }
    });
  });
}

}  // namespace tokasaurus::cpu
