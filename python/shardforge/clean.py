"""One cleaning pipeline: quality rules → exact and near dedup → decontamination, in a configured
order, over named sources, with one report per stage.

Layout under `output` (every stage reads the directory the previous one wrote, so document files
keep their `<source>/<name>` path all the way through):

    input/<source>/...          the sources' files, hard-linked (copied across file systems)
    filter/<source>/...         after the quality rules (per source: code can skip web-text rules)
    dedup/<source>/...          after exact + near dedup across all sources
    decontaminate/<source>/...  after decontamination
    clean/<source>/...          the last stage's files: the clean corpus
    reports/<stage>[/<source>]/ each job's report.json, rejects.jsonl and its Parquet tables
    report.json                 the stages side by side: documents in, out, and why they went

Each stage is a resumable job, so a rerun redoes nothing that finished."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shardforge import _core
from shardforge.config import OutputFormat
from shardforge.dedup import PathLike
from shardforge.records import discover, is_document, output_name

STAGES = ("filter", "dedup", "decontaminate")
# Files each job writes next to its documents; they move to reports/ so the next stage reads only
# documents.
_JOB_FILES = {
    "filter": ("stats.parquet", "removed_lines.parquet", "rejects.jsonl", "report.json"),
    "dedup": ("clusters.parquet", "rejects.jsonl", "report.json"),
    "decontaminate": ("hits.parquet", "rejects.jsonl", "report.json"),
}


@dataclass
class CleanSource:
    """A named group of inputs (files, directories, globs). `filter`: True applies the pipeline's
    rules, False passes the documents through untouched, a dict overrides rule families for this
    source (e.g. code keeps only Gopher repetition)."""

    name: str
    inputs: list[str]
    filter: bool | dict[str, Any] = True


@dataclass
class CleanConfig:
    output: str
    sources: list[CleanSource]
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    filter: dict[str, Any] = field(default_factory=dict)
    """Rule families and thresholds (see `shardforge.filters`)."""
    filter_action: Literal["drop", "tag"] = "drop"
    dedup: dict[str, Any] = field(default_factory=dict)
    """Options of `shardforge.dedup.make_config` (threshold, ngram, num_perm, exact, ...)."""
    decontaminate: dict[str, Any] = field(default_factory=lambda: {"humaneval": True})
    """`humaneval` (bool), `gsm8k` (path), `evals` (list of EvalSet fields), `action`, `ngram`,
    `max_items_per_ngram`."""
    text_field: str = "text"
    on_error: Literal["raise", "skip"] = "skip"
    output_format: OutputFormat = "input"
    """Format of the clean corpus, which the last stage writes: each input's own, or Parquet."""
    threads: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, base: Path | None = None) -> CleanConfig:
        """Check the keys (a wrong one is named) and resolve relative paths against `base`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise _core.ConfigError(f"clean config: unknown keys {unknown}; known: {sorted(known)}")
        for key in ("output", "sources"):
            if key not in d:
                raise _core.ConfigError(f"clean config: {key!r} is required")
        sources = []
        for i, s in enumerate(d["sources"]):
            bad = sorted(set(s) - {"name", "inputs", "filter"})
            if bad or "name" not in s or "inputs" not in s:
                raise _core.ConfigError(
                    f"clean config: sources[{i}] needs name and inputs (and optionally filter); "
                    f"got {sorted(s)}"
                )
            inputs = [s["inputs"]] if isinstance(s["inputs"], str) else list(s["inputs"])
            sources.append(CleanSource(s["name"], [_resolve(p, base) for p in inputs], s.get("filter", True)))
        names = [s.name for s in sources]
        if len(set(names)) != len(names) or not all(n and "/" not in n for n in names):
            raise _core.ConfigError(
                f"clean config: source names must be unique, non-empty, without '/': {names}"
            )
        cfg = cls(**{**d, "sources": sources, "output": _resolve(d["output"], base)})
        for st in cfg.stages:
            if st not in STAGES:
                raise _core.ConfigError(f"clean config: unknown stage {st!r}; stages are {list(STAGES)}")
        if len(set(cfg.stages)) != len(cfg.stages):
            raise _core.ConfigError(f"clean config: a stage is listed twice: {cfg.stages}")
        if cfg.filter_action not in ("drop", "tag"):
            raise _core.ConfigError(f"clean config: filter_action is drop or tag, not {cfg.filter_action!r}")
        if cfg.output_format not in ("input", "parquet"):
            raise _core.ConfigError(
                f"clean config: output_format is input or parquet, not {cfg.output_format!r}"
            )
        if "output_format" in cfg.dedup or "output_format" in cfg.decontaminate:
            raise _core.ConfigError(
                "clean config: set output_format once, at the top; the last stage writes it"
            )
        return cfg


def _resolve(p: str, base: Path | None) -> str:
    if base is None or os.path.isabs(p):
        return p
    return os.fspath(base / p)


def load_clean_config(path: PathLike) -> CleanConfig:
    """A clean config from a JSON or TOML file; relative paths are relative to the working directory."""
    from shardforge.loader_config import read_config_file

    return CleanConfig.from_dict(read_config_file(path))


def _prune(root: Path, keep: set[Path]) -> None:
    """Delete the document files under `root` whose relative name is not in `keep`: what an earlier
    run with other inputs left must not flow into the next stage."""
    if not root.is_dir():
        return
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            p = Path(dirpath) / name
            if not name.startswith(".") and is_document(p) and p.relative_to(root) not in keep:
                p.unlink()


def _link_tree(files: list[tuple[Path, Path]], dest: Path) -> None:
    """Hard-link (or copy) each (source path, relative name) under `dest`, replacing stale links
    and removing documents that are no longer among `files`."""
    _prune(dest, {rel for _, rel in files})
    for src, rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if os.path.samefile(src, target):
                continue
            target.unlink()
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)


def _move_reports(stage: str, job_dir: Path, reports: Path) -> dict[str, Any]:
    reports.mkdir(parents=True, exist_ok=True)
    for name in _JOB_FILES[stage]:
        if (job_dir / name).exists():
            os.replace(job_dir / name, reports / name)
    report: dict[str, Any] = json.loads((reports / "report.json").read_text())
    return report


def _documents(root: Path) -> list[tuple[Path, Path]]:
    """Every document file below `root` (hidden work directories skipped)."""
    return [(f.path, f.rel) for f in discover([os.fspath(root)])]


def _filter_config(cfg: CleanConfig, source: CleanSource) -> dict[str, Any]:
    if source.filter is False:
        return {f: {"enabled": False} for f in ("gopher_repetition", "gopher_quality", "c4", "fineweb")}
    rules: dict[str, Any] = json.loads(json.dumps(cfg.filter))
    if isinstance(source.filter, dict):
        for family, overrides in source.filter.items():
            rules[family] = {**rules.get(family, {}), **overrides}
    return rules


def _run_filter(
    cfg: CleanConfig, src: Path, out: Path, say: Callable[[str], None], fmt: OutputFormat
) -> dict[str, Any]:
    from shardforge.filters import filter_files

    per_source = {}
    for source in cfg.sources:
        job = out / source.name
        _prune(job, {output_name(rel, fmt) for _, rel in _documents(src / source.name)})
        r = filter_files(
            src / source.name,
            job,
            _filter_config(cfg, source),
            action="tag" if source.filter is False else cfg.filter_action,
            text_field=cfg.text_field,
            on_error=cfg.on_error,
            output_format=fmt,
            threads=cfg.threads,
        )
        per_source[source.name] = _move_reports(
            "filter", job, out.parent / "reports" / "filter" / source.name
        )
        say(f"  filter {source.name}: {r['docs_in']:,} in, {r['docs_out']:,} out")
    total: dict[str, Any] = {"docs_in": 0, "docs_out": 0, "rejects": 0, "reasons": {}, "sources": {}}
    for name, r in per_source.items():
        total["docs_in"] += r["docs_in"]
        total["docs_out"] += r["docs_out"]
        total["rejects"] += r["rejects"]
        total["sources"][name] = {
            "docs_in": r["docs_in"],
            "docs_out": r["docs_out"],
            "docs_edited": r["docs_edited"],
            "chars_in": r["chars_in"],
            "chars_out": r["chars_out"],
            "rule_failures": r["rule_failures"],
            "lines_removed": r["lines_removed"],
        }
    total["reasons"] = {"quality_rules": total["docs_in"] - total["docs_out"]}
    return total


def _run_dedup(
    cfg: CleanConfig, src: Path, out: Path, say: Callable[[str], None], fmt: OutputFormat
) -> dict[str, Any]:
    from shardforge.dedup import dedup

    options = {"on_error": cfg.on_error, "text_field": cfg.text_field, "output_format": fmt, **cfg.dedup}
    if cfg.threads is not None:
        options.setdefault("threads", cfg.threads)
    _prune(out, {output_name(rel, fmt) for _, rel in _documents(src)})
    dedup(src, out, **options)
    r = _move_reports("dedup", out, out.parent / "reports" / "dedup")
    say(f"  dedup: {r['docs_in']:,} in, {r['docs_out']:,} out")
    return {
        "docs_in": r["docs_in"],
        "docs_out": r["docs_out"],
        "rejects": r["rejects"],
        "reasons": {"exact_duplicate": r["exact_duplicates"], "near_duplicate": r["near_duplicates"]},
    }


def _run_decontaminate(
    cfg: CleanConfig, src: Path, out: Path, say: Callable[[str], None], fmt: OutputFormat
) -> dict[str, Any]:
    from shardforge.decontam import EvalSet, decontaminate, humaneval_path

    d = dict(cfg.decontaminate)
    evals = []
    if d.pop("humaneval", False):
        evals.append(EvalSet("humaneval", humaneval_path(), "humaneval"))
    gsm8k = d.pop("gsm8k", None)
    if gsm8k:
        evals.append(EvalSet("gsm8k", gsm8k, "gsm8k"))
    evals.extend(EvalSet(**e) for e in d.pop("evals", []))
    if not evals:
        raise _core.ConfigError(
            "clean config: decontaminate has no evaluation sets (humaneval, gsm8k, evals)"
        )
    _prune(out, {output_name(rel, fmt) for _, rel in _documents(src)})
    decontaminate(
        src,
        out,
        evals,
        text_field=cfg.text_field,
        on_error=cfg.on_error,
        output_format=fmt,
        threads=cfg.threads,
        **d,
    )
    r = _move_reports("decontaminate", out, out.parent / "reports" / "decontaminate")
    say(f"  decontaminate: {r['docs_in']:,} in, {r['docs_out']:,} out")
    return {
        "docs_in": r["docs_in"],
        "docs_out": r["docs_out"],
        "rejects": r["rejects"],
        "reasons": {"contaminated": r["docs_in"] - r["docs_out"]},
        "benchmarks": r["benchmarks"],
    }


_RUNNERS = {"filter": _run_filter, "dedup": _run_dedup, "decontaminate": _run_decontaminate}


def clean(cfg: CleanConfig, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the pipeline; returns (and writes as `<output>/report.json`) the stage reports."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    for source in cfg.sources:
        _link_tree([(f.path, f.rel) for f in discover(source.inputs)], out / "input" / source.name)
    # A source dropped from the config leaves nothing behind in any stage.
    names = {s.name for s in cfg.sources}
    for stage_dir in [out / "input", *(out / st for st in STAGES)]:
        if stage_dir.is_dir():
            for child in stage_dir.iterdir():
                if child.is_dir() and not child.name.startswith(".") and child.name not in names:
                    shutil.rmtree(child)
    current = out / "input"
    stages = []
    for i, stage in enumerate(cfg.stages):
        t0 = time.perf_counter()
        say(f"{stage} ...")
        # Only the last stage converts: the stages between pass their files on unchanged.
        fmt: OutputFormat = cfg.output_format if i == len(cfg.stages) - 1 else "input"
        r = _RUNNERS[stage](cfg, current, out / stage, say, fmt)
        r["stage"] = stage
        r["seconds"] = round(time.perf_counter() - t0, 3)
        stages.append(r)
        current = out / stage
    final = out / "clean"
    if final.exists():
        shutil.rmtree(final)
    _link_tree(_documents(current), final)
    report = {"output": os.fspath(final), "stages": stages}
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out / "report.json")
    return report
