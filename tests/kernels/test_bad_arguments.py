"""Every op rejects bad arguments with an exception that names the op's problem (before touching any memory), and
the process stays usable afterwards: each case ends with a valid call of every op that must succeed."""

import pytest
import torch
from conftest import CUDA, DEVICES
from paged_reference import make_paged_cache

from tokasaurus_ext import ops

PAGE, KV_HEADS, Q_HEADS, DIM = 4, 2, 4, 64
Q_LENS, KV_LENS, KV_STARTS = [1, 3], [9, 20], [0, 8]  # sequence 1 spans 5 pages; the block table has 7 columns
NUM_TOKENS = sum(Q_LENS)


def valid_attention_args(device: str) -> dict:
    """A small valid batch for paged_attention (and, read as groups, for hydragen_prefix_attention)."""
    gen = torch.Generator().manual_seed(7)
    cache = make_paged_cache(KV_LENS, PAGE, KV_HEADS, DIM, torch.float32, device, gen)
    return {
        "q": torch.randn(NUM_TOKENS, Q_HEADS, DIM, generator=gen).to(device),
        "k_cache": cache.k_cache,
        "v_cache": cache.v_cache,
        "cu": torch.tensor([0, 1, 4], dtype=torch.int32, device=device),
        "table": cache.block_table,
        "lens": cache.seq_lens,
        "scale": 0.125,
        "max_len": max(Q_LENS),
        "kv_starts": torch.tensor(KV_STARTS, dtype=torch.int32, device=device),
        "out": None,
    }


def call_op(op: str, a: dict):
    """Calls `op` with the arguments in `a` (as made by VALID_ARGS[op] and edited by a case)."""
    if op in ("paged_attention", "hydragen_prefix_attention"):
        args = (a["q"], a["k_cache"], a["v_cache"], a["cu"], a["table"], a["lens"], a["scale"], a["max_len"])
        if op == "paged_attention":
            return ops.paged_attention(*args, kv_starts=a["kv_starts"], out=a["out"])
        return ops.hydragen_prefix_attention(*args, out=a["out"])
    if op == "kv_write":
        return ops.kv_write(a["k"], a["v"], a["k_cache"], a["v_cache"], a["slots"])
    if op == "kv_gather":
        return ops.kv_gather(a["k_cache"], a["v_cache"], a["table"], a["lens"], a["total"], out=a["out"])
    return ops.merge_attention_states(a["out_a"], a["lse_a"], a["out_b"], a["lse_b"], out=a["out"])


def valid_kv_args(device: str) -> dict:
    gen = torch.Generator().manual_seed(8)
    cache = make_paged_cache(KV_LENS, PAGE, KV_HEADS, DIM, torch.float32, device, gen)
    num_slots = cache.k_cache.shape[0] * PAGE
    return {
        "k": torch.randn(3, KV_HEADS, DIM, generator=gen).to(device),
        "v": torch.randn(3, KV_HEADS, DIM, generator=gen).to(device),
        "k_cache": cache.k_cache,
        "v_cache": cache.v_cache,
        "slots": torch.tensor([5, num_slots - 1, -1], device=device),
        "table": cache.block_table,
        "lens": cache.seq_lens,
        "total": sum(KV_LENS),
        "out": None,
    }


def valid_merge_args(device: str) -> dict:
    gen = torch.Generator().manual_seed(9)
    n, heads = 5, 3
    return {
        "out_a": torch.randn(n, heads, DIM, generator=gen).to(device),
        "lse_a": torch.randn(n, heads, generator=gen).to(device),
        "out_b": torch.randn(n, heads, DIM, generator=gen).to(device),
        "lse_b": torch.randn(n, heads, generator=gen).to(device),
        "out": None,
    }


VALID_ARGS = {
    "paged_attention": valid_attention_args,
    "hydragen_prefix_attention": valid_attention_args,
    "kv_write": valid_kv_args,
    "kv_gather": valid_kv_args,
    "merge_attention_states": valid_merge_args,
}


