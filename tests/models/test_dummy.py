"""Dummy weights: presets read as the public configs say, and a dummy model has every tensor a real
checkpoint of that shape has (checked against transformers' own parameter names and shapes)."""

import pytest
import torch
import transformers

from tokasaurus_ext.models.config import ModelConfig
from tokasaurus_ext.weights.dummy import PRESETS, dummy_model, weight_shapes


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_match_transformers_parameter_shapes(preset):
    cfg = ModelConfig.from_hf(PRESETS[preset])
    hf_cfg_cls = transformers.LlamaConfig if cfg.model_type == "llama" else transformers.Qwen2Config
    small = {**PRESETS[preset], "num_hidden_layers": 1}  # one layer keeps the meta model cheap
    small.pop("model_type")
    with torch.device("meta"):
        hf = transformers.AutoModelForCausalLM.from_config(hf_cfg_cls(**small))
    expected = {n: tuple(p.shape) for n, p in hf.state_dict().items() if not n.endswith("rotary_emb.inv_freq")}
    if cfg.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    ours = weight_shapes(ModelConfig.from_hf({**PRESETS[preset], "num_hidden_layers": 1}))
    assert ours == expected


def test_dummy_model_runs_and_is_never_zero():
    tiny = {
        **PRESETS["qwen2-0.5b"],
        "vocab_size": 300,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    model = dummy_model(tiny, seed=1)
    assert all((w != 0).all() for w in model.w.values())
    assert model.cfg.qkv_bias and model.cfg.tie_word_embeddings
    with pytest.raises(ValueError, match="unknown dummy preset"):
        dummy_model("llama-9000")
