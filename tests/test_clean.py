"""The `clean` pipeline end to end on small generated sources: every stage's counts add up, the
source layout survives, a rerun resumes; and config errors name the problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_filters import prose, write_jsonl

from shardforge import ConfigError
from shardforge.clean import CleanConfig, clean
from shardforge.decontam import humaneval_path


def test_clean_pipeline_counts_add_up_and_resume(tmp_path: Path) -> None:
    with gzip.open(humaneval_path(), "rt") as f:
        item = json.loads(f.readline())
    leak = item["prompt"] + item["canonical_solution"]
    prose_docs = [{"id": f"p{i}", "text": prose(i)} for i in range(6)]
    prose_docs.append({"id": "dup", "text": prose(0)})  # exact duplicate of p0
    prose_docs.append({"id": "junk", "text": "\n".join(["click here"] * 40)})
    write_jsonl(tmp_path / "prose.jsonl", prose_docs)
    code = [{"id": f"c{i}", "text": f"def f{i}(x):\n    return x + {i}\n" * 3} for i in range(3)]
    code.append({"id": "leak", "text": leak})
    write_jsonl(tmp_path / "code.jsonl", code)
    cfg = CleanConfig.from_dict(
        {
            "output": str(tmp_path / "clean"),
            "sources": [
                {"name": "prose", "inputs": [str(tmp_path / "prose.jsonl")]},
                {"name": "code", "inputs": str(tmp_path / "code.jsonl"), "filter": False},
            ],
            "filter": {"c4": {"enabled": False}, "fineweb": {"enabled": False}},
            "decontaminate": {"humaneval": True, "ngram": 8},
        }
    )
    report = clean(cfg, say=lambda _: None)
    stages = {s["stage"]: s for s in report["stages"]}
    assert [s["stage"] for s in report["stages"]] == ["filter", "dedup", "decontaminate"]
    assert stages["filter"]["docs_in"] == 12
    assert stages["filter"]["sources"]["prose"]["rule_failures"]["gopher_dup_line"] == 1
    assert stages["filter"]["sources"]["code"]["docs_out"] == 4  # code passes untouched
    assert stages["dedup"]["reasons"]["exact_duplicate"] == 1
    assert stages["decontaminate"]["reasons"]["contaminated"] == 1
    for a, b in zip(report["stages"], report["stages"][1:], strict=False):
        assert a["docs_out"] == b["docs_in"]
    for s in report["stages"]:
        assert s["docs_in"] == s["docs_out"] + sum(s["reasons"].values())
    out = tmp_path / "clean" / "clean"
    kept_prose = [json.loads(x)["id"] for x in (out / "prose" / "prose.jsonl").read_text().splitlines()]
    assert kept_prose == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert len((out / "code" / "code.jsonl").read_text().splitlines()) == 3
    for stage in ("filter/prose", "dedup", "decontaminate"):
        assert (tmp_path / "clean" / "reports" / stage / "report.json").exists()
    again = clean(cfg, say=lambda _: None)
    assert [s["docs_out"] for s in again["stages"]] == [s["docs_out"] for s in report["stages"]]

    # The clean corpus as Parquet: only the last stage converts, and a rerun rewrites nothing.
    as_parquet = CleanConfig.from_dict(
        {
            "output": str(tmp_path / "pq"),
            "sources": [{"name": "prose", "inputs": [str(tmp_path / "prose.jsonl")]}],
            "filter": {"c4": {"enabled": False}, "fineweb": {"enabled": False}},
            "decontaminate": {"humaneval": True, "ngram": 8},
            "output_format": "parquet",
        }
    )
    clean(as_parquet, say=lambda _: None)
    final = tmp_path / "pq" / "clean" / "prose" / "prose.parquet"
    assert pq.read_table(final).column("id").to_pylist() == kept_prose
    assert (tmp_path / "pq" / "dedup" / "prose" / "prose.jsonl").exists()
    stamp = (tmp_path / "pq" / "decontaminate" / "prose" / "prose.parquet").stat().st_mtime_ns
    clean(as_parquet, say=lambda _: None)
    job = json.loads((tmp_path / "pq" / "reports" / "decontaminate" / "report.json").read_text())
    assert job["files_resumed"] == 1
    assert (tmp_path / "pq" / "decontaminate" / "prose" / "prose.parquet").stat().st_mtime_ns == stamp


def test_clean_config_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown keys \\['stage'\\]"):
        CleanConfig.from_dict({"output": "o", "sources": [], "stage": []})
    with pytest.raises(ConfigError, match="unknown stage 'tokenize'"):
        CleanConfig.from_dict({"output": "o", "sources": [], "stages": ["tokenize"]})
    with pytest.raises(ConfigError, match="sources\\[0\\] needs name and inputs"):
        CleanConfig.from_dict({"output": "o", "sources": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="set output_format once"):
        CleanConfig.from_dict({"output": "o", "sources": [], "dedup": {"output_format": "parquet"}})


def test_cli_filter_and_clean_from_a_toml_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shardforge.cli import main

    write_jsonl(tmp_path / "docs.jsonl", [{"text": prose(i)} for i in range(4)] + [{"text": "tiny"}])
    rules = tmp_path / "rules.toml"
    rules.write_text("[gopher_quality]\nmin_doc_words = false\n[c4]\nenabled = false\n")
    assert (
        main(["filter", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "f"), "--config", str(rules)]) == 0
    )
    assert "5 docs in" in capsys.readouterr().out
    stats = json.loads((tmp_path / "f" / "report.json").read_text())
    assert "gopher_short_doc" not in stats["rule_failures"]
    cfg = tmp_path / "clean.toml"
    cfg.write_text(
        f'output = "{tmp_path / "out"}"\nstages = ["filter", "dedup"]\n'
        f'[[sources]]\nname = "web"\ninputs = ["{tmp_path / "docs.jsonl"}"]\n'
    )
    assert main(["clean", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "dedup" in out and "clean corpus:" in out
    assert (tmp_path / "out" / "clean" / "web" / "docs.jsonl").exists()


def test_a_rerun_with_fewer_inputs_leaves_nothing_stale(tmp_path: Path) -> None:
    for name, base in (("a", 0), ("b", 10), ("c", 20)):
        write_jsonl(
            tmp_path / f"{name}.jsonl", [{"id": f"{name}{i}", "text": prose(base + i)} for i in range(1, 4)]
        )

    def run(prose_inputs: list[str], with_other: bool) -> set[str]:
        sources = [{"name": "prose", "inputs": [str(tmp_path / f) for f in prose_inputs]}]
        if with_other:
            sources.append({"name": "other", "inputs": [str(tmp_path / "c.jsonl")]})
        cfg = CleanConfig.from_dict(
            {"output": str(tmp_path / "out"), "sources": sources, "stages": ["filter", "dedup"]}
        )
        clean(cfg, say=lambda _: None)
        root = tmp_path / "out" / "clean"
        return {str(p.relative_to(root)) for p in root.rglob("*.jsonl")}

    assert run(["a.jsonl", "b.jsonl"], True) == {"prose/a.jsonl", "prose/b.jsonl", "other/c.jsonl"}
    assert run(["a.jsonl"], False) == {"prose/a.jsonl"}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stages"][0]["docs_in"] == 3 and report["stages"][1]["docs_in"] == 3
