"""A Llama-style decoder: RMSNorm, RoPE, grouped-query attention through
`scaled_dot_product_attention` (within each document when the loader's position ids are given),
SwiGLU MLP, optional QK-norm and z-loss, tied or untied embeddings, optionally μP's init and
multipliers (`shardforge.trainer.mup`).

`ModelConfig.kernels` switches RMSNorm, SwiGLU, RoPE and the LM head + loss between the Triton
kernels (`shardforge.kernels`) and plain PyTorch; the two compute the same function."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shardforge import kernels
from shardforge.kernels import reference
from shardforge.trainer import mup
from shardforge.trainer.config import ModelConfig


class Norm(nn.Module):
    def __init__(self, dim: int, eps: float, use_kernel: bool) -> None:
        super().__init__()
        self.eps, self.use_kernel = eps, use_kernel
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (kernels.rms_norm if self.use_kernel else reference.rms_norm)(x, self.weight, self.eps)


def document_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """(batch, 1, seq, seq) boolean mask: causal, and only within the document (a document starts
    where the position id is 0)."""
    doc = (position_ids == 0).cumsum(-1)
    same = doc[:, :, None] == doc[:, None, :]
    seq = position_ids.shape[-1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=position_ids.device).tril()
    return (same & causal)[:, None]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = mup.attention_scale(cfg)
        hd = cfg.head_dim
        self.q = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.v = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        self.q_norm = Norm(hd, cfg.norm_eps, cfg.kernels) if cfg.qk_norm else None
        self.k_norm = Norm(hd, cfg.norm_eps, cfg.kernels) if cfg.qk_norm else None

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, s, _ = x.shape
        hd = self.cfg.head_dim
        # -1 heads: under tensor parallelism each rank holds a slice of them.
        q = self.q(x).view(b, s, -1, hd)
        k = self.k(x).view(b, s, -1, hd)
        v = self.v(x).view(b, s, -1, hd)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = (kernels.apply_rope if self.cfg.kernels else reference.rope)(q, k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=mask is None,
            scale=self.scale,
            enable_gqa=self.cfg.n_kv_heads != self.cfg.n_heads,
        )
        y: torch.Tensor = self.o(out.transpose(1, 2).reshape(b, s, -1))
        return y


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.use_kernel = cfg.kernels
        self.gate = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.up = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.down = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = (kernels.swiglu if self.use_kernel else reference.swiglu)(self.gate(x), self.up(x))
        y: torch.Tensor = self.down(act)
        return y


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.attn = Attention(cfg)
        self.mlp_norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        y: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return y


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.output_multiplier = mup.output_multiplier(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.init_weights()

    def init_weights(self) -> None:
        """Normal(0, init_std) everywhere; the two projections back into the residual stream
        (attention out, MLP down) scaled by 1/sqrt(2 n_layers) so the residual's variance does not
        grow with depth (GPT-2); norms at 1. Under μP the hidden matrices' std is also divided by
        sqrt(their fan-in / the base model's)."""
        for name, p in self.named_parameters():
            std = self.cfg.init_std
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
                continue
            if name.endswith(("attn.o.weight", "mlp.down.weight")):
                std /= math.sqrt(2 * self.cfg.n_layers)
            ratio = mup.fan_in_ratio(self.cfg, name)
            if ratio is not None:
                std /= math.sqrt(ratio)
            nn.init.normal_(p, 0.0, std)

    def hidden_states(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, s = input_ids.shape
        mask = None
        if position_ids is None:
            position_ids = torch.arange(s, device=input_ids.device).expand(b, s)
        elif self.cfg.doc_masking:
            mask = document_mask(position_ids)
        cos, sin = kernels.rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_base)
        x = self.embed(input_ids)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)  # type: ignore[no-any-return]

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab); with `labels`, the mean cross-entropy over labels that are
        not -100 (plus z-loss when configured) instead. The loss goes through `forward` so that
        FSDP's hooks gather the head's weight; the kernel path never materialises the logits.
        μP's output multiplier scales the head's input, which is the same as scaling the logits."""
        h = self.hidden_states(input_ids, position_ids)
        if self.output_multiplier != 1.0:
            h = h * self.output_multiplier
        if labels is None:
            logits: torch.Tensor = self.lm_head(h)
            return logits
        if self.cfg.kernels:
            return kernels.fused_linear_cross_entropy(h, self.lm_head.weight, labels, z_loss=self.cfg.z_loss)
        return reference.linear_cross_entropy(
            h.reshape(-1, h.shape[-1]), self.lm_head.weight, labels.reshape(-1), z_loss=self.cfg.z_loss
        )

    def loss(
        self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        out: torch.Tensor = self(input_ids, position_ids, labels)
        return out
