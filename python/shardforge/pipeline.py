"""The main job, raw text to a trained model and a report, as named steps over one work directory:

    corpus     gather a real corpus from text already on the machine      corpus/
    clean      quality rules → exact + near dedup → decontamination       clean/ (see shardforge.clean)
    tokenizer  train a byte-level BPE on the clean corpus                  tokenizer.json
    split      hold out 1 in N clean documents (by a hash of the id);     heldout/<source>.jsonl
               leave their near-copies (MinHash) out of both training     train/clean/<source>/
               sets, the clean one and the raw one                        train/raw/<source>/
    tokenize   token datasets of both training sets and the held-out set  tokens/{clean,raw,heldout}/<source>/
    stats      DuckDB statistics of the clean dataset                     stats.json
    train      the same model, seed and token budget on each recipe,      runs/{clean,raw}/
               validated on the same held-out clean split
    report     plots, summary.json and index.html                         report/

Every step reads only what earlier steps wrote, so each can run alone (`shardforge pipeline CONFIG
--step NAME`), and each reuses finished work: the corpus, clean, decontamination and tokenize jobs
resume per file or shard, the tokenizer and split are stamped with their inputs, and training resumes
from its last checkpoint (a finished run does nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.clean import CleanConfig, clean
from shardforge.dedup import PathLike
from shardforge.progress import Progress
from shardforge.records import discover, iter_documents

STEPS = ("corpus", "clean", "tokenizer", "split", "tokenize", "stats", "train", "report")
RECIPES = ("clean", "raw")


@dataclass
class TrainSection:
    """What both recipes train with: the same model, seed, batches and steps."""

    model: str = "debug"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 300
    seq_len: int = 256
    batch_size: int = 8
    weights: dict[str, float] = field(default_factory=dict)
    """Mixture weights by clean source name; empty: equal weights."""
    lr: float = 3e-3
    warmup_steps: int = 30
    val_every: int = 25
    val_batches: int = 8
    checkpoint_every: int = 25
    rollback_after: int = 10
    log_every: int = 25
    seed: int = 0


@dataclass
class PipelineConfig:
    clean: CleanConfig
    workdir: str = "demo"
    max_docs_per_source: int | None = None
    """Gather at most this many documents of each corpus source (a quick sample); None: all."""
    vocab_size: int = 8192
    tokenizer_max_bytes: str = "64MiB"
    heldout_every: int = 50
    """One clean document in this many is held out for validation."""
    heldout_threshold: float = 0.5
    """Training documents whose MinHash Jaccard with a held-out one reaches this are left out."""
    train: TrainSection = field(default_factory=TrainSection)

    @property
    def root(self) -> Path:
        return Path(self.workdir)

    @property
    def sources(self) -> list[str]:
        return [s.name for s in self.clean.sources]

    @property
    def weights(self) -> dict[str, float]:
        return self.train.weights or {s: 1.0 / len(self.sources) for s in self.sources}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineConfig:
        """Check the keys (a wrong one is named). `clean` is a clean config whose relative paths
        (inputs, `output`, default `clean`) are inside `workdir`."""
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise _core.ConfigError(f"pipeline config: unknown keys {unknown}; known: {sorted(known)}")
        if "clean" not in d:
            raise _core.ConfigError("pipeline config: the [clean] section is required")
        root = Path(d.get("workdir", "demo"))
        clean_cfg = CleanConfig.from_dict({"output": "clean", **d.pop("clean")}, base=root)
        t = d.pop("train", {})
        bad = sorted(set(t) - {f.name for f in fields(TrainSection)})
        if bad:
            raise _core.ConfigError(f"pipeline config: [train] has unknown keys {bad}")
        cfg = cls(clean=clean_cfg, train=TrainSection(**t), **d)
        missing = sorted(set(cfg.weights) ^ set(cfg.sources))
        if missing:
            raise _core.ConfigError(
                f"pipeline config: [train] weights {sorted(cfg.weights)} must name exactly the clean "
                f"sources {cfg.sources}"
            )
        if cfg.heldout_every < 2:
            raise _core.ConfigError(f"pipeline config: heldout_every must be >= 2, got {cfg.heldout_every}")
        return cfg


def load_pipeline_config(path: PathLike) -> PipelineConfig:
    from shardforge.loader_config import read_config_file

    return PipelineConfig.from_dict(read_config_file(path))


def run(cfg: PipelineConfig, steps: tuple[str, ...] = STEPS, *, say: Callable[[str], None] = print) -> None:
    """Run `steps` (in pipeline order) over `cfg.workdir`."""
    for s in steps:
        if s not in STEPS:
            raise _core.ConfigError(f"unknown step {s!r}; steps are {list(STEPS)}")
    cfg.root.mkdir(parents=True, exist_ok=True)
    for s in STEPS:
        if s in steps:
            say(f"== {s}")
            _STEP_FUNCS[s](cfg, say)


def _json_dump(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tree_fingerprint(root: Path) -> str:
    """Names, sizes and modification times of the document files under `root`: unchanged when a
    rerun of the step that wrote them redid nothing."""
    files = discover(root)
    return _fingerprint([(os.fspath(f.rel), f.path.stat().st_size, f.path.stat().st_mtime_ns) for f in files])


def _need(path: Path, step: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the {step!r} step first")


def step_corpus(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.corpus import gather

    counts = gather(cfg.root / "corpus", max_docs_per_source=cfg.max_docs_per_source)
    say(f"{sum(counts.values()):,} documents in {cfg.root / 'corpus'}")


def step_clean(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    for s in cfg.clean.sources:
        for p in s.inputs:
            if not any(c in p for c in "*?[") and not os.path.exists(p):
                raise FileNotFoundError(f"{p} (source {s.name!r}) is missing: run the 'corpus' step first")
    report = clean(cfg.clean, say=say)
    for st in report["stages"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in st["reasons"].items())
        say(f"  {st['stage']:<14} {st['docs_in']:>8,} in {st['docs_out']:>8,} out  ({reasons})")


def _tokenizer_stamp(cfg: PipelineConfig) -> str:
    return _fingerprint(
        cfg.vocab_size, cfg.tokenizer_max_bytes, _tree_fingerprint(Path(cfg.clean.output) / "clean")
    )


def step_tokenizer(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.tokenize import train_tokenizer

    _need(Path(cfg.clean.output) / "report.json", "clean")
    out, stamp = cfg.root / "tokenizer.json", cfg.root / ".tokenizer.stamp"
    want = _tokenizer_stamp(cfg)
    if out.exists() and stamp.exists() and stamp.read_text() == want:
        say(f"{out} is up to date")
        return
    r = train_tokenizer(
        Path(cfg.clean.output) / "clean",
        out,
        vocab_size=cfg.vocab_size,
        max_bytes=cfg.tokenizer_max_bytes,
    )
    stamp.write_text(want)
    say(
        f"vocabulary {r['vocab_size']:,} from {r['documents']:,} documents "
        f"({r['text_bytes'] / 1e6:,.1f} MB) -> {out}"
    )


def heldout_doc(doc_id: str, every: int) -> bool:
    """Whether a document is held out: a hash of its id, so the choice never depends on file order."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")
    return h % every == 0


