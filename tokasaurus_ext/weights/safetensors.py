"""Hugging Face checkpoint directories: config.json plus one or several (indexed) .safetensors files."""

import json
from pathlib import Path

import torch
from safetensors import safe_open

from tokasaurus_ext.models.config import ModelConfig
from tokasaurus_ext.models.llama import LlamaModel
from tokasaurus_ext.models.registry import model_class


def load_hf_dir(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> LlamaModel:
    path = Path(path)
    cfg = ModelConfig.from_hf(json.loads((path / "config.json").read_text()))
    index = path / "model.safetensors.index.json"
    if index.exists():  # sharded: the index names each shard
        files = [path / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    else:
        files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {path}")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        # Tensor by tensor, straight to the target device and dtype: no second full copy in host memory.
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                weights[name] = f.get_tensor(name).to(device=device, dtype=dtype)
    return model_class(cfg.model_type)(cfg, weights)
