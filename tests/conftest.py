"""Shared fixtures: real text from this machine (the CPython standard library and Debian's copyright
files), small generated inputs in every format, and helpers for exact Jaccard."""

from __future__ import annotations

import glob
import json
import os
import random
import sysconfig
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

# Triton kernels run on CPU under Triton's interpreter, which is chosen when triton is first
# imported. `TRITON_INTERPRET=0 pytest` runs them on a GPU instead.
os.environ.setdefault("TRITON_INTERPRET", "1")


def real_documents(limit: int, seed: int = 0) -> list[str]:
    """Up to `limit` real documents: CPython stdlib modules and Debian copyright files."""
    stdlib = sysconfig.get_paths()["stdlib"]
    paths = sorted(glob.glob(stdlib + "/*.py")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
    random.Random(seed).shuffle(paths)
    docs = []
    for p in paths:
        try:
            text = Path(p).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if len(text.split()) >= 30:
            docs.append(text[:20000])
        if len(docs) == limit:
            break
    return docs


def mutate(text: str, rate: float, rng: random.Random) -> str:
    """Replace, delete or insert words at `rate`: a near duplicate of controlled distance."""
    out = []
    for w in text.split():
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(f"edit{rng.randrange(10**6)}")
            continue
        out.append(w)
        if r < rate:
            out.append(f"ins{rng.randrange(10**6)}")
    return " ".join(out)


def exact_pairs(sets: list[set[int]], threshold: float) -> dict[tuple[int, int], float]:
    """All pairs with exact Jaccard ≥ threshold, by brute force over an inverted index."""
    postings: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for h in s:
            postings[h].append(i)
    inter: dict[tuple[int, int], int] = defaultdict(int)
    for docs in postings.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                inter[(docs[a], docs[b])] += 1
    out = {}
    for (a, b), n in inter.items():
        j = n / (len(sets[a]) + len(sets[b]) - n)
        if j >= threshold:
            out[(a, b)] = j
    return out


def write_jsonl(path: Path, records: Sequence[Mapping[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    if path.name.endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def real_docs() -> list[str]:
    return real_documents(300)
