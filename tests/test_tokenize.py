"""Tokenization and token datasets: ids equal to the Python `tokenizers` package, round trips,
manifest totals, verify catching corruption, resume, DuckDB queries and the Megatron export."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import numpy as np
import pytest
from tokenizers import Tokenizer as HFTokenizer

import shardforge
from conftest import real_documents, write_jsonl

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers"
GPT2 = SHARED / "gpt2.json"
LLAMA3 = SHARED / "llama3.json"

# Text that trips tokenizers up: emoji (with ZWJ and skin tones), CJK, combining marks, a lone
# surrogate as Python replaces it when decoding bad UTF-8, very long words, control characters,
# whitespace runs, the special token written out in the text, and empty documents.
HARD_TEXTS = [
    "",
    " ",
    "\n\n\n",
    "emoji 🤗👩‍👩‍👧‍👦 👍🏽 flags 🇫🇷🇯🇵",
    "CJK 漢字かなカナ 한국어 中文分词没有空格",
    "combining e\u0301 a\u0300\u0316 ñ Z\u0351\u0362\u0321a\u0352l\u0303g\u0350o",
    b"lone surrogate \xed\xa0\x80 and bad \xff bytes".decode("utf-8", errors="replace"),
    "x" * 5000,
    "supercalifragilisticexpialidocious" * 50,
    "tabs\tand\u00a0nbsp\u2028line sep\u200bzero width",
    "    indented\n        code = {'a': 1}\n\treturn  x  ",
    "<|endoftext|> inside text <|endoftext|><|endoftext|>",
    "numbers 1234567890 3.14159 1e-10 0x1F",
    "Ünïcödé ΑΒΓ Ωμέγα кириллица العربية עברית हिन्दी",
]


def hf_ids(tok: HFTokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def sf_ids(tok: shardforge.Tokenizer, texts: list[str]) -> list[list[int]]:
    ids, offsets = tok.encode_batch(texts)
    assert ids.dtype == np.uint32 and offsets.dtype == np.uint64 and len(offsets) == len(texts) + 1
    return [ids[offsets[i] : offsets[i + 1]].tolist() for i in range(len(texts))]


@pytest.fixture(scope="module")
def parity_texts() -> list[str]:
    return real_documents(400, seed=3) + HARD_TEXTS


@pytest.fixture(scope="module")
def trained_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("train")
    write_jsonl(d / "train.jsonl", [{"text": t} for t in real_documents(200, seed=9)])
    out = d / "tokenizer.json"
    report = shardforge.train_tokenizer(
        d / "train.jsonl", out, vocab_size=2000, special_tokens=["<|endoftext|>", "<pad>"]
    )
    assert report["vocab_size"] == 2000 and report["documents"] == 200
    return out


@pytest.mark.parametrize("name", ["gpt2", "llama3"])
def test_ids_equal_python_tokenizers(name: str, parity_texts: list[str]) -> None:
    path = SHARED / f"{name}.json"
    ours = shardforge.Tokenizer(path, eos_token="<|end_of_text|>" if name == "llama3" else None)
    ref = HFTokenizer.from_file(str(path))
    expected = hf_ids(ref, parity_texts)
    # Twice: the second pass is served from the per-thread word cache.
    assert sf_ids(ours, parity_texts) == expected
    assert sf_ids(ours, parity_texts) == expected
    for text, ids in zip(parity_texts, expected, strict=True):
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False)
        if name == "gpt2":
            assert ours.decode(ids) == text


def test_trained_tokenizer_matches_python_tokenizers(
    trained_tokenizer: Path, parity_texts: list[str]
) -> None:
    ref = HFTokenizer.from_file(str(trained_tokenizer))
    assert ref.get_vocab_size() == 2000
    assert ref.token_to_id("<|endoftext|>") == 0 and ref.token_to_id("<pad>") == 1
    ours = shardforge.Tokenizer(trained_tokenizer)
    assert (ours.eos_id, ours.pad_id) == (0, 1)
    assert sf_ids(ours, parity_texts) == hf_ids(ref, parity_texts)
    # Trained on real text, it compresses real text: well under one token per byte.
    ids, _ = ours.encode_batch(parity_texts[:100])
    assert len(ids) < 0.5 * sum(len(t.encode()) for t in parity_texts[:100])


def test_encode_batch_special_tokens() -> None:
    tok = shardforge.Tokenizer(LLAMA3, eos_token="<|end_of_text|>", bos_token="<|begin_of_text|>")
    # Both were missing from the converted vocabulary, so they were added after the last id.
    assert tok.vocab_size == 128002 and (tok.eos_id, tok.bos_id) == (128000, 128001)
    ids, offsets = tok.encode_batch(["a b", ""], add_eos=True, add_bos=True)
    assert ids[0] == 128001 and ids[offsets[1] - 1] == 128000
    assert ids[offsets[1] :].tolist() == [128001, 128000]
    with pytest.raises(shardforge.TokenizerError, match="end-of-document"):
        shardforge.Tokenizer(LLAMA3)
    with pytest.raises(FileNotFoundError):
        shardforge.Tokenizer(SHARED / "missing.json")


def corpus(tmp: Path, n_files: int = 3, per_file: int = 60, seed: int = 0) -> Path:
    docs = real_documents(n_files * per_file, seed=seed) + HARD_TEXTS
    rng = random.Random(seed)
    src = tmp / "corpus"
    for f in range(n_files):
        recs = [
            {"id": f"f{f}-{i}", "text": docs[f * per_file + i], "score": rng.random(), "lang": "en", "n": i}
            for i in range(per_file)
        ]
        if f == 0:
            recs += [
                {"id": f"hard-{i}", "text": t, "score": None, "lang": None, "n": -i}
                for i, t in enumerate(HARD_TEXTS)
            ]
        ext = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"][f % 4]
        if ext == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(recs), src / f"part{f}{ext}")
        else:
            write_jsonl(src / f"part{f}{ext}", recs)
    return src


def dataset_files(path: Path) -> dict[str, bytes]:
    skip = {"report.json"}
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and p.name not in skip}


def test_dataset_round_trip(tmp_path: Path) -> None:
    src = corpus(tmp_path, n_files=4, per_file=45)
    out = tmp_path / "ds"
    r = shardforge.tokenize(
        src, out, GPT2, shard_tokens=20_000, metadata=["score:float64", "lang", "n:int64"], threads=2
    )
    assert r.shards > 3 and r.rejected == 0 and r.documents == 4 * 45 + len(HARD_TEXTS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dtype"] == "uint16" and manifest["special_ids"]["eos"] == 50256
    assert manifest["totals"]["documents"] == r.documents and manifest["totals"]["tokens"] == r.tokens
    assert sum(s["tokens"] for s in manifest["shards"]) == r.tokens
    assert (out / "tokenizer.json").read_bytes() == GPT2.read_bytes()
    # Every shard but the last closed at the first document that took it past the limit.
    for s in manifest["shards"][:-1]:
        assert s["tokens"] >= 20_000

    ds = shardforge.open_dataset(out)
    assert len(ds) == r.documents
    con = ds.connect()
    rows = con.sql(
        "SELECT doc_id, source, n_tokens, score, lang, n FROM docs ORDER BY shard, token_offset"
    ).fetchall()
    assert len(rows) == len(ds)
    ref = HFTokenizer.from_file(str(GPT2))
    ours = shardforge.Tokenizer(out / "tokenizer.json")
    texts: dict[str, str] = {}
    for f in sorted(src.iterdir()):
        import gzip

        import zstandard

        if f.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            texts.update((rec["id"], rec["text"]) for rec in pq.read_table(f).to_pylist())
            continue
        raw = f.read_bytes()
        if f.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        elif f.name.endswith(".zst"):
            raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 30)
        for line in raw.decode().splitlines():
            rec = json.loads(line)
            texts[rec["id"]] = rec["text"]
    for i, (doc_id, source, n_tokens, score, lang, n) in enumerate(rows):
        toks = ds.tokens(i)
        assert isinstance(toks, np.memmap) and toks.dtype == np.dtype("<u2")
        assert len(toks) == n_tokens and toks[-1] == 50256
        assert toks[:-1].tolist() == ref.encode(texts[doc_id], add_special_tokens=False).ids
        assert ours.decode(toks[:-1]) == texts[doc_id]
        assert source.startswith("part")
        if doc_id.startswith("hard-"):
            assert score is None and lang is None
        else:
            assert isinstance(score, float) and lang == "en" and n == int(doc_id.split("-")[1])
    # The contract's example query works on the files as they are.
    query = f"SELECT source, sum(n_tokens) FROM '{out}/*.parquet' GROUP BY 1 ORDER BY 1"
    got = duckdb.connect().execute(query).fetchall()
    assert [s for s, _ in got] == ["part0", "part1", "part2", "part3"] and sum(
        int(t) for _, t in got
    ) == r.tokens
    table = ds.documents()
    assert len(table["doc_id"]) == len(ds) and int(table["n_tokens"].sum()) == r.tokens
    assert con.sql("SELECT sum(tokens) FROM shards").fetchall()[0][0] == r.tokens

    st = ds.stats()
    assert st["documents"] == r.documents and sum(s["tokens"] for s in st["per_source"]) == r.tokens
    assert sum(h["documents"] for h in st["histogram"]) == r.documents
    v = shardforge.verify(out)
    assert (v.documents, v.tokens, v.shards) == (r.documents, r.tokens, r.shards)

    # Same bytes whatever the thread count; a rerun has nothing to do.
    one = shardforge.tokenize(
        src,
        tmp_path / "one",
        GPT2,
        shard_tokens=20_000,
        metadata=["score:float64", "lang", "n:int64"],
        threads=1,
    )
    assert one.tokens == r.tokens
    assert dataset_files(out) == dataset_files(tmp_path / "one")
    again = shardforge.tokenize(
        src, out, GPT2, shard_tokens=20_000, metadata=["score:float64", "lang", "n:int64"]
    )
    assert again.up_to_date


def test_uint32_dataset_with_bos(tmp_path: Path) -> None:
    src = corpus(tmp_path, n_files=1, per_file=20)
    out = tmp_path / "ds"
    r = shardforge.tokenize(
        src, out, LLAMA3, eos_token="<|end_of_text|>", bos_token="<|begin_of_text|>", add_bos=True
    )
    m = json.loads((out / "manifest.json").read_text())
    assert m["dtype"] == "uint32" and m["bos_per_document"]
    # The dataset's tokenizer.json holds the two added tokens, and its hash is the manifest's.
    saved = HFTokenizer.from_file(str(out / "tokenizer.json"))
    assert saved.token_to_id("<|end_of_text|>") == 128000 and saved.token_to_id("<|begin_of_text|>") == 128001
    ds = shardforge.open_dataset(out)
    for i in range(len(ds)):
        t = ds.tokens(i)
        assert t.dtype == np.dtype("<u4") and t[0] == 128001 and t[-1] == 128000
    assert shardforge.verify(out).tokens == r.tokens


def test_verify_names_the_broken_file(tmp_path: Path) -> None:
    src = corpus(tmp_path, n_files=2, per_file=30)
    out = tmp_path / "ds"
    shardforge.tokenize(src, out, GPT2, shard_tokens=10_000)
    shard = out / "00001.tokens"
    good = shard.read_bytes()

    # A flipped bit in the middle: only the checksum can see it.
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    shard.write_bytes(bytes(bad))
    with pytest.raises(shardforge.CorruptDatasetError, match=r"00001\.tokens.*xxh3"):
        shardforge.verify(out)
    # An EOS overwritten: the error names the document and byte offset.
    ds = shardforge.open_dataset(out)
    _, off, n = ds.locate(ds._first_doc[1])
    bad = bytearray(good)
    bad[2 * (off + n - 1) : 2 * (off + n)] = (7).to_bytes(2, "little")
    shard.write_bytes(bytes(bad))
    with pytest.raises(
        shardforge.CorruptDatasetError,
        match=rf"00001\.tokens.*document 0 does not end with EOS.*byte offset {2 * (off + n - 1)}",
    ):
        shardforge.verify(out)
    # A truncated shard.
    shard.write_bytes(good[:-2])
    with pytest.raises(shardforge.CorruptDatasetError, match=r"00001\.tokens"):
        shardforge.verify(out)
    shard.write_bytes(good)
    # A damaged document table.
    table = out / "00000.parquet"
    t = bytearray(table.read_bytes())
    t[10] ^= 0xFF
    table.write_bytes(bytes(t))
    with pytest.raises(shardforge.CorruptDatasetError, match=r"00000\.parquet"):
        shardforge.verify(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(shardforge.CorruptDatasetError, match=r"manifest\.json"):
        shardforge.verify(out)


def test_resume_keeps_finished_shards(tmp_path: Path) -> None:
    src = corpus(tmp_path, n_files=3, per_file=40)
    out = tmp_path / "ds"
    full = shardforge.tokenize(src, out, GPT2, shard_tokens=15_000)
    assert full.shards >= 4
    reference = dataset_files(out)
    # As after a crash in shard 2: its files, record and everything later are gone, no manifest.
    work = out / ".shardforge-work"
    for i in range(2, full.shards):
        for p in [out / f"{i:05d}.tokens", out / f"{i:05d}.parquet", work / f"{i:05d}.json"]:
            p.unlink()
    (out / "manifest.json").unlink()
    resumed = shardforge.tokenize(src, out, GPT2, shard_tokens=15_000)
    assert resumed.shards_resumed == 2 and not resumed.up_to_date
    assert dataset_files(out) == reference
    # A different config starts over and leaves no shard of the old run behind.
    other = shardforge.tokenize(src, out, GPT2, shard_tokens=1_000_000)
    assert other.shards == 1 and other.shards_resumed == 0
    assert sorted(p.name for p in out.glob("0*")) == ["00000.parquet", "00000.tokens"]


@pytest.mark.slow
def test_interrupt_then_resume(tmp_path: Path) -> None:
    src = tmp_path / "in"
    docs = real_documents(300, seed=4)
    for f in range(6):
        write_jsonl(src / f"part{f}.jsonl", [{"id": f"{f}-{i}", "text": d} for i, d in enumerate(docs)])
    out = tmp_path / "out"

    def stop(stage: int, files_done: int, files_total: int, n_docs: int, nbytes: int) -> None:
        if n_docs > 600:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shardforge.tokenize(src, out, GPT2, shard_tokens=50_000, threads=1, progress=stop)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob(".*.tmp-*"))
    resumed = shardforge.tokenize(src, out, GPT2, shard_tokens=50_000, threads=1)
    assert resumed.shards_resumed > 0
    shardforge.tokenize(src, tmp_path / "fresh", GPT2, shard_tokens=50_000, threads=1)
    assert dataset_files(out) == dataset_files(tmp_path / "fresh")


def test_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    lines = [
        json.dumps({"id": "a", "text": "fine text", "score": 1.5}),
        '{"id": "b", "text": "broken',
        json.dumps({"id": "c", "text": "score is a string", "score": "high"}),
        json.dumps({"id": "d", "score": 2}),
        json.dumps({"id": "e", "text": "also fine", "score": 2}),
    ]
    (src / "x.jsonl").write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "f", "text": "\xff"}\n')
    with pytest.raises(shardforge.MalformedRecordError, match=r"x\.jsonl:2"):
        shardforge.tokenize(src, tmp_path / "raise", GPT2, metadata=["score:float64"])
    r = shardforge.tokenize(src, tmp_path / "skip", GPT2, metadata=["score:float64"], on_error="skip")
    assert r.documents == 2 and r.rejected == 4
    rejects = [json.loads(x) for x in (tmp_path / "skip" / "rejects.jsonl").read_text().splitlines()]
    assert [(x["line"], x["kind"]) for x in rejects] == [
        (2, "malformed_json"),
        (3, "bad_field"),
        (4, "bad_field"),
        (6, "invalid_utf8"),
    ]
    assert "score" in rejects[1]["error"] and rejects[0]["raw"] == '{"id": "b", "text": "broken'
    with pytest.raises(shardforge.ConfigError, match="metadata"):
        shardforge.tokenize(src, tmp_path / "cfg", GPT2, metadata=["score:decimal"])
    with pytest.raises(shardforge.ConfigError, match="clashes"):
        shardforge.tokenize(src, tmp_path / "cfg", GPT2, metadata=["n_tokens:int64"])
    bad_tok = tmp_path / "bad.json"
    bad_tok.write_text("{}")
    with pytest.raises(shardforge.TokenizerError, match=r"bad\.json"):
        shardforge.tokenize(src, tmp_path / "tok", bad_tok)


def test_megatron_export_reads_back(tmp_path: Path) -> None:
    src = corpus(tmp_path, n_files=2, per_file=25)
    out = tmp_path / "ds"
    shardforge.tokenize(src, out, GPT2, shard_tokens=8_000)
    info = shardforge.export_megatron(out, tmp_path / "mega" / "corpus_text_document")
    reader = shardforge.MegatronReader(tmp_path / "mega" / "corpus_text_document")
    ds = shardforge.open_dataset(out)
    assert len(reader) == len(ds) == info["documents"] and reader.dtype == np.uint16
    assert reader.document_indices.tolist() == list(range(len(ds) + 1))
    for i in range(len(ds)):
        assert np.array_equal(reader[i], ds.tokens(i))


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shardforge.cli import main

    src = corpus(tmp_path, n_files=2, per_file=20)
    out = tmp_path / "ds"
    tok = tmp_path / "tok.json"
    assert main(["tokenizer", "train", str(src), "-o", str(tok), "--vocab-size", "600"]) == 0
    assert HFTokenizer.from_file(str(tok)).get_vocab_size() == 600
    args = ["tokenize", str(src), "-o", str(out), "-t", str(tok), "--metadata", "score:float64"]
    assert main([*args, "--shard-tokens", "5000", "--progress", "none"]) == 0
    assert "documents" in capsys.readouterr().out
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] == len(shardforge.open_dataset(out))
    assert main(["stats", str(out)]) == 0
    assert "tokens per document" in capsys.readouterr().out
    csv = tmp_path / "per_source.csv"
    sql = "SELECT source, count(*) AS docs, avg(score) AS score FROM docs GROUP BY 1 ORDER BY 1"
    assert main(["query", str(out), sql, "-o", str(csv)]) == 0
    assert csv.read_text().splitlines()[0] == "source,docs,score"
    assert main(["verify", str(out)]) == 0
    assert main(["export-megatron", str(out), str(tmp_path / "mega" / "c")]) == 0
    assert len(shardforge.MegatronReader(tmp_path / "mega" / "c")) == stats["documents"]
    # Errors are one line on stderr and exit code 2, naming the file.
    (out / "00000.tokens").write_bytes(b"\0\0")
    assert main(["verify", str(out)]) == 2
    assert "00000.tokens" in capsys.readouterr().err
