"""Exact and MinHash-LSH near-duplicate removal: the file-to-file job and in-memory functions."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.config import (
    DedupConfig,
    FieldConfig,
    KeepPolicy,
    MinHashScheme,
    NormalizeConfig,
    OnError,
    OutputFormat,
    SketchConfig,
    SketchMethod,
    VerifyMode,
    parse_size,
)

PathLike = str | os.PathLike[str]
ProgressFn = Callable[[int, int, int, int, int], object]
STAGES = ("starting", "sketching", "clustering", "writing", "done")


@dataclass(frozen=True)
class Report:
    """What a dedup run did. `raw` holds the whole JSON report (also written as `report.json`)."""

    files: int
    files_resumed: int
    outputs_resumed: int
    docs_in: int
    docs_out: int
    exact_duplicates: int
    near_duplicates: int
    rejects: int
    incomplete_files: int
    clusters: int
    largest_cluster: int
    candidate_pairs: int
    joined_pairs: int
    input_bytes: int
    text_bytes_in: int
    text_bytes_out: int
    index_bytes_per_doc: float
    resident_bytes_per_doc: float
    peak_rss_bytes: int
    threads: int
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, text: str) -> Report:
        return report_from_json(cls, text)


ReportT = TypeVar("ReportT")


def report_from_json(cls: type[ReportT], text: str) -> ReportT:
    """A report dataclass from the core's JSON: its named fields, and the whole object as `raw`."""
    data = json.loads(text)
    names = {f.name for f in fields(cls)} - {"raw"}  # type: ignore[arg-type]
    make: Callable[..., ReportT] = cls
    return make(**{k: data[k] for k in names}, raw=data)


def make_config(
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    key_field: str | None = None,
    method: SketchMethod = "classic",
    scheme: MinHashScheme = "affine32",
    num_perm: int = 128,
    ngram: int = 5,
    seed: int = 1,
    threshold: float = 0.8,
    bands: int | None = None,
    rows: int | None = None,
    exact: bool = True,
    near: bool = True,
    verify: VerifyMode = "none",
    keep: KeepPolicy = "first",
    on_error: OnError = "raise",
    output_format: OutputFormat = "input",
    lowercase: bool = True,
    strip_punctuation: bool = True,
    fold_digits: bool = False,
    nfkc: bool = False,
    memory_budget: int | str = "4GB",
    threads: int | None = None,
) -> DedupConfig:
    """Build a `DedupConfig` from flat keyword options (the ones `dedup` and the CLI take)."""
    return DedupConfig(
        fields=FieldConfig(text_field=text_field, id_field=id_field, key_field=key_field),
        sketch=SketchConfig(
            method=method,
            scheme=scheme,
            num_perm=num_perm,
            ngram=ngram,
            seed=seed,
            normalize=NormalizeConfig(
                lowercase=lowercase, strip_punctuation=strip_punctuation, fold_digits=fold_digits, nfkc=nfkc
            ),
        ),
        exact=exact,
        near=near,
        threshold=threshold,
        bands=bands,
        rows=rows,
        verify=verify,
        keep=keep,
        on_error=on_error,
        output_format=output_format,
        memory_budget=parse_size(memory_budget),
        threads=threads,
    )


def as_list(inputs: PathLike | Iterable[PathLike]) -> list[str]:
    """One path or many → a list of strings, the form the core takes."""
    if isinstance(inputs, str | os.PathLike):
        return [os.fspath(inputs)]
    return [os.fspath(p) for p in inputs]


