"""Greedy generation on the paged kernels is token-identical to transformers (fp32, CPU) on tiny random Llama 3
(llama3 rope scaling, GQA) and Qwen2 (q/k/v biases) checkpoints, loaded from safetensors; logits agree; chunked
prefill gives the same tokens as one prefill."""

import pytest
import torch
import transformers
from harness import PAGE, Sequences, generate

from tokasaurus_ext.models.batch import HydragenGroups
from tokasaurus_ext.weights.safetensors import load_hf_dir


def tiny_llama():
    return transformers.LlamaConfig(
        vocab_size=211,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    )


def tiny_qwen2():
    return transformers.Qwen2Config(
        vocab_size=199,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )


@pytest.fixture(params=["llama", "qwen2"])
def checkpoint(request, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_llama() if request.param == "llama" else tiny_qwen2()
    model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    with torch.no_grad():  # random biases too (HF initializes them to zero)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path)
    return model, load_hf_dir(tmp_path)


PROMPTS = [[5, 17, 42, 9, 100, 3, 77], [1] + list(range(20, 57)), [150, 2]]


def test_greedy_is_token_identical_to_transformers(checkpoint):
    hf, ours = checkpoint
    steps = 32
    tokens, logits = generate(ours, PROMPTS, steps)
    for prompt, got in zip(PROMPTS, tokens, strict=True):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            ref = hf.generate(ids, max_new_tokens=steps, do_sample=False, min_new_tokens=steps)[0, len(prompt) :]
        assert got == ref.tolist()
    with torch.no_grad():
        for prompt, row in zip(PROMPTS, logits, strict=True):
            ref = hf(torch.tensor([prompt])).logits[0, -1]
            assert torch.allclose(row, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("chunk", [1, 5, 13])
def test_chunked_prefill_matches_single_prefill(checkpoint, chunk):
    _, ours = checkpoint
    whole, _ = generate(ours, PROMPTS, 8)
    chunked, _ = generate(ours, PROMPTS, 8, chunk=chunk)
    assert chunked == whole


def test_hydragen_groups_give_the_same_tokens(checkpoint):
    """Three prompts sharing a 37-token prefix decode with Hydragen (their queries attend the prefix on sequence
    0's pages all at once, then their own suffixes) and produce the tokens of plain paged attention."""
    _, ours = checkpoint
    shared = list(range(30, 67))
    prompts = [shared + [3, 9], shared + [120], shared + [5, 6, 7, 8]]
    steps = 12
    expected, _ = generate(ours, prompts, steps)

    seqs = Sequences(prompts, max(map(len, prompts)) + steps + 1)
    cache = ours.new_kv_cache(seqs.num_pages, PAGE)
    logits = torch.empty(len(prompts), ours.cfg.vocab_size)
    batch, owners = seqs.batch()
    logits[owners] = ours.forward(batch, cache)
    prefix_len = len(shared)
    for _ in range(steps):
        for s, t in enumerate(logits.argmax(-1).tolist()):
            seqs.tokens[s].append(t)
        batch, owners = seqs.batch()
        batch.hydragen = HydragenGroups(
            num_rows=len(prompts),  # one decode row per sequence, all in one group
            cu_group_q_lens=torch.tensor([0, len(prompts)], dtype=torch.int32),
            prefix_block_table=seqs.table[:1].contiguous(),
            prefix_lens=torch.tensor([prefix_len], dtype=torch.int32),
            max_group_q_len=len(prompts),
            kv_starts=torch.full((len(prompts),), prefix_len, dtype=torch.int32),
        )
        logits[owners] = ours.forward(batch, cache)
    got = [t[len(p) :] for t, p in zip(seqs.tokens, prompts, strict=True)]
    assert got == expected
