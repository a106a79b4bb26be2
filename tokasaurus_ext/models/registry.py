"""config.json model_type -> implementation."""

from tokasaurus_ext.models.llama import LlamaModel

MODELS = {"llama": LlamaModel, "qwen2": LlamaModel}


def model_class(model_type: str) -> type[LlamaModel]:
    if model_type not in MODELS:
        raise ValueError(f"unsupported model_type {model_type!r}; supported: {', '.join(sorted(MODELS))}")
    return MODELS[model_type]
