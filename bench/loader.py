"""The streaming loader, side by side: batches of 8 x 2048 tokens per second from a multi-shard token
dataset with a 3-source mixture and document boundaries, against a plain `numpy.memmap`
random-window reader (nanoGPT style: no mixture, no boundaries, the floor) and litdata's
`StreamingDataset` + `TokensLoader` reading the same tokens (one source, no boundaries). Then the
time to build the sample index for 10^9 tokens.

    python bench/loader.py [--batches 1500] [--repeats 5]

Needs the demo's deduplicated corpus and tokenizer (`make demo`); the multi-shard dataset is
written once under bench/out/loader/. litdata comes with the bench extra. Figures are medians of
`--repeats` timed passes in one process, after one warm-up pass (the page cache holds the shards,
as in a training run past its first minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import shardforge
from shardforge import _core
from shardforge.loader import Loader

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "loader"
SEQ, BATCH = 2048, 8
SOURCES = {
    "code": "source LIKE 'cpython_stdlib%'",
    "man": "source LIKE 'manpages%'",
    "other": "source NOT LIKE 'cpython_stdlib%' AND source NOT LIKE 'manpages%'",
}
WEIGHTS = {"code": 0.5, "man": 0.3, "other": 0.2}


def dataset() -> Path:
    out = OUT / "tokens"
    dedup = ROOT / "demo" / "dedup"
    tokenizer = ROOT / "demo" / "tokenizer.json"
    if not tokenizer.exists():
        sys.exit("run `make demo` first: the bench reads its deduplicated corpus and tokenizer")
    files = sorted(str(p) for p in dedup.glob("*.jsonl*"))
    shardforge.tokenize(files, out, tokenizer=str(tokenizer), shard_tokens=8_000_000, on_error="skip")
    return out


def timed(make_batch: Callable[[], Any], batches: int, repeats: int) -> float:
    """Median tokens/s over `repeats` passes of `batches` batches (after one warm-up pass)."""
    rates = []
    for r in range(repeats + 1):
        t = time.perf_counter()
        for _ in range(batches):
            make_batch()
        if r:
            rates.append(batches * BATCH * SEQ / (time.perf_counter() - t))
    return statistics.median(rates)


def memmap_floor(ds_path: Path) -> Callable[[], Any]:
    ds = shardforge.open_dataset(ds_path)
    maps = [ds.shard_tokens(i) for i in range(len(ds.shards))]
    rng = np.random.default_rng(0)

    def batch() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        m = maps[rng.integers(len(maps))]
        ix = rng.integers(0, len(m) - SEQ - 1, BATCH)
        xy = np.stack([m[i : i + SEQ + 1] for i in ix]).astype(np.int64)
        return xy[:, :-1], xy[:, 1:]

    return batch


def shardforge_loader(ds_path: Path, packing: str, repeat_filter: bool) -> Callable[[], Any]:
    cfg = {
        "seq_len": SEQ,
        "batch_size": BATCH,
        "packing": packing,
        "sources": [{"name": n, "datasets": [str(ds_path)], "where": w} for n, w in SOURCES.items()],
        "weights": WEIGHTS,
        "repeat_filter": repeat_filter,
        "cache_dir": str(OUT / "cache"),
    }
    it = iter(Loader(cfg))
    return lambda: next(it)


def litdata_reader(ds_path: Path) -> Callable[[], Any] | None:
    try:
        import litdata
    except ImportError:
        return None
    out = OUT / "litdata"
    ds = shardforge.open_dataset(ds_path)
    if not (out / "index.json").exists():
        ranges = [
            (str(ds_path), i, a, min(a + 1_000_000, s["tokens"]))
            for i, s in enumerate(ds.shards)
            for a in range(0, s["tokens"], 1_000_000)
        ]
        litdata.optimize(
            fn=_litdata_chunk,
            inputs=ranges,
            output_dir=str(out),
            chunk_size=(SEQ + 1) * 1024,
            item_loader=litdata.TokensLoader(),
            num_workers=1,
            verbose=False,
        )
    sd = litdata.StreamingDataset(
        str(out), item_loader=litdata.TokensLoader(block_size=SEQ + 1), shuffle=True, drop_last=True
    )
    dl = litdata.StreamingDataLoader(sd, batch_size=BATCH, num_workers=0)
    state = {"it": iter(dl)}

    def batch() -> Any:
        try:
            xy = next(state["it"])
        except StopIteration:
            state["it"] = iter(dl)
            xy = next(state["it"])
        return xy[:, :-1].long(), xy[:, 1:].long()

    return batch


def _litdata_chunk(r: tuple[str, int, int, int]) -> Any:
    """One input of litdata's `optimize` (module level: its workers are spawned)."""
    import torch

    path, i, a, b = r
    yield torch.from_numpy(np.asarray(shardforge.open_dataset(path).shard_tokens(i)[a:b], dtype=np.int32))


