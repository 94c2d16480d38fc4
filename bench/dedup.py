"""MinHash dedup, side by side: shardforge (classic in two schemes, and one-permutation), rensa,
datasketch and datatrove on the same real corpus in one run. Prints per-core throughput, peak RSS, signature bytes
per document and near-duplicate pair recall/precision against exact Jaccard, with ratios.

    python bench/dedup.py [--mb 40] [--corpus DIR] [--datatrove-python PATH] [--rensa04-python PATH]

shardforge's classic sketch runs twice: with its default scheme (datasketch 2.0's affine32
permutations, bit-compatible with it) and with datatrove's scheme (the Mersenne-prime map of
datasketch < 2.0 and datatrove, which costs 64-bit arithmetic per permutation).

rensa 0.5's "full-set R-MinHash" is no longer k-permutation MinHash: it adapts Fast Similarity
Sketching (one slot and rank per token over a few bucket rounds), a one-pass sketch like our
one-permutation one. rensa 0.4's R-MinHash evaluates k permutations per token like our classic
sketch; give an interpreter with rensa==0.4.0 to run it as well.

Every engine runs in its own subprocess with one thread (RAYON_NUM_THREADS=1, threads=1), so peak
RSS is the engine's own and throughput is per core. shardforge's time includes normalization and
shingling; the peers get their best case: shingles already built (and for rensa's `hashes` mode
already hashed), untimed. Accuracy uses the same LSH banding (from the threshold) on every engine's
signatures, so only the sketch differs; ground truth is the exact Jaccard of the same shingle sets.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
K = 128
THRESHOLD = 0.8
# Timed repeats per fast engine; the median is reported (datasketch and datatrove run once).
REPS = 5
# shardforge's engines and their sketch options.
SHARDFORGE = {
    "shardforge_classic": {"method": "classic"},
    "shardforge_classic_datatrove": {"method": "classic", "scheme": "datatrove"},
    "shardforge_oph": {"method": "one_permutation"},
}


def load_sample(corpus: Path, mb: float) -> list[str]:
    """About `mb` MB of documents, taken round-robin from every source file of the corpus."""
    streams = []
    for path in sorted(corpus.glob("*.jsonl*")):
        if path.name.endswith(".gz"):
            f: Any = gzip.open(path, "rt", encoding="utf-8")
        elif path.name.endswith(".zst"):
            import io

            import zstandard

            f = io.TextIOWrapper(
                zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8"
            )
        else:
            f = open(path, encoding="utf-8")
        streams.append(f)
    texts: list[str] = []
    size = 0
    while streams and size < mb * 1e6:
        for f in list(streams):
            line = f.readline()
            if not line:
                streams.remove(f)
                continue
            t = json.loads(line)["text"]
            texts.append(t)
            size += len(t.encode())
    return texts


def corpus_sample(corpus: Path | None, mb: float) -> tuple[Path, list[str]]:
    """The corpus directory (gathered into bench/out/corpus when not given) and about `mb` MB of
    its documents; the other bench scripts sample the same way."""
    if corpus is None:
        from shardforge.corpus import gather

        corpus = HERE / "out" / "corpus"
        gather(corpus, verbose=False)
    return corpus, load_sample(corpus, mb)


def shingles(texts: list[str]) -> list[list[str]]:
    """The word 5-gram strings of shardforge's normalized text (the peers' pre-built input)."""
    import shardforge

    out = []
    for t in texts:
        words = shardforge.normalize_text(t).split()
        out.append([" ".join(words[i : i + 5]) for i in range(max(len(words) - 4, 1))] if words else [])
    return out


# ---------------------------------------------------------------- engines (run in subprocesses)


def peak_rss() -> int:
    """This process's peak resident set in bytes. VmHWM belongs to the exec'ed image only;
    ru_maxrss on Linux also counts the parent's pages at fork time, so it would report the
    driver's memory for every engine."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
    """Median wall and median CPU seconds (all threads of this process) of `reps` calls, and the
    last call's result. CPU / wall above 1 means the engine used more than one core."""
    walls, cpus, out = [], [], None
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def run_engine(name: str, work: Path) -> dict[str, Any]:
    texts: list[str] = json.loads((work / "texts.json").read_text())
    result: dict[str, Any] = {"engine": name}
    if name in SHARDFORGE:
        import shardforge

        options = SHARDFORGE[name]
        shardforge.minhash(texts[:50], **options)  # warm up
        result["sketch_s"], result["sketch_cpu_s"], sig = timed(
            lambda: shardforge.minhash(texts, num_perm=K, **options), REPS
        )
        if name == "shardforge_classic":
            # A fresh output directory per run: the job would otherwise resume the finished one.
            runs = iter(range(REPS))
            result["dedup_s"], _, rep = timed(
                lambda: shardforge.dedup(
                    work / "sample.jsonl", work / f"sf_out{next(runs)}", threads=1, num_perm=K
                ),
                REPS,
            )
            result["dedup_docs_out"] = rep.docs_out
    elif name.startswith("rensa"):
        from rensa import RMinHash

        sh: list[list[str]] = json.loads((work / "shingles.json").read_text())
        if name in ("rensa_tokens", "rensa04_tokens"):
            result["sketch_s"], result["sketch_cpu_s"], m = timed(
                lambda: RMinHash.digest_matrix_from_token_sets(sh, K, 42), REPS
            )
        else:
            hashed = RMinHash.hash_token_sets(sh)
            flat = np.concatenate([np.asarray(h, dtype=np.uint64) for h in hashed])
            offsets = np.cumsum([0] + [len(h) for h in hashed]).astype(np.uint64)
            result["sketch_s"], result["sketch_cpu_s"], m = timed(
                lambda: RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, K, 42), REPS
            )
        sig = np.asarray(m.to_rows(), dtype=np.uint32)
    elif name == "datasketch":
        from datasketch import MinHash

        encoded = [[s.encode() for s in doc] for doc in json.loads((work / "shingles.json").read_text())]
        result["sketch_s"], result["sketch_cpu_s"], mh = timed(lambda: MinHash.bulk(encoded, num_perm=K), 1)
        sig = np.stack([m.hashvalues for m in mh]).astype(np.uint32)
    elif name == "datatrove":
        result.update(run_datatrove(work))
        result["peak_rss"] = peak_rss()
        return result
    else:
        raise SystemExit(f"unknown engine {name}")
    np.save(work / f"{name}.npy", sig)
    result["peak_rss"] = peak_rss()
    return result


