"""Documents of input files for jobs written in Python (the quality classifier): the same files,
order, output names, line numbers and errors as the Rust reader (rust/core/src/input.rs and
reader.rs), so a rejects file or an error message reads the same whichever job wrote it.

Formats: JSONL (.jsonl, .ndjson, .json), gzip and zstd JSONL (`zstandard` needed for .zst),
Parquet (read with DuckDB).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.config import OutputFormat
from shardforge.dedup import PathLike, as_list

OnError = Literal["raise", "skip"]
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".jsonl.gz": "gz",
    ".json.gz": "gz",
    ".ndjson.gz": "gz",
    ".jsonl.zst": "zst",
    ".json.zst": "zst",
    ".ndjson.zst": "zst",
    ".parquet": "parquet",
}
_MAX_REJECT_RAW = 64 << 10


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: Path
    """Name of this file's output, relative to the output directory."""
    format: str
    """jsonl, gz, zst or parquet."""


@dataclass(frozen=True)
class Doc:
    line: int
    """1-based line (JSONL) or row (Parquet)."""
    id: str
    """The id field, or `<file>:<line>` (the file relative to its input root) without one."""
    text: str


def _split_suffix(name: str) -> tuple[str, str] | None:
    """A file name's stem and the format its suffix (any case) names, if we read it."""
    lower = name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: len(name) - len(suffix)], _SUFFIXES[suffix]
    return None


def _format(path: Path) -> str | None:
    split = _split_suffix(path.name)
    return split[1] if split else None


def output_name(rel: Path, output_format: str) -> Path:
    """The name a job writes input `rel` under: `rel` itself, or with `output_format="parquet"` a
    JSONL file's `<stem>.parquet` (the Rust jobs' rule)."""
    split = _split_suffix(rel.name)
    if output_format != "parquet" or split is None or split[1] == "parquet":
        return rel
    return rel.with_name(split[0] + ".parquet")


def is_document(path: Path) -> bool:
    """Whether `path` has a document format the readers take (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)."""
    return _format(path) is not None


def discover(inputs: PathLike | Iterable[PathLike]) -> list[InputFile]:
    """Files, directories (walked, hidden names skipped) and globs → the sorted files to read.
    Output names keep the structure below a directory input; files and glob matches keep their name."""
    found: dict[Path, Path] = {}
    for item in as_list(inputs):
        if any(c in item for c in "*?["):
            matches = [Path(p) for p in sorted(glob(item)) if os.path.isfile(p) and _format(Path(p))]
            if not matches:
                raise _core.NoInputError(f"{item!r} matches no .jsonl/.jsonl.gz/.jsonl.zst/.parquet file")
            found.update((p, Path(p.name)) for p in matches)
            continue
        path = Path(item)
        if path.is_dir():
            before = len(found)
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    p = Path(root) / name
                    if not name.startswith(".") and _format(p):
                        found[p] = p.relative_to(path)
            if len(found) == before:
                raise _core.NoInputError(
                    f"directory {item!r} holds no .jsonl/.jsonl.gz/.jsonl.zst/.parquet file"
                )
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        elif _format(path):
            found[path] = Path(path.name)
        else:
            raise _core.ConfigError(
                f"{item}: unsupported file type (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)"
            )
    if not found:
        raise _core.NoInputError("no inputs given")
    by_rel: dict[Path, Path] = {}
    for path, rel in sorted(found.items()):
        if rel in by_rel:
            raise _core.ConfigError(
                f"{by_rel[rel]} and {path} would both be written as {rel}; pass their common directory"
            )
        by_rel[rel] = path
    return [InputFile(path, rel, _format(path) or "") for path, rel in sorted(found.items())]


class TruncatedStreamError(Exception):
    """A compressed stream ends early or is corrupt (internal; surfaces as TruncatedInputError)."""