def index_build(tokens: float = 1e9, mean_doc: int = 500) -> dict[str, float]:
    """Seconds to build the sample index over `tokens` tokens in ~tokens/mean_doc documents of
    three sources, for each packing (a sparse shard file: the index reads no tokens)."""
    rng = np.random.default_rng(1)
    lens = np.clip(rng.lognormal(np.log(mean_doc) - 0.5, 1.0, int(tokens / mean_doc)), 2, 200_000).astype(
        np.uint32
    )
    offsets = np.concatenate([[0], np.cumsum(lens, dtype=np.uint64)[:-1]]).astype(np.uint64)
    total = int(lens.sum(dtype=np.uint64))
    out: dict[str, float] = {"tokens": float(total), "documents": float(len(lens))}
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "00000.tokens"
        with open(shard, "wb") as f:
            f.truncate(total * 2)
        thirds = np.array_split(np.arange(len(lens)), 3)
        docs = [(np.zeros(len(t), np.uint32), offsets[t], lens[t]) for t in thirds]
        for packing in ["concat", "best_fit"]:
            spec = {
                "seq_len": SEQ,
                "packing": packing,
                "seed": 0,
                "mixture_window": 1000,
                "sources": [{"name": n} for n in SOURCES],
                "phases": [{"samples": None, "weights": list(WEIGHTS.values())}],
                "shards": [{"path": str(shard), "dtype": "uint16", "tokens": total}],
            }
            t = time.perf_counter()
            index = _core.SampleIndex(json.dumps(spec), docs)
            index.batch(0, BATCH)  # the first batch builds every source's first epoch order
            out[packing] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ds_path = dataset()
    ds = shardforge.open_dataset(ds_path)
    print(f"dataset: {ds.num_tokens:,} tokens, {len(ds):,} documents, {len(ds.shards)} shards")

    engines: dict[str, Callable[[], Any] | None] = {
        "numpy memmap (floor)": memmap_floor(ds_path),
        "shardforge concat": shardforge_loader(ds_path, "concat", False),
        "shardforge best_fit": shardforge_loader(ds_path, "best_fit", False),
        "shardforge concat + repeat filter": shardforge_loader(ds_path, "concat", True),
        "litdata TokensLoader": litdata_reader(ds_path),
    }
    rates: dict[str, float] = {}
    for name, make in engines.items():
        if make is None:
            print(f"{name:36s} not installed")
            continue
        rates[name] = timed(make, args.batches, args.repeats)
    floor = rates["numpy memmap (floor)"]
    print(f"\n{BATCH} x {SEQ} tokens per batch, one process, median of {args.repeats}")
    print(f"{'reader':36s} {'M tokens/s':>11s} {'vs floor':>9s} {'sf concat vs it':>16s}")
    for name, r in rates.items():
        vs = rates["shardforge concat"] / r
        print(f"{name:36s} {r / 1e6:11.1f} {r / floor:8.2f}x {vs:15.2f}x")

    b = index_build()
    print(
        f"\nindex build, {b['tokens'] / 1e9:.2f} B tokens in {b['documents'] / 1e6:.1f} M documents, "
        f"3 sources: concat {b['concat']:.2f} s, best_fit {b['best_fit']:.2f} s"
    )
    result = {"rates": rates, "index_build": b, "cpus": os.cpu_count()}
    (OUT / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
