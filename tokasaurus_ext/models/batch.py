"""A flat forward batch: the new tokens of every scheduled sequence (prefill chunks and decode rows) in order."""

from dataclasses import dataclass

import torch


@dataclass
class HydragenGroups:
    """Sequences the caller grouped by a shared prefix. Their query rows come first in the batch, group after
    group (rows [0, num_rows)); each group's prefix lives on `prefix_block_table[g]`, and each grouped
    sequence's own attention starts after its prefix (`kv_starts`, 0 for ungrouped sequences)."""

    num_rows: int
    cu_group_q_lens: torch.Tensor  # [G + 1] int32, over rows [0, num_rows)
    prefix_block_table: torch.Tensor  # [G, pages] int32
    prefix_lens: torch.Tensor  # [G] int32
    max_group_q_len: int
    kv_starts: torch.Tensor  # [B] int32


@dataclass
class ForwardBatch:
    input_ids: torch.Tensor  # [T] int64
    positions: torch.Tensor  # [T] int64, each token's position in its sequence
    slots: torch.Tensor  # [T] int64 KV-cache slot of each token
    cu_q_lens: torch.Tensor  # [B + 1] int32
    block_table: torch.Tensor  # [B, pages] int32
    kv_lens: torch.Tensor  # [B] int32, tokens in cache after this forward
    max_q_len: int
    logit_rows: torch.Tensor  # [R] int64, rows whose next-token logits are wanted (e.g. each sequence's last)
    hydragen: HydragenGroups | None = None