def _overlapping(
    held: npt.NDArray[np.uint32], sigs: npt.NDArray[np.uint32], threshold: float
) -> dict[int, tuple[int, float]]:
    """Rows of `sigs` whose estimated Jaccard with some held-out signature reaches `threshold`:
    row → (held-out row, estimate), from LSH candidates verified on the whole signature."""
    from shardforge.dedup import candidate_pairs, lsh_params

    bands, rows = lsh_params(threshold, held.shape[1])
    pairs = candidate_pairs(np.vstack([held, sigs]), bands, rows).astype(np.int64)
    nh = len(held)
    cross = pairs[(pairs[:, 0] < nh) & (pairs[:, 1] >= nh)]
    found: dict[int, tuple[int, float]] = {}
    for h, t in cross.tolist():
        j = float(np.mean(held[h] == sigs[t - nh]))
        if j >= threshold and j > found.get(t - nh, (0, -1.0))[1]:
            found[t - nh] = (h, j)
    return found


def _hold_out(cfg: PipelineConfig, clean_dir: Path, held: Path, say: Callable[[str], None]) -> None:
    """Write heldout/<source>.jsonl: the clean documents `heldout_doc` picks."""
    for src in cfg.sources:
        n = 0
        tmp = held / f".{src}.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for inp in discover(clean_dir / "clean" / src):
                for doc in iter_documents(inp, text_field=cfg.clean.text_field):
                    if heldout_doc(doc.id, cfg.heldout_every):
                        f.write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
                        n += 1
        if n == 0:
            raise _core.ConfigError(
                f"source {src!r}: no clean document is held out at heldout_every={cfg.heldout_every}; "
                "lower it or gather more documents"
            )
        os.replace(tmp, held / f"{src}.jsonl")
        say(f"held out {n:,} {src} documents -> {held / f'{src}.jsonl'}")


