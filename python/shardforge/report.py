"""The main job's report: `report/summary.json` (every number, read from the stage reports), PNG plots
(matplotlib) and `report/index.html`, which shows both. Nothing here is computed twice: the
numbers come from the reports the pipeline's steps wrote, and the plots and the page from the summary."""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shardforge.pipeline import RECIPES, PipelineConfig, length_histogram, median_tokens_per_s, read_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _load(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the pipeline's earlier steps first")
    return json.loads(path.read_text())


def _stage_bytes(clean_dir: Path, stage: dict[str, Any], sources: list[str]) -> tuple[int, int]:
    """(bytes in, bytes out) of a stage's text, from its job reports."""
    reports = clean_dir / "reports" / stage["stage"]
    if stage["stage"] == "filter":
        per = [_load(reports / s / "report.json") for s in sources if (reports / s / "report.json").exists()]
        return sum(r["text_bytes"] for r in per), sum(r["text_bytes_out"] for r in per)
    r = _load(reports / "report.json")
    if stage["stage"] == "dedup":
        return r["text_bytes_in"], r["text_bytes_out"]
    return r["text_bytes"], r["text_bytes_out"]


def _cluster_sizes(clean_dir: Path) -> list[dict[str, int]]:
    import duckdb

    path = clean_dir / "reports" / "dedup" / "clusters.parquet"
    if not path.exists():
        return []
    rows = duckdb.execute(
        "SELECT cluster_size, count(DISTINCT cluster_id) FROM read_parquet(?) WHERE cluster_size > 1 "
        "GROUP BY 1 ORDER BY 1",
        [os.fspath(path)],
    ).fetchall()
    return [{"size": int(s), "clusters": int(n)} for s, n in rows]


def summarize(cfg: PipelineConfig) -> dict[str, Any]:
    """Every number the report shows, read from the reports under `cfg.workdir`."""
    root, clean_dir = cfg.root, Path(cfg.clean.output)
    clean_report = _load(clean_dir / "report.json")
    stages = []
    for st in clean_report["stages"]:
        b_in, b_out = _stage_bytes(clean_dir, st, cfg.sources)
        stages.append(
            {
                "stage": st["stage"],
                "docs_in": st["docs_in"],
                "docs_out": st["docs_out"],
                "rejects": st["rejects"],
                "dropped": st["reasons"],
                "bytes_in": b_in,
                "bytes_out": b_out,
                "seconds": st["seconds"],
            }
        )
    filt = next((st for st in clean_report["stages"] if st["stage"] == "filter"), None)
    dedup_path = clean_dir / "reports" / "dedup" / "report.json"
    dedup = _load(dedup_path) if dedup_path.exists() else None
    decon = next((st for st in clean_report["stages"] if st["stage"] == "decontaminate"), None)
    training = {}
    for recipe in RECIPES:
        by_step = {r["step"]: r for r in read_metrics(root / "runs" / recipe)}
        m = [by_step[k] for k in sorted(by_step)]  # a rolled-back stretch is replaced by its rerun
        tc = _load(root / f"train-{recipe}.json")
        val = [(r["step"], r["tokens"], r["val_loss"]) for r in m if r.get("val_loss") is not None]
        training[recipe] = {
            "steps": m[-1]["step"],
            "tokens": m[-1]["tokens"],
            "seed": tc["seed"],
            "model": tc["model"],
            "batch_size": tc["loader"]["batch_size"],
            "seq_len": tc["loader"]["seq_len"],
            "first_loss": m[0]["loss"],
            "final_loss": m[-1]["loss"],
            "final_val_loss": val[-1][2] if val else None,
            "median_tokens_per_s": median_tokens_per_s(m),
            "skipped": m[-1]["skipped"],
            "rollbacks": m[-1]["rollbacks"],
            "loss": [(r["step"], r["tokens"], r["loss"]) for r in m],
            "val_loss": val,
            "tokens_per_s": [(r["step"], r["tokens_per_s"]) for r in m],
        }
    vc, vr = training["clean"]["final_val_loss"], training["raw"]["final_val_loss"]
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workdir": os.fspath(root),
        "config": {
            "vocab_size": cfg.vocab_size,
            "heldout_every": cfg.heldout_every,
            "heldout_threshold": cfg.heldout_threshold,
            "weights": cfg.weights,
        },
        "corpus": _load(root / "corpus" / ".gathered.json")["counts"],
        "stages": stages,
        "filter_rules": {s: v["rule_failures"] for s, v in (filt or {}).get("sources", {}).items()},
        "dedup": None
        if dedup is None
        else {
            "exact_duplicates": dedup["exact_duplicates"],
            "near_duplicates": dedup["near_duplicates"],
            "clusters": dedup["clusters"],
            "largest_cluster": dedup["largest_cluster"],
            "cluster_sizes": _cluster_sizes(clean_dir),
        },
        "contamination": (decon or {}).get("benchmarks", []),
        "split": _load(root / "split.json"),
        "datasets": _load(root / "stats.json"),
        "training": training,
        "comparison": {
            "metric": "validation loss (nats/token) on the held-out clean split, last evaluation",
            "clean": vc,
            "raw": vr,
            "raw_minus_clean": None if vc is None or vr is None else vr - vc,
        },
    }


