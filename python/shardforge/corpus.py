"""Gather a real corpus from text already on the machine: the CPython standard library, Debian's
copyright files, changelogs and man pages, and the common licenses. No download.

Written as JSONL (plain, gzip and, when `zstandard` is installed, zstd) so the demo exercises every
reader; one record per file: {"id", "source", "path", "text"}.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _read(path: str) -> str | None:
    try:
        if path.endswith(".gz"):
            with gzip.open(path) as f:
                data = f.read()
        else:
            data = Path(path).read_bytes()
    except (OSError, EOFError):
        return None
    return data.decode("utf-8", errors="replace")


def _files(pattern: str, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for path in sorted(glob.glob(pattern, recursive=True)):
        real = os.path.realpath(path)
        if os.path.islink(path) or not os.path.isfile(path) or real in seen or any(s in path for s in skip):
            continue
        seen.add(real)
        text = _read(path)
        if text and text.strip():
            yield path, text


def sources() -> Iterator[tuple[str, str, Iterator[tuple[str, str]]]]:
    """(name, file suffix, documents) for each source that exists on this machine."""
    stdlib = sysconfig.get_paths()["stdlib"]
    yield "cpython_stdlib", ".jsonl", _files(stdlib + "/**/*.py", skip=("/site-packages/",))
    yield "debian_copyright", ".jsonl", _files("/usr/share/doc/*/copyright")
    yield "common_licenses", ".jsonl", _files("/usr/share/common-licenses/*")
    yield "debian_changelogs", ".jsonl.gz", _files("/usr/share/doc/*/changelog*.gz")
    yield "manpages", ".jsonl.zst", _files("/usr/share/man/man*/*.gz")


def _open(path: Path, final: Path) -> IO[bytes]:
    """Open the temporary `path` with the compression that the `final` name calls for."""
    if final.name.endswith(".gz"):
        return gzip.GzipFile(path, "wb", compresslevel=3)  # type: ignore[return-value]
    if final.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"))
    return open(path, "wb")


def gather(
    out_dir: str | os.PathLike[str], *, max_docs_per_source: int | None = None, verbose: bool = True
) -> dict[str, int]:
    """Write the corpus into `out_dir` (skipped if a previous gather with the same limit finished);
    returns docs per source. `max_docs_per_source` keeps the first documents of each source, in
    sorted path order: a small real sample."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = out / ".gathered.json"
    if done.exists():
        previous = json.loads(done.read_text())
        if previous.get("max_docs_per_source") == max_docs_per_source and "counts" in previous:
            counts: dict[str, int] = previous["counts"]
            if verbose:
                print(f"corpus already gathered in {out} ({sum(counts.values()):,} docs)")
            return counts
        done.unlink()
    try:
        import zstandard  # noqa: F401

        have_zstd = True
    except ImportError:
        have_zstd = False
    counts = {}
    for name, suffix, docs in sources():
        if suffix == ".jsonl.zst" and not have_zstd:
            suffix = ".jsonl.gz"
        path = out / f"{name}{suffix}"
        tmp = path.with_name("." + path.name + ".tmp")
        n = size = 0
        with _open(tmp, path) as f:
            for src, text in docs:
                if max_docs_per_source is not None and n >= max_docs_per_source:
                    break
                rec = {"id": f"{name}/{n}", "source": name, "path": src, "text": text}
                f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
                n += 1
                size += len(text.encode())
        os.replace(tmp, path)
        counts[name] = n
        if verbose:
            print(f"  {name:20s} {n:7,d} docs {size / 1e6:8.1f} MB  -> {path.name}")
    done.write_text(json.dumps({"max_docs_per_source": max_docs_per_source, "counts": counts}))
    return counts