def run_datatrove(work: Path) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    cfg = MinhashConfig(n_grams=5, num_buckets=9, hashes_per_bucket=13)
    base = work / "datatrove"
    data = str(work / "input")
    logs = str(base / "logs")

    def execute(pipeline: list[Any], tasks: int, stage: str) -> float:
        t0 = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{logs}/{stage}").run()
        return time.perf_counter() - t0

    s1 = execute(
        [JsonlReader(data), MinhashDedupSignature(output_folder=str(base / "sigs"), config=cfg)], 1, "s1"
    )
    s2 = execute(
        [
            MinhashDedupBuckets(
                input_folder=str(base / "sigs"), output_folder=str(base / "buckets"), config=cfg
            )
        ],
        cfg.num_buckets,
        "s2",
    )
    s3 = execute(
        [
            MinhashDedupCluster(
                input_folder=str(base / "buckets"), output_folder=str(base / "remove"), config=cfg
            )
        ],
        1,
        "s3",
    )
    s4 = execute(
        [
            JsonlReader(data),
            MinhashDedupFilter(input_folder=str(base / "remove")),
            JsonlWriter(str(base / "out")),
        ],
        1,
        "s4",
    )
    return {"sketch_s": s1, "sketch_cpu_s": s1, "dedup_s": s1 + s2 + s3 + s4}


# ---------------------------------------------------------------- driver


def exact_pairs(texts: list[str]) -> set[tuple[int, int]]:
    """All pairs with exact Jaccard ≥ THRESHOLD of the shingle sets, by sparse matrix product."""
    import scipy.sparse as sp

    import shardforge

    sets = [shardforge.shingle_hashes(t) for t in texts]
    vocab, inverse = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    a = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, inverse)), shape=(len(sets), len(vocab)))
    inter = sp.triu(a @ a.T, k=1).tocoo()
    sizes = np.array([len(s) for s in sets], dtype=np.float64)
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = jac >= THRESHOLD
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist(), strict=True))


