"""Rotary position embedding (Llama's half-split layout), applied in place to q and k.

`cos`/`sin` come from `rope_cos_sin(position_ids, ...)` once per forward and are shared by every
layer, so position ids that restart at each document (the loader's `position_ids`) cost nothing
extra. The backward is the same rotation by the opposite angle, written to a new tensor: the
incoming gradient may be shared (a caller's `grad_outputs`, or a view of another gradient) and
is left as it is."""

from __future__ import annotations

from typing import Any

import torch

from shardforge.kernels import _common, reference

if _common.HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rope_kernel(
        X, Y, COS, SIN, stride_tok, stride_head, y_stride_tok, y_stride_head, cs_stride_tok,
        n_heads, half, INVERSE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        tok = tl.program_id(0).to(tl.int64)
        d = tl.arange(0, BLOCK_D)
        cos = tl.load(COS + tok * cs_stride_tok + d, mask=d < half, other=0.0).to(tl.float32)[None, :]
        sin = tl.load(SIN + tok * cs_stride_tok + d, mask=d < half, other=0.0).to(tl.float32)[None, :]
        if INVERSE:
            sin = -sin
        h = tl.arange(0, BLOCK_H)
        mask = (h[:, None] < n_heads) & (d[None, :] < half)
        src = X + tok * stride_tok + h[:, None] * stride_head + d[None, :]
        dst = Y + tok * y_stride_tok + h[:, None] * y_stride_head + d[None, :]
        x1 = tl.load(src, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(src + half, mask=mask, other=0.0).to(tl.float32)
        tl.store(dst, (x1 * cos - x2 * sin).to(Y.dtype.element_ty), mask=mask)
        tl.store(dst + half, (x2 * cos + x1 * sin).to(Y.dtype.element_ty), mask=mask)


def _launch(x: torch.Tensor, out: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool) -> None:
    """Rotate `x` (batch, seq, heads, head_dim) into `out`, which may be `x` itself."""
    b, s, h, d = x.shape
    x3, y3 = x.view(b * s, h, d), out.view(b * s, h, d)
    c2, s2 = cos.reshape(b * s, d // 2), sin.reshape(b * s, d // 2)
    _rope_kernel[(b * s,)](
        x3, y3, c2, s2, x3.stride(0), x3.stride(1), y3.stride(0), y3.stride(1), c2.stride(0), h, d // 2,
        INVERSE=inverse, BLOCK_H=_common.block_for(h), BLOCK_D=_common.block_for(d // 2),
    )  # fmt: skip


class _RoPE(torch.autograd.Function):
    """One tensor per call: autograd allows an in-place Function on a view (q and k are views of
    their projections) only when it returns a single tensor."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        _launch(x, x, cos, sin, inverse=False)
        ctx.mark_dirty(x)
        ctx.save_for_backward(cos, sin)
        return x

    @staticmethod
    def backward(ctx: Any, dx: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        dx = dx.contiguous()
        out = _common.empty(*dx.shape, dtype=dx.dtype, device=dx.device)
        _launch(dx, out, cos, sin, inverse=True)
        return out, None, None


class _RoPEToNew(_RoPE):
    """The same rotation written to a new tensor, for compiled code. Inductor (torch 2.11) gives a
    kernel's input and output separate buffers even when they are one tensor, so the in-place
    path made the op before it write q three times and cost 1.33x this one on an H200."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        out = _common.empty(*x.shape, dtype=x.dtype, device=x.device)
        _launch(x, out, cos, sin, inverse=False)
        ctx.save_for_backward(cos, sin)
        return out


def rope_cos_sin(
    position_ids: torch.Tensor, head_dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """`cos`, `sin` of shape (batch, seq, head_dim / 2) for the given positions."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    inv_freq = 1.0 / (
        base ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    )
    angles = position_ids.to(torch.float32)[..., None] * inv_freq
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate `q` (batch, seq, q_heads, head_dim) and `k` (batch, seq, kv_heads, head_dim). The
    Triton path works in place on contiguous inputs (and returns them), except inside
    `torch.compile`, where it writes new tensors; the reference returns new tensors."""
    if q.shape[-1] % 2 or q.shape[-1] != k.shape[-1] or cos.shape[-1] * 2 != q.shape[-1]:
        raise ValueError(f"head_dim mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, cos {tuple(cos.shape)}")
    if _common.use_triton(q):
        cos, sin = cos.contiguous(), sin.contiguous()
        rope = _RoPEToNew if torch.compiler.is_compiling() else _RoPE
        return rope.apply(q.contiguous(), cos, sin), rope.apply(k.contiguous(), cos, sin)
    return reference.rope(q, k, cos, sin)
