"""Triton kernels for the trainer's hot layers, each with a pure-PyTorch reference
(`shardforge.kernels.reference`) that also serves as the fallback where Triton cannot run (no GPU
and no `TRITON_INTERPRET=1`). Needs the `train` extra (torch, triton)."""

from shardforge.kernels._common import use_triton
from shardforge.kernels.cross_entropy import fused_linear_cross_entropy
from shardforge.kernels.rmsnorm import RMSNorm, rms_norm
from shardforge.kernels.rope import apply_rope, rope_cos_sin
from shardforge.kernels.swiglu import swiglu

__all__ = [
    "RMSNorm",
    "apply_rope",
    "fused_linear_cross_entropy",
    "rms_norm",
    "rope_cos_sin",
    "swiglu",
    "use_triton",
]
