"""Every Triton kernel, forward and backward, against a float64 PyTorch reference, run on CPU by
Triton's interpreter. The shapes are odd on purpose: non-power-of-two widths, a single row, long
rows. Inputs are fresh random values each run (the seed is in every failure message). Every output
buffer is filled with NaN before the launch, so an element a kernel forgets to write fails."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")  # conftest.py has set TRITON_INTERPRET=1 unless told otherwise

import torch

from shardforge.kernels import (
    _common,
    apply_rope,
    fused_linear_cross_entropy,
    reference,
    rms_norm,
    rope_cos_sin,
    swiglu,
)
from shardforge.kernels import cross_entropy as ce
from shardforge.kernels import rmsnorm as rmsnorm_module

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
    reason="needs a GPU or TRITON_INTERPRET=1",
)
DEVICE = "cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"
# The reference sees the fp32 inputs before they are rounded to `dtype`, so the tolerance covers
# that rounding too: bf16 keeps 3 fewer mantissa bits than fp16.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-4),
    torch.float16: dict(atol=2e-2, rtol=2e-2),
    torch.bfloat16: dict(atol=6e-2, rtol=6e-2),
}
# Triton's interpreter computes bf16 wrongly (docs/kernels.md), so bf16 is checked only where the
# kernels run on a GPU (`bench/gpu.sh kernels`).
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """NaN-filled outputs, and a fresh seed per test (reported on failure)."""

    def nan_empty(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(_common, "empty", nan_empty)
    seed = random.randrange(2**31)
    torch.manual_seed(seed)
    yield seed


def close(
    got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str, seed: int, scale: float = 1
) -> None:
    tol = TOL[dtype]
    assert not torch.isnan(got).any(), f"{what}: unwritten (NaN) elements, seed {seed}"
    torch.testing.assert_close(
        got.double().cpu(),  # the float64 reference runs on the CPU
        want.double().cpu(),
        atol=tol["atol"] * scale,
        rtol=tol["rtol"] * scale,
        msg=lambda m: f"{what}, seed {seed}: {m}",
    )


def leaf(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(DEVICE, dtype, copy=True).requires_grad_()


def test_rms_norm_backward_takes_fewer_rows_for_wide_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four rows of 4096 fit the tile; wider rows halve the rows rather than spill registers."""
    monkeypatch.setattr(rmsnorm_module, "BWD_ROWS", 4)
    assert [rmsnorm_module.bwd_rows(b) for b in (128, 4096, 8192, 16384, 65536)] == [4, 4, 2, 1, 1]


@pytest.mark.parametrize("bwd_rows", [1, 4])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 7), (3, 5, 130), (4, 1000), (2, 8195)])
def test_rms_norm(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    bwd_rows: int,
    poisoned_outputs: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 rows per backward iteration: 15 rows over 4 programs leave a partial last tile, and the
    # other shapes have fewer rows per program than one tile.
    monkeypatch.setattr(rmsnorm_module, "BWD_ROWS", bwd_rows)
    seed = poisoned_outputs
    x0, w0 = torch.randn(shape) * 3, torch.rand(shape[-1]) + 0.5
    dy = torch.randn(shape)
    x, w = leaf(x0, dtype), leaf(w0, dtype)
    y = rms_norm(x, w, 1e-6)
    torch.autograd.backward(y, dy.to(DEVICE, dtype))
    xr, wr = x0.double().requires_grad_(), w0.double().requires_grad_()
    yr = reference.rms_norm(xr, wr, 1e-6)
    torch.autograd.backward(yr, dy.double())
    assert y.dtype == dtype and y.shape == x.shape
    close(y, yr, dtype, "y", seed)
    assert x.grad is not None and w.grad is not None and xr.grad is not None and wr.grad is not None
    close(x.grad, xr.grad, dtype, "dx", seed, scale=2)
    # dw sums over every row: its error grows with the row count.
    close(w.grad, wr.grad, dtype, "dw", seed, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 257), (2, 5, 1000)])
def test_swiglu(shape: tuple[int, ...], dtype: torch.dtype, poisoned_outputs: int) -> None:
    seed = poisoned_outputs
    g0, u0, do = torch.randn(shape) * 4, torch.randn(shape), torch.randn(shape)
    g, u = leaf(g0, dtype), leaf(u0, dtype)
    out = swiglu(g, u)
    torch.autograd.backward(out, do.to(DEVICE, dtype))
    gr, ur = g0.double().requires_grad_(), u0.double().requires_grad_()
    outr = reference.swiglu(gr, ur)
    torch.autograd.backward(outr, do.double())
    close(out, outr, dtype, "out", seed)
    assert g.grad is not None and u.grad is not None and gr.grad is not None and ur.grad is not None
    close(g.grad, gr.grad, dtype, "d gate", seed)
    close(u.grad, ur.grad, dtype, "d up", seed)


