"""Paged attention, Hydragen prefix attention and the merge, against the fp64 reference in paged_reference.py."""

import math
import random

import pytest
import torch
from conftest import DEVICES
from paged_reference import assert_close, make_paged_cache, reference_attention

from tokasaurus_ext import ops

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (q heads per kv head, kv heads, head dim): GQA ratios 1/3/4/8 at both head dims.
SHAPES = [(1, 3, 64), (3, 3, 64), (4, 2, 128), (8, 1, 128), (3, 1, 128), (8, 2, 64)]


def nan_outputs(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output buffers full of NaN, so any element the kernel does not write fails the comparison."""
    out = torch.full_like(q, float("nan"), memory_format=torch.contiguous_format)
    lse = torch.full(q.shape[:2], float("nan"), device=q.device)
    return out, lse


def strided_queries(n: int, q_heads: int, kv_heads: int, dim: int, dtype, device, gen) -> torch.Tensor:
    """Queries as the q slice of a fused qkv projection: a token stride larger than q_heads * dim."""
    qkv = torch.randn(n, q_heads + 2 * kv_heads, dim, generator=gen).to(dtype).to(device)
    return qkv[:, :q_heads]


def mixed_batch(num_seqs: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Per sequence (query count, total kv length): decode rows, prefills from 0 and chunks starting mid-way."""
    q_lens, kv_lens = [], []
    for _ in range(num_seqs):
        kind = rng.choice(["decode", "prefill", "chunk"])
        q_len = 1 if kind == "decode" else rng.randint(1, 37)
        start = 0 if kind == "prefill" else rng.randint(1, 90)
        q_lens.append(q_len)
        kv_lens.append(start + q_len)
    return q_lens, kv_lens


def cu(lens: list[int], device) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)


