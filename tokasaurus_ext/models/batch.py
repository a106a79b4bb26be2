"""A flat forward batch: the new tokens of every scheduled sequence (prefill chunks and decode rows) in order."""

from dataclasses import dataclass

import torch


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
