"""Hydragen vs paged attention over the same shared pages vs per-sequence SDPA over a replicated prefix.

One decode step: `batch` sequences share a `prefix`-token prompt (the same pages, as a prefix cache leaves them)
and each has `suffix` tokens of its own; every sequence has one new query token.
  hydragen: prefix attention for all queries at once + paged attention over each suffix + merge
  paged:    paged attention over each sequence's full page list (prefix pages shared, vLLM-style prefix caching)
  sdpa:     torch scaled_dot_product_attention per sequence over contiguous K/V with the prefix replicated
Run: pytest bench/test_attention_bench.py [--device cuda] --benchmark-json bench/results/<name>.json
"""

import math

import pytest
import torch

from tokasaurus_ext import ops

SHAPES = {"smollm2": (9, 3, 64), "llama3-8b": (32, 8, 128)}
PAGE = 16


def build(batch: int, prefix: int, suffix: int, shape: str, device: str):
    q_heads, kv_heads, dim = SHAPES[shape]
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    prefix_pages = math.ceil(prefix / PAGE)
    suffix_pages = math.ceil(suffix / PAGE)
    assert prefix % PAGE == 0, "the shared prefix is whole pages, as the prefix cache keeps it"
    num_pages = prefix_pages + batch * suffix_pages
    k_cache = torch.randn(num_pages, PAGE, kv_heads, dim, generator=gen).to(dtype).to(device)
    v_cache = torch.randn(num_pages, PAGE, kv_heads, dim, generator=gen).to(dtype).to(device)
    own = torch.arange(prefix_pages, num_pages, dtype=torch.int32).view(batch, suffix_pages)
    shared = torch.arange(prefix_pages, dtype=torch.int32).expand(batch, prefix_pages)
    table = torch.cat([shared, own], dim=1).contiguous().to(device)
    i32 = dict(dtype=torch.int32, device=device)
    return dict(
        q=torch.randn(batch, q_heads, dim, generator=gen).to(dtype).to(device),
        k_cache=k_cache,
        v_cache=v_cache,
        table=table,
        kv_lens=torch.full((batch,), prefix + suffix, **i32),
        kv_starts=torch.full((batch,), prefix, **i32),
        cu_q=torch.arange(batch + 1, **i32),
        cu_group=torch.tensor([0, batch], **i32),
        prefix_table=table[:1, :prefix_pages].contiguous(),
        prefix_lens=torch.tensor([prefix], **i32),
        scale=1 / math.sqrt(dim),
        batch=batch,
        prefix=prefix,
        suffix=suffix,
        shape=(q_heads, kv_heads, dim),
    )


def hydragen(c) -> torch.Tensor:
    pre = ops.hydragen_prefix_attention(
        c["q"],
        c["k_cache"],
        c["v_cache"],
        c["cu_group"],
        c["prefix_table"],
        c["prefix_lens"],
        c["scale"],
        c["batch"],
        check_bounds=False,
    )
    suf = ops.paged_attention(
        c["q"],
        c["k_cache"],
        c["v_cache"],
        c["cu_q"],
        c["table"],
        c["kv_lens"],
        c["scale"],
        1,
        kv_starts=c["kv_starts"],
        check_bounds=False,
    )
    return ops.merge_attention_states(*pre, *suf)[0]


def paged(c) -> torch.Tensor:
    return ops.paged_attention(
        c["q"], c["k_cache"], c["v_cache"], c["cu_q"], c["table"], c["kv_lens"], c["scale"], 1, check_bounds=False
    )[0]


def sdpa_inputs(c):
    """Each sequence's K/V as its own contiguous [1, kv_heads, len, dim] tensors (the prefix copied per sequence)."""
    k, v = ops.kv_gather(c["k_cache"], c["v_cache"], c["table"], c["kv_lens"], c["batch"] * (c["prefix"] + c["suffix"]))
    length = c["prefix"] + c["suffix"]

    def per_seq(x):
        return [x[i * length : (i + 1) * length].transpose(0, 1).unsqueeze(0).contiguous() for i in range(c["batch"])]

    return per_seq(k), per_seq(v)


def sdpa(c, ks, vs) -> torch.Tensor:
    outs = []
    for i in range(c["batch"]):
        q = c["q"][i : i + 1].unsqueeze(2)  # [1, q_heads, 1, dim]
        outs.append(
            torch.nn.functional.scaled_dot_product_attention(q, ks[i], vs[i], scale=c["scale"], enable_gqa=True)
        )
    return torch.cat(outs)


def cases(device_batches, prefixes, suffixes):
    return [(b, p, s, shape) for shape in SHAPES for b in device_batches for p in prefixes for s in suffixes]


CASES = cases([8, 32, 64, 128], [512, 2048], [16, 64, 128])
GPU_EXTRA = [(256, 4096, s, shape) for shape in SHAPES for s in (16, 64, 128)]


@pytest.mark.parametrize("impl", ["hydragen", "paged", "sdpa"])
@pytest.mark.parametrize("batch,prefix,suffix,shape", CASES + GPU_EXTRA)
def test_shared_prefix_decode(run, device, impl, batch, prefix, suffix, shape):
    if (batch, prefix, suffix, shape) in GPU_EXTRA and device == "cpu":
        pytest.skip("batch 256 x prefix 4096 is the GPU target case")
    if device == "cpu" and shape == "llama3-8b" and impl == "sdpa" and batch * (prefix + suffix) > 64 * 2200:
        pytest.skip("replicating the prefix per sequence needs > 1 GB of fp32 K/V here")
    c = build(batch, prefix, suffix, shape, device)
    info = dict(impl=impl, batch=batch, prefix=prefix, suffix=suffix, shape=shape)
    if impl == "hydragen":
        run(lambda: hydragen(c), **info)
    elif impl == "paged":
        run(lambda: paged(c), **info)
    else:
        ks, vs = sdpa_inputs(c)
        run(lambda: sdpa(c, ks, vs), **info)
