"""Activation checkpointing per block, full or selective.

- "full": a block keeps only its input; backward reruns the whole block.
- "selective" (op-level, as torchtitan's): a block keeps the outputs of its matrix multiplies and
  of attention, the expensive ops, and recomputes the cheap elementwise ones (norms, RoPE, SiLU,
  residual adds), which hold most of the activation bytes per FLOP. Memory sits between no
  checkpointing and full; the extra compute is small.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

Mode = Literal["full", "selective"]

_aten = torch.ops.aten
# Ops whose outputs are saved under "selective": matmuls and every attention kernel.
SAVED_OPS = {
    _aten.mm.default,
    _aten.addmm.default,
    _aten.bmm.default,
    _aten._scaled_dot_product_flash_attention.default,
    _aten._scaled_dot_product_efficient_attention.default,
    _aten._scaled_dot_product_flash_attention_for_cpu.default,
}
for _name in ("_scaled_dot_product_cudnn_attention",):
    if hasattr(_aten, _name):  # not in every build
        SAVED_OPS.add(getattr(_aten, _name).default)


def _policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _selective_context() -> Any:
    return create_selective_checkpoint_contexts(_policy)  # type: ignore[no-untyped-call]


def mode_of(setting: bool | str) -> Mode | None:
    """The config's `activation_checkpointing` (False/True or "none"/"full"/"selective")."""
    if setting in (False, "none", None):
        return None
    if setting in (True, "full"):
        return "full"
    if setting == "selective":
        return "selective"
    raise ValueError(f"activation_checkpointing is none, full or selective, not {setting!r}")


def wrap(block: nn.Module, mode: Mode) -> nn.Module:
    """`block` with activation checkpointing; its parameters keep their names underneath the
    wrapper's `_checkpoint_wrapped_module.`, which DCP and the optimizer groups see through."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    if mode == "full":
        return checkpoint_wrapper(block)
    return checkpoint_wrapper(block, context_fn=_selective_context, preserve_rng_state=False)


def apply(layers: nn.Module, setting: bool | str) -> None:
    """Wrap every block of `layers` (a list, or a pipeline stage's dict) in place."""
    mode = mode_of(setting)
    if mode is None:
        return
    for name, block in list(layers.named_children()):
        layers.register_module(name, wrap(block, mode))