def assert_ops_still_work(device: str) -> None:
    """A valid call of every op succeeds and gives sane results after the rejected one."""
    a = valid_attention_args(device)
    suffix = call_op("paged_attention", a)
    prefix = call_op("hydragen_prefix_attention", {**a, "lens": torch.tensor([4, 8], dtype=torch.int32, device=device)})
    out, lse = ops.merge_attention_states(*prefix, *suffix)
    assert out.shape == a["q"].shape and torch.isfinite(out).all() and torch.isfinite(lse).all()
    kv = valid_kv_args(device)
    k_cache, v_cache = kv["k_cache"].clone(), kv["v_cache"].clone()
    ops.kv_write(kv["k"], kv["v"], k_cache, v_cache, kv["slots"])
    k_rows = k_cache.view(-1, KV_HEADS, DIM)[kv["slots"][:2]]
    assert torch.equal(k_rows, kv["k"][:2])
    k_out, v_out = ops.kv_gather(k_cache, v_cache, kv["table"], kv["lens"], kv["total"])
    assert k_out.shape == v_out.shape == (kv["total"], KV_HEADS, DIM) and torch.isfinite(v_out).all()


def edit(t: torch.Tensor, index, value) -> torch.Tensor:
    """A copy of `t` with one element (or slice) replaced."""
    t = t.clone()
    t[index] = value
    return t


def num_pages(a: dict) -> int:
    return a["k_cache"].shape[0]