# Every shape at 1, 3 and 17 sequences; the 113-sequence batch on the SmolLM2-like shapes (keeps 2 cores quick).
BATCHES = [(shape, n, page) for shape in SHAPES for n, page in [(1, 16), (3, 7), (17, 16)]]
BATCHES += [(shape, 113, 16) for shape in SHAPES[:2]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,num_seqs,page_size", BATCHES)
def test_paged_attention_mixed_batch(device, dtype, shape, num_seqs, page_size, gen):
    group, kv_heads, dim = shape
    rng = random.Random(num_seqs * 1000 + group)
    q_lens, kv_lens = mixed_batch(num_seqs, rng)
    cache = make_paged_cache(kv_lens, page_size, kv_heads, dim, dtype, device, gen)
    q = strided_queries(sum(q_lens), group * kv_heads, kv_heads, dim, dtype, device, gen)
    scale = 1 / math.sqrt(dim) * 1.3
    out = ops.paged_attention(
        q,
        cache.k_cache,
        cache.v_cache,
        cu(q_lens, device),
        cache.block_table,
        cache.seq_lens,
        scale,
        max(q_lens),
        out=nan_outputs(q),
    )
    first = 0
    for s in range(num_seqs):
        k, v = cache.token_kv(s)
        rows = slice(first, first + q_lens[s])
        ref_out, ref_lse = reference_attention(q[rows], k, v, scale, first_pos=kv_lens[s] - q_lens[s])
        assert_close(out[0][rows], ref_out, dtype, f"out of sequence {s}")
        assert_close(out[1][rows], ref_lse, torch.float32 if dtype == torch.float32 else dtype, f"lse of seq {s}")
        first += q_lens[s]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_paged_attention_kv_starts_skip_keys(device, dtype, gen):
    """kv_starts leaves the first keys out (Hydragen's suffix half); a row left with no key gets lse -inf."""
    q_lens, kv_lens, starts = [1, 5, 3, 1], [40, 37, 19, 16], [32, 20, 19, 16]
    cache = make_paged_cache(kv_lens, 16, 2, 64, dtype, device, gen)
    q = strided_queries(sum(q_lens), 6, 2, 64, dtype, device, gen)
    out, lse = ops.paged_attention(
        q,
        cache.k_cache,
        cache.v_cache,
        cu(q_lens, device),
        cache.block_table,
        cache.seq_lens,
        0.125,
        5,
        kv_starts=torch.tensor(starts, dtype=torch.int32, device=device),
        out=nan_outputs(q),
    )
    first = 0
    for s, (n, length, start) in enumerate(zip(q_lens, kv_lens, starts, strict=True)):
        k, v = cache.token_kv(s)
        rows = slice(first, first + n)
        ref_out, ref_lse = reference_attention(q[rows], k[start:], v[start:], 0.125, first_pos=length - n - start)
        assert_close(out[rows], ref_out, dtype, f"out of sequence {s}")
        if length == start:
            assert torch.isneginf(lse[rows]).all() and (out[rows] == 0).all()
        else:
            assert_close(lse[rows], ref_lse, torch.float32 if dtype == torch.float32 else dtype, f"lse of {s}")
        first += n


def hydragen_case(num_groups, seqs_per_group, prefix_lens, suffix_len, group, kv_heads, dim, dtype, device, gen):
    """Groups of sequences sharing prefix pages: each sequence's block table starts with its group's prefix pages
    and continues with its own pages; every sequence has `suffix_len` new query tokens at the end."""
    page_size = 16
    seq_lens = [prefix_lens[g] + suffix_len + 3 * i for g in range(num_groups) for i in range(seqs_per_group)]
    cache = make_paged_cache(seq_lens, page_size, kv_heads, dim, dtype, device, gen)
    table = cache.block_table.clone()
    for g in range(num_groups):
        shared = math.ceil(prefix_lens[g] / page_size)
        first = g * seqs_per_group
        table[first : first + seqs_per_group, :shared] = table[first, :shared].clone()
    cache.block_table = table
    q_lens = [suffix_len] * len(seq_lens)
    q = strided_queries(sum(q_lens), group * kv_heads, kv_heads, dim, dtype, device, gen)
    return cache, q, q_lens, seq_lens


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("group,kv_heads,dim", SHAPES)
@pytest.mark.parametrize("num_groups,seqs_per_group,suffix_len", [(1, 1, 1), (2, 3, 1), (3, 17, 1), (2, 5, 4)])
def test_hydragen_equals_full_attention(
    device, dtype, group, kv_heads, dim, num_groups, seqs_per_group, suffix_len, gen
):
    """Prefix attention (all of a group's queries at once) + suffix attention + merge == attention over
    prefix||suffix, and the prefix half alone matches the reference over the prefix."""
    prefix_lens = [32, 77, 160][:num_groups]  # page-aligned and not
    cache, q, q_lens, seq_lens = hydragen_case(
        num_groups, seqs_per_group, prefix_lens, suffix_len, group, kv_heads, dim, dtype, device, gen
    )
    scale = 1 / math.sqrt(dim)
    groups_cu = cu([seqs_per_group * suffix_len] * num_groups, device)
    prefix_table = cache.block_table[::seqs_per_group].contiguous()
    prefix_len_t = torch.tensor(prefix_lens, dtype=torch.int32, device=device)
    pre = ops.hydragen_prefix_attention(
        q,
        cache.k_cache,
        cache.v_cache,
        groups_cu,
        prefix_table,
        prefix_len_t,
        scale,
        seqs_per_group * suffix_len,
        out=nan_outputs(q),
    )
    starts = torch.tensor(
        [prefix_lens[i // seqs_per_group] for i in range(len(seq_lens))], dtype=torch.int32, device=device
    )
    suf = ops.paged_attention(
        q,
        cache.k_cache,
        cache.v_cache,
        cu(q_lens, device),
        cache.block_table,
        cache.seq_lens,
        scale,
        suffix_len,
        kv_starts=starts,
        out=nan_outputs(q),
    )
    merged = ops.merge_attention_states(*pre, *suf, out=nan_outputs(q))
    lse_dtype = torch.float32 if dtype == torch.float32 else dtype
    for s in range(len(seq_lens)):
        k, v = cache.token_kv(s)
        rows = slice(s * suffix_len, (s + 1) * suffix_len)
        full_out, full_lse = reference_attention(q[rows], k, v, scale, first_pos=seq_lens[s] - suffix_len)
        assert_close(merged[0][rows], full_out, dtype, f"merged out of sequence {s}")
        assert_close(merged[1][rows], full_lse, lse_dtype, f"merged lse of sequence {s}")
        p = prefix_lens[s // seqs_per_group]
        pre_out, pre_lse = reference_attention(q[rows], k[:p], v[:p], scale, first_pos=None)
        assert_close(pre[0][rows], pre_out, dtype, f"prefix out of sequence {s}")
        assert_close(pre[1][rows], pre_lse, lse_dtype, f"prefix lse of sequence {s}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_merge_matches_reference(device, dtype, gen):
    n, heads, dim = 37, 5, 80
    out_a, out_b = (torch.randn(n, heads, dim, generator=gen).to(dtype).to(device) for _ in range(2))
    lse_a = (torch.randn(n, heads, generator=gen) * 4).to(device)
    lse_b = (torch.randn(n, heads, generator=gen) * 4).to(device)
    lse_a[0, :2] = float("-inf")  # one side empty
    lse_a[1, 0] = lse_b[1, 0] = float("-inf")  # both empty
    lse_b[2, 1] = 1e4  # huge: must not overflow
    out, lse = ops.merge_attention_states(out_a, lse_a, out_b, lse_b, out=nan_outputs(out_a))
    a, b = out_a.double().cpu(), out_b.double().cpu()
    la, lb = lse_a.double().cpu(), lse_b.double().cpu()
    ref_lse = torch.logaddexp(la, lb)
    wa = torch.exp(la - ref_lse).nan_to_num(0.0)[..., None]
    wb = torch.exp(lb - ref_lse).nan_to_num(0.0)[..., None]
    assert_close(out, wa * a + wb * b, dtype, "merged out")
    finite = torch.isfinite(ref_lse)
    assert torch.isneginf(lse.cpu()[~finite]).all()
    assert torch.allclose(lse.cpu().double()[finite], ref_lse[finite], rtol=1e-6, atol=1e-5)
