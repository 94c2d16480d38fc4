"""AdamW with decay only on matrices (not on norms or embeddings), μP's per-layer learning rates,
and the learning-rate schedules: linear warmup then cosine to a floor, or warmup-stable-decay with
a final linear anneal."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from shardforge.trainer import mup

Schedule = Literal["cosine", "wsd"]


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's groups: "decay" (matrices) and "no_decay" (norms, embeddings). Under μP
    (`model.cfg.mup`) the hidden matrices go instead into one group per fan-in ratio r, named
    "hidden_x{r}", with `lr_scale` 1/r and weight decay × r (`shardforge.trainer.mup`). The
    training loop sets each group's learning rate to the scheduled one × its `lr_scale`."""
    cfg = getattr(model, "cfg", None)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    hidden: dict[float, list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        ratio = mup.fan_in_ratio(cfg, name) if cfg is not None else None
        if ratio is not None:
            hidden.setdefault(ratio, []).append(p)
        elif p.ndim < 2 or "norm" in name or name.startswith("embed"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ] + [
        {"name": f"hidden_x{r:g}", "params": ps, "weight_decay": weight_decay * r, "lr_scale": 1 / r}
        for r, ps in sorted(hidden.items())
    ]
    return [g for g in groups if g["params"]]


def lr_factor(
    step: int, total: int, warmup: int, schedule: Schedule, floor: float, decay_fraction: float = 0.2
) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of `total`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_start = total - int(decay_fraction * total)
    if step < decay_start:
        return 1.0
    progress = (step - decay_start) / max(1, total - decay_start)
    return 1.0 - (1.0 - floor) * progress
