"""The file-to-file dedup job: formats, keep policies, determinism, resume, DuckDB-readable output."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import shardforge
from conftest import mutate, write_jsonl
from shardforge.records import discover, iter_documents


def corpus_records(docs: list[str], n_near: int, n_exact: int, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    records: list[dict[str, object]] = [
        {"id": f"d{i}", "text": t, "score": rng.random(), "meta": {"i": i}} for i, t in enumerate(docs)
    ]
    for j in range(n_near):
        src = docs[j]
        records.append({"id": f"near{j}", "text": mutate(src, 0.005, rng), "score": 2.0, "meta": None})
    for j in range(n_exact):
        src = docs[-1 - j]
        records.append({"id": f"exact{j}", "text": "  " + src.upper() + "  ", "score": 0.0})
    rng.shuffle(records)
    return records


@pytest.fixture
def mixed_inputs(tmp_path: Path, real_docs: list[str]) -> Path:
    recs = corpus_records(real_docs[:120], n_near=15, n_exact=10)
    root = tmp_path / "in"
    write_jsonl(root / "a.jsonl", recs[:40])
    write_jsonl(root / "sub" / "b.jsonl.gz", recs[40:80])
    write_jsonl(root / "c.jsonl.zst", recs[80:120])
    table = pa.table(
        {
            "id": [r["id"] for r in recs[120:]],
            "text": [r["text"] for r in recs[120:]],
            "score": [r["score"] for r in recs[120:]],
        }
    )
    pq.write_table(table, root / "d.parquet")
    return root


def _all_texts(root: Path) -> list[object]:
    texts: list[object] = []
    for name in ["a.jsonl", "c.jsonl.zst", "d.parquet", "sub/b.jsonl.gz"]:
        if name.endswith(".parquet"):
            texts += pq.read_table(root / name).column("text").to_pylist()
        else:
            texts += [json.loads(x)["text"] for x in read_output(root / name)]
    return texts


def read_output(path: Path) -> list[bytes]:
    if path.name.endswith(".parquet"):
        return [json.dumps(r, sort_keys=True).encode() for r in pq.read_table(path).to_pylist()]
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    return data.splitlines()


def test_all_formats_end_to_end(mixed_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = shardforge.dedup(mixed_inputs, out)
    assert r.files == 4 and r.rejects == 0
    assert r.docs_in == 145
    # Ground truth for exact duplicates: distinct normalized texts (the real documents bring some
    # natural ones, e.g. identical Debian copyright files, besides the 10 planted).
    texts = [str(x) for x in _all_texts(mixed_inputs)]
    distinct = len({shardforge.normalize_text(t) for t in texts})
    assert r.exact_duplicates + r.near_duplicates >= r.docs_in - distinct
    assert r.exact_duplicates >= 10
    assert r.near_duplicates >= 1
    assert r.docs_in == r.docs_out + r.exact_duplicates + r.near_duplicates
    names = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".shardforge" not in str(p)
    )
    assert names == [
        "a.jsonl",
        "c.jsonl.zst",
        "clusters.parquet",
        "d.parquet",
        "rejects.jsonl",
        "report.json",
        "sub/b.jsonl.gz",
    ]
    # JSONL records are carried byte for byte, nested metadata included.
    src_lines = set(read_output(mixed_inputs / "a.jsonl"))
    kept_lines = read_output(out / "a.jsonl")
    assert set(kept_lines) <= src_lines
    assert all(json.loads(x)["id"] for x in kept_lines)
    assert pq.read_table(out / "d.parquet").schema.names == ["id", "text", "score"]
    total_kept = sum(
        len(read_output(out / n)) for n in ["a.jsonl", "sub/b.jsonl.gz", "c.jsonl.zst", "d.parquet"]
    )
    assert total_kept == r.docs_out
    # clusters.parquet answers DuckDB queries as it is.
    con = duckdb.connect()
    rows = con.sql(f"SELECT reason, count(*) FROM '{out}/clusters.parquet' GROUP BY 1 ORDER BY 1").fetchall()
    counts = dict(rows)
    assert counts["exact_duplicate"] == r.exact_duplicates
    assert counts["near_duplicate"] == r.near_duplicates
    assert counts.get("kept", 0) + counts.get("unique", 0) == r.docs_out
    # Every planted copy shares a cluster with its original, and only one of the two survives.
    for j in range(10):
        original = f"d{119 - j}"
        rows = con.sql(
            f"SELECT cluster_id, kept FROM '{out}/clusters.parquet' "
            f"WHERE doc_id IN ('exact{j}', '{original}')"
        ).fetchall()
        assert len(rows) == 2 and rows[0][0] == rows[1][0] and sum(k for _, k in rows) <= 1
    # Every planted near duplicate whose exact Jaccard is clearly above the threshold is found.
    by_id = {
        json.loads(x)["id"]: json.loads(x)["text"]
        for n in ["a.jsonl", "sub/b.jsonl.gz", "c.jsonl.zst"]
        for x in read_output(mixed_inputs / n)
    }
    parquet_rows = pq.read_table(mixed_inputs / "d.parquet").to_pydict()
    by_id.update(zip(parquet_rows["id"], parquet_rows["text"], strict=True))
    checked = 0
    for j in range(15):
        a = set(shardforge.shingle_hashes(by_id[f"d{j}"]).tolist())
        b = set(shardforge.shingle_hashes(by_id[f"near{j}"]).tolist())
        if len(a & b) / len(a | b) < 0.9:
            continue
        checked += 1
        rows = con.sql(
            f"SELECT DISTINCT cluster_id FROM '{out}/clusters.parquet' WHERE doc_id IN ('near{j}', 'd{j}')"
        ).fetchall()
        assert len(rows) == 1, j
    assert checked >= 10
    report = json.loads((out / "report.json").read_text())
    assert report["docs_out"] == r.docs_out


def test_deterministic_across_threads_and_runs(mixed_inputs: Path, tmp_path: Path) -> None:
    outs = []
    for i, threads in enumerate([1, 2, 2]):
        out = tmp_path / f"out{i}"
        shardforge.dedup(mixed_inputs, out, threads=threads, method="one_permutation")
        outs.append(out)

    def snapshot(out: Path) -> dict[str, object]:
        files = {n: read_output(out / n) for n in ["a.jsonl", "sub/b.jsonl.gz", "c.jsonl.zst", "d.parquet"]}
        clusters = pq.read_table(out / "clusters.parquet").to_pylist()
        return {"files": files, "clusters": clusters}

    first = snapshot(outs[0])
    assert all(snapshot(o) == first for o in outs[1:])


def test_keep_policies(tmp_path: Path, real_docs: list[str]) -> None:
    base = real_docs[0]
    recs = [
        {"id": "short", "text": base, "q": 0.1},
        {"id": "longer", "text": base + " extra words at the end", "q": 0.9},
        {"id": "mid", "text": base + " extra", "q": 0.5},
    ]
    src = write_jsonl(tmp_path / "x.jsonl", recs)

    def survivor(**opts: Any) -> str:
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        shardforge.dedup(src, out, **opts)
        kept = [json.loads(x)["id"] for x in read_output(out / "x.jsonl")]
        assert len(kept) == 1
        return str(kept[0])

    assert survivor() == "short"
    assert survivor(keep="longest") == "longer"
    assert survivor(keep="max_column", key_field="q") == "longer"
    with pytest.raises(shardforge.ConfigError, match="key_field"):
        shardforge.dedup(src, tmp_path / "bad", keep="max_column")


def test_in_memory_matches_file_pipeline(mixed_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shardforge.dedup(mixed_inputs, out, verify="signature")
    clusters = pq.read_table(out / "clusters.parquet")
    # The same document order as the job: sorted files, then lines/rows.
    texts = [str(t) for t in _all_texts(mixed_inputs)]
    res = shardforge.dedup_texts(texts, verify="signature")
    assert res.kept.tolist() == clusters.column("kept").to_pylist()
    assert res.reason == clusters.column("reason").to_pylist()


def test_resume_skips_finished_work(mixed_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    full = shardforge.dedup(mixed_inputs, out)
    expected = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".shardforge-work" not in str(p)}
    again = shardforge.dedup(mixed_inputs, out)
    assert again.files_resumed == 4 and again.outputs_resumed == 4
    # Simulate a run cut off after sketching two files and writing one output.
    work = out / ".shardforge-work"
    (work / "00001.done").unlink()
    (work / "00003.done").unlink()
    (out / "a.jsonl").unlink()
    (out / "report.json").unlink()
    resumed = shardforge.dedup(mixed_inputs, out)
    assert resumed.files_resumed == 2
    assert resumed.outputs_resumed == 3
    assert resumed.docs_out == full.docs_out
    for p, data in expected.items():
        if p.name != "report.json":
            assert p.read_bytes() == data, p
    # A changed config invalidates the sketches rather than reusing them.
    changed = shardforge.dedup(mixed_inputs, out, ngram=3)
    assert changed.files_resumed == 0


@pytest.mark.slow
def test_interrupt_then_resume(tmp_path: Path, real_docs: list[str]) -> None:
    src = tmp_path / "in"
    rng = random.Random(5)
    for f in range(24):
        recs = [{"id": f"{f}-{i}", "text": mutate(rng.choice(real_docs), 0.3, rng) * 3} for i in range(400)]
        write_jsonl(src / f"part{f:02d}.jsonl", recs)
    out = tmp_path / "out"
    calls = []

    def stop(stage: int, files_done: int, files_total: int, docs: int, nbytes: int) -> None:
        calls.append(files_done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shardforge.dedup(src, out, threads=1, progress=stop)
    assert calls and calls[0] < 24
    # Nothing half-written is left behind: no temp files, no report.
    assert not list(out.rglob(".*.tmp-*"))
    assert not (out / "report.json").exists()
    resumed = shardforge.dedup(src, out, threads=1)
    fresh = shardforge.dedup(src, tmp_path / "fresh", threads=1)
    assert resumed.docs_out == fresh.docs_out
    for f in range(24):
        name = f"part{f:02d}.jsonl"
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_spilled_index_gives_the_same_clusters(mixed_inputs: Path, tmp_path: Path) -> None:
    mem = shardforge.dedup(mixed_inputs, tmp_path / "mem")
    disk = shardforge.dedup(mixed_inputs, tmp_path / "disk", memory_budget=1)
    assert disk.raw["index"]["spilled"] and not mem.raw["index"]["spilled"]
    assert pq.read_table(tmp_path / "mem" / "clusters.parquet").equals(
        pq.read_table(tmp_path / "disk" / "clusters.parquet")
    )


def _typed_records(docs: list[str]) -> list[dict[str, object]]:
    """Records whose other fields exercise every column type the Parquet conversion infers."""
    records: list[dict[str, object]] = []
    for i, text in enumerate(docs):
        r: dict[str, object] = {"text": text, "score": i / 7, "n": i, "flag": i % 2 == 0}
        if i % 3:
            r["id"] = f"doc{i}" if i % 3 == 1 else 1000 + i  # some numeric ids, some none at all
        r["meta"] = {"i": i, "tags": ["a", i]} if i % 4 else None
        r["tag"] = "x" if i % 2 else i  # a string and a number: kept apart as JSON text
        if i == 5:
            r["late"] = 2**60 + 1  # a field that first appears late; int64 holds it exactly
        records.append(r)
    records += [dict(records[1], id="copy1"), dict(records[2], id="copy2", n=-1)]
    return records


def test_parquet_output_converts_jsonl_without_loss(tmp_path: Path, real_docs: list[str]) -> None:
    records = _typed_records(real_docs[:40])
    src = tmp_path / "in"
    write_jsonl(src / "a.jsonl", records[:20])
    write_jsonl(src / "sub" / "b.JSONL.gz", records[20:])
    pq.write_table(pa.table({"id": ["p0"], "text": [real_docs[41]]}), src / "c.parquet")
    same = shardforge.dedup(src, tmp_path / "same")
    out = tmp_path / "out"
    conv = shardforge.dedup(src, out, output_format="parquet")
    assert conv.exact_duplicates == same.exact_duplicates == 2
    assert conv.docs_out == same.docs_out
    assert conv.raw["output_files"] == ["a.parquet", "c.parquet", "sub/b.parquet"]
    assert not (out / "a.jsonl").exists()
    assert pq.read_table(out / "c.parquet").equals(pq.read_table(tmp_path / "same" / "c.parquet"))

    for jsonl, parquet in [("a.jsonl", "a.parquet"), ("sub/b.JSONL.gz", "sub/b.parquet")]:
        kept = [json.loads(line) for line in read_output(tmp_path / "same" / jsonl)]
        table = pq.read_table(out / parquet)
        assert table.schema.names[:2] == ["id", "text"]
        types = {f.name: str(f.type) for f in table.schema}
        assert types["score"] == "double" and types["n"] == "int64" and types["flag"] == "bool"
        assert types["meta"] == types["tag"] == "string"
        rows = table.to_pylist()
        assert len(rows) == len(kept)
        line_of = {
            json.dumps(r, sort_keys=True): k + 1
            for k, r in enumerate(records[:20] if jsonl == "a.jsonl" else records[20:])
        }
        for row, rec in zip(rows, kept, strict=True):
            # The id column is the doc id clusters.parquet uses: generated ids are `<file>:<line>`,
            # the file relative to the input root.
            expected_id = rec.get("id", f"{jsonl}:{line_of[json.dumps(rec, sort_keys=True)]}")
            assert row["id"] == str(expected_id)
            assert row["text"] == rec["text"]
            assert (row["score"], row["n"], row["flag"]) == (rec["score"], rec["n"], rec["flag"])
            assert (None if row["meta"] is None else json.loads(row["meta"])) == rec["meta"]
            assert json.loads(row["tag"]) == rec["tag"]
            assert row.get("late") == rec.get("late")
    # Every converted row joins its clusters.parquet row; kept rows are exactly the kept documents.
    con = duckdb.connect()
    files = [f"'{out}/{n}'" for n in ["a.parquet", "sub/b.parquet", "c.parquet"]]
    joined = con.sql(
        f"SELECT c.kept OR c.reason = 'unique', json_extract(o.meta, '$.tags[1]') = o.n::JSON "
        f"FROM read_parquet([{', '.join(files)}], union_by_name = true) o "
        f"JOIN '{out}/clusters.parquet' c ON o.id = c.doc_id"
    ).fetchall()
    assert len(joined) == conv.docs_out
    assert all(kept for kept, _ in joined)
    # Nested JSON text is queryable: meta.tags[1] was written as the record's n.
    assert all(tags_match in (True, None) for _, tags_match in joined)
    assert sum(tags_match is True for _, tags_match in joined) >= 20
    # A rerun reuses the converted outputs.
    again = shardforge.dedup(src, out, output_format="parquet")
    assert again.outputs_resumed == 3


def test_parquet_output_names_must_not_clash(tmp_path: Path, real_docs: list[str]) -> None:
    src = tmp_path / "in"
    write_jsonl(src / "x.jsonl", [{"id": "a", "text": real_docs[0]}])
    write_jsonl(src / "x.jsonl.gz", [{"id": "b", "text": real_docs[1]}])
    assert shardforge.dedup(src, tmp_path / "ok").docs_out == 2
    with pytest.raises(
        shardforge.ConfigError, match=r"x\.jsonl and .*x\.jsonl\.gz would both be written as x\.parquet"
    ):
        shardforge.dedup(src, tmp_path / "out", output_format="parquet")
    own = write_jsonl(tmp_path / "own" / "clusters.jsonl", [{"text": real_docs[2]}])
    with pytest.raises(shardforge.ConfigError, match=r"clusters\.parquet, a name the run writes itself"):
        shardforge.dedup(own, tmp_path / "out2", output_format="parquet")


def test_generated_ids_are_unique_across_directories(tmp_path: Path, real_docs: list[str]) -> None:
    # Records without ids, in files that share a name: ids carry the path below the input root.
    src = tmp_path / "in"
    write_jsonl(src / "x" / "part.jsonl", [{"text": real_docs[0]}, {"text": real_docs[1]}])
    write_jsonl(src / "y" / "part.jsonl", [{"text": real_docs[2]}])
    shardforge.dedup(src, tmp_path / "out")
    ids = pq.read_table(tmp_path / "out" / "clusters.parquet").column("doc_id").to_pylist()
    assert ids == ["x/part.jsonl:1", "x/part.jsonl:2", "y/part.jsonl:1"]
    # The Python reader (quality scoring, the pipeline's steps) names them the same way.
    docs = [d.id for f in discover(src) for d in iter_documents(f)]
    assert docs == ids
