"""Lower-precision parameters with fp32 master weights, for one process without FSDP.

The model's parameters are cast to `param_dtype` (bf16): the forward and the backward run on them.
An fp32 twin of the model holds the weights the optimizer updates, with fp32 gradients. Each
backward's gradients are added into the twin's, and after each update the twin's weights are
cast back into the model. The twin is what the optimizer, the gradient clipping and the
checkpoints see, so a checkpoint holds fp32 weights under the usual names.

This is the arithmetic of FSDP2 with `MixedPrecisionPolicy(param_dtype, reduce_dtype=float32)`
on one rank: bf16 compute copies of fp32 weights, fp32 gradients. On one rank, FSDP's gathers and
reduce-scatters are copies of every parameter and gradient (about 20 ms of a 160 ms step of the
1B model on an H100). Here, only the two casts remain.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class MasterWeights:
    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        """`model` holds its initialised fp32 weights; it is cast to `dtype` in place, and the
        twin keeps the fp32 originals."""
        self.master = copy.deepcopy(model)
        model.to(dtype)
        self.model = model
        # `parameters()` skips a tied weight's second name in both modules alike.
        self._params: list[torch.Tensor] = list(model.parameters())
        self._masters: list[torch.Tensor] = list(self.master.parameters())

    def take_grads(self) -> None:
        """Adds the model's gradients (one backward's) into the twin's fp32 ones, and clears the
        model's, so that several backwards accumulate in fp32."""
        for p, m in zip(self._params, self._masters, strict=True):
            if p.grad is None:
                continue
            if m.grad is None:
                m.grad = p.grad.to(torch.float32)
            else:
                m.grad.add_(p.grad)
            p.grad = None

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """The twin's weights, cast, into the model (after an update or a restore)."""
        torch._foreach_copy_(self._params, self._masters)
