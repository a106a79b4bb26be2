// The one registration point of the extension: op schemas, their CPU and CUDA implementations (the same
// device-dispatching functions from csrc/ops) and Meta implementations that compute only output shapes.
// The `.out` overloads mutate caller buffers and return nothing: torch.compile rejects custom ops whose
// outputs alias their inputs.
#include <torch/library.h>

#include "ops/ops.h"

namespace tokasaurus::ops {
namespace {

void kv_write_meta(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                   bool) {}

std::tuple<at::Tensor, at::Tensor> paged_attention_meta(const at::Tensor& q, const at::Tensor&, const at::Tensor&,
                                                        const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                        const c10::optional<at::Tensor>&, double, int64_t, bool) {
  return attention_meta(q);
}

std::tuple<at::Tensor, at::Tensor> hydragen_prefix_attention_meta(const at::Tensor& q, const at::Tensor&,
                                                                  const at::Tensor&, const at::Tensor&,
                                                                  const at::Tensor&, const at::Tensor&, double,
                                                                  int64_t, bool) {
  return attention_meta(q);
}

std::tuple<at::Tensor, at::Tensor> merge_attention_states_meta(const at::Tensor& out_a, const at::Tensor& lse_a,
                                                               const at::Tensor&, const at::Tensor&) {
  return {at::empty(out_a.sizes(), out_a.options()), at::empty(lse_a.sizes(), lse_a.options())};
}

}  // namespace
}  // namespace tokasaurus::ops

TORCH_LIBRARY(tokasaurus_ext, m) {
  m.def("kv_write(Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slots, "
        "bool check_bounds=True) -> ()");
  m.def("kv_gather(Tensor k_cache, Tensor v_cache, Tensor block_table, Tensor seq_lens, int total_tokens, "
        "bool check_bounds=True) -> (Tensor, Tensor)");
  m.def("paged_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cu_q_lens, Tensor block_table, "
        "Tensor kv_lens, Tensor? kv_starts, float scale, int max_q_len, bool check_bounds=True) -> (Tensor, Tensor)");
  m.def("hydragen_prefix_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cu_group_q_lens, "
        "Tensor prefix_block_table, Tensor prefix_lens, float scale, int max_group_q_len, "
        "bool check_bounds=True) -> (Tensor, Tensor)");
  m.def("merge_attention_states(Tensor out_a, Tensor lse_a, Tensor out_b, Tensor lse_b) -> (Tensor, Tensor)");
  m.def("kv_gather.out(Tensor k_cache, Tensor v_cache, Tensor block_table, Tensor seq_lens, int total_tokens, "
        "bool check_bounds=True, *, Tensor(a!) k_out, Tensor(b!) v_out) -> ()");
  m.def("paged_attention.out(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cu_q_lens, Tensor block_table, "
        "Tensor kv_lens, Tensor? kv_starts, float scale, int max_q_len, bool check_bounds=True, *, "
        "Tensor(a!) out, Tensor(b!) lse) -> ()");
  m.def("hydragen_prefix_attention.out(Tensor q, Tensor k_cache, Tensor v_cache, Tensor cu_group_q_lens, "
        "Tensor prefix_block_table, Tensor prefix_lens, float scale, int max_group_q_len, bool check_bounds=True, "
        "*, Tensor(a!) out, Tensor(b!) lse) -> ()");
  m.def("merge_attention_states.out(Tensor out_a, Tensor lse_a, Tensor out_b, Tensor lse_b, *, "
        "Tensor(a!) out, Tensor(b!) lse) -> ()");
}

#define TOKASAURUS_IMPL_DEVICE(dispatch_key)                                               \
  TORCH_LIBRARY_IMPL(tokasaurus_ext, dispatch_key, m) {                                    \
    m.impl("kv_write", &tokasaurus::ops::kv_write);                                        \
    m.impl("kv_gather", &tokasaurus::ops::kv_gather);                                      \
    m.impl("paged_attention", &tokasaurus::ops::paged_attention);                          \
    m.impl("hydragen_prefix_attention", &tokasaurus::ops::hydragen_prefix_attention);      \
    m.impl("merge_attention_states", &tokasaurus::ops::merge_attention_states);            \
    m.impl("kv_gather.out", &tokasaurus::ops::kv_gather_out);                              \
    m.impl("paged_attention.out", &tokasaurus::ops::paged_attention_out);                  \
    m.impl("hydragen_prefix_attention.out", &tokasaurus::ops::hydragen_prefix_attention_out); \
    m.impl("merge_attention_states.out", &tokasaurus::ops::merge_attention_states_out);    \
  }

TOKASAURUS_IMPL_DEVICE(CPU)
#ifdef TOKASAURUS_WITH_CUDA
TOKASAURUS_IMPL_DEVICE(CUDA)
#endif

TORCH_LIBRARY_IMPL(tokasaurus_ext, Meta, m) {
  m.impl("kv_write", &tokasaurus::ops::kv_write_meta);
  m.impl("kv_gather", &tokasaurus::ops::kv_gather_meta);
  m.impl("paged_attention", &tokasaurus::ops::paged_attention_meta);
  m.impl("hydragen_prefix_attention", &tokasaurus::ops::hydragen_prefix_attention_meta);
  m.impl("merge_attention_states", &tokasaurus::ops::merge_attention_states_meta);
  m.impl("kv_gather.out", [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, bool,
                             at::Tensor&, at::Tensor&) {});
  m.impl("paged_attention.out",
         [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            const at::Tensor&, const c10::optional<at::Tensor>&, double, int64_t, bool, at::Tensor&, at::Tensor&) {});
  m.impl("hydragen_prefix_attention.out",
         [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
            const at::Tensor&, double, int64_t, bool, at::Tensor&, at::Tensor&) {});
  m.impl("merge_attention_states.out",
         [](const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&) {});
}
