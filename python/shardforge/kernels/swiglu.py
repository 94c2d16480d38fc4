"""SwiGLU: `silu(gate) * up` in one pass; the backward recomputes `silu` from `gate` instead of
saving it."""

from __future__ import annotations

from typing import Any

import torch

from shardforge.kernels import _common, reference

BLOCK = 1024

if _common.HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _swiglu_fwd_kernel(G, U, OUT, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(OUT + offs, (g * tl.sigmoid(g) * u).to(OUT.dtype.element_ty), mask=mask)

    @triton.jit
    def _swiglu_bwd_kernel(DO, G, U, DG, DU, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        do = tl.load(DO + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
        s = tl.sigmoid(g)
        silu = g * s
        tl.store(DU + offs, (do * silu).to(DU.dtype.element_ty), mask=mask)
        # silu'(g) = s * (1 + g * (1 - s))
        tl.store(DG + offs, (do * u * s * (1.0 + g * (1.0 - s))).to(DG.dtype.element_ty), mask=mask)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if gate.shape != up.shape:
            raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} differ in shape")
        g, u = gate.contiguous(), up.contiguous()
        out = _common.empty(*g.shape, dtype=g.dtype, device=g.device)
        n = g.numel()
        _swiglu_fwd_kernel[(triton.cdiv(n, BLOCK),)](g, u, out, n, BLOCK=BLOCK, num_warps=4)
        ctx.save_for_backward(g, u)
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, u = ctx.saved_tensors
        do = dout.contiguous()
        dg = _common.empty(*g.shape, dtype=g.dtype, device=g.device)
        du = _common.empty(*u.shape, dtype=u.dtype, device=u.device)
        n = g.numel()
        _swiglu_bwd_kernel[(triton.cdiv(n, BLOCK),)](do, g, u, dg, du, n, BLOCK=BLOCK, num_warps=4)
        return dg, du


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """`silu(gate) * up`: the Triton kernel where it can run, else the reference."""
    if _common.use_triton(gate):
        return _SwiGLU.apply(gate, up)  # type: ignore[no-any-return]
    return reference.swiglu(gate, up)
