// Entry points of the CUDA kernels (csrc/cuda/*.cu): raw pointers in a params struct plus a stream.
#pragma once

#include <cuda_runtime_api.h>

#include "tokasaurus/params.h"

namespace tokasaurus::cuda {

void kv_write(const KvWriteParams& p, ScalarKind dtype, cudaStream_t stream);
void kv_gather(const KvGatherParams& p, ScalarKind dtype, cudaStream_t stream);
void attention(const AttentionParams& p, ScalarKind dtype, cudaStream_t stream);
void merge_states(const MergeParams& p, ScalarKind dtype, cudaStream_t stream);

}  // namespace tokasaurus::cuda
