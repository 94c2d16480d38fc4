"""Bad input: a clear error naming file and line, or (on_error="skip") a counted reject."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import zstandard

import shardforge
from conftest import write_jsonl

GOOD = [
    {"id": f"g{i}", "text": f"document number {i} has a handful of distinct words in it"} for i in range(5)
]


def with_bad_line(tmp_path: Path, bad: bytes) -> Path:
    lines = [json.dumps(r).encode() for r in GOOD]
    lines.insert(2, bad)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"id": "x", "text": "unterminated', "malformed JSON"),
        (b'{"id": "x", "text": "caf\xe9"}', "invalid UTF-8 at byte 24"),
        (b'{"id": "x", "body": "no text field"}', 'missing text field "text"'),
        (b'{"id": "x", "text": 42}', "is a number, not a string"),
        (b'["not", "an", "object"]', "malformed JSON"),
        (b'{"id": "x", "text": "ok"} trailing', "malformed JSON"),
    ],
)
def test_bad_line_raises_then_skips(tmp_path: Path, bad: bytes, message: str) -> None:
    path = with_bad_line(tmp_path, bad)
    with pytest.raises(shardforge.MalformedRecordError) as err:
        shardforge.dedup(path, tmp_path / "out")
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)
    r = shardforge.dedup(path, tmp_path / "out2", on_error="skip")
    assert r.rejects == 1 and r.docs_in == 5 and r.docs_out == 5
    rejects = [json.loads(x) for x in (tmp_path / "out2" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 1
    assert rejects[0]["line"] == 3 and rejects[0]["file"] == str(path)
    assert message in rejects[0]["error"]
    assert rejects[0]["raw"] == bad.decode("utf-8", errors="replace")


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in GOOD[:2]) + "\n\n   \n" + json.dumps(GOOD[2]) + "\r\n")
    r = shardforge.dedup(path, tmp_path / "out")
    assert r.docs_in == 3 and r.rejects == 0


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_stream(tmp_path: Path, suffix: str) -> None:
    # Random words compress poorly, so the cut lands after several whole zstd blocks / gzip chunks.
    rng = random.Random(0)
    records = [
        {"id": f"r{i}", "text": " ".join(f"w{rng.randrange(10**9)}" for _ in range(120))} for i in range(400)
    ]
    path = write_jsonl(tmp_path / f"in{suffix}", records)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(shardforge.TruncatedInputError) as err:
        shardforge.dedup(path, tmp_path / "out")
    assert str(path) in str(err.value) and "after line" in str(err.value)
    r = shardforge.dedup(path, tmp_path / "out2", on_error="skip")
    assert r.incomplete_files == 1 and r.rejects == 1
    assert 0 < r.docs_in < 400
    rejects = (tmp_path / "out2" / "rejects.jsonl").read_text()
    assert '"kind":"truncated"' in rejects
    # The records before the damage are written out intact.
    out = (tmp_path / "out2" / path.name).read_bytes()
    text = (
        gzip.decompress(out)
        if suffix.endswith("gz")
        else zstandard.ZstdDecompressor().stream_reader(out).read()
    )
    assert len(text.splitlines()) == r.docs_out
    # Converted to Parquet, the same records survive, and a bad line between them stays out.
    conv = shardforge.dedup(path, tmp_path / "out3", on_error="skip", output_format="parquet")
    table = pq.read_table(tmp_path / "out3" / "in.parquet")
    assert conv.docs_out == r.docs_out == table.num_rows
    assert table.column("id").to_pylist() == [json.loads(x)["id"] for x in text.splitlines()]


def test_bad_lines_stay_out_of_parquet_output(tmp_path: Path) -> None:
    path = with_bad_line(tmp_path, b'{"id": "x", "text": "caf\xe9"}')
    r = shardforge.dedup(path, tmp_path / "out", on_error="skip", output_format="parquet")
    assert r.rejects == 1 and r.docs_out == 5
    table = pq.read_table(tmp_path / "out" / "in.parquet")
    assert table.to_pylist() == GOOD


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 100)
    with pytest.raises(shardforge.ParquetError, match=r"bad\.parquet"):
        shardforge.dedup(path, tmp_path / "out")
    r = shardforge.dedup(path, tmp_path / "out2", on_error="skip")
    assert r.rejects == 1 and r.docs_in == 0


def test_parquet_without_text_column_and_null_text(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a"]}), tmp_path / "nocol.parquet")
    with pytest.raises(shardforge.ParquetError, match='no text column "text"'):
        shardforge.dedup(tmp_path / "nocol.parquet", tmp_path / "out")
    pq.write_table(pa.table({"text": ["some words here", None]}), tmp_path / "nulls.parquet")
    with pytest.raises(shardforge.MalformedRecordError, match=r"nulls.parquet:2: text column"):
        shardforge.dedup(tmp_path / "nulls.parquet", tmp_path / "out")


def test_missing_inputs_and_bad_configs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        shardforge.dedup(tmp_path / "nope.jsonl", tmp_path / "out")
    with pytest.raises(shardforge.NoInputError, match="matches no"):
        shardforge.dedup(str(tmp_path / "*.jsonl"), tmp_path / "out")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(shardforge.ConfigError, match="unsupported file type"):
        shardforge.dedup(tmp_path / "notes.txt", tmp_path / "out")
    src = write_jsonl(tmp_path / "in" / "a.jsonl", GOOD)
    with pytest.raises(shardforge.ConfigError, match="inside input directory"):
        shardforge.dedup(tmp_path / "in", tmp_path / "in" / "out")
    bad_options: list[dict[str, Any]] = [
        {"threshold": 0.0},
        {"bands": 4},
        {"bands": 20, "rows": 20},
        {"num_perm": 0},
        {"threads": 0},
    ]
    for bad in bad_options:
        with pytest.raises(shardforge.ConfigError):
            shardforge.dedup(src, tmp_path / "out", **bad)
    with pytest.raises(shardforge.ConfigError, match="unknown variant"):
        shardforge.dedup(src, tmp_path / "out", keep="newest")
    with pytest.raises(ValueError, match="as a size"):
        shardforge.dedup(src, tmp_path / "out", memory_budget="lots")