def document_positions(batch: int, seq: int) -> torch.Tensor:
    """Position ids that restart at random document boundaries (as the loader's do)."""
    rows = []
    for _ in range(batch):
        pos, p = [], random.randrange(0, 50)
        for _ in range(seq):
            pos.append(p)
            p = 0 if random.random() < 0.1 else p + 1
        rows.append(pos)
    return torch.tensor(rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("b", "s", "hq", "hk", "d"), [(1, 1, 1, 1, 2), (2, 7, 6, 2, 80), (1, 33, 4, 4, 128), (3, 5, 5, 1, 6)]
)
@pytest.mark.parametrize("compiling", [False, True], ids=["in-place", "to-new"])
def test_rope(
    b: int, s: int, hq: int, hk: int, d: int, dtype: torch.dtype, compiling: bool,
    poisoned_outputs: int, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Both paths: in place, and the one `torch.compile` takes, which writes new tensors and
    must leave q and k as they were."""
    seed = poisoned_outputs
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    pos = document_positions(b, s) + 1  # never position 0 only: there the rotation is the identity
    cos, sin = rope_cos_sin(pos, d, base=10000.0)
    q0, k0 = torch.randn(b, s, hq, d), torch.randn(b, s, hk, d)
    dq, dk = torch.randn(b, s, hq, d), torch.randn(b, s, hk, d)
    q, k = leaf(q0, dtype), leaf(k0, dtype)
    q_in, k_in = q * 1, k * 1  # `* 1`: in place on a non-leaf
    qo, ko = apply_rope(q_in, k_in, cos.to(DEVICE), sin.to(DEVICE))
    assert (qo is q_in and ko is k_in) != compiling
    if compiling:
        assert torch.equal(q_in, q.detach()) and torch.equal(k_in, k.detach()), f"input changed (seed {seed})"
    torch.autograd.backward((qo * dq.to(DEVICE, dtype)).sum() + (ko * dk.to(DEVICE, dtype)).sum())
    qr, kr = q0.double().requires_grad_(), k0.double().requires_grad_()
    qro, kro = reference.rope(qr, kr, cos.double(), sin.double())
    torch.autograd.backward((qro * dq.double()).sum() + (kro * dk.double()).sum())
    close(qo, qro, dtype, "q", seed)
    close(ko, kro, dtype, "k", seed)
    assert q.grad is not None and k.grad is not None and qr.grad is not None and kr.grad is not None
    close(q.grad, qr.grad, dtype, "dq", seed)
    close(k.grad, kr.grad, dtype, "dk", seed)


def test_rope_backward_leaves_the_incoming_gradient_alone(poisoned_outputs: int) -> None:
    """The gradient handed to the backward can be the caller's own tensor (here `grad_outputs`,
    of which `cat`'s backward passes views): rotating it in place would change it under them."""
    pos = document_positions(1, 6)
    cos, sin = rope_cos_sin(pos, 8, base=10000.0)
    q, k = leaf(torch.randn(1, 6, 2, 8), torch.float32), leaf(torch.randn(1, 6, 1, 8), torch.float32)
    qo, ko = apply_rope(q * 1, k * 1, cos.to(DEVICE), sin.to(DEVICE))
    out = torch.cat([qo.flatten(), ko.flatten()])
    g = torch.randn_like(out)
    kept = g.clone()
    torch.autograd.grad(out, [q, k], g)
    assert torch.equal(g, kept), f"the backward changed its incoming gradient (seed {poisoned_outputs})"


@pytest.mark.skipif(DEVICE != "cuda", reason="Dynamo cannot trace a Triton kernel under the interpreter")
def test_rope_inside_torch_compile(poisoned_outputs: int) -> None:
    """Compiled as the trainer runs it, values and gradients match the eager kernel's."""
    pos = document_positions(2, 40)
    cos, sin = (t.to(DEVICE) for t in rope_cos_sin(pos, 64, base=10000.0))
    q, k = leaf(torch.randn(2, 40, 4, 64), torch.float32), leaf(torch.randn(2, 40, 2, 64), torch.float32)

    def rotated(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        qo, ko = apply_rope(q * 1, k * 1, cos, sin)
        return torch.cat([qo.flatten(), ko.flatten()])

    g = torch.randn(q.numel() + k.numel(), device=DEVICE)
    compiled = torch.compile(rotated, fullgraph=True)(q, k)
    got = torch.autograd.grad(compiled, [q, k], g)
    eager = rotated(q, k)
    want = torch.autograd.grad(eager, [q, k], g)
    close(compiled, eager, torch.float32, "out", poisoned_outputs)
    close(got[0], want[0], torch.float32, "dq", poisoned_outputs)
    close(got[1], want[1], torch.float32, "dk", poisoned_outputs)


def test_rope_matches_the_usual_rotate_half_formula(poisoned_outputs: int) -> None:
    """Outside check of the layout: HF Llama's `q * cos + rotate_half(q) * sin` with full-width tables."""
    pos = document_positions(2, 9)
    cos, sin = rope_cos_sin(pos, 16, base=500000.0)
    q, k = torch.randn(2, 9, 3, 16), torch.randn(2, 9, 1, 16)
    qo, ko = apply_rope(q.clone(), k.clone(), cos, sin)
    c, s = torch.cat([cos, cos], -1)[:, :, None], torch.cat([sin, sin], -1)[:, :, None]

    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, -1)
        return torch.cat([-x2, x1], -1)

    close(qo, q * c + rotate_half(q) * s, torch.float32, "q", poisoned_outputs)
    close(ko, k * c + rotate_half(k) * s, torch.float32, "k", poisoned_outputs)


CE_CASES = [
    # rows, dim, vocab, chunk rows, label smoothing, z-loss
    (1, 16, 100, None, 0.0, 0.0),
    (37, 33, 1001, 8, 0.0, 0.0),
    (64, 24, 5000, None, 0.1, 0.0),
    (19, 40, 777, 5, 0.0, 1e-3),
]


def ce_inputs(rows: int, dim: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h = torch.randn(rows, dim)
    w = torch.randn(vocab, dim) / dim**0.5
    y = torch.randint(0, vocab, (rows,))
    y[torch.rand(rows) < 0.2] = -100
    if rows > 1:
        y[0] = -100
    y[-1] = vocab - 1  # at least one label counts (and the last id is reachable)
    return h, w, y


@pytest.mark.parametrize("triton_path", [True, False], ids=["triton", "torch-fallback"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "dim", "vocab", "chunk", "smoothing", "z"), CE_CASES)
def test_fused_linear_cross_entropy(
    rows: int,
    dim: int,
    vocab: int,
    chunk: int | None,
    smoothing: float,
    z: float,
    dtype: torch.dtype,
    triton_path: bool,
    poisoned_outputs: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = poisoned_outputs
    if not triton_path:
        monkeypatch.setattr(_common, "use_triton", lambda t: False)
    h0, w0, y = ce_inputs(rows, dim, vocab)
    h, w = leaf(h0, dtype), leaf(w0, dtype)
    loss = fused_linear_cross_entropy(
        h, w, y.to(DEVICE), label_smoothing=smoothing, z_loss=z, chunk_rows=chunk
    )
    torch.autograd.backward(loss * 3)  # a gradient other than 1 reaches the backward
    hr, wr = h0.double().requires_grad_(), w0.double().requires_grad_()
    lr = reference.linear_cross_entropy(hr, wr, y, label_smoothing=smoothing, z_loss=z)
    torch.autograd.backward(lr * 3)
    close(loss, lr, dtype, "loss", seed)
    assert h.grad is not None and w.grad is not None and hr.grad is not None and wr.grad is not None
    close(h.grad, hr.grad, dtype, "d hidden", seed, scale=2)
    close(w.grad, wr.grad, dtype, "d weight", seed, scale=2)


def test_cross_entropy_with_every_label_ignored_is_zero(poisoned_outputs: int) -> None:
    h, w = leaf(torch.randn(5, 8), torch.float32), leaf(torch.randn(50, 8), torch.float32)
    loss = fused_linear_cross_entropy(h, w, torch.full((5,), -100, device=DEVICE))
    torch.autograd.backward(loss)
    assert loss.item() == 0.0
    assert h.grad is not None and w.grad is not None
    assert not h.grad.any() and not w.grad.any()


@pytest.mark.parametrize("triton_path", [True, False], ids=["triton", "torch-fallback"])
def test_cross_entropy_backward_scales_by_each_incoming_gradient(
    triton_path: bool, poisoned_outputs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gradients are computed in the forward for an incoming gradient of 1 and scaled in the
    backward: by 1 (nothing to do), by another value, and again through a retained graph without
    changing what the first backward returned."""
    if not triton_path:
        monkeypatch.setattr(_common, "use_triton", lambda t: False)
    h0, w0, y = ce_inputs(40, 24, 300)
    hr, wr = h0.double().requires_grad_(), w0.double().requires_grad_()
    want = torch.autograd.grad(reference.linear_cross_entropy(hr, wr, y), (hr, wr))
    h, w = leaf(h0, torch.float32), leaf(w0, torch.float32)
    for incoming in (1.0, 0.25):
        loss = fused_linear_cross_entropy(h, w, y.to(DEVICE), chunk_rows=16)
        got = torch.autograd.grad(loss, (h, w), torch.tensor(incoming, device=DEVICE), retain_graph=True)
        again = torch.autograd.grad(loss, (h, w), torch.tensor(-3.0, device=DEVICE))
        for name, g, g2, ref in zip(("d hidden", "d weight"), got, again, want, strict=True):
            close(g, ref * incoming, torch.float32, f"{name} (gradient {incoming})", poisoned_outputs)
            close(g2, ref * -3.0, torch.float32, f"{name} (second backward)", poisoned_outputs)


@pytest.mark.parametrize("triton_path", [True, False], ids=["triton", "torch-fallback"])
def test_cross_entropy_hands_its_gradients_over_without_a_copy(
    triton_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loss.backward()` makes the gradients computed in the forward the leaves' `.grad` as they
    are. A reference the loss kept after its backward would make autograd copy them: 1 GiB for
    `d weight` at vocab 128k."""
    if not triton_path:
        monkeypatch.setattr(_common, "use_triton", lambda t: False)
    made: list[int] = []
    real_empty = _common.empty

    def recording_empty(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        out = real_empty(*shape, dtype=dtype, device=device)
        made.append(out.data_ptr())
        return out

    monkeypatch.setattr(_common, "empty", recording_empty)
    h0, w0, y = ce_inputs(64, 24, 3000)  # a vocabulary padded to 3072 inside: `d weight` is a slice
    h, w = leaf(h0, torch.float32), leaf(w0, torch.float32)
    torch.autograd.backward(fused_linear_cross_entropy(h, w, y.to(DEVICE), chunk_rows=16))
    assert h.grad is not None and w.grad is not None
    assert h.grad.data_ptr() in made and w.grad.data_ptr() in made, "a gradient was copied"


def test_cross_entropy_without_autograd_computes_the_loss_alone(poisoned_outputs: int) -> None:
    """Under `torch.no_grad` (evaluation) each chunk takes one product, not three, and the loss is
    the one training computes."""
    h0, w0, y = ce_inputs(64, 24, 500)
    h, w = leaf(h0, torch.float32), leaf(w0, torch.float32)
    with_grad = fused_linear_cross_entropy(h, w, y.to(DEVICE), chunk_rows=16)
    calls: list[str] = []
    real_mm = torch.mm

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append("mm")
        return real_mm(*args, **kwargs)

    torch.mm = spy
    try:
        with torch.no_grad():
            without = fused_linear_cross_entropy(h, w, y.to(DEVICE), chunk_rows=16)
    finally:
        torch.mm = real_mm
    assert len(calls) == 64 // 16 and without.grad_fn is None  # the logits' product, per chunk
    close(without, with_grad.detach(), torch.float32, "loss", poisoned_outputs)


def test_cross_entropy_chunks_bound_the_logits(poisoned_outputs: int) -> None:
    """Every chunk's logits go into one buffer of one chunk's rows: never rows x vocab, and
    never two chunks' logits alive at once."""
    padded = 3072  # the vocabulary padded to a multiple of ce.VOCAB_ALIGN
    logits: list[tuple[int, int]] = []  # rows and storage of each product as wide as `padded`
    real_mm = torch.mm

    def spy(a: torch.Tensor, b: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        result = real_mm(a, b) if out is None else real_mm(a, b, out=out)
        if result.shape[-1] == padded:
            logits.append((result.shape[0], result.untyped_storage().data_ptr()))
        return result

    h, w, y = ce_inputs(256, 32, 3000)
    torch.mm = spy  # type: ignore[assignment]
    try:
        fused_linear_cross_entropy(leaf(h, torch.float32), leaf(w, torch.float32), y.to(DEVICE))
    finally:
        torch.mm = real_mm
    chunk = ce.default_chunk_rows(256)
    assert chunk <= 256 // 4 and len(logits) == 256 // chunk, logits
    assert {rows for rows, _ in logits} == {chunk}, logits
    assert len({storage for _, storage in logits}) == 1, "each chunk allocated its own logits"