def _bar_labels(ax: Axes, values: list[float], fmt: str = "{:,.0f}") -> None:
    for i, v in enumerate(values):
        ax.annotate(fmt.format(v), (i, v), ha="center", va="bottom", fontsize=8)


def plot(summary: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """Write the PNGs; returns (file, caption) pairs in page order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list[tuple[str, str]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        figs.append((name, caption))

    st = summary["stages"]
    names = [s["stage"] for s in st]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(names, [s["docs_out"] for s in st], label="kept")
    bottom = [s["docs_out"] for s in st]
    reasons = sorted({r for s in st for r in s["dropped"]})
    for r in reasons:
        vals = [s["dropped"].get(r, 0) for s in st]
        a.bar(names, vals, bottom=bottom, label=f"dropped: {r}")
        bottom = [x + y for x, y in zip(bottom, vals, strict=True)]
    a.set_title("documents per stage")
    a.legend(fontsize=8)
    x = range(len(st))
    b.bar([i - 0.2 for i in x], [s["bytes_in"] / 1e6 for s in st], width=0.4, label="in")
    b.bar([i + 0.2 for i in x], [s["bytes_out"] / 1e6 for s in st], width=0.4, label="out")
    b.set_xticks(list(x), names)
    b.set_ylabel("MB of text")
    b.set_title("bytes per stage")
    b.legend(fontsize=8)
    save(fig, "stages.png", "Documents kept and dropped (by reason) and text bytes in and out, per stage.")

    rules = summary["filter_rules"]
    if rules:
        all_rules = sorted(
            {r for v in rules.values() for r in v}, key=lambda r: -sum(v.get(r, 0) for v in rules.values())
        )
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(all_rules) + 1.2))
        left = [0] * len(all_rules)
        for src, v in rules.items():
            vals = [v.get(r, 0) for r in all_rules]
            ax.barh(all_rules, vals, left=left, label=src)
            left = [x + y for x, y in zip(left, vals, strict=True)]
        ax.invert_yaxis()
        ax.set_xlabel("documents failing the rule (a document can fail several)")
        ax.legend(fontsize=8)
        save(fig, "filter_rules.png", "Quality rules: documents failing each rule, per source.")

    if summary["dedup"] and summary["dedup"]["cluster_sizes"]:
        cs = summary["dedup"]["cluster_sizes"]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar([c["size"] for c in cs], [c["clusters"] for c in cs], width=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents in the duplicate cluster")
        ax.set_ylabel("clusters")
        save(
            fig,
            "clusters.png",
            "Duplicate clusters by size (exact and near duplicates; one document kept each).",
        )

    split = summary["split"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    bench = summary["contamination"]
    labels = [f"{x['name']}\n({x['items']:,} items)" for x in bench]
    found = [x["contaminated_items"] for x in bench]
    a.bar(labels, found, label="items found in the corpus")
    a.bar(labels, [x["documents"] for x in bench], alpha=0.6, label="documents hit")
    _bar_labels(a, found)
    a.set_ylim(0, max([1, *found, *(x["documents"] for x in bench)]) * 1.2)
    a.set_title("benchmark contamination")
    a.legend(fontsize=8)
    keys = [f"{r}/{s}" for r in split["recipes"] for s in split["recipes"][r]]
    vals = [split["recipes"][r][s]["docs_overlap"] for r in split["recipes"] for s in split["recipes"][r]]
    b.bar(keys, vals)
    _bar_labels(b, vals)
    b.set_title(f"near-copies of held-out docs left out of training (J >= {split['threshold']})")
    save(
        fig,
        "contamination.png",
        "Benchmark items found in the corpus, and training documents removed as near-copies of the "
        "held-out split.",
    )

    ds = summary["datasets"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    kinds = list(ds)
    srcs = list(next(iter(ds.values())))
    for i, src in enumerate(srcs):
        a.bar(
            [k + f"\n{src}" for k in kinds],
            [ds[k][src]["tokens"] / 1e6 for k in kinds],
            label=src,
            color=f"C{i}",
        )
    a.set_ylabel("million tokens")
    a.set_title("tokens per dataset and source")
    for kind in ("clean", "raw"):
        hist = length_histogram(ds[kind])
        ks = sorted(hist)
        b.step(ks, [hist[k] for k in ks], where="post", label=kind)
    b.set_xscale("log", base=2)
    b.set_xlabel("document length (tokens, power-of-two bins)")
    b.set_ylabel("documents")
    b.set_title("document lengths")
    b.legend(fontsize=8)
    save(
        fig,
        "tokens.png",
        "Tokens per source in each token dataset, and the distribution of document lengths.",
    )

    tr = summary["training"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (recipe, t) in enumerate(tr.items()):
        a.plot([x[1] / 1e6 for x in t["loss"]], [x[2] for x in t["loss"]], color=f"C{i}", alpha=0.35, lw=0.8)
        a.plot(
            [x[1] / 1e6 for x in t["val_loss"]],
            [x[2] for x in t["val_loss"]],
            color=f"C{i}",
            marker="o",
            ms=3,
            label=f"{recipe}: validation",
        )
        b.plot(
            [x[0] for x in t["tokens_per_s"]],
            [x[1] for x in t["tokens_per_s"]],
            color=f"C{i}",
            lw=0.8,
            label=recipe,
        )
    a.set_xlabel("training tokens (millions)")
    a.set_ylabel("loss (nats/token)")
    a.set_title("training (faint) and held-out validation loss")
    a.legend(fontsize=8)
    b.set_xlabel("step")
    b.set_ylabel("tokens/s")
    b.set_title("throughput")
    b.legend(fontsize=8)
    save(
        fig,
        "training.png",
        "Loss of the same model trained on the clean and on the raw corpus, validated on the same "
        "held-out clean split; throughput per step.",
    )
    return figs


def _table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return html.escape(str(v))

    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(summary: dict[str, Any], figs: list[tuple[str, str]]) -> str:
    st, tr, cmp_ = summary["stages"], summary["training"], summary["comparison"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>shardforge report</title>",
        "<style>body{font:14px sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}figure{margin:1.5em 0}img{max-width:100%}</style>",
        "<h1>shardforge: raw text to a trained model</h1>"
        f"<p>Work directory <code>{html.escape(summary['workdir'])}</code>, "
        f"generated {summary['generated']}. Every number is in <code>summary.json</code>.</p>",
        "<h2>Corpus</h2>",
        _table(["source", "documents"], [[k, v] for k, v in summary["corpus"].items()]),
        "<h2>Cleaning</h2>",
        _table(
            ["stage", "docs in", "docs out", "dropped", "rejects", "MB in", "MB out", "seconds"],
            [
                [
                    s["stage"],
                    s["docs_in"],
                    s["docs_out"],
                    ", ".join(f"{k} {v:,}" for k, v in s["dropped"].items()),
                    s["rejects"],
                    f"{s['bytes_in'] / 1e6:,.1f}",
                    f"{s['bytes_out'] / 1e6:,.1f}",
                    f"{s['seconds']:,.1f}",
                ]
                for s in st
            ],
        ),
    ]
    ds = summary["datasets"]
    parts.append("<h2>Token datasets</h2>")
    parts.append(
        _table(
            ["dataset", "source", "documents", "tokens", "p50 tokens/doc"],
            [
                [k, s, v["documents"], v["tokens"], v["tokens_per_doc"].get("p50", 0)]
                for k, per in ds.items()
                for s, v in per.items()
            ],
        )
    )
    parts.append("<h2>Training: clean vs raw</h2>")
    any_t = next(iter(tr.values()))
    parts.append(
        f"<p>The same {html.escape(any_t['model'])} model, seed {any_t['seed']}, {any_t['steps']} steps of "
        f"{any_t['batch_size']}×{any_t['seq_len']} tokens ({any_t['tokens']:,} tokens), mixture "
        f"{html.escape(json.dumps(summary['config']['weights']))}, validated on the held-out clean split "
        f"(1 clean document in {summary['config']['heldout_every']}; near-copies removed from both "
        "training sets).</p>"
    )
    parts.append(
        _table(
            [
                "recipe",
                "first loss",
                "final train loss",
                "final validation loss",
                "median tokens/s",
                "skipped steps",
                "rollbacks",
            ],
            [
                [
                    r,
                    t["first_loss"],
                    t["final_loss"],
                    t["final_val_loss"],
                    t["median_tokens_per_s"],
                    sum(t["skipped"].values()),
                    t["rollbacks"],
                ]
                for r, t in tr.items()
            ],
        )
    )
    diff = cmp_["raw_minus_clean"]
    if diff is not None:
        verdict = "lower (better)" if diff > 0 else "higher (worse)" if diff < 0 else "equal"
        parts.append(
            f"<p><b>Clean data's validation loss is {abs(diff):.4f} nats/token {verdict} than raw data's</b> "
            f"({cmp_['clean']:.4f} vs {cmp_['raw']:.4f}).</p>"
        )
    for r, t in tr.items():
        if t["rollbacks"]:
            parts.append(
                f"<p>The {html.escape(r)} run rolled back {t['rollbacks']} time(s) "
                "after an unrecovered spike "
                "and trained on at a lower learning rate from then on (the trainer's guard); the comparison "
                "includes that.</p>"
            )
    for name, caption in figs:
        parts.append(
            f"<figure><img src='{name}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return "\n".join(parts) + "\n"


def write_report(cfg: PipelineConfig) -> Path:
    """Write report/summary.json, the PNGs and report/index.html under the work directory."""
    out = cfg.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(cfg)
    figs = plot(summary, out)
    for name, data in (
        ("summary.json", json.dumps(summary, indent=2)),
        ("index.html", render_html(summary, figs)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, out / name)
    return out
