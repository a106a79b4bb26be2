"""Reproduces the CUDA-only crash of the cache_3d bad-argument case outside pytest."""
import sys

import torch

sys.path.insert(0, ".")
from tokasaurus_ext import ops  # noqa: E402

dev = "cuda"
q = torch.randn(4, 6, 64, device=dev)
k = torch.randn(11, 4, 2, 64, device=dev)
cu = torch.tensor([0, 1, 4], dtype=torch.int32, device=dev)
table = torch.zeros(2, 7, dtype=torch.int32, device=dev)
lens = torch.tensor([9, 20], dtype=torch.int32, device=dev)
for name, kc in [("4d-ok", k), ("3d", k[0])]:
    try:
        ops.paged_attention(q, kc, kc, cu, table, lens, 0.125, 3)
        print(name, "no error", flush=True)
    except Exception as e:  # noqa: BLE001
        print(name, type(e).__name__, str(e).splitlines()[0], flush=True)
