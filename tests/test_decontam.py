"""Decontamination: every HumanEval and GSM8K item planted into real documents is found, in any
case and spacing and inside longer text; clean real text gives no hits; cutting keeps the margins
right; bad evaluation files are named by file and line."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

import shardforge
from conftest import real_documents

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "evals" / "gsm8k_test.jsonl"


def humaneval_items() -> list[tuple[str, str]]:
    with gzip.open(shardforge.humaneval_path(), "rt") as f:
        rows = [json.loads(line) for line in f]
    return [(r["task_id"], r["prompt"] + r["canonical_solution"]) for r in rows]


def gsm8k_items() -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    return [(f"gsm8k:{i + 1}", r["question"] + "\n" + r["answer"]) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def index() -> shardforge.EvalIndex:
    return shardforge.EvalIndex(
        [
            shardforge.EvalSet("humaneval", shardforge.humaneval_path(), "humaneval"),
            shardforge.EvalSet("gsm8k", GSM8K, "gsm8k"),
        ]
    )


def disguise(text: str, how: int, rng: random.Random) -> str:
    """The item as a scraper might have kept it: verbatim, re-cased with its whitespace changed, or
    with its punctuation and line breaks mangled."""
    if how == 0:
        return text
    if how == 1:
        return " \n ".join(text.upper().split())
    words = text.split()
    return "  ".join(w.title() if rng.random() < 0.5 else w.lower() for w in words).replace(",", " , ")


def test_every_planted_item_is_found(index: shardforge.EvalIndex) -> None:
    stats = index.stats()
    assert {b["name"]: (b["items"], b["items_too_short"]) for b in stats["benchmarks"]} == {
        "humaneval": (164, 0),
        "gsm8k": (1319, 0),
    }
    rng = random.Random(7)
    filler = real_documents(200, seed=11)
    planted = [("humaneval", i, t) for i, t in humaneval_items()] + [
        ("gsm8k", i, t) for i, t in gsm8k_items()
    ]
    docs = []
    for k, (_, _, text) in enumerate(planted):
        before, after = rng.choice(filler), rng.choice(filler)
        cut_at = rng.randrange(len(before) // 2 + 1)
        docs.append(before[:cut_at] + "\n" + disguise(text, k % 3, rng) + "\n" + after[: rng.randrange(2000)])
    hits = index.scan(docs)
    found = {(h.doc, h.benchmark, h.item_id) for h in hits}
    missing = [(b, i) for d, (b, i, _) in enumerate(planted) if (d, b, i) not in found]
    assert missing == []
    # The hit spans the planted item: its first n-gram opens the item.
    for d, (_, item_id, text) in enumerate(planted[:50]):
        own = [h for h in hits if h.doc == d and h.item_id == item_id]
        assert own and own[0].ngram.split()[:3] == shardforge.normalize_text(text).split()[:3]
    assert index.contaminated_items(docs) == {
        "humaneval": {i for _, i, _ in planted[:164]},
        "gsm8k": {i for b, i, _ in planted if b == "gsm8k"},
    }


def test_clean_real_text_has_no_hits(index: shardforge.EvalIndex) -> None:
    docs = real_documents(600, seed=2)
    hits = index.scan(docs)
    # Any hit here would be a real overlap to inspect; list them in the failure message.
    assert [(h.benchmark, h.item_id, h.ngram) for h in hits] == []


def test_cut_drops_spans_with_margins(index: shardforge.EvalIndex) -> None:
    _, item = gsm8k_items()[0]
    head, tail = "x" * 1000, "y" * 450
    doc = f"{head} {item} {tail}"
    pieces = index.cut([doc, "a clean text"])
    (h,) = [h for h in index.scan([doc]) if h.doc == 0]
    assert pieces[1] == ["a clean text"]
    # 200 characters on either side of the matched span go with it (offsets are UTF-8 bytes; the
    # margins here are ASCII).
    raw = doc.encode()
    assert pieces[0] == [raw[: h.start - 200].decode(), raw[h.end + 200 :].decode()]
    assert pieces[0][0] == "x" * (1001 - 200)
    short = shardforge.EvalIndex([shardforge.EvalSet("gsm8k", GSM8K, "gsm8k")], min_piece_chars=300)
    assert short.cut([doc]) == [[raw[: h.start - 200].decode()]]
    none = shardforge.EvalIndex([shardforge.EvalSet("gsm8k", GSM8K, "gsm8k")], max_pieces=1)
    assert none.cut([doc]) == [[]]


def test_ngram_size_and_boilerplate(tmp_path: Path) -> None:
    shared = "this sentence is shared word for word by all of the evaluation items here"
    evals = tmp_path / "e.jsonl"
    evals.write_text(
        "".join(
            json.dumps({"q": f"{shared} and then item {i} says something only it says at all"}) + "\n"
            for i in range(4)
        )
    )
    doc = [f"prefix {shared} suffix"]
    strict = shardforge.EvalIndex(
        [shardforge.EvalSet("e", evals, fields=["q"])], ngram=8, max_items_per_ngram=3
    )
    assert strict.scan(doc) == []
    assert strict.stats()["boilerplate_ngrams"] > 0
    loose = shardforge.EvalIndex(
        [shardforge.EvalSet("e", evals, fields=["q"])], ngram=8, max_items_per_ngram=4
    )
    assert {h.item_id for h in loose.scan(doc)} == {"e:1", "e:2", "e:3", "e:4"}
    for n in (7, 14):
        with pytest.raises(shardforge.ConfigError, match="ngram"):
            shardforge.EvalIndex([shardforge.EvalSet("e", evals, fields=["q"])], ngram=n)


def test_bad_eval_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{"question": "q"\n')
    with pytest.raises(shardforge.MalformedRecordError, match=r"bad\.jsonl:2"):
        shardforge.EvalIndex([shardforge.EvalSet("b", bad, "gsm8k")])
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(shardforge.MalformedRecordError, match=r"bad\.jsonl:1.*answer"):
        shardforge.EvalIndex([shardforge.EvalSet("b", bad, "gsm8k")])
    with pytest.raises(FileNotFoundError):
        shardforge.EvalIndex([shardforge.EvalSet("b", tmp_path / "missing.jsonl", "gsm8k")])
    with pytest.raises(shardforge.ConfigError, match="fields"):
        shardforge.EvalIndex([shardforge.EvalSet("b", bad)])
