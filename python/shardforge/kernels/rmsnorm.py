"""RMSNorm: `y = x / sqrt(mean(x^2) + eps) * w`. The forward keeps one fp32 `rstd` per row; the
backward recomputes `x_hat` from it and reduces `dw` in per-program partial sums."""

from __future__ import annotations

from typing import Any

import torch

from shardforge.kernels import _common, reference

if _common.HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rms_norm_fwd_kernel(X, W, Y, RSTD, stride_x, stride_y, n_cols, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        tl.store(RSTD + row, rstd)
        tl.store(Y + row * stride_y + cols, (x * rstd * w).to(Y.dtype.element_ty), mask=mask)

    @triton.jit
    def _rms_norm_bwd_kernel(
        DY, X, W, RSTD, DX, DW_PARTIAL,
        stride_dy, stride_x, stride_dx, n_rows, n_cols, rows_per_program,
        BLOCK: tl.constexpr, ROWS: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        col_mask = cols < n_cols
        w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
        dw = tl.zeros([BLOCK], dtype=tl.float32)
        # int64 row numbers: row * stride can pass 2^31 on long batches.
        first = pid.to(tl.int64) * rows_per_program
        last = tl.minimum(first + rows_per_program, n_rows)
        # ROWS rows per iteration: more loads in flight per program than one row at a time.
        for start in range(first, last, ROWS):
            rows = start + tl.arange(0, ROWS)
            row_mask = rows < last
            mask = row_mask[:, None] & col_mask[None, :]
            dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
            rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)
            x_hat = x * rstd[:, None]
            wdy = w[None, :] * dy
            # d/dx of x * rstd(x): rstd * (w dy - x_hat * mean(x_hat * w dy))
            dx = (wdy - x_hat * (tl.sum(x_hat * wdy, axis=1) / n_cols)[:, None]) * rstd[:, None]
            tl.store(DX + rows[:, None] * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
            dw += tl.sum(dy * x_hat, axis=0)
        tl.store(DW_PARTIAL + pid * n_cols + cols, dw, mask=col_mask)


# The backward's rows per loop iteration and programs per SM, from `bench/kernels.py --rms-sweep`
# on an H200 (bench/RESULTS.md): four rows, one program per SM reached 81.5 % of the bandwidth floor
# by device time, one row 62 %; eight rows spill registers and fall to 10 %.
BWD_ROWS = 4
BWD_PROGRAMS_PER_SM = 1
# Values per tensor in one iteration's tile past which the backward spills registers: 8 rows x
# 4096 ran 8x slower than 4 x 4096 in that sweep. Wider rows (hidden 8192 and up) take fewer rows.
BWD_MAX_TILE = 16384


def bwd_rows(block: int) -> int:
    """Rows per backward iteration for rows of `block` columns: BWD_ROWS, halved while the tile
    is over BWD_MAX_TILE values (a power of two, as `tl.arange` needs)."""
    rows = BWD_ROWS
    while rows > 1 and rows * block > BWD_MAX_TILE:
        rows //= 2
    return rows


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        rows, cols = x2.shape
        y = _common.empty(rows, cols, dtype=x.dtype, device=x.device)
        rstd = _common.empty(rows, dtype=torch.float32, device=x.device)
        block = _common.block_for(cols)
        _rms_norm_fwd_kernel[(rows,)](
            x2, weight, y, rstd, x2.stride(0), y.stride(0), cols, eps, BLOCK=block,
            num_warps=_common.warps_for(block),
        )  # fmt: skip
        ctx.save_for_backward(x2, weight, rstd)
        ctx.shape = shape
        return y.view(shape)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x2, weight, rstd = ctx.saved_tensors
        rows, cols = x2.shape
        dy2 = dy.reshape(rows, cols)
        if dy2.stride(-1) != 1:
            dy2 = dy2.contiguous()
        dx = _common.empty(rows, cols, dtype=x2.dtype, device=x2.device)
        programs = min(rows, _common.program_count(rows, x2.device) * BWD_PROGRAMS_PER_SM)
        per_program = -(-rows // programs)
        programs = -(-rows // per_program)
        dw_partial = _common.empty(programs, cols, dtype=torch.float32, device=x2.device)
        block = _common.block_for(cols)
        tile_rows = bwd_rows(block)
        _rms_norm_bwd_kernel[(programs,)](
            dy2, x2, weight, rstd, dx, dw_partial,
            dy2.stride(0), x2.stride(0), dx.stride(0), rows, cols, per_program,
            BLOCK=block, ROWS=tile_rows, num_warps=_common.warps_for(block * tile_rows),
        )  # fmt: skip
        return dx.view(ctx.shape), dw_partial.sum(0).to(weight.dtype), None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dimension: the Triton kernel where it can run, else the reference."""
    if _common.use_triton(x):
        return _RMSNorm.apply(x, weight, eps)  # type: ignore[no-any-return]
    return reference.rms_norm(x, weight, eps)


class RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, device: torch.device | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def reset_parameters(self) -> None:
        torch.nn.init.ones_(self.weight)
