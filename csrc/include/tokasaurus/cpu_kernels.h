// Entry points of the CPU kernels (csrc/cpu). The torch glue in csrc/ops calls these after validation.
#pragma once

#include "tokasaurus/params.h"

namespace tokasaurus::cpu {

void kv_write(const KvWriteParams& p, ScalarKind dtype);
void kv_gather(const KvGatherParams& p, ScalarKind dtype);
void attention(const AttentionParams& p, ScalarKind dtype);
void merge_states(const MergeParams& p, ScalarKind dtype);

}  // namespace tokasaurus::cpu
