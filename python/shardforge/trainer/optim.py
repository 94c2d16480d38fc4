"""AdamW with decay only on matrices (not on norms or embeddings), and the learning-rate
schedules: linear warmup then cosine to a floor, or warmup-stable-decay with a final linear
anneal."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

Schedule = Literal["cosine", "wsd"]


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        if p.ndim < 2 or "norm" in name or name.startswith("embed"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]


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
