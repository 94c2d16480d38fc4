"""Rotary position embedding (Llama's half-split layout), applied in place to q and k.

`cos`/`sin` come from `rope_cos_sin(position_ids, ...)` once per forward and are shared by every
layer, so position ids that restart at each document (the loader's `position_ids`) cost nothing
extra. The backward is the same rotation by the opposite angle."""

from __future__ import annotations

from typing import Any

import torch

from shardforge.kernels import _common, reference

if _common.HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rope_rotate(base, stride_head, n_heads, cos, sin, d, half, BLOCK_H: tl.constexpr):
        h = tl.arange(0, BLOCK_H)
        mask = (h[:, None] < n_heads) & (d[None, :] < half)
        p1 = base + h[:, None] * stride_head + d[None, :]
        x1 = tl.load(p1, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(p1 + half, mask=mask, other=0.0).to(tl.float32)
        tl.store(p1, (x1 * cos - x2 * sin).to(p1.dtype.element_ty), mask=mask)
        tl.store(p1 + half, (x2 * cos + x1 * sin).to(p1.dtype.element_ty), mask=mask)

    @triton.jit
    def _rope_kernel(
        Q, K, COS, SIN,
        q_stride_tok, q_stride_head, k_stride_tok, k_stride_head, cs_stride_tok,
        n_q_heads, n_k_heads, half,
        INVERSE: tl.constexpr, BLOCK_QH: tl.constexpr, BLOCK_KH: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        tok = tl.program_id(0).to(tl.int64)
        d = tl.arange(0, BLOCK_D)
        cos = tl.load(COS + tok * cs_stride_tok + d, mask=d < half, other=0.0).to(tl.float32)[None, :]
        sin = tl.load(SIN + tok * cs_stride_tok + d, mask=d < half, other=0.0).to(tl.float32)[None, :]
        if INVERSE:
            sin = -sin
        _rope_rotate(Q + tok * q_stride_tok, q_stride_head, n_q_heads, cos, sin, d, half, BLOCK_QH)
        _rope_rotate(K + tok * k_stride_tok, k_stride_head, n_k_heads, cos, sin, d, half, BLOCK_KH)


def _launch(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool) -> None:
    b, s, hq, d = q.shape
    hk = k.shape[2]
    q3, k3 = q.view(b * s, hq, d), k.view(b * s, hk, d)
    c2, s2 = cos.reshape(b * s, d // 2), sin.reshape(b * s, d // 2)
    _rope_kernel[(b * s,)](
        q3, k3, c2, s2,
        q3.stride(0), q3.stride(1), k3.stride(0), k3.stride(1), c2.stride(0),
        hq, hk, d // 2,
        INVERSE=inverse, BLOCK_QH=_common.block_for(hq), BLOCK_KH=_common.block_for(hk),
        BLOCK_D=_common.block_for(d // 2),
    )  # fmt: skip


class _RoPE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _launch(q, k, cos, sin, inverse=False)
        ctx.mark_dirty(q, k)
        ctx.save_for_backward(cos, sin)
        return q, k

    @staticmethod
    def backward(
        ctx: Any, dq: torch.Tensor, dk: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        dq, dk = dq.contiguous(), dk.contiguous()
        _launch(dq, dk, cos, sin, inverse=True)
        return dq, dk, None, None


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
    Triton path works in place on contiguous inputs (and returns them); the reference returns new
    tensors."""
    if q.shape[-1] % 2 or q.shape[-1] != k.shape[-1] or cos.shape[-1] * 2 != q.shape[-1]:
        raise ValueError(f"head_dim mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, cos {tuple(cos.shape)}")
    if _common.use_triton(q):
        return _RoPE.apply(q.contiguous(), k.contiguous(), cos.contiguous(), sin.contiguous())  # type: ignore[no-any-return]
    return reference.rope(q, k, cos, sin)
