"""Pure-PyTorch versions of every kernel: the fallback where Triton cannot run, and (in float64)
the reference the tests hold the kernels to."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`x / sqrt(mean(x^2) + eps) * weight`, computed in at least fp32."""
    dt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dt)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.to(dt)
    return y.to(x.dtype)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """`silu(gate) * up`."""
    dt = torch.promote_types(gate.dtype, torch.float32)
    return (F.silu(gate.to(dt)) * up.to(dt)).to(gate.dtype)


def rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding, Llama's half-split layout. `q`, `k`: (batch, seq, heads, head_dim);
    `cos`, `sin`: (batch, seq, head_dim / 2)."""

    def rotate(x: torch.Tensor) -> torch.Tensor:
        dt = torch.promote_types(x.dtype, torch.float32)
        x1, x2 = x.to(dt).chunk(2, dim=-1)
        c, s = cos.to(dt)[:, :, None, :], sin.to(dt)[:, :, None, :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` over the labels that are not `ignore_index`, plus
    `z_loss * logsumexp^2` (PaLM's z-loss), with the full logits materialised."""
    dt = torch.promote_types(hidden.dtype, torch.float32)
    logits = hidden.to(dt) @ weight.to(dt).T
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if z_loss:
        valid = labels != ignore_index
        lse = torch.logsumexp(logits[valid], dim=-1)
        loss = loss + z_loss * (lse**2).sum() / valid.sum().clamp(min=1)
    return loss
