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


def test_file_job_drops_or_tags_and_resumes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import write_jsonl

    filler = real_documents(40, seed=5)
    he = humaneval_items()
    gsm = gsm8k_items()
    src = tmp_path / "in"
    a = [{"id": f"a{i}", "text": t} for i, t in enumerate(filler[:20])]
    a[3]["text"] += "\n" + he[10][1]
    a[7]["text"] = gsm[5][1].upper() + "\n" + a[7]["text"]
    write_jsonl(src / "a.jsonl.zst", a)
    b = [{"id": f"b{i}", "text": t, "score": i} for i, t in enumerate(filler[20:])]
    b[0]["text"] = "intro " + gsm[100][1] + " outro"
    pq.write_table(pa.Table.from_pylist(b), src / "b.parquet")
    (src / "c.jsonl").write_text('{"id": "c0", "text": "fine"}\nnot json\n')
    evals = [
        shardforge.EvalSet("humaneval", shardforge.humaneval_path(), "humaneval"),
        shardforge.EvalSet("gsm8k", GSM8K, "gsm8k"),
    ]
    with pytest.raises(shardforge.MalformedRecordError, match=r"c\.jsonl:2"):
        shardforge.decontaminate(src, tmp_path / "raise", evals)

    out = tmp_path / "drop"
    r = shardforge.decontaminate(src, out, evals, on_error="skip")
    assert (r["docs_in"], r["docs_out"], r["docs_contaminated"], r["rejects"]) == (41, 38, 3, 1)
    by_name = {x["name"]: x for x in r["benchmarks"]}
    assert by_name["humaneval"]["contaminated_items"] == 1 and by_name["gsm8k"]["contaminated_items"] == 2
    import duckdb

    rows = (
        duckdb.connect()
        .execute(
            f"SELECT doc_id, file, line, benchmark, item_id FROM '{out}/hits.parquet' ORDER BY file, line"
        )
        .fetchall()
    )
    assert rows == [
        ("a3", "a.jsonl.zst", 4, "humaneval", he[10][0]),
        ("a7", "a.jsonl.zst", 8, "gsm8k", gsm[5][0]),
        ("b0", "b.parquet", 1, "gsm8k", gsm[100][0]),
    ]
    kept_b = pq.read_table(out / "b.parquet").to_pylist()
    assert [x["id"] for x in kept_b] == [f"b{i}" for i in range(1, 20)] and kept_b[0]["score"] == 1
    tagged = shardforge.decontaminate(src, tmp_path / "tag", evals, action="tag", on_error="skip")
    assert tagged["docs_out"] == 41 and tagged["docs_contaminated"] == 3
    assert (tmp_path / "tag" / "c.jsonl").read_text() == '{"id": "c0", "text": "fine"}\n'
    again = shardforge.decontaminate(src, out, evals, on_error="skip")
    assert again["files_resumed"] == 3 and again["docs_out"] == 38

    # cut: what is left of each contaminated document, as EvalIndex.cut computes it in memory.
    import io

    import zstandard

    cut = shardforge.decontaminate(src, tmp_path / "cut", evals, action="cut", on_error="skip")
    pieces = shardforge.EvalIndex(evals).cut([a[3]["text"], a[7]["text"], str(b[0]["text"])])
    assert cut["docs_cut"] == sum(1 for p in pieces if p) and cut["docs_out"] == 38 + cut["docs_cut"]
    with open(tmp_path / "cut" / "a.jsonl.zst", "rb") as f:
        lines = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), "utf-8").read().splitlines()
    texts = {r["id"]: r["text"] for r in map(json.loads, lines)}
    for doc_id, p in (("a3", pieces[0]), ("a7", pieces[1])):
        assert texts.get(doc_id) == ("\n\n".join(p) if p else None)
    assert texts["a0"] == a[0]["text"]
    # The same cut, written as Parquet: the same ids and texts.
    conv = shardforge.decontaminate(
        src, tmp_path / "cut-pq", evals, action="cut", on_error="skip", output_format="parquet"
    )
    assert conv["docs_out"] == cut["docs_out"]
    rows = pq.read_table(tmp_path / "cut-pq" / "a.parquet").to_pylist()
    assert {r["id"]: r["text"] for r in rows} == texts
