"""Llama 3 / Qwen2 decoder over the paged KV cache (Qwen2 = Llama + q/k/v biases)."""

import math

import torch
import torch.nn.functional as F

from tokasaurus_ext import ops
from tokasaurus_ext.models.batch import ForwardBatch
from tokasaurus_ext.models.config import ModelConfig
from tokasaurus_ext.models.rope import Rotary


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class LlamaModel:
    """Weights are the checkpoint's tensors by their Hugging Face names (`model.layers.0.mlp.up_proj.weight`...)."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, torch.Tensor]) -> None:
        self.cfg = cfg
        self.w = weights
        if "lm_head.weight" not in weights:
            if not cfg.tie_word_embeddings:
                raise ValueError("checkpoint has no lm_head.weight and tie_word_embeddings is false")
            self.w["lm_head.weight"] = weights["model.embed_tokens.weight"]
        embed = weights["model.embed_tokens.weight"]
        self.rotary = Rotary(cfg, embed.device)
        self.scale = 1 / math.sqrt(cfg.head_dim)

    def new_kv_cache(self, num_pages: int, page_size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
        embed = self.w["model.embed_tokens.weight"]
        shape = (num_pages, page_size, self.cfg.num_kv_heads, self.cfg.head_dim)

        def page_array() -> torch.Tensor:
            return torch.zeros(shape, dtype=embed.dtype, device=embed.device)

        return [(page_array(), page_array()) for _ in range(self.cfg.num_layers)]

    def _proj(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def _attention(self, i: int, x: torch.Tensor, batch: ForwardBatch, cos, sin, cache) -> torch.Tensor:
        cfg, p = self.cfg, f"model.layers.{i}.self_attn."
        t = x.shape[0]
        q = self._proj(x, p + "q_proj").view(t, cfg.num_q_heads, cfg.head_dim)
        k = self._proj(x, p + "k_proj").view(t, cfg.num_kv_heads, cfg.head_dim)
        v = self._proj(x, p + "v_proj").view(t, cfg.num_kv_heads, cfg.head_dim)
        q, k = Rotary.apply(q, cos, sin), Rotary.apply(k, cos, sin)
        k_cache, v_cache = cache
        ops.kv_write(k, v, k_cache, v_cache, batch.slots, check_bounds=False)
        groups = batch.hydragen
        out, lse = ops.paged_attention(
            q,
            k_cache,
            v_cache,
            batch.cu_q_lens,
            batch.block_table,
            batch.kv_lens,
            self.scale,
            batch.max_q_len,
            kv_starts=groups.kv_starts if groups else None,
            check_bounds=False,
        )
        if groups is not None:
            # Hydragen: the grouped rows attend their shared prefix together, then merge with their own suffix.
            n = groups.num_rows
            prefix = ops.hydragen_prefix_attention(
                q[:n],
                k_cache,
                v_cache,
                groups.cu_group_q_lens,
                groups.prefix_block_table,
                groups.prefix_lens,
                self.scale,
                groups.max_group_q_len,
                check_bounds=False,
            )
            merged, _ = ops.merge_attention_states(*prefix, out[:n], lse[:n])
            out = torch.cat([merged, out[n:]])
        return self._proj(out.view(t, -1), p + "o_proj")

    def forward(self, batch: ForwardBatch, kv_cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Logits [len(logit_rows), vocab] in float32."""
        cfg, w = self.cfg, self.w
        h = F.embedding(batch.input_ids, w["model.embed_tokens.weight"])
        cos, sin = self.rotary.cos_sin(batch.positions, h.dtype)
        for i in range(cfg.num_layers):
            p = f"model.layers.{i}."
            x = rms_norm(h, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
            h = h + self._attention(i, x, batch, cos, sin, kv_cache[i])
            x = rms_norm(h, w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
            mlp = F.silu(self._proj(x, p + "mlp.gate_proj")) * self._proj(x, p + "mlp.up_proj")
            h = h + self._proj(mlp, p + "mlp.down_proj")
        h = rms_norm(h[batch.logit_rows], w["model.norm.weight"], cfg.rms_norm_eps)
        return F.linear(h, w["lm_head.weight"]).float()
