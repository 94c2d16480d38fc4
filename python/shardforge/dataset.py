"""Reading a token dataset (DESIGN §3): the manifest, the document tables through DuckDB, and
zero-copy NumPy views of any document's tokens from the memory-mapped shards."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.dedup import PathLike

DTYPES: dict[str, np.dtype[Any]] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


@dataclass(frozen=True)
class VerifyReport:
    shards: int
    documents: int
    tokens: int
    bytes: int


def verify(path: PathLike) -> VerifyReport:
    """Check every file of the dataset against the manifest (sizes, xxh3 checksums, offsets, EOS at
    every document end, ids inside the vocabulary). Raises `CorruptDatasetError` naming the file
    and offset of the first problem."""
    return VerifyReport(**json.loads(_core.verify_dataset(os.fspath(path))))


class Dataset:
    """An opened token dataset. Documents are numbered in shard order from 0."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        raw = manifest_path.read_bytes()
        # Identifies the dataset's content: the manifest holds every file's checksum.
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            self.manifest: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _core.CorruptDatasetError(f"{manifest_path}: corrupt: not JSON: {e}") from e
        if self.manifest.get("format") != "shardforge.tokens":
            raise _core.CorruptDatasetError(f"{manifest_path}: corrupt: not a shardforge token dataset")
        self.dtype: np.dtype[Any] = DTYPES[self.manifest["dtype"]]
        self.shards: list[dict[str, Any]] = self.manifest["shards"]
        self.eos_id: int = self.manifest["special_ids"]["eos"]
        self._first_doc = [0]
        for s in self.shards:
            self._first_doc.append(self._first_doc[-1] + s["documents"])
        self._maps: dict[int, np.memmap[Any, np.dtype[Any]]] = {}
        self._tables: dict[int, tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]] = {}

    def __len__(self) -> int:
        return self._first_doc[-1]

    @property
    def num_tokens(self) -> int:
        return int(self.manifest["totals"]["tokens"])

    def table_files(self) -> list[str]:
        return [str(self.path / s["table_file"]) for s in self.shards]

    def shard_tokens(self, shard: int) -> npt.NDArray[Any]:
        """All ids of one shard, memory-mapped read-only."""
        if shard not in self._maps:
            s = self.shards[shard]
            self._maps[shard] = np.memmap(
                self.path / s["tokens_file"], dtype=self.dtype, mode="r", shape=(s["tokens"],)
            )
        return self._maps[shard]

    def _table(self, shard: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]:
        if shard not in self._tables:
            cols = (
                duckdb.connect()
                .execute("SELECT token_offset, n_tokens FROM read_parquet(?)", [self.table_files()[shard]])
                .fetchnumpy()
            )
            self._tables[shard] = (cols["token_offset"], cols["n_tokens"])
        return self._tables[shard]

    def locate(self, doc: int) -> tuple[int, int, int]:
        """`(shard, token_offset, n_tokens)` of document `doc`."""
        if not 0 <= doc < len(self):
            raise IndexError(f"document {doc} out of range (the dataset has {len(self)})")
        shard = bisect.bisect_right(self._first_doc, doc) - 1
        offsets, lens = self._table(shard)
        row = doc - self._first_doc[shard]
        return shard, int(offsets[row]), int(lens[row])

    def tokens(self, doc: int) -> npt.NDArray[Any]:
        """The ids of document `doc` (ending with EOS): a zero-copy view into the mapped shard."""
        shard, off, n = self.locate(doc)
        return self.shard_tokens(shard)[off : off + n]

    def documents(self) -> dict[str, npt.NDArray[Any]]:
        """The whole document table (every shard, in order) as NumPy columns."""
        return self.connect().execute("SELECT * FROM docs ORDER BY shard, token_offset").fetchnumpy()

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the views `docs` (every document table, plus its `shard`
        number) and `shards` (one row per shard from the manifest)."""
        con = con or duckdb.connect()
        files = ", ".join(_sql_str(f) for f in self.table_files())
        if files:
            con.execute(
                f"CREATE OR REPLACE VIEW docs AS SELECT * EXCLUDE (filename), "
                f"CAST(regexp_extract(filename, '(\\d+)\\.parquet$', 1) AS INTEGER) AS shard "
                f"FROM read_parquet([{files}], filename = true)"
            )
        else:
            con.execute(
                "CREATE OR REPLACE VIEW docs AS SELECT NULL::VARCHAR AS doc_id, "
                "NULL::UBIGINT AS token_offset, NULL::UINTEGER AS n_tokens, NULL::VARCHAR AS source, "
                "NULL::INTEGER AS shard WHERE false"
            )
        rows = [
            (s["index"], s["tokens_file"], s["table_file"], s["documents"], s["tokens"], s["tokens_bytes"])
            for s in self.shards
        ]
        con.execute(
            "CREATE OR REPLACE TABLE shards (shard INTEGER, tokens_file VARCHAR, table_file VARCHAR, "
            "documents UBIGINT, tokens UBIGINT, tokens_bytes UBIGINT)"
        )
        if rows:
            con.executemany("INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?)", rows)
        return con

    def stats(self) -> dict[str, Any]:
        """Tokens and documents per source, tokens-per-document quantiles and a length histogram."""
        con = self.connect()
        per_source = con.sql(
            "SELECT source, count(*) AS documents, sum(n_tokens)::UBIGINT AS tokens "
            "FROM docs GROUP BY 1 ORDER BY tokens DESC"
        ).fetchall()
        q = con.sql("SELECT quantile_disc(n_tokens, [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]) FROM docs").fetchall()
        hist = con.sql(
            "SELECT floor(log2(n_tokens))::INTEGER AS b, count(*) FROM docs GROUP BY 1 ORDER BY 1"
        ).fetchall()
        quantiles = dict(
            zip(["min", "p10", "p50", "p90", "p99", "max"], q[0][0] if q and q[0][0] else [], strict=False)
        )
        return {
            "documents": len(self),
            "tokens": self.num_tokens,
            "shards": len(self.shards),
            "per_source": [{"source": s, "documents": d, "tokens": t} for s, d, t in per_source],
            "tokens_per_doc": quantiles,
            "histogram": [{"from": 2**b, "to": 2 ** (b + 1) - 1, "documents": n} for b, n in hist],
        }

    def verify(self) -> VerifyReport:
        return verify(self.path)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def open_dataset(path: PathLike) -> Dataset:
    """Open the token dataset directory `path` (reads only the manifest until asked for more)."""
    return Dataset(path)
