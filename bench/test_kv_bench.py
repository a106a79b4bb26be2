"""KV write and gather bandwidth next to torch.index_select / index_copy_ and a plain copy of the same bytes.

GB/s counts bytes read plus bytes written (K and V). Run:
pytest bench/test_kv_bench.py [--device cuda] --benchmark-json bench/results/<name>.json
"""

import math

import pytest
import torch

from tokasaurus_ext import ops

PAGE = 16


def setup(tokens: int, kv_heads: int, dim: int, device: str):
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    num_pages = math.ceil(tokens / PAGE) * 2
    k_cache = torch.randn(num_pages, PAGE, kv_heads, dim, generator=gen).to(dtype).to(device)
    v_cache = torch.randn_like(k_cache)
    slots = torch.randperm(num_pages * PAGE, generator=gen)[:tokens].to(device)
    k = torch.randn(tokens, kv_heads, dim, generator=gen).to(dtype).to(device)
    v = torch.randn_like(k)
    return k_cache, v_cache, slots, k, v


SIZES = [(4096, 8, 128), (16384, 3, 64), (65536, 8, 128)]


@pytest.mark.parametrize("impl", ["kv_write", "index_copy", "copy"])
@pytest.mark.parametrize("tokens,kv_heads,dim", SIZES)
def test_kv_write(run, device, impl, tokens, kv_heads, dim):
    k_cache, v_cache, slots, k, v = setup(tokens, kv_heads, dim, device)
    moved = 4 * k.numel() * k.element_size()  # read k, v; write the same bytes into the caches
    flat_k, flat_v = k_cache.view(-1, kv_heads, dim), v_cache.view(-1, kv_heads, dim)
    dst_k, dst_v = torch.empty_like(k), torch.empty_like(v)
    fns = {
        "kv_write": lambda: ops.kv_write(k, v, k_cache, v_cache, slots, check_bounds=False),
        "index_copy": lambda: (flat_k.index_copy_(0, slots, k), flat_v.index_copy_(0, slots, v)),
        "copy": lambda: (dst_k.copy_(k), dst_v.copy_(v)),
    }
    run(fns[impl], impl=impl, tokens=tokens, kv_heads=kv_heads, dim=dim, bytes=moved)


@pytest.mark.parametrize("impl", ["kv_gather", "index_select", "copy"])
@pytest.mark.parametrize("tokens,kv_heads,dim", SIZES)
def test_kv_gather(run, device, impl, tokens, kv_heads, dim):
    k_cache, v_cache, _, k, v = setup(tokens, kv_heads, dim, device)
    seqs = 8
    per_seq = tokens // seqs
    pages_per_seq = math.ceil(per_seq / PAGE)
    gen = torch.Generator().manual_seed(1)
    table = torch.randperm(k_cache.shape[0], generator=gen)[: seqs * pages_per_seq].view(seqs, pages_per_seq)
    table = table.to(torch.int32).to(device)
    lens = torch.full((seqs,), per_seq, dtype=torch.int32, device=device)
    pos = torch.arange(per_seq, device=device)
    slots = (table.long()[:, pos // PAGE] * PAGE + pos % PAGE).reshape(-1)
    flat_k, flat_v = k_cache.view(-1, kv_heads, dim), v_cache.view(-1, kv_heads, dim)
    out = torch.empty(seqs * per_seq, kv_heads, dim, dtype=k.dtype, device=device)
    moved = 4 * out.numel() * out.element_size()
    src_k, src_v = k[: out.shape[0]], v[: out.shape[0]]
    out_v = torch.empty_like(out)
    fns = {
        "kv_gather": lambda: ops.kv_gather(
            k_cache, v_cache, table, lens, seqs * per_seq, check_bounds=False, out=(out, out_v)
        ),
        "index_select": lambda: (
            torch.index_select(flat_k, 0, slots, out=out),
            torch.index_select(flat_v, 0, slots, out=out_v),
        ),
        "copy": lambda: (out.copy_(src_k), out_v.copy_(src_v)),
    }
    run(fns[impl], impl=impl, tokens=seqs * per_seq, kv_heads=kv_heads, dim=dim, bytes=moved)