# Shared by paged_attention and hydragen_prefix_attention: (id, edit of the valid args, exception, message regex).
# The hydragen op reports its index tensors under paged_attention's names (see the regexes allowing both).
ATTENTION_CASES = [
    ("int_q", lambda a: a.update(q=a["q"].int()), ValueError, r"q dtype Int differs from the cache dtype Float"),
    ("q_dtype_mismatch", lambda a: a.update(q=a["q"].half()), ValueError, r"q dtype Half differs from the cache"),
    (
        "float64_cache",
        lambda a: a.update(q=a["q"].double(), k_cache=a["k_cache"].double(), v_cache=a["v_cache"].double()),
        ValueError,
        r"k_cache must be float32, bfloat16 or float16, got Double",
    ),
    ("v_cache_dtype", lambda a: a.update(v_cache=a["v_cache"].half()), ValueError, r"v_cache dtype Half differs"),
    ("v_cache_shape", lambda a: a.update(v_cache=a["v_cache"][:-1]), ValueError, r"v_cache shape .* differs"),
    (
        "cache_3d",
        lambda a: a.update(k_cache=a["k_cache"][0], v_cache=a["v_cache"][0]),
        ValueError,
        r"k_cache must be \[num_pages, page_size, kv_heads, head_dim\]",
    ),
    (
        "cache_not_contiguous",
        lambda a: a.update(k_cache=a["k_cache"].transpose(0, 1).contiguous().transpose(0, 1)),
        ValueError,
        r"k_cache and v_cache must be contiguous",
    ),
    ("q_2d", lambda a: a.update(q=a["q"][:, 0]), ValueError, r"q must be \[num_tokens, q_heads, head_dim\]"),
    (
        "head_dim_mismatch",
        lambda a: a.update(q=a["q"][..., :32].contiguous()),
        ValueError,
        r"q head_dim 32 differs from the cache head_dim 64",
    ),
    (
        "heads_not_multiple",
        lambda a: a.update(q=a["q"][:, :3]),
        ValueError,
        r"q_heads \(3\) must be a multiple of kv_heads \(2\)",
    ),
    (
        "q_strided_head_dim",
        lambda a: a.update(q=torch.cat([a["q"], a["q"]], -1)[..., ::2]),
        ValueError,
        r"q must be contiguous in head_dim",
    ),
    ("zero_scale", lambda a: a.update(scale=0.0), ValueError, r"scale must be a positive finite number, got 0"),
    ("nan_scale", lambda a: a.update(scale=float("nan")), ValueError, r"scale must be a positive finite number"),
    ("int64_table", lambda a: a.update(table=a["table"].long()), ValueError, r"block_table must be Int, got Long"),
    ("int64_cu", lambda a: a.update(cu=a["cu"].long()), ValueError, r"cu_(group_)?q_lens must be Int, got Long"),
    ("int64_lens", lambda a: a.update(lens=a["lens"].long()), ValueError, r"_lens must be Int, got Long"),
    ("table_1d", lambda a: a.update(table=a["table"][0]), ValueError, r"block_table must have 2 dimensions"),
    (
        "cu_wrong_length",
        lambda a: a.update(cu=a["cu"][:2]),
        ValueError,
        r"cu_(group_)?q_lens must have 3 entries .*, got 2",
    ),
    (
        "table_rows_mismatch",
        lambda a: a.update(table=torch.cat([a["table"], a["table"][:1]])),
        ValueError,
        r"block_table has 3 rows but (kv|prefix)_lens has 2 entries",
    ),
    ("max_len_negative", lambda a: a.update(max_len=-1), ValueError, r"max_(group_)?q_len must be >= 0, got -1"),
    (
        "page_index_too_large",
        lambda a: a.update(table=edit(a["table"], (1, 4), num_pages(a))),
        ValueError,
        r"page index out of range: (prefix_)?block_table\[1\]\[4\] = 11 but the cache has 11 pages",
    ),
    (
        "page_index_negative",
        lambda a: a.update(table=edit(a["table"], (0, 2), -1)),
        ValueError,
        r"page index out of range: (prefix_)?block_table\[0\]\[2\] = -1",
    ),
    (
        "len_needs_more_pages_than_columns",
        lambda a: a.update(lens=edit(a["lens"], 1, 7 * PAGE + 1)),
        ValueError,
        r"sequence 1 has 29 tokens, needing 8 pages of 4, but (prefix_)?block_table has only 7 columns",
    ),
    ("negative_len", lambda a: a.update(lens=edit(a["lens"], 0, -2)), ValueError, r"sequence 0 is negative \(-2\)"),
    (
        "cu_not_ending_at_num_tokens",
        lambda a: a.update(cu=edit(a["cu"], 2, 3)),
        ValueError,
        r"cu_(group_)?q_lens\[-1\] must equal the number of query rows 4, got 3",
    ),
    ("cu_not_starting_at_0", lambda a: a.update(cu=edit(a["cu"], 0, 1)), ValueError, r"q_lens\[0\] must be 0, got 1"),
    (
        "cu_decreasing",
        lambda a: a.update(cu=edit(a["cu"], 1, -1)),
        ValueError,
        r"q_lens must be non-decreasing, but entry 1 \(-1\) < entry 0 \(0\)",
    ),
    (
        "q_len_above_max",
        lambda a: a.update(max_len=2),
        ValueError,
        r"segment 1 has 3 queries, more than max_(group_)?q_len=2",
    ),
    (
        "out_wrong_shape",
        lambda a: a.update(out=(torch.empty(NUM_TOKENS, Q_HEADS, DIM + 1), torch.empty(NUM_TOKENS, Q_HEADS))),
        ValueError,
        r"out must have shape \[4, 4, 64\], got \[4, 4, 65\]",
    ),
    (
        "out_wrong_dtype",
        lambda a: a.update(out=(torch.empty(NUM_TOKENS, Q_HEADS, DIM).bfloat16(), torch.empty(NUM_TOKENS, Q_HEADS))),
        ValueError,
        r"out must be Float, got BFloat16",
    ),
    (
        "lse_wrong_dtype",
        lambda a: a.update(out=(torch.empty(NUM_TOKENS, Q_HEADS, DIM), torch.empty(NUM_TOKENS, Q_HEADS).double())),
        ValueError,
        r"lse must be Float, got Double",
    ),
    (
        "lse_wrong_shape",
        lambda a: a.update(out=(torch.empty(NUM_TOKENS, Q_HEADS, DIM), torch.empty(NUM_TOKENS, Q_HEADS, 1))),
        ValueError,
        r"lse must have shape \[4, 4\]",
    ),
    (
        "out_not_contiguous",
        lambda a: a.update(out=(torch.empty(Q_HEADS, NUM_TOKENS, DIM).transpose(0, 1), torch.empty(4, Q_HEADS))),
        ValueError,
        r"out must be contiguous",
    ),
]

