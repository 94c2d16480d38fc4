"""The trainer's Triton kernels against eager PyTorch, `torch.compile` and Liger-Kernel, forward and
backward, at realistic sizes (hidden 4096, SwiGLU width 14336, 32/8 heads of 128, vocab 128256,
8192 tokens per step, bf16). Median time over CUDA events and peak memory above the inputs; each
run appends its rows to bench/out/kernels.csv with the device, versions and date.

    python bench/kernels.py            # on a GPU
    python bench/kernels.py --dry-run  # tiny sizes on CPU under TRITON_INTERPRET=1: checks the script

RMSNorm and SwiGLU are also compared with the memory-bandwidth floor: the bytes each pass must move
once, over the device's measured copy bandwidth, against the device's busy time (kernel durations
from the profiler).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass
class Sizes:
    tokens: int
    hidden: int
    inter: int
    q_heads: int
    kv_heads: int
    head_dim: int
    vocab: int


REAL = Sizes(8192, 4096, 14336, 32, 8, 128, 128256)
TINY = Sizes(64, 96, 160, 4, 2, 16, 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU (interpreter)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--ce-sweep", action="store_true", help="only the fused loss, over chunk and block sizes")
    ap.add_argument(
        "--rms-sweep",
        action="store_true",
        help="only RMSNorm, over the backward's rows per iteration and programs per SM",
    )
    args = ap.parse_args()
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("bench/kernels.py times GPU kernels: run it on a GPU (or --dry-run to check it on CPU)")
    bench = Bench(torch, TINY if args.dry_run else REAL, args.repeats if not args.dry_run else 2)
    if args.ce_sweep:
        bench.ce_sweep()
        return
    if args.rms_sweep:
        bench.rms_sweep()
        return
    rows = bench.run_all()
    out = HERE / "out" / ("kernels-dry-run.csv" if args.dry_run else "kernels.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.open().readline().strip() != ",".join(rows[0]):
        out.rename(out.with_suffix(".old.csv"))  # written by a version with other columns
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    print(f"\nappended {len(rows)} rows to {out}")


class Bench:
    def __init__(self, torch: Any, sizes: Sizes, repeats: int) -> None:
        self.torch, self.s, self.repeats = torch, sizes, repeats
        self.cuda = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
        self.device = "cuda" if self.cuda else "cpu"
        self.dtype = torch.bfloat16 if self.cuda else torch.float32
        try:
            import liger_kernel.transformers.functional as liger

            self.liger: Any = liger
        except ImportError:
            self.liger = None
        self.meta = {
            "date": datetime.date.today().isoformat(),
            "device": torch.cuda.get_device_name() if self.cuda else "cpu (interpreter)",
            "torch": torch.__version__,
            "triton": _version("triton"),
            "liger": _version("liger_kernel"),
        }
        self.copy_gbps = self.copy_bandwidth() if self.cuda else float("nan")

    def copy_bandwidth(self) -> float:
        """Device memory bandwidth (GB/s) of a large copy: bytes read + written over time."""
        t = self.torch
        a = t.empty(1 << 28, dtype=t.float32, device="cuda")
        b = t.empty_like(a)
        ms = self.median_ms(lambda: b.copy_(a))
        return float(2 * a.numel() * 4 / (ms * 1e-3) / 1e9)

    def median_ms(self, fn: Callable[[], Any]) -> float:
        """Median time of one call. On a GPU every call is queued before the first is waited for,
        so the host's launch overhead overlaps the device's work, as it does in a training step."""
        t = self.torch
        for _ in range(3):
            fn()
        if not self.cuda:
            times = []
            for _ in range(self.repeats):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            return float(statistics.median(times))
        t.cuda.synchronize()
        events = [
            (t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)) for _ in range(self.repeats)
        ]
        for start, end in events:
            start.record()
            fn()
            end.record()
        t.cuda.synchronize()
        return float(statistics.median(start.elapsed_time(end) for start, end in events))

    def kernel_times(self, fn: Callable[[], Any], calls: int) -> list[Any]:
        """The profiler's per-kernel device times over `calls` calls of `fn`, after one warm call.
        Device activity only: host ops would count their kernels' time a second time."""
        t = self.torch
        from torch.profiler import ProfilerActivity, profile

        fn()
        t.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                fn()
            t.cuda.synchronize()
        return list(prof.key_averages())

    def device_ms(self, fn: Callable[[], Any]) -> float:
        """The device's busy time for one call: every kernel's duration from the profiler, summed,
        with the gaps while the host launches the next one left out. NaN without a GPU."""
        if not self.cuda:
            return float("nan")
        try:
            total_us = sum(e.self_device_time_total for e in self.kernel_times(fn, self.repeats))
        except Exception as e:  # the wall-clock figures stand without it
            print(f"device time not measured: {type(e).__name__}: {e}")
            return float("nan")
        return float(total_us / self.repeats / 1e3)

    def measure(
        self,
        op: str,
        impl: str,
        make_inputs: Callable[[], list[Any]],
        fwd: Callable[..., Any],
        floor_bytes: tuple[int, int],
    ) -> dict[str, Any]:
        """Forward time, forward + backward time, and peak memory of one implementation."""
        t = self.torch
        try:
            inputs = make_inputs()

            def run_fwd() -> Any:
                return fwd(*inputs)

            leaves = [x for x in inputs if isinstance(x, t.Tensor) and x.requires_grad]
            with t.no_grad():
                out = fwd(*inputs)
            # A scalar is a loss, and `loss.backward()` passes it a gradient of one.
            grad_out = t.ones_like(out) if out.numel() == 1 else t.randn_like(out)

            def run_both() -> None:
                # The incoming gradient is made once: the timing holds the op's own passes only.
                t.autograd.grad(fwd(*inputs), leaves, grad_out)

            with t.no_grad():
                fwd_ms = self.median_ms(run_fwd)
            both_ms = self.median_ms(run_both)
            device_ms = self.device_ms(run_both)
            peak = float("nan")
            if self.cuda:
                t.cuda.synchronize()
                base = t.cuda.memory_allocated()
                t.cuda.reset_peak_memory_stats()
                run_both()
                t.cuda.synchronize()
                peak = (t.cuda.max_memory_allocated() - base) / 2**20
            note = ""
        except Exception as e:  # a peer without this op, or an API change: recorded, not fatal
            fwd_ms = both_ms = device_ms = peak = float("nan")
            note = f"{type(e).__name__}: {str(e)[:80]}"
        fb, bb = floor_bytes
        floor_fwd = fb / (self.copy_gbps * 1e9) * 1e3 if fb else float("nan")
        floor_both = (fb + bb) / (self.copy_gbps * 1e9) * 1e3 if fb else float("nan")
        row = {
            **self.meta,
            "op": op,
            "impl": impl,
            "fwd_ms": round(fwd_ms, 4),
            "fwd_bwd_ms": round(both_ms, 4),
            "peak_mib": round(peak, 1),
            "floor_fwd_ms": round(floor_fwd, 4),
            "floor_fwd_bwd_ms": round(floor_both, 4),
            "copy_gbps": round(self.copy_gbps, 1),
            "note": note,
            "fwd_bwd_device_ms": round(device_ms, 4),
        }
        # Against the device time: at these sizes a pass is about as long as a kernel launch from
        # Python, so the wall-clock median also measures the host.
        frac = floor_both / device_ms if device_ms == device_ms and floor_both == floor_both else float("nan")
        print(
            f"{op:22s} {impl:18s} fwd {fwd_ms:9.3f} ms  fwd+bwd {both_ms:9.3f} ms"
            + (f" (device {device_ms:.3f})" if device_ms == device_ms else "")
            + f"  peak {peak:9.1f} MiB"
            + (f"  {frac:5.1%} of bandwidth floor" if frac == frac else "")
            + (f"  ({note})" if note else "")
        )
        return row

    def leaf(self, *shape: int, scale: float = 1.0) -> Any:
        """A fresh random input that takes gradients."""
        t = self.torch
        return (t.randn(*shape, device=self.device, dtype=self.dtype) * scale).requires_grad_()

    def ce_inputs(self) -> list[Any]:
        """Hidden states and an LM head of the benchmark's sizes."""
        s = self.s
        return [self.leaf(s.tokens, s.hidden), self.leaf(s.vocab, s.hidden, scale=s.hidden**-0.5)]

    def rms_inputs(self) -> tuple[Callable[[], list[Any]], tuple[int, int]]:
        """RMSNorm's inputs, and the bytes each pass must move: the forward reads x and writes y, the
        backward reads dy and x and writes dx (the weights are noise)."""
        n, h = self.s.tokens, self.s.hidden
        e = self.torch.tensor([], dtype=self.dtype).element_size()
        return (lambda: [self.leaf(n, h), self.leaf(h)]), (2 * n * h * e, 3 * n * h * e)

    def run_all(self) -> list[dict[str, Any]]:
        t, s, dev, dt = self.torch, self.s, self.device, self.dtype
        from shardforge import kernels as sk
        from shardforge.kernels import reference as ref

        compiled = {
            "rms_norm": t.compile(ref.rms_norm),
            "swiglu": t.compile(ref.swiglu),
            "rope": t.compile(ref.rope),
            "ce": t.compile(ref.linear_cross_entropy),
        }
        e = t.tensor([], dtype=dt).element_size()
        rows: list[dict[str, Any]] = []
        print(f"{self.meta}  copy bandwidth {self.copy_gbps:.0f} GB/s")

        leaf = self.leaf

        rms_in, rms_bytes = self.rms_inputs()
        impls: list[tuple[str, Callable[..., Any]]] = [
            ("shardforge", lambda x, w: sk.rms_norm(x, w, 1e-6)),
            ("eager", lambda x, w: ref.rms_norm(x, w, 1e-6)),
            ("torch.compile", lambda x, w: compiled["rms_norm"](x, w, 1e-6)),
        ]
        if self.liger:
            impls.append(("liger", lambda x, w: self.liger.liger_rms_norm(x, w, 1e-6)))
        impls += self.compiled_ours(lambda x, w: sk.rms_norm(x, w, 1e-6))
        rows += [self.measure("rms_norm", name, rms_in, f, rms_bytes) for name, f in impls]

        # SwiGLU: forward reads gate and up, writes out; backward reads dout, gate, up, writes two.
        n, i = s.tokens, s.inter
        glu_in = lambda: [leaf(n, i), leaf(n, i)]  # noqa: E731
        glu_bytes = (3 * n * i * e, 5 * n * i * e)
        impls = [
            ("shardforge", sk.swiglu),
            ("eager", ref.swiglu),
            ("torch.compile", compiled["swiglu"]),
        ]
        if self.liger:
            impls.append(("liger", self.liger.liger_swiglu))
        impls += self.compiled_ours(sk.swiglu)
        rows += [self.measure("swiglu", name, glu_in, f, glu_bytes) for name, f in impls]

        # RoPE on q and k (batch 1, 8192 positions restarting every 1024 tokens). Ours rotates in
        # place, which autograd allows on a non-leaf only, so every implementation gets the same
        # copies `q * 1`, `k * 1` (and their backward) around it: in a model q and k come out of
        # their projection instead.
        hq, hk, d = s.q_heads, s.kv_heads, s.head_dim
        pos = (t.arange(n, device=dev) % 1024)[None]
        cos, sin = sk.rope_cos_sin(pos, d, 500000.0)

        def rope_in() -> list[Any]:
            return [leaf(1, n, hq, d), leaf(1, n, hk, d)]

        def ours(q: Any, k: Any) -> Any:
            qo, ko = sk.apply_rope(q * 1, k * 1, cos, sin)
            return t.cat([qo.flatten(), ko.flatten()])

        def eager(q: Any, k: Any, fn: Callable[..., Any] = ref.rope) -> Any:
            qo, ko = fn(q * 1, k * 1, cos, sin)
            return t.cat([qo.flatten(), ko.flatten()])

        impls = [
            ("shardforge", ours),
            ("eager", eager),
            ("torch.compile", lambda q, k: eager(q, k, compiled["rope"])),
        ]
        if self.liger:
            full_cos, full_sin = t.cat([cos, cos], -1).to(dt), t.cat([sin, sin], -1).to(dt)

            def liger_rope(q: Any, k: Any) -> Any:
                qo, ko = self.liger.liger_rope(
                    (q * 1).transpose(1, 2), (k * 1).transpose(1, 2), full_cos, full_sin
                )
                return t.cat([qo.flatten(), ko.flatten()])

            impls.append(("liger", liger_rope))
        impls += self.compiled_ours(ours)
        if self.cuda:  # what compiled code ran before it switched to writing new tensors

            def in_place(q: Any, k: Any) -> Any:
                qo, ko = sk.rope._RoPE.apply(q * 1, cos, sin), sk.rope._RoPE.apply(k * 1, cos, sin)
                return t.cat([qo.flatten(), ko.flatten()])

            impls.append(("shardforge compiled in place", t.compile(in_place)))
        rows += [self.measure("rope", name, rope_in, f, (0, 0)) for name, f in impls]

        # LM head + cross-entropy.
        v = s.vocab
        labels = t.randint(0, v, (n,), device=dev)

        def unfused(x: Any, w: Any) -> Any:
            return t.nn.functional.cross_entropy((x @ w.T).float(), labels)

        impls = [
            ("shardforge", lambda x, w: sk.fused_linear_cross_entropy(x, w, labels)),
            ("eager unfused", unfused),
            ("torch.compile", t.compile(unfused)),
        ]
        if self.liger:
            impls.append(("liger", lambda x, w: self.liger.liger_fused_linear_cross_entropy(x, w, labels)))
        if self.cuda:  # on CPU it would time the compiler
            chunked = compiled_chunked_cross_entropy(t, min(n, 2048))
            impls.append(("torch.compile chunked", lambda x, w: chunked(x, w, labels)))
        rows += [self.measure("linear_cross_entropy", name, self.ce_inputs, f, (0, 0)) for name, f in impls]
        return rows

    def compiled_ours(self, fn: Callable[..., Any]) -> list[tuple[str, Callable[..., Any]]]:
        """Our kernels inside a compiled region, as the trainer runs them (it compiles each
        block): Inductor launches them, not Python. On a GPU only: on CPU it times the compiler."""
        return [("shardforge compiled", self.torch.compile(fn))] if self.cuda else []

    def ce_sweep(self) -> None:
        """The fused loss's forward + backward time and peak memory over its chunk rows and the
        loss kernel's block and warps: the data behind the defaults in kernels/cross_entropy.py. Then
        the device time per kernel at chunks of 2048, 4096 and all rows and of the compiled unfused
        loss, to show where the difference lies, and three alternating rounds against the latter."""
        t, s = self.torch, self.s
        from shardforge import kernels as sk
        from shardforge.kernels import cross_entropy as ce

        labels = t.randint(0, s.vocab, (s.tokens,), device=self.device)
        for chunk in (2048, 4096):
            if chunk > s.tokens:
                continue
            self.measure(
                "linear_cross_entropy",
                f"chunk {chunk}",
                self.ce_inputs,
                lambda x, w, c=chunk: sk.fused_linear_cross_entropy(x, w, labels, chunk_rows=c),
                (0, 0),
            )
        self.loss_kernel_sweep(labels[: ce.MAX_CHUNK_ROWS])

        def unfused(x: Any, w: Any) -> Any:
            return t.nn.functional.cross_entropy((x @ w.T).float(), labels)

        ours = lambda x, w: sk.fused_linear_cross_entropy(x, w, labels)  # noqa: E731
        compiled = t.compile(unfused)
        self.kernel_table("shardforge (defaults)", ours)
        for chunk in (4096, s.tokens):
            self.kernel_table(
                f"shardforge (chunks of {chunk})",
                lambda x, w, c=chunk: sk.fused_linear_cross_entropy(x, w, labels, chunk_rows=c),
            )
        self.kernel_table("torch.compile (unfused)", compiled)
        # The two are within a few per cent, about as much as one call's time drifts over a run,
        # so they are timed in turns and the ratio is taken per round.
        ratios = []
        for r in range(3):
            op = "linear_cross_entropy"
            mine = self.measure(op, f"shardforge round {r}", self.ce_inputs, ours, (0, 0))
            peer = self.measure(op, f"torch.compile round {r}", self.ce_inputs, compiled, (0, 0))
            ratios.append(peer["fwd_bwd_ms"] / mine["fwd_bwd_ms"])
        rounds = ", ".join(f"{x:.3f}" for x in ratios)
        print(
            f"shardforge's speed over torch.compile's per round: {rounds}; median {statistics.median(ratios):.3f}x"
        )

    def loss_kernel_sweep(self, labels: Any) -> None:
        """The loss kernel alone on one chunk of logits, over its block and warps: time and the
        bandwidth it reaches (the row is read twice and written once)."""
        if not self.cuda:
            return
        t = self.torch
        from shardforge.kernels import cross_entropy as ce

        rows, vocab = len(labels), self.s.vocab
        logits = t.randn(rows, vocab, device=self.device, dtype=self.dtype)
        scale = t.ones((), device=self.device)
        per_row = t.empty(rows, device=self.device)
        for block in (8192, 16384, 32768):
            for warps in (8, 16, 32):

                def launch(b: int = block, nw: int = warps) -> None:
                    ce._ce_grad_kernel[(rows,)](
                        logits, logits.stride(0), labels, per_row, scale, vocab, -100, 0.0, 0.0,
                        BLOCK=b, WRITE_GRAD=True, num_warps=nw,
                    )  # fmt: skip

                ms = self.median_ms(launch)
                gbps = 3 * logits.numel() * logits.element_size() / (ms * 1e-3) / 1e9
                print(
                    f"loss kernel {rows} x {vocab}  block {block:5d} warps {warps:2d}: {ms:.3f} ms, "
                    f"{gbps:,.0f} GB/s ({gbps / self.copy_gbps:.0%} of copy)"
                )

    def kernel_table(self, label: str, fwd: Callable[..., Any], calls: int = 3) -> None:
        """Device time per call of each kernel of one loss's forward + backward, largest first."""
        if not self.cuda:
            return
        t = self.torch
        inputs = self.ce_inputs()

        def run_both() -> None:
            t.autograd.grad(fwd(*inputs), inputs)

        events = sorted(self.kernel_times(run_both, calls), key=lambda e: -e.self_device_time_total)
        total = sum(e.self_device_time_total for e in events) / calls / 1e3
        print(f"-- {label}: {total:.3f} ms of device time per call")
        for e in events[:8]:
            print(
                f"   {e.self_device_time_total / calls / 1e3:8.3f} ms  {e.count // calls:3d}x  {e.key[:100]}"
            )

    def rms_sweep(self) -> None:
        """RMSNorm's forward + backward over the backward kernel's rows per loop iteration and
        programs per SM: the data behind the defaults in kernels/rmsnorm.py."""
        from shardforge import kernels as sk
        from shardforge.kernels import rmsnorm

        rms_in, rms_bytes = self.rms_inputs()
        default = rmsnorm.BWD_ROWS, rmsnorm.BWD_PROGRAMS_PER_SM, rmsnorm.BWD_MAX_TILE
        rmsnorm.BWD_MAX_TILE = 1 << 30  # each setting as given, spills included
        for rows in (1, 2, 4, 8):
            for per_sm in (1, 2, 4):
                rmsnorm.BWD_ROWS, rmsnorm.BWD_PROGRAMS_PER_SM = rows, per_sm
                self.measure(
                    "rms_norm",
                    f"rows {rows} programs/SM {per_sm}",
                    rms_in,
                    lambda x, w: sk.rms_norm(x, w, 1e-6),
                    rms_bytes,
                )
        rmsnorm.BWD_ROWS, rmsnorm.BWD_PROGRAMS_PER_SM, rmsnorm.BWD_MAX_TILE = default


