"""Random paged-KV test cases and an fp64 reference attention written directly from the definition."""

import math
from dataclasses import dataclass

import torch

TOLERANCES = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Max-abs error against a reference of unit scale, with a tolerance chosen by the data dtype."""
    actual = actual.double().cpu()
    expected = expected.double().cpu()
    assert not torch.isnan(actual).any(), f"{what}: NaN in output (unwritten or invalid rows)"
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert err <= TOLERANCES[dtype], f"{what}: max abs error {err:.3g} > {TOLERANCES[dtype]:.1g} ({dtype})"


@dataclass
class PagedCache:
    k_cache: torch.Tensor  # [num_pages, page_size, kv_heads, head_dim]
    v_cache: torch.Tensor
    block_table: torch.Tensor  # [num_seqs, width] int32, shuffled pages, unused columns -1
    seq_lens: torch.Tensor  # [num_seqs] int32
    page_size: int

    def token_kv(self, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All of sequence `seq`'s K and V rows in order, [len, kv_heads, head_dim], fp64 on the CPU."""
        length = int(self.seq_lens[seq])
        pos = torch.arange(length)
        pages = self.block_table[seq].cpu().long()[pos // self.page_size]
        k = self.k_cache.cpu().double()[pages, pos % self.page_size]
        v = self.v_cache.cpu().double()[pages, pos % self.page_size]
        return k, v


def make_paged_cache(
    seq_lens: list[int],
    page_size: int,
    kv_heads: int,
    head_dim: int,
    dtype: torch.dtype,
    device: str,
    gen: torch.Generator,
    spare_pages: int = 3,
) -> PagedCache:
    """Random K/V on a shuffled set of pages (so no sequence's pages are contiguous), plus spare pages."""
    pages_per_seq = [math.ceil(n / page_size) for n in seq_lens]
    num_pages = sum(pages_per_seq) + spare_pages
    order = torch.randperm(num_pages, generator=gen)
    width = max(pages_per_seq, default=0) + 2
    table = torch.full((len(seq_lens), width), -1, dtype=torch.int32)
    used = 0
    for s, n in enumerate(pages_per_seq):
        table[s, :n] = order[used : used + n].to(torch.int32)
        used += n
    shape = (num_pages, page_size, kv_heads, head_dim)
    k = torch.randn(shape, generator=gen).to(dtype)
    v = torch.randn(shape, generator=gen).to(dtype)
    return PagedCache(
        k_cache=k.to(device),
        v_cache=v.to(device),
        block_table=table.to(device),
        seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=device),
        page_size=page_size,
    )


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, first_pos: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 attention of q [n, hq, d] over k, v [L, hkv, d]; causal with query i at position first_pos + i
    (first_pos=None: every query sees every key). Returns (out [n, hq, d], lse [n, hq]); rows that see no key
    get out 0 and lse -inf."""
    q = q.double().cpu()
    n, hq, d = q.shape
    group = hq // k.shape[1]
    k = k.double().repeat_interleave(group, dim=1)  # [L, hq, d]
    v = v.double().repeat_interleave(group, dim=1)
    scores = torch.einsum("nhd,lhd->hnl", q, k) * scale
    if first_pos is not None:
        keys = torch.arange(k.shape[0])
        visible = keys[None, :] <= (first_pos + torch.arange(n))[:, None]
        scores = scores.masked_fill(~visible[None], float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # [hq, n]
    weights = torch.exp(scores - lse[..., None]).nan_to_num(0.0)
    out = torch.einsum("hnl,lhd->nhd", weights, v)
    return out, lse.transpose(0, 1)
