"""GGUF files: dequantized through transformers' GGUF reader (the `gguf` package) into an HF directory."""

import shutil
from pathlib import Path

import torch

from tokasaurus_ext.weights.cache import cache_root
from tokasaurus_ext.weights.safetensors import load_hf_dir


def convert_gguf(gguf_file: Path, target: Path) -> Path:
    """Writes `target` as an HF directory (config.json, fp32 model.safetensors, tokenizer with its chat
    template) holding the GGUF's model. Written beside `target` first, then renamed: a crash leaves no half
    directory that later runs would take for a finished one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights are plain fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def load_gguf(gguf_file: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """A model from a GGUF file, dequantized to `dtype`. The conversion is cached under $TOKASAURUS_CACHE, keyed by
    the file's name and size, so a second load reads safetensors directly."""
    gguf_file = Path(gguf_file)
    target = cache_root() / "gguf" / f"{gguf_file.stem}-{gguf_file.stat().st_size}"
    if not (target / "model.safetensors").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(gguf_file, target)
    return load_hf_dir(target, dtype=dtype, device=device)
