"""What every kernel module shares: whether Triton can run, block sizes, and output allocation."""

from __future__ import annotations

import importlib.util
import os

import torch

# Absent from an install without the train extra; the reference path then does all the work.
HAS_TRITON = importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Triton's CPU interpreter (`TRITON_INTERPRET=1`, read when the kernels are defined)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def use_triton(t: torch.Tensor) -> bool:
    """Run the Triton kernel for `t`: on a GPU, or on CPU under the interpreter. Everything else
    takes the PyTorch reference path."""
    return HAS_TRITON and (t.is_cuda or (interpreting() and t.device.type == "cpu"))


def block_for(n: int, cap: int = 65536) -> int:
    """The power-of-two block that covers `n` elements in one pass (capped)."""
    return min(cap, 1 << (max(1, n) - 1).bit_length())


def warps_for(block: int) -> int:
    return 4 if block <= 2048 else 8 if block <= 8192 else 16


def empty(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Kernel outputs are allocated here, so tests can poison them (fill with NaN) and catch any
    element a kernel forgets to write."""
    return torch.empty(shape, dtype=dtype, device=device)


def program_count(rows: int, device: torch.device) -> int:
    """Programs for a row loop that reduces across rows: one per SM on a GPU."""
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(rows, sms))
    return max(1, min(rows, 4))