def compiled_chunked_cross_entropy(torch: Any, chunk_rows: int) -> Callable[..., Any]:
    """The peer the issue names beside Liger: a chunked LM head + loss written in plain PyTorch,
    each chunk's loss and gradients taken in the forward by `torch.func.grad_and_value` and
    compiled by `torch.compile`, the gradients summed over chunks and scaled in the backward."""
    t = torch

    def chunk_loss(h: Any, w: Any, y: Any, n_valid: Any) -> Any:
        logits = (h @ w.T).float()
        return t.nn.functional.cross_entropy(logits, y, reduction="sum") / n_valid

    chunk_step = t.compile(t.func.grad_and_value(chunk_loss, argnums=(0, 1)))

    class ChunkedLoss(t.autograd.Function):  # type: ignore[misc,name-defined]
        @staticmethod
        def forward(ctx: Any, h: Any, w: Any, y: Any) -> Any:
            n_valid = (y != -100).sum().clamp(min=1)
            d_h, d_w = t.empty_like(h), t.zeros_like(w)
            loss = t.zeros((), device=h.device)
            for a in range(0, len(h), chunk_rows):
                (g_h, g_w), part = chunk_step(h[a : a + chunk_rows], w, y[a : a + chunk_rows], n_valid)
                d_h[a : a + chunk_rows] = g_h
                d_w += g_w
                loss += part
            ctx.save_for_backward(d_h, d_w)
            return loss

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            d_h, d_w = ctx.saved_tensors
            return d_h * grad, d_w * grad, None

    return ChunkedLoss.apply  # type: ignore[no-any-return]


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod.replace("_", "-"))
    except Exception:
        return "-"


if __name__ == "__main__":
    main()
