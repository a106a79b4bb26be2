"""Batched next-token sampling on the logits' device, with no host synchronization.

Every row carries its own parameters (temperature, top_k, top_p, min_p, seed). Randomness is counter-based:
the uniform for (seed, sample index, step, token) is a hash of those four numbers. A row's draw is therefore
reproducible and independent of the rest of the batch, and the n samples of one request (same seed,
different sample index) get distinct streams. A token is drawn as the Gumbel-max over the filtered logits.
"""

from dataclasses import dataclass

import torch

_MASK32 = 0xFFFFFFFF


@dataclass
class SamplingParams:
    """One entry per row, all tensors on the logits' device."""

    temperature: torch.Tensor  # [R] float32; 0 = greedy
    top_k: torch.Tensor  # [R] int64; 0 = off
    top_p: torch.Tensor  # [R] float32; 1 = off
    min_p: torch.Tensor  # [R] float32; 0 = off
    seed: torch.Tensor  # [R] int64
    sample_index: torch.Tensor  # [R] int64, which of a request's n samples
    step: torch.Tensor  # [R] int64, index of the token being generated


@dataclass
class Sampled:
    tokens: torch.Tensor  # [R] int64
    logprobs: torch.Tensor  # [R] float32, log-probability of the chosen token under the model's distribution
    top_ids: torch.Tensor  # [R, k] int64 (k = num_top_logprobs)
    top_logprobs: torch.Tensor  # [R, k] float32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32) applied elementwise to int64 tensors holding 32-bit values."""
    x = x & _MASK32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _MASK32
    x = ((x ^ (x >> 15)) * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniforms(params: SamplingParams, vocab: int) -> torch.Tensor:
    """[R, vocab] uniforms in (0, 1), a pure function of (seed, sample_index, step, token)."""
    row = _hash32(params.seed ^ _hash32(params.seed >> 32))
    row = _hash32(row ^ _hash32(params.sample_index + 0x9E3779B9))
    row = _hash32(row ^ _hash32(params.step + 0x7F4A7C15))
    token = torch.arange(vocab, device=row.device, dtype=torch.int64)
    bits = _hash32(row[:, None] ^ _hash32(token[None, :] + 0x632BE5AB))
    return (bits.double() + 0.5) / 2.0**32


def filtered_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature-scaled logits with everything outside each row's top-k, top-p and min-p set at -inf."""
    temperature = torch.where(params.temperature > 0, params.temperature, torch.ones_like(params.temperature))
    scaled = logits / temperature[:, None]
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    rank = torch.arange(logits.shape[-1], device=logits.device)[None, :]
    k = torch.where(params.top_k > 0, params.top_k, torch.full_like(params.top_k, logits.shape[-1]))
    keep = rank < k[:, None]
    keep &= (probs.cumsum(dim=-1) - probs) < params.top_p[:, None]  # the first token always stays
    keep &= probs >= params.min_p[:, None] * probs[:, :1]
    masked_sorted = sorted_logits.masked_fill(~keep, float("-inf"))
    return torch.full_like(scaled, float("-inf")).scatter(-1, order, masked_sorted)


def sample(logits: torch.Tensor, params: SamplingParams, num_top_logprobs: int = 0) -> Sampled:
    """logits [R, vocab] float32 -> chosen tokens (greedy where temperature == 0) and their logprobs."""
    if not 0 <= num_top_logprobs <= 20:
        raise ValueError(f"num_top_logprobs must be in [0, 20], got {num_top_logprobs}")
    logits = logits.float()
    gumbel = -torch.log(-torch.log(uniforms(params, logits.shape[-1]))).float()
    drawn = (filtered_logits(logits, params) + gumbel).argmax(dim=-1)
    tokens = torch.where(params.temperature > 0, drawn, logits.argmax(dim=-1))
    logprobs = logits.log_softmax(dim=-1)
    top_logprobs, top_ids = logprobs.topk(num_top_logprobs, dim=-1)
    return Sampled(tokens, logprobs.gather(-1, tokens[:, None])[:, 0], top_ids, top_logprobs)
