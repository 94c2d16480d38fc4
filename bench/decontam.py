"""Decontamination scan, side by side: shardforge's `EvalIndex.scan` against the usual Python way
(lowercased `\\w+` words, a set of 13-gram tuples, a sliding window: what lm-eval's and most GPT-3
style decontamination scripts do), on the same real text and the HumanEval + GSM8K test sets.

    python bench/decontam.py [--mb 40] [--corpus DIR] [--repeats 3]

Each engine runs in its own subprocess, per core (RAYON_NUM_THREADS=1) and, for shardforge, on all
cores. Index building is not timed; figures are medians of `--repeats` passes. datatrove's
n-gram decontamination loads its evaluation sets through lighteval from the Hugging Face hub, which
this machine cannot reach, so it is not in this table yet.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GSM8K = HERE.parent.parent / "shared" / "data" / "evals" / "gsm8k_test.jsonl"
N = 13


def python_reference(texts: list[str], repeats: int) -> dict[str, Any]:
    import gzip

    import shardforge

    items = []
    with gzip.open(shardforge.humaneval_path(), "rt") as f:
        items += [(r["prompt"] + r["canonical_solution"]) for r in map(json.loads, f)]
    items += [r["question"] + "\n" + r["answer"] for r in map(json.loads, GSM8K.read_text().splitlines())]
    word = re.compile(r"\w+")
    grams: set[tuple[str, ...]] = set()
    for t in items:
        w = word.findall(t.lower())
        grams.update(tuple(w[i : i + N]) for i in range(len(w) - N + 1))

    def run() -> int:
        hits = 0
        for t in texts:
            w = word.findall(t.lower())
            hits += sum(tuple(w[i : i + N]) in grams for i in range(len(w) - N + 1))
        return hits

    return timed(run, repeats)


def shardforge_scan(texts: list[str], repeats: int) -> dict[str, Any]:
    import shardforge

    index = shardforge.EvalIndex(
        [
            shardforge.EvalSet("humaneval", shardforge.humaneval_path(), "humaneval"),
            shardforge.EvalSet("gsm8k", GSM8K, "gsm8k"),
        ],
        ngram=N,
    )
    return timed(lambda: sum(h.ngrams for h in index.scan(texts)), repeats)


def timed(run: Any, repeats: int) -> dict[str, Any]:
    hits = run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "hits": hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="MB of text in the sample (default 40)")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (default: gather one)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes (median; default 3)")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        texts = json.loads((args.work / "texts.json").read_text())
        fn = {"shardforge": shardforge_scan, "python": python_reference}[args.engine]
        print(json.dumps(fn(texts, args.repeats)))
        return

    sys.path.insert(0, str(HERE))
    from dedup import corpus_sample

    _, texts = corpus_sample(args.corpus, args.mb)
    nbytes = sum(len(t.encode()) for t in texts)
    work = Path(tempfile.mkdtemp(prefix="sf-decont-bench-"))
    (work / "texts.json").write_text(json.dumps(texts))
    cores = os.cpu_count() or 1
    print(f"sample: {len(texts):,} docs, {nbytes / 1e6:.1f} MB; HumanEval + GSM8K, {N}-grams; {cores} cores")
    print(f"{'engine':<28} {'MB/s':>8} {'vs python':>10} {'n-gram hits':>12}")
    results = {}
    for engine, threads in [("python", 1), ("shardforge", 1), ("shardforge", cores)]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        cmd = [
            sys.executable,
            __file__,
            "--engine",
            engine,
            "--work",
            str(work),
            "--repeats",
            str(args.repeats),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[(engine, threads)] = r
        base = results[("python", 1)]["seconds"]
        label = f"{engine} ({threads} core{'s' if threads > 1 else ''})"
        print(
            f"{label:<28} {nbytes / 1e6 / r['seconds']:>8.1f} {base / r['seconds']:>9.1f}x {r['hits']:>12,}"
        )


if __name__ == "__main__":
    main()
