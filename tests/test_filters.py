"""The quality rules from Python and their file job: statistics and failed rules as columns, C4's
line removals written back into the documents, configs, bad input, resume."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shardforge import ConfigError, MalformedRecordError, _core
from shardforge.filters import filter_files, filter_texts

PROSE = (
    "The committee met on Tuesday to review the proposal that had been circulated the week before. "
    "Members agreed that the plan to expand the library should go ahead, with work to begin in the "
    "spring. They asked the treasurer to prepare a budget and to report back at the next meeting. "
    "Several people raised concerns about parking, and the chair promised to look into it. "
    "The meeting closed with thanks to the volunteers who had organised the book sale."
)


_ADJ = [
    "quiet",
    "bright",
    "early",
    "local",
    "small",
    "public",
    "careful",
    "modern",
    "famous",
    "simple",
    "northern",
    "recent",
]
_NOUN = [
    "committee",
    "library",
    "garden",
    "council",
    "teacher",
    "harbour",
    "village",
    "museum",
    "river",
    "bakery",
    "school",
    "market",
]
_VERB = [
    "reviewed",
    "visited",
    "repaired",
    "opened",
    "described",
    "approved",
    "painted",
    "measured",
    "funded",
    "planned",
]


def prose(i: int) -> str:
    """A paragraph of plain English that every rule lets through; different `i`, different text."""
    if i == 0:
        return PROSE
    rng = random.Random(i)
    return " ".join(
        f"The {rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_VERB)} the {rng.choice(_NOUN)} of the "
        f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}, and that {rng.choice(_NOUN)} is to be {rng.choice(_VERB)} "
        f"with care in {1900 + rng.randrange(120)}."
        for _ in range(6)
    )


def write_jsonl(path: Path, records: Sequence[Mapping[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_statistics_and_failures_come_back_per_text() -> None:
    spam = "\n".join(["Buy now!"] * 30)
    r = filter_texts([prose(0), spam, ""])
    assert r.stats.shape == (3, len(r.names))
    assert r.failed[0] == [] and bool(r.kept[0])
    assert "gopher_dup_line" in r.failed[1] and "gopher_stop_words" in r.failed[1]
    assert "gopher_empty" in r.failed[2] and "fineweb_empty" in r.failed[2]
    # 30 lines, 29 of them repeats.
    assert r.stat("gopher_dup_line_frac")[1] == pytest.approx(29 / 30)
    assert r.stat("gopher_stop_words")[0] >= 2


def test_config_switches_rules_and_families_off() -> None:
    spam = "\n".join(["Buy now!"] * 30)
    off = filter_texts([spam], {"gopher_repetition": {"dup_line_frac": None, "dup_line_char_frac": False}})
    assert "gopher_dup_line" not in off.failed[0] and "gopher_dup_line_chars" not in off.failed[0]
    only_c4 = filter_texts(
        [spam], {f: {"enabled": False} for f in ("gopher_repetition", "gopher_quality", "fineweb")}
    )
    assert all(n.startswith("c4_") for n in only_c4.names)
    with pytest.raises(ConfigError, match="unknown filter families"):
        filter_texts([spam], {"gopher": {}})
    with pytest.raises(ConfigError, match="min_words"):
        filter_texts([spam], {"gopher_quality": {"min_words": 3}})
    with pytest.raises(ConfigError, match="false/null"):
        filter_texts([spam], {"c4": {"min_num_sentences": True}})


def test_words_follow_spacy_rules() -> None:
    words = _core.filter_words("Don't stop (e.g. now), it's 5km to https://x.org/a.")
    expected = "Do|n't|stop|(|e.g.|now|)|,|it|'s|5|km|to|https://x.org/a|."
    assert words == expected.split("|")


def test_file_job_writes_kept_edited_documents_and_tables(tmp_path: Path) -> None:
    noisy = prose(1) + "\nPlease enable JavaScript to continue.\nshort line"
    records = [
        {"id": "a", "text": prose(0), "url": "u0"},
        {"id": "b", "text": noisy, "url": "u1"},
        {"id": "c", "text": "Lorem ipsum dolor sit amet. " * 20, "url": "u2"},
    ]
    src = write_jsonl(tmp_path / "web.jsonl", records)
    table = pa.table({"text": [prose(2), "{} " * 100], "n": [1, 2]})
    pq.write_table(table, tmp_path / "more.parquet")
    out = tmp_path / "out"
    r = filter_files([src, tmp_path / "more.parquet"], out)
    assert (r["docs_in"], r["docs_out"], r["docs_dropped"]) == (5, 3, 2)
    assert r["docs_in"] == r["docs_out"] + r["docs_dropped"]
    assert r["lines_removed"] == {"javascript": 1, "no_terminal_punct": 1}

    kept = [json.loads(x) for x in (out / "web.jsonl").read_text().splitlines()]
    assert [k["id"] for k in kept] == ["a", "b"]
    # The edited record: text replaced, other fields kept in their order.
    assert kept[1] == {"id": "b", "text": prose(1), "url": "u1"}
    assert list(kept[1]) == ["id", "text", "url"]
    assert pq.read_table(out / "more.parquet").to_pylist() == [{"text": prose(2), "n": 1}]

    con = duckdb.connect()
    rows = con.execute(
        f"SELECT file, line, doc_id, kept, edited FROM '{out}/stats.parquet' ORDER BY file, line"
    ).fetchall()
    assert rows == [
        ("more.parquet", 1, "more.parquet:1", True, False),
        ("more.parquet", 2, "more.parquet:2", False, True),
        ("web.jsonl", 1, "a", True, False),
        ("web.jsonl", 2, "b", True, True),
        ("web.jsonl", 3, "c", False, False),
    ]
    (lorem,) = con.execute(
        f"SELECT count(*) FROM '{out}/stats.parquet' WHERE list_contains(failed, 'c4_lorem_ipsum')"
    ).fetchone() or (0,)
    assert lorem == 1
    removed = con.execute(
        f"SELECT doc_id, doc_line, reason, text FROM '{out}/removed_lines.parquet' "
        "WHERE file = 'web.jsonl' ORDER BY doc_line"
    ).fetchall()
    assert removed == [
        ("b", 2, "javascript", "Please enable JavaScript to continue."),
        ("b", 3, "no_terminal_punct", "short line"),
    ]
    assert json.loads((out / "report.json").read_text())["docs_out"] == 3

    again = filter_files([src, tmp_path / "more.parquet"], out)
    assert again["files_resumed"] == 2 and again["docs_out"] == 3
    # As Parquet, the kept records carry the same edited text and fields.
    conv = filter_files([src, tmp_path / "more.parquet"], tmp_path / "conv", output_format="parquet")
    assert conv["docs_out"] == 3
    assert pq.read_table(tmp_path / "conv" / "web.parquet").to_pylist() == kept


def test_tag_keeps_every_document_unchanged(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "d.jsonl", [{"text": prose(0) + "\nno end"}, {"text": "tiny"}])
    r = filter_files(src, tmp_path / "out", action="tag")
    assert r["docs_out"] == 2
    assert (tmp_path / "out" / "d.jsonl").read_text() == src.read_text()


def test_bad_records_are_named_or_kept_as_rejects(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"text": prose(0)}) + "\n{not json\n" + json.dumps({"text": prose(1)}) + "\n")
    with pytest.raises(MalformedRecordError, match=r"c\.jsonl:2"):
        filter_files(src, tmp_path / "raise")
    r = filter_files(src, tmp_path / "skip", on_error="skip")
    assert (r["rejects"], r["docs_out"]) == (1, 2)
    reject = json.loads((tmp_path / "skip" / "rejects.jsonl").read_text())
    assert reject["line"] == 2 and reject["raw"] == "{not json"
