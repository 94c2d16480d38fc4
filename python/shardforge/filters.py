"""Heuristic quality rules (Gopher quality and repetition, C4, FineWeb), computed in Rust in one
pass per document. Every rule's statistic is kept, so a corpus is tagged once and filtered many
times: `stats.parquet` is a table DuckDB reads, e.g.
`SELECT * FROM 'out/stats.parquet' WHERE gopher_alpha_words < 0.8`.

A config is a nested dict (or a JSON/TOML file of one) with the families `gopher_repetition`,
`gopher_quality`, `c4` and `fineweb`; each has `enabled` and its thresholds, and a threshold set
to None switches that one rule off. The defaults are the published ones (see docs/filters.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.config import OutputFormat
from shardforge.dedup import PathLike, ProgressFn, as_list

FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


@dataclass(frozen=True)
class FilterResult:
    """The rules' findings for a batch of texts: `stats[i, j]` is statistic `names[j]` of text i,
    `failed[i]` the rules text i failed (empty: kept), `texts[i]` its text after C4's line
    removals (None when unchanged)."""

    names: list[str]
    stats: npt.NDArray[np.float64]
    failed: list[list[str]]
    texts: list[str | None]

    @property
    def kept(self) -> npt.NDArray[np.bool_]:
        return np.array([not f for f in self.failed], dtype=bool)

    def stat(self, name: str) -> npt.NDArray[np.float64]:
        """One statistic's column."""
        return self.stats[:, self.names.index(name)]


def check_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The config with unknown families named clearly (the Rust side checks the fields)."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(FAMILIES))
    if unknown:
        raise _core.ConfigError(f"unknown filter families {unknown}; known: {list(FAMILIES)}")
    return config


def filter_texts(texts: Sequence[str], config: dict[str, Any] | None = None) -> FilterResult:
    """Apply the rules to `texts` (in parallel, one call)."""
    names, stats, failed, edited = _core.filter_texts(list(texts), json.dumps(check_config(config)))
    return FilterResult(names, stats, failed, edited)


def filter_files(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    config: dict[str, Any] | None = None,
    *,
    action: Literal["drop", "tag"] = "drop",
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: Literal["raise", "skip"] = "raise",
    output_format: OutputFormat = "input",
    threads: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Tag every document of `inputs` (files, directories, globs of .jsonl, .jsonl.gz, .jsonl.zst,
    .parquet) and write into `output`: the documents that pass, in the input's format under the
    input's name (or as Parquet with `output_format="parquet"`), with C4's line removals applied
    (`tag` writes every document unchanged); `stats.parquet` (file, line, doc_id, kept, edited,
    chars, failed, one column per statistic), `removed_lines.parquet` (file, line, doc_id,
    doc_line, reason, text), `rejects.jsonl` and `report.json`. A rerun skips files finished for
    the same config. Returns the report."""
    job: dict[str, Any] = {
        "filter": check_config(config),
        "action": action,
        "fields": {"text_field": text_field, "id_field": id_field, "key_field": None, "carry": []},
        "on_error": on_error,
        "output_format": output_format,
        "threads": threads,
    }
    report = _core.filter_files(as_list(inputs), os.fspath(output), json.dumps(job), progress)
    result: dict[str, Any] = json.loads(report)
    return result
