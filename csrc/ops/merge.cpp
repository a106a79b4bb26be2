#include "ops/checks.h"
#include "ops/launch.h"
#include "ops/ops.h"

namespace tokasaurus::ops {

std::tuple<at::Tensor, at::Tensor> merge_attention_states(const at::Tensor& out_a, const at::Tensor& lse_a,
                                                          const at::Tensor& out_b, const at::Tensor& lse_b) {
  at::Tensor out = at::empty(out_a.sizes(), out_a.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor lse = at::empty(lse_a.sizes(), lse_a.options().memory_format(at::MemoryFormat::Contiguous));
  merge_attention_states_out(out_a, lse_a, out_b, lse_b, out, lse);
  return {out, lse};
}

void merge_attention_states_out(const at::Tensor& out_a, const at::Tensor& lse_a,
                                                                const at::Tensor& out_b, const at::Tensor& lse_b,
                                                                at::Tensor& out, at::Tensor& lse) {
  constexpr const char* op = "merge_attention_states";
  TORCH_CHECK_VALUE(out_a.dim() == 3, op, ": out_a must be [num_tokens, heads, head_dim], got ", out_a.sizes());
  TORCH_CHECK_VALUE(out_b.sizes() == out_a.sizes(), op, ": out_b shape ", out_b.sizes(), " differs from out_a shape ",
                    out_a.sizes());
  TORCH_CHECK_VALUE(out_b.scalar_type() == out_a.scalar_type(), op, ": out_b dtype ", out_b.scalar_type(),
                    " differs from out_a dtype ", out_a.scalar_type());
  for (const auto& [t, name] : {std::pair{lse_a, "lse_a"}, std::pair{lse_b, "lse_b"}}) {
    TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == out_a.size(0) && t.size(1) == out_a.size(1), op, ": ", name,
                      " must be [", out_a.size(0), ", ", out_a.size(1), "], got ", t.sizes());
    check_same_device(t, out_a, op, name);
  }
  check_same_device(out_b, out_a, op, "out_b");
  const ScalarKind kind = scalar_kind(out_a, op, "out_a");
  const at::Tensor a = out_a.contiguous(), b = out_b.contiguous();
  const at::Tensor la = lse_a.contiguous(), lb = lse_b.contiguous();
  check_output(out, a.sizes(), a.scalar_type(), a, op, "out");
  check_output(lse, la.sizes(), at::kFloat, a, op, "lse");
  MergeParams p{};
  p.out_a = a.data_ptr();
  p.lse_a = la.data_ptr<float>();
  p.out_b = b.data_ptr();
  p.lse_b = lb.data_ptr<float>();
  p.out = out.data_ptr();
  p.lse_out = lse.data_ptr<float>();
  p.num_rows = a.size(0) * a.size(1);
  p.head_dim = a.size(2);
  if (p.num_rows > 0) TOKASAURUS_LAUNCH(merge_states, a, p, kind);
}

}  // namespace tokasaurus::ops
