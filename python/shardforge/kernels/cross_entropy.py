"""Fused LM head + cross-entropy. The rows are processed in chunks: for each chunk the logits are
computed, the loss kernel turns them in place into their gradient, and that gradient is
multiplied straight into `d hidden` and `d weight`. The full `tokens x vocab` logits never exist;
peak extra memory is one chunk of logits. The gradients are computed in the forward (the loss is a
scalar), and the backward only scales them by the incoming gradient, on the device: it never
waits for the host to read that gradient, and a gradient of 1 costs no pass."""

from __future__ import annotations

from typing import Any

import torch

from shardforge.kernels import _common

if _common.HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _ce_grad_kernel(
        LOGITS, stride, LABELS, LOSS, SCALE, n_cols, ignore_index, smoothing, z_loss,
        BLOCK: tl.constexpr, WRITE_GRAD: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        ptr = LOGITS + row * stride
        y = tl.load(LABELS + row).to(tl.int64)
        valid = y != ignore_index
        cols = tl.arange(0, BLOCK)
        # Pass 1: online max and sum of exponentials (and the sum of logits for smoothing).
        m = -float("inf")
        s = 0.0
        total = 0.0
        for off in range(0, n_cols, BLOCK):
            mask = off + cols < n_cols
            x = tl.load(ptr + off + cols, mask=mask, other=-float("inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
            total += tl.sum(tl.where(mask, x, 0.0), axis=0)
        lse = m + tl.log(s)
        x_y = tl.load(ptr + y, mask=valid, other=0.0).to(tl.float32)
        loss = (1.0 - smoothing) * (lse - x_y) + smoothing * (lse - total / n_cols) + z_loss * lse * lse
        scale = tl.where(valid, tl.load(SCALE), 0.0)
        tl.store(LOSS + row, loss * scale)
        if not WRITE_GRAD:
            return
        # Pass 2: d loss / d logit_j = p_j (1 + 2 z lse) - (1 - smoothing) [j = y] - smoothing / V.
        for off in range(0, n_cols, BLOCK):
            idx = off + cols
            mask = idx < n_cols
            x = tl.load(ptr + idx, mask=mask, other=0.0).to(tl.float32)
            g = tl.exp(x - lse) * (1.0 + 2.0 * z_loss * lse) - smoothing / n_cols
            g = tl.where(idx == y, g - (1.0 - smoothing), g)
            tl.store(ptr + idx, (g * scale).to(LOGITS.dtype.element_ty), mask=mask)

    @triton.jit
    def _rescale_kernel(X, FACTOR, n, BLOCK: tl.constexpr):
        # X *= FACTOR in place. With a factor of 1, the usual case, each program reads one scalar
        # and stops: the host never has to read the factor to skip the pass.
        f = tl.load(FACTOR)
        if f != 1.0:
            step = tl.num_programs(0).to(tl.int64) * BLOCK
            for off in range(tl.program_id(0).to(tl.int64) * BLOCK, n, step):
                idx = off + tl.arange(0, BLOCK)
                mask = idx < n
                x = tl.load(X + idx, mask=mask).to(tl.float32)
                tl.store(X + idx, (x * f).to(X.dtype.element_ty), mask=mask)


def _ce_grad_torch(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    scale: torch.Tensor,
    smoothing: float,
    z_loss: float,
) -> torch.Tensor:
    """The loss kernel's work in PyTorch (the fallback): per-row losses, logits → gradient in place."""
    x = logits.float()
    lse = torch.logsumexp(x, dim=-1)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0)
    x_y = x.gather(1, safe[:, None])[:, 0]
    n = x.shape[1]
    loss = (1 - smoothing) * (lse - x_y) + smoothing * (lse - x.sum(-1) / n) + z_loss * lse * lse
    w = valid.float() * scale
    g = torch.exp(x - lse[:, None]) * (1 + 2 * z_loss * lse[:, None]) - smoothing / n
    g.scatter_add_(1, safe[:, None], torch.full_like(x_y, -(1 - smoothing))[:, None])
    logits.copy_(g * w[:, None])
    return loss * w


MAX_CHUNK_ROWS = 2048
# Columns the loss kernel reads per iteration of its loops over a row on a GPU, and its warps for
# a block that wide: the fastest of 8192-32768 columns x 8-32 warps on an H200 (bench/RESULTS.md).
CUDA_BLOCK = 16384
CUDA_WARPS = 32
VOCAB_ALIGN = 128


def default_chunk_rows(rows: int) -> int:
    """Rows per chunk: a quarter of the rows (a power of two), at most 2048. `dW += g^T h` reads
    and writes all of `dW` once per chunk, so a chunk must be long enough for that product to be
    bound by arithmetic rather than by memory (some thousand rows on an H100), while a quarter
    keeps a chunk of logits far below the unfused `rows x vocab`."""
    quarter = max(1, rows // 4)
    return int(min(MAX_CHUNK_ROWS, 1 << (quarter.bit_length() - 1)))


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor,
        ignore_index: int,
        label_smoothing: float,
        z_loss: float,
        chunk_rows: int | None,
        need_grad: bool,
    ) -> torch.Tensor:
        rows, dim = hidden.shape
        vocab = weight.shape[0]
        # 1 / valid labels, kept on the device: reading it on the host would wait for the whole
        # forward pass queued before the loss.
        scale = 1.0 / (labels != ignore_index).sum().clamp(min=1).float()
        triton_ok = _common.use_triton(hidden)
        d_hidden = (
            _common.empty(rows, dim, dtype=hidden.dtype, device=hidden.device)
            if need_grad and hidden.requires_grad
            else None
        )
        # Zero rows pad the vocabulary to a multiple of VOCAB_ALIGN: a logits row of, say, 128,002
        # bf16 values is not 16-byte aligned, and cuBLAS then falls back from Hopper's fastest
        # matrix kernels for all three products. A padded column's logit is exactly 0, the loss
        # kernel never reads it, and its gradient stays 0.
        padded = -(-vocab // VOCAB_ALIGN) * VOCAB_ALIGN
        w = weight if padded == vocab else torch.nn.functional.pad(weight, (0, 0, 0, padded - vocab))
        # The first chunk's product is written into `d_weight`, later ones added to it: zeroing it
        # first would cost one more write and read of `vocab x dim` (1 GiB at vocab 128k).
        d_weight = None
        if need_grad and weight.requires_grad:
            d_weight = (
                _common.empty(*w.shape, dtype=w.dtype, device=w.device) if rows else torch.zeros_like(w)
            )
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = chunk_rows or default_chunk_rows(rows)
        # One buffer for every chunk's logits: a fresh product per chunk would be allocated while
        # the last chunk's is still referenced, two chunks of logits at the peak.
        buffer = torch.empty(min(step, rows), padded, dtype=hidden.dtype, device=hidden.device)
        for a in range(0, rows, step):
            h = hidden[a : a + step]
            y = labels[a : a + step]
            logits = torch.mm(h, w.T, out=buffer[: len(h)])  # becomes its own gradient below
            if triton_ok:
                per_row = _common.empty(len(h), dtype=torch.float32, device=hidden.device)
                block = _common.block_for(vocab, cap=CUDA_BLOCK if hidden.is_cuda else 4096)
                _ce_grad_kernel[(len(h),)](
                    logits, logits.stride(0), y, per_row, scale, vocab, ignore_index, label_smoothing, z_loss,
                    BLOCK=block, WRITE_GRAD=need_grad,
                    num_warps=CUDA_WARPS if block == CUDA_BLOCK else _common.warps_for(block),
                )  # fmt: skip
            else:
                per_row = _ce_grad_torch(logits[:, :vocab], y, ignore_index, scale, label_smoothing, z_loss)
            loss += per_row.sum()
            if d_hidden is not None:
                torch.mm(logits, w, out=d_hidden[a : a + step])
            if d_weight is not None:
                if a == 0:
                    torch.mm(logits.T, h, out=d_weight)
                else:
                    d_weight.addmm_(logits.T, h)
        if d_weight is not None and padded != vocab:
            d_weight = d_weight[:vocab]
        # Saved for backward, not kept on ctx: autograd drops saved tensors as soon as the backward
        # has run, so the gradient it passes on is the only reference left and is handed to
        # `weight.grad` as it is. A reference on ctx would make it copy the 1 GiB `d weight`.
        ctx.save_for_backward(d_hidden, d_weight)
        ctx.backwards = 0
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        d_hidden, d_weight = ctx.saved_tensors
        grad = grad.float()
        if ctx.backwards == 0:
            # The gradients were computed for an incoming gradient of 1, that of `loss.backward()`.
            # They are scaled in place, and with a gradient of 1 that costs no pass over the 1 GiB
            # of `d weight` and no wait for the host to read the gradient.
            for g in (d_hidden, d_weight):
                if g is not None:
                    _rescale_(g, grad)
            ctx.applied = grad
        else:
            # Backward again through a retained graph: the first call's results stay as returned.
            # (After a first gradient of 0 the values are gone, and this gives NaN.)
            factor = grad / ctx.applied
            d_hidden = d_hidden * factor if d_hidden is not None else None
            d_weight = d_weight * factor if d_weight is not None else None
        ctx.backwards += 1
        return d_hidden, d_weight, None, None, None, None, None, None


def _rescale_(x: torch.Tensor, factor: torch.Tensor) -> None:
    """`x *= factor` in place, skipped on the device when `factor` is 1. `x` is a saved tensor, and
    the write leaves its version counter alone (the kernel writes through a pointer, the fallback
    through `.data`): the backward tracks what it has applied itself, and a second backward
    through a retained graph would otherwise be refused."""
    if not _common.use_triton(x):
        if factor.item() != 1.0:
            x.data.mul_(factor)
        return
    flat = x.view(-1)
    block = 4096
    tiles = max(1, -(-flat.numel() // block))
    # A few programs per SM loop over the tiles: with a factor of 1 each stops after one load.
    programs = min(tiles, 4 * _common.program_count(tiles, x.device))
    _rescale_kernel[(programs,)](flat, factor, flat.numel(), BLOCK=block, num_warps=8)


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `labels` (tokens whose label is
    `ignore_index` count for nothing), plus `z_loss * logsumexp^2`, without materialising the
    logits. `hidden`: (..., dim); `labels`: (...). On CPU without the Triton interpreter the
    per-chunk loss runs in PyTorch, still chunked."""
    h = hidden.reshape(-1, hidden.shape[-1])
    y = labels.reshape(-1)
    if h.shape[0] != y.shape[0]:
        raise ValueError(f"{h.shape[0]} rows of hidden states for {y.shape[0]} labels")
    if y.device != h.device:
        raise ValueError(f"labels are on {y.device} but the hidden states on {h.device}")
    # Evaluation (no autograd) computes the loss alone: one product per chunk instead of three.
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return _FusedLinearCrossEntropy.apply(  # type: ignore[no-any-return]
        h, weight, y, ignore_index, label_smoothing, z_loss, chunk_rows, need_grad
    )
