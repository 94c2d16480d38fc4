"""JSONL → Parquet, side by side: shardforge's `--output-format parquet` write stage against DuckDB's
`COPY (SELECT * FROM read_json_auto(...)) TO ... (FORMAT parquet)` and pyarrow's JSON reader plus
Parquet writer, on the same real records, one thread each. Prints MB/s of JSONL converted, output
size and ratios, and checks the three tables hold the same rows.

    python bench/parquet_output.py [--mb 40] [--corpus DIR] [--reps 5]

The input is one plain JSONL file built from the gathered corpus: its id, source, path and text,
in a seeded random order, plus the kinds of metadata web crawls carry (an int, a float score and a nested object). shardforge
runs the dedup job with exact and near dedup off, so every record is kept and its write stage
(`timings.write_s` of the report) is the conversion alone: two passes over the file, one to infer
the columns and one to fill them. Its byte-for-byte JSONL copy (`output_format="input"`) is shown
as the floor. All writers use zstd at level 3.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# shardforge writes Parquet with zstd level 3; the peers are set to the same.
ZSTD_LEVEL = 3


def build_input(corpus: Path, mb: float, dest: Path) -> int:
    """Write about `mb` MB of the corpus's records, drawn in a seeded random order, to `dest`."""
    import gzip
    import io
    import random

    import zstandard

    lines: list[str] = []
    for path in sorted(corpus.glob("*.jsonl*")):
        if path.name.endswith(".gz"):
            f: io.TextIOBase = gzip.open(path, "rt", encoding="utf-8")
        elif path.name.endswith(".zst"):
            raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
            f = io.TextIOWrapper(raw, encoding="utf-8")
        else:
            f = path.open(encoding="utf-8")
        with f:
            lines.extend(f)
    random.Random(0).shuffle(lines)
    budget = int(mb * 1e6)
    written = 0
    with dest.open("w", encoding="utf-8") as out:
        for line in lines:
            if written >= budget:
                break
            rec = json.loads(line)
            text = rec["text"]
            h = zlib.crc32(text.encode())
            rec["n_lines"] = text.count("\n") + 1
            rec["quality_score"] = (h % 10_000) / 10_000
            rec["meta"] = {"source": rec.get("source"), "chars": len(text), "tags": [f"t{h % 7}", "x"]}
            data = json.dumps(rec) + "\n"
            out.write(data)
            written += len(data.encode())
    return written


def run_shardforge(src: Path, work: Path, output_format: str) -> float:
    import shardforge

    out = work / f"sf-{output_format}"
    shutil.rmtree(out, ignore_errors=True)
    r = shardforge.dedup(src, out, exact=False, near=False, output_format=output_format, threads=1)
    return float(r.raw["timings"]["write_s"])


def run_duckdb(src: Path, work: Path) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    dest = work / "duckdb.parquet"
    t0 = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_json_auto('{src}', maximum_object_size = 1073741824)) "
        f"TO '{dest}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL})"
    )
    return time.perf_counter() - t0


def run_pyarrow(src: Path, work: Path) -> float:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pa.set_cpu_count(1)
    t0 = time.perf_counter()
    table = pj.read_json(src, read_options=pj.ReadOptions(use_threads=False, block_size=64 << 20))
    pq.write_table(table, work / "pyarrow.parquet", compression="zstd", compression_level=ZSTD_LEVEL)
    return time.perf_counter() - t0


def check_same_rows(src: Path, work: Path) -> None:
    """The three Parquet files hold the input's ids, texts and numbers, row for row."""
    import pyarrow.parquet as pq

    ours = pq.read_table(work / "sf-parquet" / "input.parquet")
    theirs = {n: pq.read_table(work / f"{n}.parquet") for n in ("duckdb", "pyarrow")}
    for name, t in theirs.items():
        for col in ("id", "text", "n_lines", "quality_score"):
            assert ours.column(col).to_pylist() == t.column(col).to_pylist(), (name, col)
    first = json.loads(src.open(encoding="utf-8").readline())
    assert json.loads(ours.column("meta")[0].as_py()) == first["meta"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="MB of JSONL to convert (default 40)")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus directory (default: gather one)")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per engine; the median is shown")
    args = ap.parse_args()

    corpus = args.corpus
    if corpus is None:
        from shardforge.corpus import gather

        corpus = HERE / "out" / "corpus"
        gather(corpus, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "input.jsonl"
        size = build_input(corpus, args.mb, src)
        engines: dict[str, Callable[[], float]] = {
            "shardforge parquet": lambda: run_shardforge(src, work, "parquet"),
            "shardforge jsonl copy (floor)": lambda: run_shardforge(src, work, "input"),
            "duckdb read_json_auto → parquet": lambda: run_duckdb(src, work),
            "pyarrow read_json → parquet": lambda: run_pyarrow(src, work),
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        # Interleaved, so drift on a noisy machine hits every engine alike.
        for _ in range(args.reps):
            for name, run in engines.items():
                times[name].append(run())
        check_same_rows(src, work)
        sizes = {
            "shardforge parquet": (work / "sf-parquet" / "input.parquet").stat().st_size,
            "shardforge jsonl copy (floor)": (work / "sf-input" / "input.jsonl").stat().st_size,
            "duckdb read_json_auto → parquet": (work / "duckdb.parquet").stat().st_size,
            "pyarrow read_json → parquet": (work / "pyarrow.parquet").stat().st_size,
        }
        rows = sum(1 for _ in src.open(encoding="utf-8"))

    ours = statistics.median(times["shardforge parquet"])
    print(f"{size / 1e6:.1f} MB of JSONL, {rows:,} records, 1 thread, median of {args.reps}")
    print(f"{'engine':34} {'MB/s':>8} {'output MB':>10} {'shardforge ×':>13}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:34} {size / 1e6 / med:8.1f} {sizes[name] / 1e6:10.1f} {med / ours:13.2f}")
    print("rows, ids, texts and numbers identical across the three Parquet files")


if __name__ == "__main__":
    main()
