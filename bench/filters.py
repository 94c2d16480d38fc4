"""Heuristic quality rules, side by side: shardforge's Gopher + C4 + FineWeb rules against
datatrove's GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter
(default thresholds on both sides) on the same real documents, one core each.

Prints documents per second, the speed ratio, and keep/drop agreement per rule family and for the
whole chain; every disagreement goes to bench/out/filters_disagreements.jsonl with both sides'
reasons so it can be read and explained.

    python bench/filters.py [--docs-per-file 300] [--corpus demo/corpus]
"""

from __future__ import annotations

import os

# One core on our side too: the global rayon pool reads this when it starts.
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import argparse
import gzip
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
OURS = {
    "gopher_repetition": ("gopher_empty", "gopher_dup", "gopher_top"),
    "gopher_quality": (
        "gopher_short_doc",
        "gopher_long_doc",
        "gopher_short_words",
        "gopher_long_words",
        "gopher_hashes",
        "gopher_ellipsis",
        "gopher_bullet_lines",
        "gopher_ellipsis_lines",
        "gopher_alpha_words",
        "gopher_stop_words",
    ),
    "c4": ("c4_",),
    "fineweb": ("fineweb_",),
}


def read_sample(corpus: Path, per_file: int) -> list[tuple[str, int, str]]:
    """(file, line, text) of the first `per_file` documents of each corpus file."""
    out = []
    for path in sorted(corpus.iterdir()):
        name = path.name
        if name.endswith(".jsonl"):
            f: Any = open(path, encoding="utf-8")
        elif name.endswith(".jsonl.gz"):
            f = gzip.open(path, "rt", encoding="utf-8")
        elif name.endswith(".jsonl.zst"):
            import zstandard

            f = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), "utf-8")
        else:
            continue
        with f:
            for i, line in enumerate(f, 1):
                if i > per_file:
                    break
                out.append((name, i, json.loads(line)["text"]))
    return out


def family_failed(failed: list[str], family: str) -> list[str]:
    return [r for r in failed if r.startswith(OURS[family])]


def run_datatrove(texts: list[str]) -> tuple[list[dict[str, str | None]], list[str | None], float]:
    """datatrove's four filters as its pipeline runs them (the tokenization cache shared between
    filters of one document): per document each family's reason (None: kept) on the original text,
    FineWeb's on C4's output; and the chain's time (stopping at the first drop, as a pipeline does)."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.utils.text import split_into_words

    split_into_words("Warm up the tokenizer. Done.")
    rep, qual, c4, fw = (
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        FineWebQualityFilter(),
    )

    def reason(r: Any) -> str | None:
        if isinstance(r, tuple):
            return None if r[0] else str(r[1])
        return None if r else "dropped"

    t0 = time.perf_counter()
    for i, t in enumerate(texts):
        doc = Document(text=t, id=str(i))
        for flt in (rep, qual, c4, fw):
            if reason(flt.filter(doc)) is not None:
                break
    chain_s = time.perf_counter() - t0

    decisions: list[dict[str, str | None]] = []
    c4_texts: list[str | None] = []
    for i, t in enumerate(texts):
        d: dict[str, str | None] = {}
        for name, flt in (("gopher_repetition", rep), ("gopher_quality", qual)):
            d[name] = reason(flt.filter(Document(text=t, id=str(i))))
        doc = Document(text=t, id=str(i))
        d["c4"] = reason(c4.filter(doc))
        c4_texts.append(doc.text if d["c4"] is None else None)
        d["fineweb"] = reason(fw.filter(doc)) if d["c4"] is None else None
        decisions.append(d)
    return decisions, c4_texts, chain_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("demo/corpus"))
    ap.add_argument("--docs-per-file", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of our side (median)")
    args = ap.parse_args()
    if not args.corpus.exists():
        subprocess.run([sys.executable, "-m", "shardforge", "corpus", str(args.corpus)], check=True)

    from shardforge.filters import filter_texts

    sample = read_sample(args.corpus, args.docs_per_file)
    texts = [t for _, _, t in sample]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"{len(texts):,} documents, {mb:.1f} MB, from {args.corpus}")

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ours = filter_texts(texts)
        times.append(time.perf_counter() - t0)
    ours_s = statistics.median(times)

    theirs, c4_texts, theirs_s = run_datatrove(texts)
    print(f"\n{'':<28}{'docs/s':>12}{'MB/s':>10}")
    print(f"{'shardforge (all rules)':<28}{len(texts) / ours_s:>12,.0f}{mb / ours_s:>10.2f}")
    print(f"{'datatrove (chain)':<28}{len(texts) / theirs_s:>12,.1f}{mb / theirs_s:>10.3f}")
    print(f"speed ratio (one core each): {theirs_s / ours_s:.1f}x")

    # FineWeb on the text C4 left, on both sides, where both C4s kept the document.
    fw_idx = [i for i, t in enumerate(c4_texts) if t is not None and not family_failed(ours.failed[i], "c4")]
    fw_ours = filter_texts(
        [c4_texts[i] or "" for i in fw_idx],
        {
            "gopher_repetition": {"enabled": False},
            "gopher_quality": {"enabled": False},
            "c4": {"enabled": False},
        },
    )
    disagreements = []
    print(f"\n{'family':<20}{'docs':>7}{'agree':>8}{'dropped (us / them)':>24}")
    for fam in FAMILIES:
        idx = fw_idx if fam == "fineweb" else range(len(texts))
        agree = n = drop_us = drop_them = 0
        for k, i in enumerate(idx):
            ours_failed = fw_ours.failed[k] if fam == "fineweb" else family_failed(ours.failed[i], fam)
            them = theirs[i][fam]
            n += 1
            drop_us += bool(ours_failed)
            drop_them += them is not None
            if bool(ours_failed) == (them is not None):
                agree += 1
            else:
                f, line, _ = sample[i]
                disagreements.append(
                    {"file": f, "line": line, "family": fam, "datatrove": them, "shardforge": ours_failed}
                )
        print(f"{fam:<20}{n:>7,}{agree / max(n, 1):>8.1%}{f'{drop_us} / {drop_them}':>24}")
    chain_agree = sum(
        (not ours.failed[i]) == all(theirs[i][f] is None for f in FAMILIES) for i in range(len(texts))
    )
    print(f"{'whole chain':<20}{len(texts):>7,}{chain_agree / len(texts):>8.1%}")
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "filters_disagreements.jsonl", "w") as fh:
        for d in disagreements:
            fh.write(json.dumps(d) + "\n")
    print(f"\n{len(disagreements)} disagreements written to {out / 'filters_disagreements.jsonl'}")


if __name__ == "__main__":
    main()
