"""Typed wrappers over torch.ops.tokasaurus_ext (the kernels in csrc/).

Shapes and conventions shared by every op:
- A paged KV cache is one K and one V tensor per layer, contiguous ``[num_pages, page_size, kv_heads, head_dim]``.
  Token ``i`` of a sequence lives in slot ``block_table[s][i // page_size] * page_size + i % page_size``.
- Queries are ``[num_tokens, q_heads, head_dim]`` (``q_heads`` a multiple of ``kv_heads``: GQA).
- Attention ops return ``(out, lse)``: ``out`` like ``q``, ``lse`` float32 ``[num_tokens, q_heads]``, the natural
  log of the softmax denominator (scaled scores), ``-inf`` for a row that attended to no key.
- Index tensors are int32 (slots int64) on the same device as the data.
- ``check_bounds=True`` validates page indices and lengths on the host (a device sync on CUDA); the engine,
  whose allocator guarantees them, passes False in its hot path.
"""

import torch

from tokasaurus_ext import _library  # noqa: F401  (registers torch.ops.tokasaurus_ext)

_ops = torch.ops.tokasaurus_ext


def kv_write(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    check_bounds: bool = True,
) -> None:
    """Scatters new tokens' ``k``/``v`` ``[num_tokens, kv_heads, head_dim]`` into their cache slots (in place).

    A negative slot skips its token (padding rows of a CUDA-graph batch)."""
    _ops.kv_write(k, v, k_cache, v_cache, slots, check_bounds)


def kv_gather(
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    total_tokens: int,
    check_bounds: bool = True,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies the first ``seq_lens[s]`` tokens of each sequence's pages into contiguous
    ``[total_tokens, kv_heads, head_dim]`` K and V buffers, sequences one after another (into ``out`` if given)."""
    if out is None:
        return _ops.kv_gather(k_cache, v_cache, block_table, seq_lens, total_tokens, check_bounds)
    _ops.kv_gather.out(k_cache, v_cache, block_table, seq_lens, total_tokens, check_bounds, k_out=out[0], v_out=out[1])
    return out


def paged_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cu_q_lens: torch.Tensor,
    block_table: torch.Tensor,
    kv_lens: torch.Tensor,
    scale: float,
    max_q_len: int,
    kv_starts: torch.Tensor | None = None,
    check_bounds: bool = True,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention of a mixed batch (decode rows and prefill chunks) over each sequence's pages.

    Sequence ``s`` owns query rows ``cu_q_lens[s]:cu_q_lens[s+1]`` (its newest tokens, already written to the
    cache) and has ``kv_lens[s]`` tokens in total, so its query ``i`` sits at position
    ``kv_lens[s] - q_len + i`` and sees keys up to it. With ``kv_starts``, keys before ``kv_starts[s]`` are left
    out: that is the suffix half of Hydragen, whose prefix half is :func:`hydragen_prefix_attention`.
    ``out=(out, lse)`` writes into caller-owned buffers."""
    args = (q, k_cache, v_cache, cu_q_lens, block_table, kv_lens, kv_starts, scale, max_q_len, check_bounds)
    if out is None:
        return _ops.paged_attention(*args)
    _ops.paged_attention.out(*args, out=out[0], lse=out[1])
    return out


def hydragen_prefix_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cu_group_q_lens: torch.Tensor,
    prefix_block_table: torch.Tensor,
    prefix_lens: torch.Tensor,
    scale: float,
    max_group_q_len: int,
    check_bounds: bool = True,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hydragen's prefix attention: group ``g`` stacks the query rows ``cu_group_q_lens[g]:cu_group_q_lens[g+1]``
    of all its sequences and attends them, non-causally, to the ``prefix_lens[g]`` tokens on the pages
    ``prefix_block_table[g]`` at once (one matrix-matrix product per key tile instead of one matrix-vector
    product per sequence). Merge with the suffix result using :func:`merge_attention_states`."""
    args = (q, k_cache, v_cache, cu_group_q_lens, prefix_block_table, prefix_lens, scale, max_group_q_len, check_bounds)
    if out is None:
        return _ops.hydragen_prefix_attention(*args)
    _ops.hydragen_prefix_attention.out(*args, out=out[0], lse=out[1])
    return out


def merge_attention_states(
    out_a: torch.Tensor,
    lse_a: torch.Tensor,
    out_b: torch.Tensor,
    lse_b: torch.Tensor,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly combines two attention results over disjoint key sets: the softmax-weighted average by
    ``exp(lse)``, max-subtracted, in fp32. Returns ``(out, lse)`` of attention over the union."""
    if out is None:
        return _ops.merge_attention_states(out_a, lse_a, out_b, lse_b)
    _ops.merge_attention_states.out(out_a, lse_a, out_b, lse_b, out=out[0], lse=out[1])
    return out