def step_split(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.dedup import minhash
    from shardforge.records import Rejects, write_selected

    clean_dir = Path(cfg.clean.output)
    _need(clean_dir / "report.json", "clean")
    held = cfg.root / "heldout"
    held.mkdir(parents=True, exist_ok=True)
    want = _fingerprint(
        cfg.heldout_every,
        cfg.heldout_threshold,
        cfg.sources,
        _tree_fingerprint(clean_dir / "clean"),
        _tree_fingerprint(clean_dir / "input"),
    )
    stamp, split_json = held / ".stamp", cfg.root / "split.json"
    if stamp.exists() and stamp.read_text() == want and split_json.exists():
        say(f"{held} and {cfg.root / 'train'} are up to date")
        return
    _hold_out(cfg, clean_dir, held, say)
    held_ids, held_texts, held_counts = [], [], {}
    for src in cfg.sources:
        lines = (held / f"{src}.jsonl").read_text(encoding="utf-8").splitlines()
        held_counts[src] = len(lines)
        for line in lines:
            rec = json.loads(line)
            held_ids.append(rec["id"])
            held_texts.append(rec["text"])
    held_sigs = minhash(held_texts)
    split: dict[str, Any] = {
        "heldout_every": cfg.heldout_every,
        "threshold": cfg.heldout_threshold,
        "heldout": held_counts,
        "recipes": {},
    }
    overlaps = []
    rejects = Rejects(cfg.clean.on_error)
    for recipe, base in (("clean", clean_dir / "clean"), ("raw", clean_dir / "input")):
        split["recipes"][recipe] = {}
        for src in cfg.sources:
            dest = cfg.root / "train" / recipe / src
            if dest.exists():
                shutil.rmtree(dest)
            c = {
                "docs_in": 0,
                "docs_out": 0,
                "docs_overlap": 0,
                "rejects": 0,
                "text_bytes": 0,
                "text_bytes_out": 0,
            }
            for inp in discover(base / src):
                before = len(rejects.records)
                docs = list(iter_documents(inp, text_field=cfg.clean.text_field, rejects=rejects))
                found = _overlapping(held_sigs, minhash([d.text for d in docs]), cfg.heldout_threshold)
                keep = np.array([d.line for i, d in enumerate(docs) if i not in found], dtype=np.int64)
                write_selected(inp, dest / inp.rel, keep)
                c["docs_in"] += len(docs)
                c["docs_out"] += len(keep)
                c["docs_overlap"] += len(found)
                c["rejects"] += len(rejects.records) - before
                sizes = [len(d.text.encode()) for d in docs]
                c["text_bytes"] += sum(sizes)
                c["text_bytes_out"] += sum(sizes) - sum(sizes[i] for i in found)
                overlaps += [
                    {"recipe": recipe, "doc_id": docs[i].id, "heldout_id": held_ids[h], "jaccard": j}
                    for i, (h, j) in sorted(found.items())
                ]
            split["recipes"][recipe][src] = c
            say(
                f"  {recipe:<5} {src:<8} {c['docs_in']:>8,} docs; {c['docs_overlap']:,} near-copies of "
                f"held-out documents (Jaccard >= {cfg.heldout_threshold}) left out of training"
            )
    rejects.write(cfg.root / "split_rejects.jsonl")
    with (held / "overlaps.jsonl").open("w") as f:
        f.writelines(json.dumps(o) + "\n" for o in overlaps)
    _json_dump(split_json, split)
    stamp.write_text(want)


def _dataset_dir(cfg: PipelineConfig, kind: str, src: str) -> Path:
    return cfg.root / "tokens" / kind / src


def step_tokenize(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.tokenize import STAGES, make_tokenize_config, tokenize

    tok = cfg.root / "tokenizer.json"
    _need(tok, "tokenizer")
    _need(cfg.root / "split.json", "split")
    tcfg = make_tokenize_config(tok, text_field=cfg.clean.text_field, on_error=cfg.clean.on_error)
    jobs = [(k, s, cfg.root / "train" / k / s) for k in RECIPES for s in cfg.sources]
    jobs += [("heldout", s, cfg.root / "heldout" / f"{s}.jsonl") for s in cfg.sources]
    for kind, src, inputs in jobs:
        out = _dataset_dir(cfg, kind, src)
        r = tokenize(inputs, out, config=tcfg, progress=Progress("auto", stages=STAGES))
        state = "up to date" if r.up_to_date else f"{r.mb_per_s:,.1f} MB/s"
        say(f"  {kind:<8} {src:<8} {r.documents:>8,} docs {r.tokens:>12,} tokens ({state}) -> {out}")


def dataset_stats(cfg: PipelineConfig) -> dict[str, Any]:
    """Per token dataset: documents, tokens, length quantiles and histogram (DuckDB over the tables)."""
    from shardforge.dataset import open_dataset

    out: dict[str, Any] = {}
    for kind in (*RECIPES, "heldout"):
        out[kind] = {}
        for src in cfg.sources:
            path = _dataset_dir(cfg, kind, src)
            _need(path / "manifest.json", "tokenize")
            st = open_dataset(path).stats()
            out[kind][src] = {k: st[k] for k in ("documents", "tokens", "tokens_per_doc", "histogram")}
    return out


def length_histogram(per_source: dict[str, Any]) -> dict[int, int]:
    """Documents per power-of-two length bin (by its lower bound), summed over sources."""
    hist: dict[int, int] = {}
    for s in per_source.values():
        for h in s["histogram"]:
            hist[h["from"]] = hist.get(h["from"], 0) + h["documents"]
    return hist


def step_stats(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    st = dataset_stats(cfg)
    _json_dump(cfg.root / "stats.json", st)
    for kind, per in st.items():
        for src, s in per.items():
            q = s["tokens_per_doc"]
            say(
                f"  {kind:<8} {src:<8} {s['documents']:>8,} docs {s['tokens']:>12,} tokens; tokens per doc "
                f"p10 {q.get('p10', 0):,} p50 {q.get('p50', 0):,} p90 {q.get('p90', 0):,} "
                f"max {q.get('max', 0):,}"
            )
    hist = length_histogram(st["clean"])
    top = max(hist.values(), default=1)
    say("  clean documents by length in tokens:")
    for lo in sorted(hist):
        say(f"  {lo:>9,}-{2 * lo - 1:<9,} {hist[lo]:>8,} {'#' * max(1, round(40 * hist[lo] / top))}")


def train_config(cfg: PipelineConfig, recipe: str) -> dict[str, Any]:
    """The TrainConfig fields of one recipe's run: both share everything but the training data."""
    t = cfg.train

    def loader(kind: str) -> dict[str, Any]:
        return {
            "seq_len": t.seq_len,
            "batch_size": t.batch_size,
            "seed": t.seed,
            "sources": [
                {"name": s, "datasets": [os.fspath(_dataset_dir(cfg, kind, s))]} for s in cfg.sources
            ],
            "weights": cfg.weights,
        }

    return {
        "loader": loader(recipe),
        "val_loader": loader("heldout"),
        "out_dir": os.fspath(cfg.root / "runs" / recipe),
        "model": t.model,
        "model_overrides": {"max_seq_len": t.seq_len, **t.model_overrides},
        "steps": t.steps,
        "lr": t.lr,
        "warmup_steps": t.warmup_steps,
        "val_every": t.val_every,
        "val_batches": t.val_batches,
        "checkpoint_every": t.checkpoint_every,
        "rollback_after": t.rollback_after,
        "log_every": t.log_every,
        "seed": t.seed,
    }


def step_train(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.trainer.train import TrainConfig, train

    for recipe in RECIPES:
        for src in cfg.sources:
            _need(_dataset_dir(cfg, recipe, src) / "manifest.json", "tokenize")
        tc = train_config(cfg, recipe)
        _json_dump(cfg.root / f"train-{recipe}.json", tc)
        # A run continues only on the data and settings it started with; anything else starts over.
        manifests = [
            (_dataset_dir(cfg, k, s) / "manifest.json").read_text()
            for k in (recipe, "heldout")
            for s in cfg.sources
        ]
        want, run_dir = _fingerprint(tc, manifests), Path(tc["out_dir"])
        stamp = run_dir / ".pipeline-stamp"
        if run_dir.exists() and not (stamp.exists() and stamp.read_text() == want):
            say(f"  {run_dir} was trained on other data or settings: starting it over")
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(want)
        say(f"recipe {recipe}: {cfg.train.steps} steps of {cfg.train.batch_size}x{cfg.train.seq_len} tokens")
        last = train(TrainConfig(**tc))
        if not last:
            say(f"  {tc['out_dir']} had already finished")
    finals = {r: final_val_loss(cfg.root / "runs" / r) for r in RECIPES}
    say(
        "  final validation loss on the held-out clean split: "
        + ", ".join(f"{r} {v:.4f}" for r, v in finals.items())
    )


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    _need(path, "train")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def final_val_loss(run_dir: Path) -> float:
    vals = [m["val_loss"] for m in read_metrics(run_dir) if m.get("val_loss") is not None]
    if not vals:
        raise ValueError(f"{run_dir}/metrics.jsonl has no validation loss")
    return float(vals[-1])


def median_tokens_per_s(metrics: list[dict[str, Any]]) -> float:
    # The first steps include start-up work; the median ignores them.
    return float(statistics.median(m["tokens_per_s"] for m in metrics)) if metrics else 0.0


def step_report(cfg: PipelineConfig, say: Callable[[str], None]) -> None:
    from shardforge.report import write_report

    out = write_report(cfg)
    say(f"report: {out / 'index.html'} (numbers in {out / 'summary.json'})")


_STEP_FUNCS: dict[str, Callable[[PipelineConfig, Callable[[str], None]], None]] = {
    "corpus": step_corpus,
    "clean": step_clean,
    "tokenizer": step_tokenizer,
    "split": step_split,
    "tokenize": step_tokenize,
    "stats": step_stats,
    "train": step_train,
    "report": step_report,
}