PAGED_ONLY_CASES = [
    (
        "kv_start_beyond_kv_len",
        lambda a: a.update(kv_starts=edit(a["kv_starts"], 0, 10)),
        ValueError,
        r"kv_start of sequence 0 \(10\) must lie in \[0, kv_len=9\]",
    ),
    (
        "kv_start_negative",
        lambda a: a.update(kv_starts=edit(a["kv_starts"], 1, -1)),
        ValueError,
        r"kv_start of sequence 1 \(-1\) must lie in \[0, kv_len=20\]",
    ),
    ("kv_starts_int64", lambda a: a.update(kv_starts=a["kv_starts"].long()), ValueError, r"kv_starts must be Int"),
    (
        "kv_starts_wrong_length",
        lambda a: a.update(kv_starts=a["kv_starts"][:1]),
        ValueError,
        r"kv_starts has 1 entries but kv_lens has 2",
    ),
    (
        "page_out_of_range_after_kv_start",
        lambda a: a.update(table=edit(a["table"], (1, 2), num_pages(a) + 5)),
        ValueError,
        r"page index out of range: (prefix_)?block_table\[1\]\[2\] = 16",
    ),
]


def _ids(cases):
    return [c[0] for c in cases]


def _device_buffers(a: dict, device: str) -> None:
    if a["out"] is not None:
        a["out"] = tuple(t.to(device) for t in a["out"])


@pytest.mark.parametrize("device", DEVICES)
def test_attention_bounds_are_checked_where_kv_starts_say(device):
    """A page before kv_starts is never read, so an invalid index there is accepted (the check is precise)."""
    a = valid_attention_args(device)
    a["table"] = edit(a["table"], (1, 0), -1)  # sequence 1 starts at token 8 = page 2
    out, lse = call_op("paged_attention", a)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    a["kv_starts"] = None
    with pytest.raises(ValueError, match=r"block_table\[1\]\[0\] = -1"):
        call_op("paged_attention", a)


