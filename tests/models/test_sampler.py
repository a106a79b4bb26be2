"""Sampler statistics: samples stay inside the top-k / top-p / min-p set, frequencies follow the renormalized
probabilities, seeds reproduce, sample indices differ, and logprobs are the model's log-softmax."""

import torch

from tokasaurus_ext.worker.sampler import SamplingParams, filtered_logits, sample

VOCAB = 57


def params(rows: int, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7, sample_index=None, step=None):
    full = lambda v, dtype: torch.full((rows,), v, dtype=dtype)  # noqa: E731
    return SamplingParams(
        temperature=full(temperature, torch.float32),
        top_k=full(top_k, torch.int64),
        top_p=full(top_p, torch.float32),
        min_p=full(min_p, torch.float32),
        seed=full(seed, torch.int64),
        sample_index=torch.arange(rows) if sample_index is None else sample_index,
        step=torch.zeros(rows, dtype=torch.int64) if step is None else step,
    )


def logits_rows(rows: int) -> torch.Tensor:
    return (torch.randn(VOCAB, generator=torch.Generator().manual_seed(3)) * 2).expand(rows, VOCAB).contiguous()


def check_distribution(p: SamplingParams, rows: int) -> None:
    logits = logits_rows(rows)
    tokens = sample(logits, p).tokens
    allowed = torch.isfinite(filtered_logits(logits[:1], p)[0])
    assert allowed[tokens].all(), "a sample fell outside the allowed set"
    expected = filtered_logits(logits[:1], p)[0].softmax(-1)
    freq = torch.bincount(tokens, minlength=VOCAB).double() / rows
    cos = torch.nn.functional.cosine_similarity(freq, expected.double(), dim=0).item()
    assert cos > 0.99, f"empirical frequencies differ from the renormalized probabilities (cosine {cos:.4f})"


def test_temperature_top_k_top_p_min_p_distributions():
    rows = 40000
    check_distribution(params(rows), rows)
    check_distribution(params(rows, temperature=0.6, top_k=7), rows)
    check_distribution(params(rows, temperature=1.3, top_p=0.8), rows)
    check_distribution(params(rows, min_p=0.1), rows)
    check_distribution(params(rows, temperature=0.9, top_k=20, top_p=0.9, min_p=0.02), rows)


def test_filters_keep_the_right_sets():
    logits = logits_rows(1)
    probs = logits[0].softmax(-1)
    order = probs.argsort(descending=True)
    assert torch.isfinite(filtered_logits(logits, params(1, top_k=5))[0]).sum() == 5
    kept = torch.isfinite(filtered_logits(logits, params(1, top_p=0.5))[0])
    n = int((probs[order].cumsum(0) - probs[order] < 0.5).sum())
    assert set(order[:n].tolist()) == set(kept.nonzero()[:, 0].tolist())
    kept = torch.isfinite(filtered_logits(logits, params(1, min_p=0.2))[0])
    assert set((probs >= 0.2 * probs.max()).nonzero()[:, 0].tolist()) == set(kept.nonzero()[:, 0].tolist())


def test_seeds_reproduce_and_sample_indices_differ():
    logits = logits_rows(64)
    a = sample(logits, params(64, seed=11)).tokens
    b = sample(logits, params(64, seed=11)).tokens
    c = sample(logits, params(64, seed=12)).tokens
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len(set(a.tolist())) > 10, "the n samples of one request must not share one stream"
    steps = sample(
        logits[:1].expand(8, VOCAB), params(8, sample_index=torch.zeros(8, dtype=torch.int64), step=torch.arange(8))
    ).tokens
    assert len(set(steps.tolist())) > 1, "successive steps of one sample must draw fresh randomness"


def test_mixed_rows_greedy_and_logprobs():
    logits = torch.randn(6, VOCAB, generator=torch.Generator().manual_seed(5)) * 3
    p = params(6, temperature=0.8)
    p.temperature[::2] = 0.0  # greedy rows beside sampled ones
    p.top_k[1] = 3
    out = sample(logits, p, num_top_logprobs=20)
    assert torch.equal(out.tokens[::2], logits[::2].argmax(-1))
    assert torch.isin(out.tokens[1], logits[1].topk(3).indices)
    ref = logits.double().log_softmax(-1)
    assert torch.allclose(out.logprobs.double(), ref.gather(-1, out.tokens[:, None])[:, 0], atol=1e-4)
    assert out.top_ids.shape == (6, 20)
    assert torch.allclose(out.top_logprobs.double(), ref.topk(20).values, atol=1e-4)
