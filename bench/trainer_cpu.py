"""The trainer's distributed path on CPU, side by side: tokens/s of the debug model trained by one
process against FSDP2 on 2 ranks (torchrun, gloo), on the same global batches of the demo's clean
token datasets, with the same cores in total.

    python bench/trainer_cpu.py [--steps 40] [--repeats 3]

Runs (each a fresh `shardforge train`, median tokens/s over the steps after the first 5):
- one process, 1 thread: the per-core reference;
- one process, 2 threads: the plain way to use 2 cores;
- FSDP2 on 2 ranks, 1 thread each (half of each global batch per rank), resharding after each
  block's forward (the default) and not (`reshard_after_forward = "never"`);
- pipeline parallel, 2 stages of 2 layers, 1F1B, 1 thread each (the whole batch as 2 microbatches).
It prints the ratios and the data-parallel efficiency (2 ranks / (2 × one 1-thread process)), and
checks that the 2-rank losses follow the single process's. Needs `make demo` first (its token
datasets)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"


def config(out: Path, batch: int, steps: int, parallel: dict[str, Any]) -> dict[str, Any]:
    sources = ["prose", "code"]
    for s in sources:
        if not (DEMO / "tokens" / "clean" / s / "manifest.json").exists():
            sys.exit("run `make demo` first: the bench trains on its clean token datasets")
    return {
        "loader": {
            "seq_len": 256,
            "batch_size": batch,
            "sources": [{"name": s, "datasets": [str(DEMO / "tokens" / "clean" / s)]} for s in sources],
            "weights": {"prose": 0.5, "code": 0.5},
            "cache_dir": str(out.parent / "cache"),
        },
        "out_dir": str(out),
        "model": "debug",
        "model_overrides": {"max_seq_len": 256},
        "steps": steps,
        "warmup_steps": 5,
        "checkpoint_every": steps,
        "collapse_every": 0,
        "tensorboard": False,
        "log_every": steps,
        "parallel": parallel,
    }


def run(
    work: Path, name: str, procs: int, threads: int, batch: int, steps: int, parallel: dict[str, Any]
) -> list[dict[str, Any]]:
    out = work / name
    cfg_path = work / f"{name}.json"
    cfg_path.write_text(json.dumps(config(out, batch, steps, parallel)))
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    cli = ["-m", "shardforge.cli", "train", str(cfg_path)]
    if procs > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={procs}",
            *cli,
        ]
    else:
        cmd = [sys.executable, *cli]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    global_batch = 8
    cases: list[tuple[str, int, int, int, dict[str, Any]]] = [
        ("1 process, 1 thread", 1, 1, global_batch, {}),
        ("1 process, 2 threads", 1, 2, global_batch, {}),
        ("FSDP2, 2 ranks x 1 thread", 2, 1, global_batch // 2, {}),
        ("FSDP2, no reshard", 2, 1, global_batch // 2, {"reshard_after_forward": "never"}),
        ("PP 1F1B, 2 stages x 1 thread", 2, 1, global_batch, {"pp": 2}),
    ]
    rates: dict[str, list[float]] = {c[0]: [] for c in cases}
    losses: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, (name, procs, threads, batch, parallel) in enumerate(cases):
                m = run(Path(tmp), f"r{r}c{i}", procs, threads, batch, args.steps, parallel)
                rates[name].append(statistics.median(x["tokens_per_s"] for x in m[5:]))
                losses[name] = [x["loss"] for x in m]
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med["1 process, 2 threads"]
    print(
        f"debug model, {global_batch} x 256 tokens per step, {args.steps} steps, median of {args.repeats} runs"
    )
    print(f"{'run':<28} {'tokens/s':>10} {'vs 1 process, 2 threads':>24}")
    for k, v in med.items():
        print(f"{k:<28} {v:>10,.0f} {v / base:>23.2f}x")
    eff = med["FSDP2, 2 ranks x 1 thread"] / (2 * med["1 process, 1 thread"])
    print(f"data-parallel efficiency, 2 ranks / (2 x 1 thread): {eff:.2f}")
    eff_never = med["FSDP2, no reshard"] / (2 * med["1 process, 1 thread"])
    print(f"the same, not resharding after forward: {eff_never:.2f}")
    one = losses["1 process, 2 threads"]
    for name in ("FSDP2, 2 ranks x 1 thread", "FSDP2, no reshard", "PP 1F1B, 2 stages x 1 thread"):
        worst = max(abs(a - b) / abs(a) for a, b in zip(one, losses[name], strict=True))
        print(f"largest relative loss difference, {name} vs one process, {len(one)} steps: {worst:.1e}")


if __name__ == "__main__":
    main()
