// Sends a params struct to the CPU or the CUDA kernel of the same name, by the device of a reference tensor.
#pragma once

#include <ATen/ATen.h>

#include "tokasaurus/cpu_kernels.h"

#ifdef TOKASAURUS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "tokasaurus/cuda_kernels.h"

#define TOKASAURUS_LAUNCH(kernel, like, params, kind)                                                 \
  do {                                                                                                 \
    if ((like).is_cuda()) {                                                                            \
      const c10::cuda::CUDAGuard device_guard((like).device());                                        \
      ::tokasaurus::cuda::kernel((params), (kind), at::cuda::getCurrentCUDAStream().stream());         \
    } else {                                                                                           \
      ::tokasaurus::cpu::kernel((params), (kind));                                                     \
    }                                                                                                  \
  } while (0)
#else
#define TOKASAURUS_LAUNCH(kernel, like, params, kind)                                                 \
  do {                                                                                                 \
    TORCH_CHECK(!(like).is_cuda(), "tokasaurus_ext was built without CUDA kernels; rebuild with a CUDA " \
                "build of torch and nvcc (pip install --no-build-isolation .)");                      \
    ::tokasaurus::cpu::kernel((params), (kind));                                                       \
  } while (0)
#endif