def accuracy(sig: np.ndarray, truth: set[tuple[int, int]]) -> tuple[float, float]:
    import shardforge

    bands, rows = shardforge.lsh_params(THRESHOLD, K)
    pairs = {(int(a), int(b)) for a, b in shardforge.candidate_pairs(sig, bands, rows)}
    hit = len(pairs & truth)
    return hit / max(len(truth), 1), hit / max(len(pairs), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="MB of text in the sample (default 40)")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (default: gather one)")
    ap.add_argument("--datatrove-python", default=None, help="interpreter with datatrove installed")
    ap.add_argument(
        "--rensa04-python",
        default=None,
        help="interpreter with rensa 0.4 (k-permutation R-MinHash; 0.5 switched to a bucket sketch)",
    )
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--skip", nargs="*", default=[], help="engines to leave out")
    args = ap.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.work)))
        return

    import shardforge

    corpus, texts = corpus_sample(args.corpus, args.mb)
    nbytes = sum(len(t.encode()) for t in texts)
    work = Path(tempfile.mkdtemp(prefix="sf-bench-"))
    (work / "texts.json").write_text(json.dumps(texts))
    # The peers' input, built here because their interpreters may not have shardforge.
    (work / "shingles.json").write_text(json.dumps(shingles(texts)))
    (work / "input").mkdir()
    with open(work / "sample.jsonl", "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")
    os.link(work / "sample.jsonl", work / "input" / "sample.jsonl")
    print(
        f"sample: {len(texts):,} docs, {nbytes / 1e6:.1f} MB of text from {corpus}; k={K}, threshold={THRESHOLD}"
    )
    truth = exact_pairs(texts)
    print(f"ground truth: {len(truth):,} pairs with exact Jaccard >= {THRESHOLD}")

    engines = [*SHARDFORGE, "rensa_tokens", "rensa_hashes", "datasketch"]
    engines += ["rensa04_tokens"] if args.rensa04_python else []
    engines += ["datatrove"] if args.datatrove_python else []
    peer_python = {"datatrove": args.datatrove_python, "rensa04_tokens": args.rensa04_python}
    env = dict(os.environ, RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results = []
    for name in engines:
        if name in args.skip:
            continue
        python = peer_python.get(name) or sys.executable
        cmd = [python, __file__, "--engine", name, "--work", str(work)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        sig_path = work / f"{name}.npy"
        if sig_path.exists():
            res["recall"], res["precision"] = accuracy(np.load(sig_path), truth)
            res["bytes_per_doc"] = K * (8 if name == "datasketch" else 4)
        results.append(res)
        print(f"  {name:20s} done in {res['sketch_s']:.2f}s", flush=True)

    base = next(r for r in results if r["engine"] == "shardforge_classic")
    header = (
        "| engine | sketch MB/s | docs/s | vs shardforge classic | CPU/wall | peak RSS MiB | sig B/doc "
        "| recall | precision |"
    )
    print()
    print(header)
    print("|" + "---|" * 9)
    for r in results:
        mbps = nbytes / 1e6 / r["sketch_s"]
        ratio = base["sketch_s"] / r["sketch_s"]
        rec = f"{r['recall']:.4f}" if "recall" in r else "-"
        prec = f"{r['precision']:.4f}" if "precision" in r else "-"
        print(
            f"| {r['engine']} | {mbps:,.1f} | {len(texts) / r['sketch_s']:,.0f} | {ratio:.2f}× | "
            f"{r['sketch_cpu_s'] / r['sketch_s']:.2f} | {r['peak_rss'] / 2**20:,.0f} | "
            f"{r.get('bytes_per_doc', '-')} | {rec} | {prec} |"
        )
    print()
    by = {r["engine"]: r for r in results}
    for peer in ["rensa_tokens", "rensa_hashes", "rensa04_tokens", "datasketch", "datatrove"]:
        if peer in by:
            print(
                f"shardforge classic vs {peer}: {by[peer]['sketch_s'] / base['sketch_s']:.1f}× faster sketching"
            )
    if "shardforge_classic_datatrove" in by and "datatrove" in by:
        print(
            "shardforge classic (datatrove's scheme) vs datatrove's signature stage: "
            f"{by['datatrove']['sketch_s'] / by['shardforge_classic_datatrove']['sketch_s']:.1f}× faster"
        )
    if "shardforge_oph" in by:
        print(
            f"one-permutation vs classic: {base['sketch_s'] / by['shardforge_oph']['sketch_s']:.1f}× faster"
        )
    if "datatrove" in by:
        print(
            f"whole dedup (read → write), shardforge vs datatrove: {by['datatrove']['dedup_s'] / base['dedup_s']:.1f}×"
        )
    print(f"whole dedup, shardforge, 1 thread: {nbytes / 1e6 / base['dedup_s']:.1f} MB/s")
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "dedup.json").write_text(
        json.dumps({"bytes": nbytes, "docs": len(texts), "results": results}, indent=1)
    )
    print(f"\nshardforge {shardforge.__version__}; details in bench/out/dedup.json; work dir {work}")


if __name__ == "__main__":
    main()
