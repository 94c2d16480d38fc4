"""The main job end to end on a small real sample of the machine's corpus: every stage's counts add
up, the datasets verify, the model's loss falls, and every number in report/summary.json is the one
in the stage reports it came from."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shardforge import ConfigError, open_dataset, verify
from shardforge.cli import main
from shardforge.pipeline import RECIPES, PipelineConfig, load_pipeline_config, run

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]


def _small_config(workdir: Path) -> dict[str, Any]:
    """configs/demo.toml's recipe, on a sample of the corpus and a model that trains in seconds."""
    from shardforge.loader_config import read_config_file

    d = read_config_file(REPO / "configs" / "demo.toml")
    d["workdir"] = os.fspath(workdir)
    d["max_docs_per_source"] = 120
    d["vocab_size"] = 512
    d["tokenizer_max_bytes"] = "4MiB"
    d["heldout_every"] = 8
    d["train"].update(
        steps=40,
        seq_len=64,
        batch_size=4,
        val_every=10,
        val_batches=4,
        warmup_steps=5,
        checkpoint_every=20,
        log_every=20,
        model_overrides={"dim": 64, "n_heads": 2, "n_kv_heads": 1},
    )
    return d


def _read(p: Path) -> Any:
    return json.loads(p.read_text())


@pytest.mark.slow
def test_pipeline_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cfg_path = tmp_path / "pipeline.json"
    cfg_path.write_text(json.dumps(_small_config(work)))
    cfg = load_pipeline_config(cfg_path)
    run(cfg, say=lambda _: None)

    summary = _read(work / "report" / "summary.json")
    corpus = _read(work / "corpus" / ".gathered.json")["counts"]
    assert summary["corpus"] == corpus and all(0 < n <= 120 for n in corpus.values())

    # Every stage: documents in = kept + dropped with a reason + rejected, and each stage reads
    # what the previous one kept.
    clean_report = _read(work / "clean" / "report.json")
    stages = summary["stages"]
    assert [s["stage"] for s in stages] == ["filter", "dedup", "decontaminate"]
    assert stages[0]["docs_in"] == sum(corpus.values())
    for s, r in zip(stages, clean_report["stages"], strict=True):
        assert s["docs_in"] == s["docs_out"] + sum(s["dropped"].values()) + s["rejects"]
        assert (s["docs_in"], s["docs_out"], s["dropped"]) == (r["docs_in"], r["docs_out"], r["reasons"])
        assert 0 < s["bytes_out"] <= s["bytes_in"]
    for a, b in itertools.pairwise(stages):
        assert b["docs_in"] == a["docs_out"] and b["bytes_in"] == a["bytes_out"]
    filt = [_read(work / "clean" / "reports" / "filter" / s / "report.json") for s in cfg.sources]
    assert stages[0]["bytes_in"] == sum(r["text_bytes"] for r in filt)
    dedup = _read(work / "clean" / "reports" / "dedup" / "report.json")
    assert summary["dedup"]["near_duplicates"] == dedup["near_duplicates"]
    assert summary["dedup"]["exact_duplicates"] == dedup["exact_duplicates"]
    sizes = summary["dedup"]["cluster_sizes"]
    assert sum(c["size"] * c["clusters"] for c in sizes) == dedup["exact_duplicates"] + dedup[
        "near_duplicates"
    ] + sum(c["clusters"] for c in sizes)
    decon = _read(work / "clean" / "reports" / "decontaminate" / "report.json")
    assert summary["contamination"] == decon["benchmarks"]

    # The held-out split: its documents are in neither training set, and every training document
    # is accounted for.
    split = _read(work / "split.json")
    assert summary["split"] == split
    held_ids = {
        json.loads(x)["id"]
        for s in cfg.sources
        for x in (work / "heldout" / f"{s}.jsonl").read_text().splitlines()
    }
    assert held_ids
    for recipe in RECIPES:
        for src in cfg.sources:
            c = split["recipes"][recipe][src]
            assert c["docs_in"] == c["docs_out"] + c["docs_overlap"] + c["rejects"]
            ds = open_dataset(work / "tokens" / recipe / src)
            ids = set(ds.connect().sql("SELECT doc_id FROM docs").fetchnumpy()["doc_id"].tolist())
            assert len(ids) == c["docs_out"] and not ids & held_ids
    clean_docs = sum(split["recipes"]["clean"][s]["docs_in"] for s in cfg.sources)
    assert clean_docs == stages[-1]["docs_out"]

    # Datasets verify, and the summary's token counts are their manifests'.
    for kind, per in summary["datasets"].items():
        for src, st in per.items():
            v = verify(work / "tokens" / kind / src)
            assert (v.documents, v.tokens) == (st["documents"], st["tokens"])

    # Both recipes trained the same steps and tokens; the loss fell; the numbers are the metrics'.
    tr = summary["training"]
    assert tr["clean"]["tokens"] == tr["raw"]["tokens"] == 40 * 4 * 64
    for recipe in RECIPES:
        metrics = [json.loads(x) for x in (work / "runs" / recipe / "metrics.jsonl").read_text().splitlines()]
        vals = [m["val_loss"] for m in metrics if "val_loss" in m]
        assert tr[recipe]["final_val_loss"] == vals[-1]
        assert tr[recipe]["final_loss"] == metrics[-1]["loss"]
        # From ln(512) = 6.24 at the start: well below it on held-out text after 40 small steps.
        assert vals[-1] < metrics[0]["loss"] - 0.5, (metrics[0]["loss"], vals)
        assert vals[-1] < vals[0]
    cmp_ = summary["comparison"]
    assert cmp_["raw_minus_clean"] == pytest.approx(cmp_["raw"] - cmp_["clean"])

    page = (work / "report" / "index.html").read_text()
    for png in (
        "stages.png",
        "filter_rules.png",
        "clusters.png",
        "contamination.png",
        "tokens.png",
        "training.png",
    ):
        assert (work / "report" / png).stat().st_size > 1000
        assert f"src='{png}'" in page

    # A second run redoes nothing: the tokenizer is not retrained and training does not step.
    tok_mtime = (work / "tokenizer.json").stat().st_mtime_ns
    lines = {r: (work / "runs" / r / "metrics.jsonl").read_text() for r in RECIPES}
    assert main(["pipeline", os.fspath(cfg_path), "--step", "tokenizer", "--step", "train"]) == 0
    assert (work / "tokenizer.json").stat().st_mtime_ns == tok_mtime
    assert {r: (work / "runs" / r / "metrics.jsonl").read_text() for r in RECIPES} == lines
    # A step alone from the CLI: the report again, with the same numbers.
    assert main(["pipeline", os.fspath(cfg_path), "--step", "report"]) == 0
    again = _read(work / "report" / "summary.json")
    assert {k: v for k, v in again.items() if k != "generated"} == {
        k: v for k, v in summary.items() if k != "generated"
    }


