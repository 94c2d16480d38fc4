"""Typed configuration of the streaming loader: sources (token datasets plus a DuckDB selection),
mixture weights, curriculum phases, packing. Reads from a dict, so a JSON or TOML file maps onto it
one to one:

    {"seq_len": 2048, "batch_size": 8, "packing": "best_fit",
     "sources": [{"name": "web", "datasets": ["tokens/web"]},
                 {"name": "code", "datasets": ["tokens/code"], "where": "n_tokens > 64", "max_epochs": 4}],
     "phases": [{"tokens": 8_000_000_000, "weights": {"web": 0.8, "code": 0.2}},
                {"weights": {"web": 0.5, "code": 0.5}}]}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from shardforge._core import ConfigError

Packing = Literal["concat", "best_fit"]


@dataclass(frozen=True)
class SourceConfig:
    """A named source: documents of one or more token datasets, optionally selected by a SQL
    condition over the `docs` view (`quality > 0.5 AND source = 'code'`)."""

    name: str
    datasets: Sequence[str]
    where: str | None = None
    max_epochs: float | None = None


@dataclass(frozen=True)
class PhaseConfig:
    """A curriculum phase: its mixture weights and its length in tokens (`None`: to the end)."""

    weights: Mapping[str, float]
    tokens: int | None = None


@dataclass(frozen=True)
class RepeatFilterConfig:
    """Remove from the loss any sequence where a pattern of period <= `max_period` tokens repeats
    >= `min_repeats` times in a row (OLMo-core's instance filter)."""

    max_period: int = 13
    min_repeats: int = 32


@dataclass(frozen=True)
class LoaderConfig:
    sources: Sequence[SourceConfig]
    phases: Sequence[PhaseConfig] = ()
    seq_len: int = 2048
    batch_size: int = 8
    packing: Packing = "concat"
    seed: int = 0
    mixture_window: int = 1000
    total_tokens: int | None = None
    repeat_filter: RepeatFilterConfig | None = None
    verify: bool = True
    cache_dir: str | None = None

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> LoaderConfig:
        """Build from plain data; `weights` alone is shorthand for one open-ended phase, and no
        weights at all means one source at weight 1."""
        known = {f.name for f in fields(LoaderConfig)} | {"weights"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"loader config: unknown keys {unknown}")
        if not d.get("sources"):
            raise ConfigError("loader config: no sources")
        sources = []
        for s in d["sources"]:
            ds = s.get("datasets", s.get("dataset"))
            if ds is None:
                raise ConfigError(f"loader config: source {s.get('name')!r} names no datasets")
            ds = [os.fspath(ds)] if isinstance(ds, (str, os.PathLike)) else [os.fspath(p) for p in ds]
            extra = set(s) - {"name", "datasets", "dataset", "where", "max_epochs"}
            if extra:
                raise ConfigError(f"loader config: source {s.get('name')!r}: unknown keys {sorted(extra)}")
            sources.append(SourceConfig(s["name"], ds, s.get("where"), s.get("max_epochs")))
        phases = [PhaseConfig(dict(p["weights"]), p.get("tokens")) for p in d.get("phases", ())]
        if d.get("weights") is not None:
            if phases:
                raise ConfigError("loader config: give either `weights` or `phases`, not both")
            phases = [PhaseConfig(dict(d["weights"]))]
        if not phases:
            if len(sources) > 1:
                raise ConfigError("loader config: several sources need `weights` or `phases`")
            phases = [PhaseConfig({sources[0].name: 1.0})]
        rf = d.get("repeat_filter")
        repeat = RepeatFilterConfig(**rf) if isinstance(rf, Mapping) else RepeatFilterConfig() if rf else None
        rest = {k: v for k, v in d.items() if k not in {"sources", "phases", "weights", "repeat_filter"}}
        return LoaderConfig(sources=sources, phases=phases, repeat_filter=repeat, **rest)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The data of a `.json` or `.toml` config file; a parse error names the file and line."""
    import json

    with open(path, encoding="utf-8") as f:
        text = f.read()
    if str(path).endswith(".toml"):
        try:
            import tomllib
        except ImportError as e:  # Python 3.10
            raise ConfigError(f"{path}: reading TOML needs Python 3.11; use JSON") from e
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not TOML: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: not JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top")
    return data


def load_loader_config(path: str | os.PathLike[str]) -> LoaderConfig:
    """A loader config from a `.json` or `.toml` file."""
    return LoaderConfig.from_dict(read_config_file(path))
