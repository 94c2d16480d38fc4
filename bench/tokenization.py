"""Tokenization, side by side: shardforge end to end (read JSONL → tokenize → write shards) and its
in-memory `encode_batch`, against the Python `tokenizers` package's `encode_batch` (tokenizing only,
its best case), tiktoken and gigatoken, on the same real text with the GPT-2 and Llama 3 tokenizers.

    python bench/tokenization.py [--mb 20] [--corpus DIR] [--repeats 3]

Every engine runs in its own subprocess, once with one thread (RAYON_NUM_THREADS=1, threads=1,
num_threads=1, parallel=False: per core) and once with all cores. A subprocess loads the tokenizer,
then times one pass over the sample (cold caches: the first pass over a corpus is the one a data job
pays; a repeated pass over the same texts lets engines that memoize whole inputs look arbitrarily
fast), then checks the ids against the Python `tokenizers` package's. Each figure is the median of
`--repeats` subprocesses. tiktoken gets its ranks from the same tokenizer.json
(byte-level tokens decoded back to bytes), so no download is needed.
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "tokenizers"
TOKENIZERS = {
    "gpt2": (SHARED / "gpt2.json", "<|endoftext|>"),
    "llama3": (SHARED / "llama3.json", "<|end_of_text|>"),
}
ENGINES = ["shardforge_e2e", "shardforge_encode", "hf_tokenizers", "tiktoken", "gigatoken"]


def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def tiktoken_encoding(path: Path, name: str) -> Any:
    import tiktoken

    spec = json.loads(path.read_text())
    dec = byte_decoder()
    ranks = {bytes(dec[c] for c in tok): i for tok, i in spec["model"]["vocab"].items()}
    pre = spec["pre_tokenizer"]
    if pre["type"] == "ByteLevel":
        pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    else:
        pattern = pre["pretokenizers"][0]["pattern"]["Regex"]
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={})


def reference_ids(path: Path, texts: list[str]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


# ---------------------------------------------------------------- engines (run in subprocesses)


def run_engine(engine: str, tokenizer: str, threads: int, work: Path) -> dict[str, Any]:
    texts: list[str] = json.loads((work / "texts.json").read_text())
    path, eos = TOKENIZERS[tokenizer]
    expected = json.loads((work / f"ids-{tokenizer}.json").read_text())
    one = threads == 1
    check: Callable[[], list[list[int]]]
    run: Callable[[], int]
    if engine == "shardforge_e2e":
        import shardforge
        from shardforge.dataset import open_dataset

        def run() -> int:
            out = Path(tempfile.mkdtemp(dir=work))
            r = shardforge.tokenize(
                work / "sample.jsonl", out, path, eos_token=eos, threads=threads, shard_bytes="64MiB"
            )
            return r.tokens - r.documents

        def check() -> list[list[int]]:
            out = Path(tempfile.mkdtemp(dir=work))
            shardforge.tokenize(work / "sample.jsonl", out, path, eos_token=eos, threads=threads)
            ds = open_dataset(out)
            return [ds.tokens(i)[:-1].tolist() for i in range(len(ds))]

    elif engine == "shardforge_encode":
        import shardforge

        tok = shardforge.Tokenizer(path, eos_token=eos)

        def run() -> int:
            return len(tok.encode_batch(texts)[0])

        def check() -> list[list[int]]:
            ids, off = tok.encode_batch(texts)
            return [ids[off[i] : off[i + 1]].tolist() for i in range(len(texts))]

    elif engine == "hf_tokenizers":
        from tokenizers import Tokenizer

        hf = Tokenizer.from_file(str(path))

        def run() -> int:
            return sum(len(e.ids) for e in hf.encode_batch(texts, add_special_tokens=False))

        def check() -> list[list[int]]:
            return [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]

    elif engine == "tiktoken":
        enc = tiktoken_encoding(path, tokenizer)
        n_threads = 1 if one else os.cpu_count() or 1

        def run() -> int:
            return sum(len(x) for x in enc.encode_ordinary_batch(texts, num_threads=n_threads))

        def check() -> list[list[int]]:
            return [list(x) for x in enc.encode_ordinary_batch(texts, num_threads=n_threads)]

    elif engine == "gigatoken":
        import gigatoken

        gt = gigatoken.Tokenizer(str(path))

        def run() -> int:
            return len(gt.encode_batch(texts, parallel=not one).layout.content)

        def check() -> list[list[int]]:
            return [list(x) for x in gt.encode_batch(texts, parallel=not one).tolist()]

    else:
        raise ValueError(engine)
    t0 = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - t0
    got = check()
    mismatches = sum(a != b for a, b in zip(got, expected, strict=True))
    return {
        "seconds": seconds,
        "tokens": tokens,
        "mismatched_docs": mismatches,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ---------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20.0, help="MB of text in the sample (default 20)")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (default: gather one)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine (median; default 3)")
    ap.add_argument("--tokenizers", nargs="*", default=list(TOKENIZERS), help="gpt2 and/or llama3")
    ap.add_argument("--skip", nargs="*", default=[], help="engines to leave out")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--tokenizer", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.tokenizer, args.threads, args.work)))
        return

    sys.path.insert(0, str(HERE))
    from dedup import corpus_sample

    corpus, texts = corpus_sample(args.corpus, args.mb)
    nbytes = sum(len(t.encode()) for t in texts)
    work = Path(tempfile.mkdtemp(prefix="sf-tok-bench-"))
    (work / "texts.json").write_text(json.dumps(texts))
    with open(work / "sample.jsonl", "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")
    cores = os.cpu_count() or 1
    print(f"sample: {len(texts):,} docs, {nbytes / 1e6:.1f} MB of text from {corpus}; {cores} cores")
    engines = [e for e in ENGINES if e not in args.skip]
    for name in args.tokenizers:
        path, _ = TOKENIZERS[name]
        (work / f"ids-{name}.json").write_text(json.dumps(reference_ids(path, texts)))
        print(f"\n{name} ({path.name}); MB/s of UTF-8 text, median of {args.repeats} cold runs")
        print(
            f"{'engine':<20} {'MB/s 1 core':>12} {'M tok/s':>8} {'MB/s all':>10} {'scaling':>8} "
            f"{'vs HF (1 core)':>15} {'RSS MB':>8} {'ids':>6}"
        )
        rows = {}
        for engine in engines:
            row = {}
            for threads in (1, cores):
                env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
                cmd = [sys.executable, __file__, "--engine", engine, "--tokenizer", name]
                cmd += ["--threads", str(threads), "--work", str(work)]
                runs = []
                for _ in range(args.repeats):
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"{engine}: failed\n{proc.stderr[-2000:]}")
                        break
                    runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                if len(runs) < args.repeats:
                    break
                row[threads] = dict(runs[0], seconds=statistics.median(r["seconds"] for r in runs))
            if len(row) == 2:
                rows[engine] = row
        base = rows.get("hf_tokenizers", {}).get(1, {}).get("seconds")
        for engine, row in rows.items():
            one, many = row[1], row[cores]
            mbs1, mbsn = nbytes / 1e6 / one["seconds"], nbytes / 1e6 / many["seconds"]
            ratio = f"{base / one['seconds']:.2f}x" if base else "-"
            ok = "equal" if one["mismatched_docs"] == 0 and many["mismatched_docs"] == 0 else "DIFFER"
            print(
                f"{engine:<20} {mbs1:>12.1f} {one['tokens'] / one['seconds'] / 1e6:>8.2f} {mbsn:>10.1f} "
                f"{mbsn / mbs1:>7.2f}x {ratio:>15} {max(one['peak_rss_mb'], many['peak_rss_mb']):>8.0f} {ok:>6}"
            )


if __name__ == "__main__":
    main()
