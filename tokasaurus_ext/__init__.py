"""tokasaurus_ext: a throughput-oriented LLM inference engine over hand-written CPU and CUDA kernels."""

from tokasaurus_ext import ops
from tokasaurus_ext._library import built_with_cuda

__all__ = ["ops", "built_with_cuda"]
__version__ = "0.1.0"
