"""The ops' registrations under torch.library.opcheck, and a torch.compile'd decode step equal to eager.

opcheck (torch 2.13) runs four checks by default: test_schema (mutations and aliasing match the schema),
test_autograd_registration, test_faketensor (the Meta kernels in csrc/register.cpp give the real outputs' sizes,
strides, dtype and device) and test_aot_dispatch_dynamic (functionalization + AOT tracing with dynamic shapes
gives the eager result). The ops are inference-only (no autograd formula): our inputs do not require grad, so
test_autograd_registration checks that no autograd kernel is needed and passes; it is kept, as are the other
three, for the functional overloads.

The `.out` overloads mutate caller buffers and return nothing (`-> ()`): torch's functionalization refuses
custom ops whose outputs alias their inputs, so that is the form that traces; all four checks run on them too."""

import math

import pytest
import torch
from conftest import DEVICES
from paged_reference import make_paged_cache

from tokasaurus_ext import ops

OPS = torch.ops.tokasaurus_ext
CHECKS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
PAGE, KV_HEADS, Q_HEADS, DIM = 5, 2, 6, 64
Q_LENS, KV_LENS, PREFIX_LENS = [1, 4, 2], [13, 9, 21], [12, 9]
DECODE_Q_LENS = [2, 1, 4]  # new tokens all after the 8-token shared prefix


def cu(lens: list[int], device) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)


def i32(values: list[int], device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32, device=device)


def opcheck_cases(device: str, dtype: torch.dtype, gen: torch.Generator) -> dict:
    """name -> (overload, args, kwargs) with small valid random inputs for every overload."""
    cache = make_paged_cache(KV_LENS, PAGE, KV_HEADS, DIM, dtype, device, gen)
    kc, vc, table, lens = cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens
    n = sum(Q_LENS)
    qkv = torch.randn(n, Q_HEADS + 2 * KV_HEADS, DIM, generator=gen).to(dtype).to(device)
    q, k, v = qkv[:, :Q_HEADS], qkv[:, Q_HEADS : Q_HEADS + KV_HEADS], qkv[:, Q_HEADS + KV_HEADS :]
    slots = torch.randperm(kc.shape[0] * PAGE, generator=gen)[:n].to(device)
    slots[1] = -1
    scale = 1 / math.sqrt(DIM)
    paged = (q, kc, vc, cu(Q_LENS, device), table, lens)
    prefix = (q, kc, vc, cu([1, n - 1], device), table[:2].contiguous(), i32(PREFIX_LENS, device), scale, n - 1, True)
    states = tuple(
        t.to(device) for t in (torch.randn(n, Q_HEADS, DIM, generator=gen).to(dtype), torch.randn(n, Q_HEADS))
    )
    other = tuple(
        t.to(device) for t in (torch.randn(n, Q_HEADS, DIM, generator=gen).to(dtype), torch.randn(n, Q_HEADS))
    )
    merge = (*states, *other)

    def attn_out():
        return {
            "out": torch.empty(n, Q_HEADS, DIM, dtype=dtype, device=device),
            "lse": torch.empty(n, Q_HEADS, device=device),
        }

    total = sum(KV_LENS)
    gather_out = {k: torch.empty(total, KV_HEADS, DIM, dtype=dtype, device=device) for k in ("k_out", "v_out")}
    return {
        "kv_write": (OPS.kv_write.default, (k, v, kc.clone(), vc.clone(), slots, True), {}),
        "kv_gather": (OPS.kv_gather.default, (kc, vc, table, lens, total, True), {}),
        "kv_gather.out": (OPS.kv_gather.out, (kc, vc, table, lens, total, True), gather_out),
        "paged_attention": (OPS.paged_attention.default, (*paged, None, scale, 4, True), {}),
        "paged_attention[kv_starts]": (
            OPS.paged_attention.default,
            (*paged, i32([5, 0, 10], device), scale, 4, True),
            {},
        ),
        "paged_attention.out": (OPS.paged_attention.out, (*paged, i32([5, 0, 10], device), scale, 4, True), attn_out()),
        "hydragen_prefix_attention": (OPS.hydragen_prefix_attention.default, prefix, {}),
        "hydragen_prefix_attention.out": (OPS.hydragen_prefix_attention.out, prefix, attn_out()),
        "merge_attention_states": (OPS.merge_attention_states.default, merge, {}),
        "merge_attention_states.out": (OPS.merge_attention_states.out, merge, attn_out()),
    }