def test_pipeline_config_errors(tmp_path: Path) -> None:
    d = _small_config(tmp_path)
    with pytest.raises(ConfigError, match="unknown keys \\['colour'\\]"):
        PipelineConfig.from_dict({**d, "colour": 1})
    with pytest.raises(ConfigError, match="weights"):
        PipelineConfig.from_dict({**d, "train": {**d["train"], "weights": {"prose": 1.0}}})
    with pytest.raises(ConfigError, match=r"\[train\] has unknown keys \['stepz'\]"):
        PipelineConfig.from_dict({**d, "train": {"stepz": 3}})
    with pytest.raises(ConfigError, match="required"):
        PipelineConfig.from_dict({"workdir": "x"})
    cfg = PipelineConfig.from_dict(d)
    assert cfg.clean.output == os.fspath(tmp_path / "clean")
    assert cfg.clean.sources[1].inputs == [os.fspath(tmp_path / "corpus" / "cpython_stdlib.jsonl")]
    with pytest.raises(ConfigError, match="unknown step"):
        run(cfg, ("cleen",))


def test_steps_name_what_is_missing(tmp_path: Path) -> None:
    cfg = PipelineConfig.from_dict(_small_config(tmp_path))
    with pytest.raises(FileNotFoundError, match="run the 'clean' step first"):
        run(cfg, ("tokenizer",), say=lambda _: None)
    with pytest.raises(FileNotFoundError, match="run the 'corpus' step first"):
        run(cfg, ("clean",), say=lambda _: None)