KV_WRITE_CASES = [
    ("int_k", lambda a: a.update(k=a["k"].int()), ValueError, r"k dtype Int differs from the cache dtype Float"),
    ("v_dtype_mismatch", lambda a: a.update(v=a["v"].bfloat16()), ValueError, r"v dtype BFloat16 differs"),
    (
        "float64_cache",
        lambda a: a.update(
            k=a["k"].double(), v=a["v"].double(), k_cache=a["k_cache"].double(), v_cache=a["v_cache"].double()
        ),
        ValueError,
        r"k_cache must be float32, bfloat16 or float16, got Double",
    ),
    (
        "k_head_dim_mismatch",
        lambda a: a.update(k=a["k"][..., :32]),
        ValueError,
        r"k must be \[num_tokens, kv_heads=2, head_dim=64\], got \[3, 2, 32\]",
    ),
    (
        "v_heads_mismatch",
        lambda a: a.update(v=a["v"][:, :1]),
        ValueError,
        r"v must be \[num_tokens, kv_heads=2, head_dim=64\], got \[3, 1, 64\]",
    ),
    ("k_tokens_vs_slots", lambda a: a.update(k=a["k"][:2]), ValueError, r"k has 2 tokens but slots has 3"),
    ("v_tokens_vs_slots", lambda a: a.update(slots=a["slots"][:2], k=a["k"][:2]), ValueError, r"v has 3 tokens but"),
    ("int32_slots", lambda a: a.update(slots=a["slots"].int()), ValueError, r"slots must be Long, got Int"),
    ("slots_2d", lambda a: a.update(slots=a["slots"][None]), ValueError, r"slots must have 1 dimensions"),
    (
        "slot_out_of_range",
        lambda a: a.update(slots=edit(a["slots"], 0, num_pages(a) * PAGE)),
        ValueError,
        r"slot 44 out of range: the cache has 44 slots",
    ),
    (
        "k_strided_head_dim",
        lambda a: a.update(k=torch.cat([a["k"], a["k"]], -1)[..., ::2]),
        ValueError,
        r"k must be contiguous in head_dim",
    ),
    ("v_cache_shape", lambda a: a.update(v_cache=a["v_cache"][:, :2]), ValueError, r"v_cache shape .* differs"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case,mutate,exc,match", KV_WRITE_CASES, ids=_ids(KV_WRITE_CASES))
def test_kv_write_rejects(device, case, mutate, exc, match):
    a = valid_kv_args(device)
    mutate(a)
    before = a["k_cache"].clone(), a["v_cache"].clone()
    with pytest.raises(exc, match=match):
        call_op("kv_write", a)
    assert torch.equal(a["k_cache"], before[0]) and torch.equal(a["v_cache"], before[1]), "rejected call wrote"
    assert_ops_still_work(device)


def _gather_out(rows: int = sum(KV_LENS), dim: int = DIM, dtype=torch.float32):
    return torch.empty(rows, KV_HEADS, dim, dtype=dtype), torch.empty(rows, KV_HEADS, DIM)


KV_GATHER_CASES = [
    (
        "float64_cache",
        lambda a: a.update(k_cache=a["k_cache"].double(), v_cache=a["v_cache"].double()),
        ValueError,
        r"kv_gather: k_cache must be float32, bfloat16 or float16, got Double",
    ),
    ("int64_table", lambda a: a.update(table=a["table"].long()), ValueError, r"block_table must be Int, got Long"),
    ("int64_seq_lens", lambda a: a.update(lens=a["lens"].long()), ValueError, r"seq_lens must be Int, got Long"),
    (
        "rows_mismatch",
        lambda a: a.update(table=a["table"][:1]),
        ValueError,
        r"seq_lens has 2 entries but block_table has 1 rows",
    ),
    (
        "page_index_too_large",
        lambda a: a.update(table=edit(a["table"], (0, 2), num_pages(a))),
        ValueError,
        r"page index out of range: (prefix_)?block_table\[0\]\[2\] = 11 but the cache has 11 pages",
    ),
    (
        "page_index_negative",
        lambda a: a.update(table=edit(a["table"], (1, 4), -3)),
        ValueError,
        r"page index out of range: (prefix_)?block_table\[1\]\[4\] = -3",
    ),
    (
        "len_needs_more_pages_than_columns",
        lambda a: a.update(lens=edit(a["lens"], 0, 7 * PAGE + 2), total=7 * PAGE + 2 + KV_LENS[1]),
        ValueError,
        r"sequence 0 has 30 tokens, needing 8 pages of 4, but (prefix_)?block_table has only 7 columns",
    ),
    ("negative_len", lambda a: a.update(lens=edit(a["lens"], 1, -1)), ValueError, r"sequence 1 is negative"),
    ("total_mismatch", lambda a: a.update(total=28), ValueError, r"total_tokens=28 but seq_lens sum to 29"),
    (
        "k_out_wrong_shape",
        lambda a: a.update(out=_gather_out(dim=DIM - 1)),
        ValueError,
        r"k_out must have shape \[29, 2, 64\], got \[29, 2, 63\]",
    ),
    (
        "k_out_wrong_rows",
        lambda a: a.update(out=_gather_out(rows=30)),
        ValueError,
        r"k_out must have shape \[29, 2, 64\], got \[30, 2, 64\]",
    ),
    ("k_out_wrong_dtype", lambda a: a.update(out=_gather_out(dtype=torch.half)), ValueError, r"k_out must be Float"),
    (
        "negative_total_out",
        lambda a: a.update(total=-1, out=_gather_out()),
        ValueError,
        r"total_tokens must be >= 0, got -1",
    ),
]


MERGE_CASES = [
    (
        "out_b_shape",
        lambda a: a.update(out_b=a["out_b"][:4]),
        ValueError,
        r"out_b shape \[4, 3, 64\] differs from out_a shape \[5, 3, 64\]",
    ),
    (
        "out_b_head_dim",
        lambda a: a.update(out_b=a["out_b"][..., :32]),
        ValueError,
        r"out_b shape \[5, 3, 32\] differs from out_a shape",
    ),
    ("out_b_dtype", lambda a: a.update(out_b=a["out_b"].half()), ValueError, r"out_b dtype Half differs from out_a"),
    (
        "int_outs",
        lambda a: a.update(out_a=a["out_a"].int(), out_b=a["out_b"].int()),
        ValueError,
        r"out_a must be float32, bfloat16 or float16, got Int",
    ),
    ("out_a_2d", lambda a: a.update(out_a=a["out_a"][0]), ValueError, r"out_a must be \[num_tokens, heads, head_dim\]"),
    ("lse_a_shape", lambda a: a.update(lse_a=a["lse_a"][:4]), ValueError, r"lse_a must be \[5, 3\], got \[4, 3\]"),
    ("lse_b_3d", lambda a: a.update(lse_b=a["lse_b"][..., None]), ValueError, r"lse_b must be \[5, 3\]"),
    ("lse_b_dtype", lambda a: a.update(lse_b=a["lse_b"].bfloat16()), ValueError, r"lse_b must be float32"),
    (
        "out_buffer_shape",
        lambda a: a.update(out=(torch.empty(5, 3, 63), torch.empty(5, 3))),
        ValueError,
        r"out must have shape \[5, 3, 64\]",
    ),
    (
        "lse_buffer_dtype",
        lambda a: a.update(out=(torch.empty(5, 3, 64), torch.empty(5, 3, dtype=torch.half))),
        ValueError,
        r"lse must be Float, got Half",
    ),
]


def _params(op_names: list[str], make_args, cases) -> list:
    return [pytest.param(op, make_args, *rest, id=f"{name}-{op}") for op in op_names for name, *rest in cases]


REJECT_CASES = (
    _params(["paged_attention", "hydragen_prefix_attention"], valid_attention_args, ATTENTION_CASES)
    + _params(["paged_attention"], valid_attention_args, PAGED_ONLY_CASES)
    + _params(["kv_gather"], valid_kv_args, KV_GATHER_CASES)
    + _params(["merge_attention_states"], valid_merge_args, MERGE_CASES)
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op,make_args,mutate,exc,match", REJECT_CASES)
def test_rejects(device, op, make_args, mutate, exc, match):
    a = make_args(device)
    mutate(a)
    _device_buffers(a, device)
    with pytest.raises(exc, match=match):
        call_op(op, a)
    assert_ops_still_work(device)


def _cpu(key):
    return lambda a: a.update({key: a[key].cpu()})


DEVICE_CASES = [
    ("paged_attention", "q", _cpu("q")),
    ("paged_attention", "v_cache", _cpu("v_cache")),
    ("paged_attention", "cu_q_lens", _cpu("cu")),
    ("paged_attention", "block_table", _cpu("table")),
    ("paged_attention", "kv_lens", _cpu("lens")),
    ("paged_attention", "kv_starts", _cpu("kv_starts")),
    ("paged_attention", "out", lambda a: a.update(out=(torch.empty(4, 4, 64), torch.empty(4, 4, device="cuda")))),
    ("paged_attention", "lse", lambda a: a.update(out=(torch.empty(4, 4, 64, device="cuda"), torch.empty(4, 4)))),
    ("hydragen_prefix_attention", "q", _cpu("q")),
    ("hydragen_prefix_attention", "block_table", _cpu("table")),
    ("kv_write", "k", _cpu("k")),
    ("kv_write", "v", _cpu("v")),
    ("kv_write", "slots", _cpu("slots")),
    ("kv_write", "v_cache", _cpu("v_cache")),
    ("kv_gather", "block_table", _cpu("table")),
    ("kv_gather", "seq_lens", _cpu("lens")),
    ("kv_gather", "v_out", lambda a: a.update(out=(torch.empty(29, 2, 64, device="cuda"), torch.empty(29, 2, 64)))),
    ("merge_attention_states", "out_b", _cpu("out_b")),
    ("merge_attention_states", "lse_a", _cpu("lse_a")),
    ("merge_attention_states", "out", lambda a: a.update(out=(torch.empty(5, 3, 64), torch.empty(5, 3)))),
]


@CUDA
@pytest.mark.parametrize("op,name,mutate", DEVICE_CASES, ids=[f"{c[0]}-{c[1]}" for c in DEVICE_CASES])
def test_device_mismatch(op, name, mutate):
    """Data on the GPU with one argument on the CPU: a RuntimeError naming the op, the argument and both devices."""
    a = VALID_ARGS[op]("cuda")
    mutate(a)
    with pytest.raises(RuntimeError, match=rf"{op}: {name} is on cpu but the other arguments are on cuda"):
        call_op(op, a)
    assert_ops_still_work("cuda")
