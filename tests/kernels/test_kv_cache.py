"""KV-cache write (scatter into slots) and gather (pages -> contiguous rows), against plain torch indexing.

Both ops only move data, so every comparison is exact (rtol=atol=0), with NaN-poisoned destinations: a slot or
output row the kernel should not touch stays NaN, and one it should write but misses is still NaN."""

import math
import random

import pytest
import torch
from conftest import DEVICES
from paged_reference import make_paged_cache

from tokasaurus_ext import ops

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
KV_HEADS = [1, 3, 8]
HEAD_DIMS = [64, 128]
PAGE_SIZES = [16, 5]
TOKEN_COUNTS = [1, 3, 17, 113]
Q_HEADS = 4  # the q part of the fused projection the k/v slices are cut from


def assert_exact(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Bit-for-bit equality (NaN where the expectation has NaN, i.e. untouched poisoned memory)."""
    torch.testing.assert_close(actual.cpu(), expected.cpu(), rtol=0, atol=0, equal_nan=True, msg=what)


def fused_kv(n: int, kv_heads: int, dim: int, dtype, device, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """k and v as slices of a fused qkv projection [n, q_heads + 2 * kv_heads, dim]: non-contiguous views whose
    token stride is larger than kv_heads * dim."""
    qkv = torch.randn(n, Q_HEADS + 2 * kv_heads, dim, generator=gen).to(dtype).to(device)
    k, v = qkv[:, Q_HEADS : Q_HEADS + kv_heads], qkv[:, Q_HEADS + kv_heads :]
    assert k.stride(0) == v.stride(0) == (Q_HEADS + 2 * kv_heads) * dim
    return k, v


def poisoned_cache(num_pages: int, page_size: int, kv_heads: int, dim: int, dtype, device) -> torch.Tensor:
    return torch.full((num_pages, page_size, kv_heads, dim), float("nan"), dtype=dtype, device=device)


def reference_write(cache: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """What the cache must hold after writing `rows` [n, heads, dim] to `slots` (negative slots skipped)."""
    expected = cache.cpu().clone()
    keep = slots.cpu() >= 0
    expected.view(-1, *cache.shape[2:])[slots.cpu()[keep]] = rows.cpu()[keep]
    return expected


def sequence_slots(block_table: torch.Tensor, seq_lens: list[int], page_size: int) -> torch.Tensor:
    """Cache slot of every token of every sequence, sequences one after another (int64, CPU)."""
    table = block_table.cpu().long()
    slots = []
    for s, length in enumerate(seq_lens):
        pos = torch.arange(length)
        slots.append(table[s, pos // page_size] * page_size + pos % page_size)
    return torch.cat(slots) if slots else torch.zeros(0, dtype=torch.long)


def reference_gather(cache: torch.Tensor, block_table: torch.Tensor, seq_lens: list[int], page_size: int):
    return cache.cpu().reshape(-1, *cache.shape[2:])[sequence_slots(block_table, seq_lens, page_size)]


def split_lengths(total: int, page_size: int, rng: random.Random) -> list[int]:
    """Sequence lengths summing to `total`, none a multiple of page_size (each ends inside a partly filled page),
    with an empty sequence in the middle when there are several."""
    lengths = []
    left = total
    while left > 0:
        n = rng.randint(1, min(left, 3 * page_size + 2))
        if n % page_size:  # also when n == left: the last length is never a multiple either
            lengths.append(n)
            left -= n
    if len(lengths) > 1:
        lengths.insert(len(lengths) // 2, 0)
    return lengths


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kv_heads", KV_HEADS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("num_tokens", TOKEN_COUNTS)
def test_kv_write_scatters_to_shuffled_slots(device, dtype, kv_heads, head_dim, page_size, num_tokens, gen):
    """Each token lands exactly in its slot, padding tokens (negative slots) are skipped, every other slot of the
    poisoned cache stays NaN."""
    num_pages = math.ceil((2 * num_tokens + 3) / page_size)  # about half the slots stay untouched
    slots = torch.randperm(num_pages * page_size, generator=gen)[:num_tokens]
    if num_tokens > 1:
        slots[1::4] = -1  # CUDA-graph padding rows
        slots[-1] = -(num_pages * page_size) - 7  # any negative value skips, even one that would wrap around
    k, v = fused_kv(num_tokens, kv_heads, head_dim, dtype, device, gen)
    k_cache = poisoned_cache(num_pages, page_size, kv_heads, head_dim, dtype, device)
    v_cache = poisoned_cache(num_pages, page_size, kv_heads, head_dim, dtype, device)
    expected_k, expected_v = reference_write(k_cache, k, slots), reference_write(v_cache, v, slots)

    ops.kv_write(k, v, k_cache, v_cache, slots.to(device))

    assert_exact(k_cache, expected_k, "k_cache after kv_write")
    assert_exact(v_cache, expected_v, "v_cache after kv_write")
    written = int((slots >= 0).sum())
    assert int((~torch.isnan(k_cache.view(-1, kv_heads * head_dim)).any(1)).sum()) == written
    assert int(torch.isnan(v_cache.view(-1, kv_heads * head_dim)).all(1).sum()) == num_pages * page_size - written


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_write_all_padding_and_empty(device, dtype, gen):
    """A batch of only padding rows, and an empty batch, leave the cache untouched (also with check_bounds)."""
    k, v = fused_kv(6, 2, 64, dtype, device, gen)
    k_cache = poisoned_cache(3, 5, 2, 64, dtype, device)
    v_cache = poisoned_cache(3, 5, 2, 64, dtype, device)
    for check_bounds in (True, False):
        ops.kv_write(k, v, k_cache, v_cache, torch.full((6,), -1, dtype=torch.long, device=device), check_bounds)
        ops.kv_write(k[:0], v[:0], k_cache, v_cache, torch.zeros(0, dtype=torch.long, device=device), check_bounds)
    assert torch.isnan(k_cache).all() and torch.isnan(v_cache).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_write_without_bounds_check_and_overwrite(device, dtype, gen):
    """check_bounds=False writes the same; writing a slot again replaces its contents."""
    slots = torch.randperm(40, generator=gen)[:17]
    k, v = fused_kv(17, 3, 128, dtype, device, gen)
    k_cache = poisoned_cache(8, 5, 3, 128, dtype, device)
    v_cache = poisoned_cache(8, 5, 3, 128, dtype, device)
    ops.kv_write(k, v, k_cache, v_cache, slots.to(device), check_bounds=False)
    assert_exact(k_cache, reference_write(poisoned_cache(8, 5, 3, 128, dtype, "cpu"), k, slots), "k_cache")
    k2, v2 = fused_kv(5, 3, 128, dtype, device, gen)
    expected_k, expected_v = reference_write(k_cache, k2, slots[:5]), reference_write(v_cache, v2, slots[:5])
    ops.kv_write(k2, v2, k_cache, v_cache, slots[:5].to(device), check_bounds=False)
    assert_exact(k_cache, expected_k, "k_cache after overwrite")
    assert_exact(v_cache, expected_v, "v_cache after overwrite")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kv_heads", KV_HEADS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("num_tokens", TOKEN_COUNTS)
def test_kv_gather_matches_reference(device, dtype, kv_heads, head_dim, page_size, num_tokens, gen):
    """Sequences ending mid-page (and one empty) on shuffled pages, gathered into NaN-poisoned `out=` buffers and
    functionally: both equal plain indexing of the cache, and `out=` returns the caller's buffers."""
    seq_lens = split_lengths(num_tokens, page_size, random.Random(num_tokens * 31 + page_size))
    assert sum(seq_lens) == num_tokens and all(n % page_size for n in seq_lens if n)
    cache = make_paged_cache(seq_lens, page_size, kv_heads, head_dim, dtype, device, gen)
    expected_k = reference_gather(cache.k_cache, cache.block_table, seq_lens, page_size)
    expected_v = reference_gather(cache.v_cache, cache.block_table, seq_lens, page_size)

    k_out = torch.full((num_tokens, kv_heads, head_dim), float("nan"), dtype=dtype, device=device)
    v_out = torch.full_like(k_out, float("nan"))
    got = ops.kv_gather(cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens, num_tokens, out=(k_out, v_out))
    assert got[0].data_ptr() == k_out.data_ptr() and got[1].data_ptr() == v_out.data_ptr()
    assert_exact(k_out, expected_k, "k_out")
    assert_exact(v_out, expected_v, "v_out")

    k_fn, v_fn = ops.kv_gather(cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens, num_tokens)
    assert k_fn.shape == v_fn.shape == (num_tokens, kv_heads, head_dim)
    assert k_fn.dtype == dtype and k_fn.device == cache.k_cache.device
    assert_exact(k_fn, expected_k, "functional k")
    assert_exact(v_fn, expected_v, "functional v")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_gather_empty_and_unchecked(device, dtype, gen):
    """Zero total tokens (all sequences empty, and no sequences) gives empty outputs; check_bounds=False gathers
    the same rows as the checked path."""
    cache = make_paged_cache([0, 0], 16, 2, 64, dtype, device, gen)
    k, v = ops.kv_gather(cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens, 0)
    assert k.shape == v.shape == (0, 2, 64)
    none = torch.zeros(0, 3, dtype=torch.int32, device=device)
    k, v = ops.kv_gather(cache.k_cache, cache.v_cache, none, none[:, 0], 0)
    assert k.shape == (0, 2, 64)

    lens = [7, 33, 1]
    cache = make_paged_cache(lens, 16, 2, 64, dtype, device, gen)
    k, v = ops.kv_gather(cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens, 41, check_bounds=False)
    assert_exact(k, reference_gather(cache.k_cache, cache.block_table, lens, 16), "unchecked k")
    assert_exact(v, reference_gather(cache.v_cache, cache.block_table, lens, 16), "unchecked v")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_write_then_gather_roundtrip(device, dtype, page_size, gen):
    """Prefill every sequence with one kv_write, append a decode token to each with a second one (interleaved
    with padding rows), then kv_gather returns exactly the tokens written, in sequence order."""
    kv_heads, dim = 3, 64
    seq_lens = [1, 3, 17, 113, 6]
    table = make_paged_cache([n + 1 for n in seq_lens], page_size, kv_heads, dim, dtype, device, gen).block_table
    num_pages = int(table.max()) + 2
    k_cache = poisoned_cache(num_pages, page_size, kv_heads, dim, dtype, device)
    v_cache = poisoned_cache(num_pages, page_size, kv_heads, dim, dtype, device)

    all_slots = sequence_slots(table, [n + 1 for n in seq_lens], page_size)
    firsts = [sum(n + 1 for n in seq_lens[:s]) for s in range(len(seq_lens))]
    prefill = torch.cat([all_slots[f : f + n] for f, n in zip(firsts, seq_lens, strict=True)])
    decode = torch.stack([all_slots[f + n] for f, n in zip(firsts, seq_lens, strict=True)])
    decode_padded = torch.stack([decode, torch.full_like(decode, -1)], 1).flatten()  # token, pad, token, pad...

    k1, v1 = fused_kv(len(prefill), kv_heads, dim, dtype, device, gen)
    k2, v2 = fused_kv(len(decode_padded), kv_heads, dim, dtype, device, gen)
    ops.kv_write(k1, v1, k_cache, v_cache, prefill.to(device))
    ops.kv_write(k2, v2, k_cache, v_cache, decode_padded.to(device))

    lens = torch.tensor([n + 1 for n in seq_lens], dtype=torch.int32, device=device)
    total = sum(seq_lens) + len(seq_lens)
    k_out, v_out = ops.kv_gather(k_cache, v_cache, table, lens, total)
    expected_k, expected_v, used = [], [], 0
    for s, n in enumerate(seq_lens):
        expected_k += [k1[used : used + n].cpu(), k2[2 * s : 2 * s + 1].cpu()]
        expected_v += [v1[used : used + n].cpu(), v2[2 * s : 2 * s + 1].cpu()]
        used += n
    assert_exact(k_out, torch.cat(expected_k), "gathered k")
    assert_exact(v_out, torch.cat(expected_v), "gathered v")
    assert int((~torch.isnan(k_cache.view(-1, kv_heads * dim)).any(1)).sum()) == total  # nothing else written