def _zstd_chunks(f: IO[bytes]) -> Iterator[bytes]:
    """Decompressed bytes of every zstd frame. zstandard's stream reader ends silently inside a cut
    frame, so frames are decoded one by one and a frame left open is an error."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    open_frame = False
    while chunk := f.read(1 << 20):
        while chunk:
            open_frame = True
            try:
                out = obj.decompress(chunk)
            except zstandard.ZstdError as e:
                raise TruncatedStreamError(str(e)) from e
            if out:
                yield out
            if obj.eof:
                chunk, obj, open_frame = obj.unused_data, dctx.decompressobj(), False
            else:
                chunk = b""
    if open_frame:
        raise TruncatedStreamError("the stream ends inside a zstd frame")


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def raw_lines(inp: InputFile) -> Generator[bytes, None, None]:
    """The lines of a JSONL file without their newline; `TruncatedStreamError` where a compressed
    stream is cut or corrupt (a partial last line is part of the cut)."""
    with open(inp.path, "rb") as f:
        if inp.format == "jsonl":
            for line in f:
                yield line.rstrip(b"\n")
        elif inp.format == "gz":
            with gzip.GzipFile(fileobj=f) as g:
                try:
                    for line in g:
                        yield line.rstrip(b"\n")
                except (EOFError, gzip.BadGzipFile, zlib.error) as e:
                    raise TruncatedStreamError(str(e) or type(e).__name__) from e
        else:
            yield from _split_lines(_zstd_chunks(f))


class Rejects:
    """Bad records: raised at once (`on_error="raise"`) or kept as rejects.jsonl records (file,
    line, kind, error, raw)."""

    def __init__(self, on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise _core.ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.on_error = on_error
        self.records: list[dict[str, Any]] = []

    def add(self, exc: _core.ShardforgeError, kind: str, path: Path, line: int | None, raw: bytes) -> None:
        if self.on_error == "raise":
            raise exc
        raw_text = raw[:_MAX_REJECT_RAW].decode("utf-8", "replace")
        self.records.append(
            {"file": str(path), "line": line, "kind": kind, "error": str(exc), "raw": raw_text}
        )

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records)


def _json_kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


def _parse_line(
    inp: InputFile, line: int, raw: bytes, text_field: str, id_field: str | None, rejects: Rejects
) -> Doc | None:
    """One JSONL line → a document; blank lines are not records."""
    if not raw.strip():
        return None
    path = inp.path

    def bad(kind: str, message: str) -> None:
        rejects.add(_core.MalformedRecordError(f"{path}:{line}: {message}"), kind, path, line, raw)

    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        bad("invalid_utf8", f"invalid UTF-8 at byte {e.start} of the line")
        return None
    except ValueError as e:
        bad("malformed_json", f"malformed JSON: {e}")
        return None
    if not isinstance(rec, dict):
        bad("malformed_json", f"malformed JSON: expected an object, found {_json_kind(rec)}")
        return None
    text = rec.get(text_field)
    if not isinstance(text, str):
        if text_field in rec:
            bad("bad_field", f"text field {json.dumps(text_field)} is {_json_kind(text)}, not a string")
        else:
            bad("bad_field", f"missing text field {json.dumps(text_field)}")
        return None
    doc_id = rec.get(id_field) if id_field else None
    if doc_id is None:
        doc_id = _generated_id(inp, line)
    elif isinstance(doc_id, bool) or not isinstance(doc_id, str | int | float):
        bad("bad_field", f"id field {json.dumps(id_field)} is {_json_kind(doc_id)}, not a string or number")
        return None
    return Doc(line, str(doc_id), text)


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _generated_id(inp: InputFile, line: int) -> str:
    """The id of a record without one: its file relative to the input root, and its line."""
    return f"{inp.rel.as_posix()}:{line}"


def _parquet_docs(
    inp: InputFile, text_field: str, id_field: str | None, rejects: Rejects, batch_rows: int = 4096
) -> Iterator[Doc]:
    import duckdb

    path = inp.path
    con = duckdb.connect()
    try:
        src = f"read_parquet({_sql_str(path)}, file_row_number = true)"
        cols = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {src})").fetchall()
        )
        if cols.get(text_field) != "VARCHAR":
            what = "no column" if text_field not in cols else f"{cols[text_field]}, not a string, in column"
            raise _core.ParquetError(f"{path}: parquet: {what} {json.dumps(text_field)}")
        id_sql = f'CAST("{id_field}" AS VARCHAR)' if id_field and id_field in cols else "NULL"
        # File order is kept (DuckDB preserves insertion order); the line comes from the file anyway.
        cur = con.execute(f'SELECT file_row_number, "{text_field}", {id_sql} FROM {src}')
        while rows := cur.fetchmany(batch_rows):
            for row_number, text, doc_id in rows:
                line = int(row_number) + 1
                if text is None:
                    err = _core.MalformedRecordError(
                        f"{path}:{line}: text field {json.dumps(text_field)} is null"
                    )
                    rejects.add(err, "bad_field", path, line, b"")
                    continue
                yield Doc(line, doc_id if doc_id is not None else _generated_id(inp, line), text)
    except duckdb.Error as e:
        raise _core.ParquetError(f"{path}: parquet: {e}") from e
    finally:
        con.close()


def iter_documents(
    inp: InputFile,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    rejects: Rejects | None = None,
) -> Iterator[Doc]:
    """The documents of one input file, in order; bad records go to `rejects` (default: raise)."""
    rejects = rejects if rejects is not None else Rejects("raise")
    if inp.format == "parquet":
        yield from _parquet_docs(inp, text_field, id_field, rejects)
        return
    line = 0
    try:
        with closing(raw_lines(inp)) as lines:
            for raw in lines:
                line += 1
                doc = _parse_line(inp, line, raw, text_field, id_field, rejects)
                if doc is not None:
                    yield doc
    except TruncatedStreamError as e:
        msg = f"{inp.path}: compressed stream is truncated or corrupt after line {line}: {e}"
        rejects.add(_core.TruncatedInputError(msg), "truncated", inp.path, line, b"")


def _open_out(path: Path, fmt: str) -> IO[bytes]:
    if fmt == "gz":
        return gzip.GzipFile(path, "wb", compresslevel=6)  # type: ignore[return-value]
    if fmt == "zst":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb"))
    return open(path, "wb")


def write_selected(
    inp: InputFile,
    dst: Path,
    lines: npt.NDArray[np.int64],
    *,
    output_format: OutputFormat = "input",
    text_field: str = "text",
    id_field: str | None = "id",
) -> None:
    """Copy the records at the sorted 1-based `lines` of `inp` to `dst`, atomically: JSONL byte for
    byte in the input's compression, Parquet row for row with the input's schema. With
    `output_format="parquet"` a JSONL input is converted by the Rust jobs' writer (the same
    columns `dedup --output-format parquet` writes); name `dst` with `output_name`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if output_format == "parquet" and inp.format != "parquet":
        _core.write_kept(
            os.fspath(inp.path),
            os.fspath(inp.rel),
            lines.tolist(),
            os.fspath(dst),
            output_format,
            text_field,
            id_field,
        )
        return
    tmp = dst.with_name("." + dst.name + ".tmp")
    if inp.format == "parquet":
        import duckdb

        con = duckdb.connect()
        try:
            con.register("keep_rows", {"r": np.asarray(lines, dtype=np.int64) - 1})
            con.execute(
                f"COPY (SELECT * EXCLUDE (file_row_number) FROM read_parquet({_sql_str(inp.path)}, "
                "file_row_number = true) WHERE file_row_number IN (SELECT r FROM keep_rows)) "
                f"TO {_sql_str(tmp)} (FORMAT parquet)"
            )
        finally:
            con.close()
    else:
        wanted = iter(lines.tolist())
        nxt = next(wanted, None)
        with _open_out(tmp, inp.format) as out, closing(raw_lines(inp)) as raws:
            try:
                for line, raw in enumerate(raws, start=1):
                    if nxt is None:
                        break
                    if line == nxt:
                        out.write(raw + b"\n")
                        nxt = next(wanted, None)
            except TruncatedStreamError:
                pass  # reading the documents reported it; the records before the cut are copied
    os.replace(tmp, dst)