CASE_NAMES = list(opcheck_cases("cpu", torch.float32, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_opcheck(device, dtype, name, gen):
    op, args, kwargs = opcheck_cases(device, dtype, gen)[name]
    result = torch.library.opcheck(op, args, kwargs, test_utils=CHECKS)
    assert result == dict.fromkeys(CHECKS, "SUCCESS")


def decode_step(k_new, v_new, k_cache, v_cache, slots, q, cu_q, table, lens, starts, cu_groups, prefix_table, plens):
    """One Hydragen step: write the new tokens, attend the suffix (after kv_starts) and the shared prefix, merge."""
    ops.kv_write(k_new, v_new, k_cache, v_cache, slots)
    suffix = ops.paged_attention(q, k_cache, v_cache, cu_q, table, lens, 0.125, 4, kv_starts=starts)
    prefix = ops.hydragen_prefix_attention(q, k_cache, v_cache, cu_groups, prefix_table, plens, 0.125, 7)
    return ops.merge_attention_states(*prefix, *suffix)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_step_equals_eager(device, dtype, gen):
    """fullgraph=True: all four ops trace (through their Meta kernels) without a graph break; the compiled step
    returns the eager results bit for bit and leaves the caches written exactly like eager."""
    seq_lens, prefix_len = [13, 9, 21], 8  # all three sequences share their first 8 tokens (2 pages of 5)
    cache = make_paged_cache(seq_lens, PAGE, KV_HEADS, DIM, dtype, device, gen)
    table = cache.block_table.clone()
    table[1:, :2] = table[0, :2]
    n = sum(DECODE_Q_LENS)
    qkv = torch.randn(n, Q_HEADS + 2 * KV_HEADS, DIM, generator=gen).to(dtype).to(device)
    q, k_new, v_new = qkv[:, :Q_HEADS], qkv[:, Q_HEADS : Q_HEADS + KV_HEADS], qkv[:, Q_HEADS + KV_HEADS :]
    table_cpu = table.cpu().long()
    pos = torch.cat([torch.arange(length - ql, length) for ql, length in zip(DECODE_Q_LENS, seq_lens, strict=True)])
    seq = torch.cat([torch.full((ql,), s) for s, ql in enumerate(DECODE_Q_LENS)])
    slots = (table_cpu[seq, pos // PAGE] * PAGE + pos % PAGE).to(device)
    args = (
        cu(DECODE_Q_LENS, device),
        table,
        cache.seq_lens,
        i32([prefix_len] * 3, device),
        cu([n], device),
        table[:1].contiguous(),
        i32([prefix_len], device),
    )

    eager_k, eager_v = cache.k_cache.clone(), cache.v_cache.clone()
    compiled_k, compiled_v = cache.k_cache.clone(), cache.v_cache.clone()
    expected = decode_step(k_new, v_new, eager_k, eager_v, slots, q, *args)
    compiled = torch.compile(decode_step, fullgraph=True, backend="aot_eager")
    got = compiled(k_new, v_new, compiled_k, compiled_v, slots, q, *args)

    assert not torch.equal(eager_k, cache.k_cache), "the eager step did not write the cache"
    assert torch.equal(compiled_k, eager_k) and torch.equal(compiled_v, eager_v), "compiled kv_write differs"
    assert got[0].shape == q.shape and got[0].dtype == dtype and got[1].dtype == torch.float32
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all()
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
