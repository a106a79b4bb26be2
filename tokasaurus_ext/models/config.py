"""The model shape read from a Hugging Face `config.json` (transformers 4.x and 5.x spellings)."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] = field(default_factory=dict)  # {} = plain rotary embeddings
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    max_position_embeddings: int = 8192

    def __post_init__(self) -> None:
        if self.num_q_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_q_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_kv_heads})"
            )
        kind = self.rope_scaling.get("rope_type", "default")
        if kind not in ("default", "llama3"):
            raise ValueError(f"rope scaling type {kind!r} is not supported (default, llama3)")

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> "ModelConfig":
        """From a config.json dict. transformers 5.x keeps rope settings in `rope_parameters`; 4.x in
        `rope_theta` and `rope_scaling` (whose type key was `type` in early releases)."""
        rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
        theta = rope.pop("rope_theta", cfg.get("rope_theta", 10000.0))
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope.pop("type")
        heads = cfg["num_attention_heads"]
        return cls(
            model_type=cfg["model_type"],
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_q_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=float(theta),
            rope_scaling=rope if rope.get("rope_type", "default") != "default" else {},
            tie_word_embeddings=cfg.get("tie_word_embeddings", False),
            qkv_bias=cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False),
            max_position_embeddings=cfg.get("max_position_embeddings", 8192),
        )
