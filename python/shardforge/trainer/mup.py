"""μP, the maximal update parametrization (Yang et al., Tensor Programs V), for Adam: what changes
with the width `dim` relative to the base model at `mup_base_width` (`ModelConfig.mup_base`), so
that a learning rate and init tuned on the base model stay right on wider ones.

With r = a hidden matrix's fan-in / the base model's fan-in of the same matrix:

    parameter                                     init std             Adam lr    weight decay
    hidden matrices (attn q k v o, mlp gate up down)  init_std / sqrt(r)   lr / r     × r
    embedding, LM head, norms                     init_std             lr         as without μP

The weight decay of the hidden matrices grows with r so that lr × weight decay, the fraction of a
weight that AdamW decays per step, is the same at every width. In the forward pass the LM head's
input is multiplied by base width / dim, and attention scores are scaled by 1/head_dim (times
sqrt(base head_dim), which makes the base model's scale the usual 1/sqrt(head_dim)). At the base
width every factor is 1: there μP and the standard parametrization are the same model."""

from __future__ import annotations

import math

from shardforge.trainer.config import ModelConfig

# The matrices whose both dimensions grow with the width, by the end of their parameter names
# (wrappers such as activation checkpointing or torch.compile add a prefix in the middle).
HIDDEN = (
    "attn.q.weight",
    "attn.k.weight",
    "attn.v.weight",
    "attn.o.weight",
    "mlp.gate.weight",
    "mlp.up.weight",
    "mlp.down.weight",
)


def fan_in_ratio(cfg: ModelConfig, name: str) -> float | None:
    """r for a hidden matrix under μP; None for every other parameter, and without μP."""
    if not cfg.mup or not name.endswith(HIDDEN):
        return None
    base = cfg.mup_base
    if name.endswith("mlp.down.weight"):
        return cfg.hidden_dim / base.hidden_dim
    return cfg.dim / base.dim


def output_multiplier(cfg: ModelConfig) -> float:
    """What the LM head's input (and so the logits) is multiplied by."""
    return cfg.mup_base_width / cfg.dim if cfg.mup else 1.0


def attention_scale(cfg: ModelConfig) -> float | None:
    """The attention scores' scale; None: `scaled_dot_product_attention`'s 1/sqrt(head_dim)."""
    if not cfg.mup:
        return None
    return math.sqrt(cfg.mup_base.head_dim) / cfg.head_dim