def dedup(
    inputs: PathLike | Iterable[PathLike],
    output: PathLike,
    *,
    config: DedupConfig | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> Report:
    """Remove exact and near duplicates from `inputs` (files, directories, globs of .jsonl,
    .jsonl.gz, .jsonl.zst, .parquet) into the directory `output`.

    Writes the kept records in the input's format under the same names (or, with
    `output_format="parquet"`, JSONL inputs converted to `<stem>.parquet`: an id column holding
    the doc id, the text, then every other field), `clusters.parquet` (doc_id, file, line,
    cluster_id, cluster_size, kept, reason), `rejects.jsonl` and `report.json`. A rerun after an
    interruption reuses finished files. Options are those of `make_config`, or pass a whole
    `config`.
    """
    if config is not None and options:
        raise TypeError("pass either config= or keyword options, not both")
    cfg = config or make_config(**options)
    report = _core.dedup(as_list(inputs), os.fspath(output), cfg.to_json(), progress)
    return Report.from_json(report)


def _sketch_config(options: dict[str, Any]) -> SketchConfig:
    cfg = make_config(**options)
    return cfg.sketch


def minhash(texts: Sequence[str] | Any, **options: Any) -> npt.NDArray[np.uint32]:
    """MinHash signatures, shape `(len(texts), num_perm)`, of a list of strings or a `pyarrow`
    string array (read zero-copy from its buffers). Options: `method`, `scheme`, `num_perm`,
    `ngram`, `seed` and the normalization switches of `make_config`.

    The classic sketch equals datasketch's `MinHash(num_perm, seed, scheme=scheme)` fed the low 32
    bits of `shingle_hashes(text)` with an identity `hashfunc` (`scheme="datatrove"`: datatrove's
    parameters), so signatures can be compared with theirs."""
    sketch = _sketch_config(options).to_json()
    if type(texts).__module__.startswith("pyarrow"):
        return _minhash_arrow(texts, sketch)
    return _core.minhash(list(texts), sketch)


def _minhash_arrow(array: Any, sketch_json: str) -> npt.NDArray[np.uint32]:
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        parts = [_minhash_arrow(c, sketch_json) for c in array.chunks]
        if not parts:
            return np.zeros((0, json.loads(sketch_json)["num_perm"]), dtype=np.uint32)
        return np.concatenate(parts)
    if array.null_count:
        raise ValueError("the string array has nulls; fill or drop them first")
    if pa.types.is_string(array.type):
        offset_type: Any = np.int32
    elif pa.types.is_large_string(array.type):
        offset_type = np.int64
    else:
        raise TypeError(f"expected a pyarrow string array, got {array.type}")
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return _core.minhash_buffers(data, offsets.astype(np.int64, copy=False), sketch_json)


def lsh_params(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold, as datasketch's `MinHashLSH` picks them."""
    return _core.lsh_params(threshold, num_perm)


def candidate_pairs(signatures: npt.NDArray[np.uint32], bands: int, rows: int) -> npt.NDArray[np.uint32]:
    """Pairs `(i, j)`, `i < j`, of rows of `signatures` that share a band; shape `(m, 2)`."""
    return _core.candidate_pairs(np.ascontiguousarray(signatures, dtype=np.uint32), bands, rows)


def connected_components(n: int, pairs: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """Component label of each of `n` nodes: the smallest node in its component."""
    arr = np.ascontiguousarray(np.asarray(pairs, dtype=np.uint32).reshape(-1, 2))
    return _core.connected_components(n, arr)


@dataclass(frozen=True)
class TextsResult:
    kept: npt.NDArray[np.bool_]
    cluster: npt.NDArray[np.uint32]
    cluster_size: npt.NDArray[np.uint32]
    reason: list[str]
    pairs: npt.NDArray[np.uint32]


def dedup_texts(texts: Sequence[str], *, keys: npt.ArrayLike | None = None, **options: Any) -> TextsResult:
    """Deduplicate in-memory texts with the rules of `dedup`; `keys` feeds `keep="max_column"`."""
    if keys is not None and options.get("keep") == "max_column" and options.get("key_field") is None:
        options["key_field"] = "key"
    cfg = make_config(**options)
    key_arr = None if keys is None else np.ascontiguousarray(keys, dtype=np.float64)
    out = _core.dedup_texts(list(texts), cfg.to_json(), key_arr)
    return TextsResult(
        kept=out["kept"],  # type: ignore[arg-type]
        cluster=out["cluster"],  # type: ignore[arg-type]
        cluster_size=out["cluster_size"],  # type: ignore[arg-type]
        reason=out["reason"],  # type: ignore[arg-type]
        pairs=out["pairs"],  # type: ignore[arg-type]
    )


def normalize_text(text: str, **options: Any) -> str:
    """The normalized form of `text` that shingles and exact hashes are computed on."""
    return _core.normalize_text(text, json.dumps(options_to_normalize(options)))


def options_to_normalize(options: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(NormalizeConfig(**options))


def shingle_hashes(text: str, **options: Any) -> npt.NDArray[np.uint64]:
    """Sorted, distinct xxh3-64 hashes of the word n-grams of `text` (the exact Jaccard set)."""
    return _core.shingle_hashes(text, _sketch_config(options).to_json())
