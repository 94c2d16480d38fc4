"""The streaming loader against independent readings of the same datasets: batch contents equal
the documents read through `Dataset`, one epoch reads every sample once on 1, 2 and 4 ranks,
mixtures and curriculum switches are exact, resume is bit-identical, and bad data fails before
training starts."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shardforge
from conftest import real_documents, write_jsonl
from shardforge.loader import Loader

TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tokenizers"
GPT2 = TOKENIZERS / "gpt2.json"
LLAMA3 = TOKENIZERS / "llama3.json"
SEQ = 128


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small token datasets of real text (code, prose and a third for mixtures), several
    shards each, with a `quality` column to select on."""
    d = tmp_path_factory.mktemp("loader")
    docs = real_documents(240, seed=5)
    code = [t[:3000] for t in docs if "def " in t][:60]
    prose = [t[:3000] for t in docs if "def " not in t][:60]
    short = [" ".join(t.split()[:40]) for t in docs[:80]]
    for name, texts in [("code", code), ("prose", prose), ("short", short)]:
        rows = [{"id": f"{name}{i}", "text": t, "quality": (i * 7 % 10) / 10} for i, t in enumerate(texts)]
        write_jsonl(d / f"{name}.jsonl", rows)
        shardforge.tokenize(
            d / f"{name}.jsonl",
            d / name,
            tokenizer=str(GPT2),
            metadata=["quality:float64"],
            shard_tokens=20_000,
        )
    return d


def config(data: Path, tmp: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "seq_len": SEQ,
        "batch_size": 8,
        "cache_dir": str(tmp / "cache"),
        "sources": [
            {"name": "code", "datasets": [str(data / "code")]},
            {"name": "prose", "datasets": [str(data / "prose")]},
            {"name": "short", "datasets": [str(data / "short")]},
        ],
        "weights": {"code": 0.5, "prose": 0.3, "short": 0.2},
        "mixture_window": 10,
        "total_tokens": SEQ * 8 * 40,
    }
    cfg.update(over)
    return cfg


def take(it: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [next(it) for _ in range(n)]


def assert_same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert np.array_equal(np.asarray(x[k]), np.asarray(y[k])), k


@pytest.mark.parametrize("packing", ["concat", "best_fit"])
def test_batches_equal_the_documents_read_independently(data: Path, tmp_path: Path, packing: str) -> None:
    loader = Loader(config(data, tmp_path, packing=packing))
    datasets = {str(data / n): shardforge.open_dataset(data / n) for n in ["code", "prose", "short"]}
    eos = datasets[str(data / "code")].eos_id
    for step, batch in enumerate(loader):
        if step == 6:
            break
        cu = batch["cu_seqlens"]
        assert cu[0] == 0 and cu[-1] == batch["input_ids"].size and np.all(np.diff(cu) > 0)
        for row in range(8):
            k = step * 8 + row
            source, _, pieces = loader.pieces(k)
            assert loader.sources[batch["source"][row]] == source
            want = np.concatenate([datasets[ds].tokens(doc)[s : s + n] for ds, doc, s, n in pieces]).astype(
                np.int64
            )
            assert len(want) <= SEQ + 1
            fill = len(want)
            ids, labels, pos = batch["input_ids"][row], batch["labels"][row], batch["position_ids"][row]
            assert np.array_equal(ids[: min(fill, SEQ)], want[:SEQ])
            assert np.array_equal(labels[: fill - 1], want[1:])
            assert np.all(labels[fill - 1 :] == -100), "no label crosses into padding"
            # Positions restart after every EOS (and at a piece that starts mid-document).
            starts = np.flatnonzero(pos == 0)
            assert starts[0] == 0
            expect_starts = np.cumsum([0] + [n for *_, n in pieces])
            expect_starts = expect_starts[expect_starts < min(fill, SEQ)]
            if fill < SEQ:
                expect_starts = np.append(expect_starts, fill)
            assert np.array_equal(starts, expect_starts)
            for s in starts[1:]:
                assert s == fill or ids[s - 1] == eos
            row_cu = cu[(cu >= row * SEQ) & (cu < (row + 1) * SEQ)] - row * SEQ
            assert np.array_equal(row_cu, starts)


@pytest.mark.parametrize("packing", ["concat", "best_fit"])
def test_one_epoch_reads_every_sample_once_on_1_2_4_ranks(data: Path, tmp_path: Path, packing: str) -> None:
    src = [{"name": "prose", "datasets": [str(data / "prose")], "max_epochs": 1}]
    cfg = config(data, tmp_path, packing=packing, sources=src, weights={"prose": 1}, total_tokens=None)
    sequences = {}
    for world in [1, 2, 4]:
        per_rank = [
            list(Loader(cfg | {"batch_size": 8 // world}, rank=r, world_size=world)) for r in range(world)
        ]
        steps = len(per_rank[0])
        assert all(len(p) == steps for p in per_rank)
        rows = [p[s]["input_ids"] for s in range(steps) for p in per_rank]
        sequences[world] = np.concatenate(rows)
    assert np.array_equal(sequences[1], sequences[2]) and np.array_equal(sequences[1], sequences[4])

    loader = Loader(cfg)
    n = loader.plan["sources"][0]["packing"]["samples_per_epoch"]
    assert loader.total_samples == n and len(loader) == n // 8
    locals_ = [loader.pieces(k)[1] for k in range(n)]
    assert sorted(locals_) == list(range(n)), "each sample of the epoch exactly once"
    # The samples of the epoch hold every token of every document once (best fit) or the
    # concatenated stream with one shared token per cut (concat).
    ds = shardforge.open_dataset(data / "prose")
    covered: Counter[tuple[int, int]] = Counter()
    for k in range(n):
        for _, doc, s, ln in loader.pieces(k)[2]:
            for t in range(s, s + ln):
                covered[doc, t] += 1
    total = ds.num_tokens
    if packing == "best_fit":
        assert len(covered) == total and set(covered.values()) == {1}
    else:
        assert sum(covered.values()) == n * (SEQ + 1) and len(covered) == n * SEQ + 1
        assert total - len(covered) < SEQ


def test_mixture_is_exact_in_every_window_and_close_in_every_sliding_one(data: Path, tmp_path: Path) -> None:
    loader = Loader(config(data, tmp_path, mixture_window=20, total_tokens=SEQ * 400))
    sources = np.concatenate([b["source"] for b in loader])
    assert len(sources) == 400
    for w in range(0, 400, 20):
        assert Counter(sources[w : w + 20].tolist()) == {0: 10, 1: 6, 2: 4}
    for start in range(0, 400 - 20):
        c = Counter(sources[start : start + 20].tolist())
        for s, share in [(0, 0.5), (1, 0.3), (2, 0.2)]:
            assert abs(c[s] - share * 20) < 3


def test_curriculum_switches_at_the_exact_token(data: Path, tmp_path: Path) -> None:
    switch = SEQ * 100  # 100 samples: not a multiple of the 8-sample batch, so mid-batch
    phases = [
        {"tokens": switch, "weights": {"prose": 1.0}},
        {"weights": {"code": 0.5, "short": 0.5}},
    ]
    loader = Loader(config(data, tmp_path, weights=None, phases=phases) | {"total_tokens": SEQ * 200})
    sources = np.concatenate([b["source"] for b in loader])
    assert np.all(sources[:100] == 1) and not np.any(sources[100:] == 1)
    assert loader.phase(99) == 0 and loader.phase(100) == 1
    # The stream of a source continues across phases: code's first sample in phase 1 is its 0th.
    assert loader.pieces(100)[1] == 0 or loader.pieces(101)[1] == 0
    with pytest.raises(shardforge.ConfigError, match="multiple of seq_len"):
        Loader(
            config(data, tmp_path, weights=None, phases=[{"tokens": SEQ * 10 + 1, "weights": {"code": 1}}])
        )


def resume_config(data: Path, tmp: Path) -> dict[str, Any]:
    phases = [
        {"tokens": SEQ * 8 * 7, "weights": {"code": 0.6, "prose": 0.4}},
        {"tokens": SEQ * 8 * 13, "weights": {"prose": 0.5, "short": 0.5}},
    ]
    return config(data, tmp, weights=None, phases=phases, total_tokens=None, packing="best_fit", batch_size=4)


@pytest.mark.parametrize("stop", [1, 5, 7, 11])
def test_resume_is_bit_identical_across_phases_and_world_sizes(data: Path, tmp_path: Path, stop: int) -> None:
    cfg = resume_config(data, tmp_path)
    # The uninterrupted run on 2 ranks (4 samples each, global batch 8).
    full = [list(Loader(cfg, rank=r, world_size=2)) for r in range(2)]
    assert len(full[0]) == 20

    # Stop after `stop` steps, resume on 4 ranks (2 samples each, same global batch).
    first = Loader(cfg, rank=0, world_size=2)
    take(iter(first), stop)
    state = first.state_dict()
    assert state["consumed_samples"] == stop * 8 and len(repr(state)) < 200
    four = [Loader(cfg | {"batch_size": 2}, rank=r, world_size=4) for r in range(4)]
    for lo in four:
        lo.load_state_dict(state)
    # Two more steps on 4 ranks, then save and resume again on 2 ranks.
    got4 = [take(iter(lo), 2) for lo in four]
    for step in range(2):
        whole = np.concatenate([got4[r][step]["input_ids"] for r in range(4)])
        want = np.concatenate([full[r][stop + step]["input_ids"] for r in range(2)])
        assert np.array_equal(whole, want)
    state2 = four[0].state_dict()
    assert all(lo.state_dict() == state2 for lo in four)
    again = [Loader(cfg, rank=r, world_size=2) for r in range(2)]
    for lo in again:
        lo.load_state_dict(state2)
    for r in range(2):
        assert_same(list(again[r]), full[r][stop + 2 :])


def test_resume_refuses_a_different_config(data: Path, tmp_path: Path) -> None:
    a = Loader(config(data, tmp_path))
    take(iter(a), 2)
    b = Loader(config(data, tmp_path, seed=1))
    with pytest.raises(shardforge.ConfigError, match="different configuration"):
        b.load_state_dict(a.state_dict())


def test_torch_workers_give_the_same_batches_and_resume(data: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    cfg = resume_config(data, tmp_path)
    plain = list(Loader(cfg))
    workers = Loader(cfg, num_workers=2, format="torch")
    got = take(iter(workers), 9)
    assert isinstance(got[0]["input_ids"], torch.Tensor)
    assert_same([{k: v.numpy() for k, v in b.items()} for b in got], plain[:9])
    resumed = Loader(cfg, num_workers=1, format="torch")
    resumed.load_state_dict(workers.state_dict())
    assert_same([{k: v.numpy() for k, v in b.items()} for b in resumed], plain[9:])


def test_selection_epochs_and_packing_report(data: Path, tmp_path: Path) -> None:
    src = [{"name": "prose", "datasets": [str(data / "prose")], "where": "quality >= 0.5", "max_epochs": 2}]
    seq = 1024  # most documents fit in a sample
    cfg = config(data, tmp_path, sources=src, weights={"prose": 1}, total_tokens=None, packing="best_fit")
    cfg |= {"seq_len": seq, "batch_size": 1}
    loader = Loader(cfg)
    ds = shardforge.open_dataset(data / "prose")
    keep = set(
        ds.connect().sql("SELECT doc_id FROM docs WHERE quality >= 0.5").fetchnumpy()["doc_id"].tolist()
    )
    ids = ds.documents()["doc_id"]
    docs = {doc for k in range(loader.total_samples or 0) for _, doc, _, _ in loader.pieces(k)[2]}
    assert {ids[d] for d in docs} == keep
    plan = loader.plan["sources"][0]
    assert plan["epochs"] == pytest.approx(2.0, abs=0.01)
    assert loader.total_samples == 2 * plan["packing"]["samples_per_epoch"]
    # Best fit splits only documents longer than a sample; concatenation splits most.
    concat = Loader(cfg | {"packing": "concat"}).plan["sources"][0]["packing"]
    bf = plan["packing"]
    long_docs = sum(1 for d in docs if ds.locate(int(d))[2] > seq + 1)
    assert bf["truncated_documents"] == long_docs < concat["truncated_documents"]
    assert bf["padding_tokens"] > 0 == concat["padding_tokens"]
    # A second loader reads the selection from the on-disk cache.
    cached = sorted((tmp_path / "cache").glob("select-*.npz"))
    assert cached
    mtimes = [p.stat().st_mtime_ns for p in cached]
    Loader(cfg)
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    # Past four epochs the loader warns.
    src4 = [src[0] | {"max_epochs": None}]
    with pytest.warns(UserWarning, match="epochs"):
        Loader(cfg | {"sources": src4, "total_tokens": seq * 5 * plan["packing"]["samples_per_epoch"]})


def test_repeat_filter_removes_repetitive_sequences_from_the_loss(tmp_path: Path) -> None:
    words = real_documents(30, seed=9)
    rows = [{"text": " ".join(t.split()[:200])} for t in words[:20]]
    rows.append({"text": "spam eggs " * 400})
    write_jsonl(tmp_path / "r.jsonl", rows)
    shardforge.tokenize(tmp_path / "r.jsonl", tmp_path / "r", tokenizer=str(GPT2))
    src = [{"name": "r", "datasets": [str(tmp_path / "r")], "max_epochs": 1}]
    cfg = {"seq_len": SEQ, "batch_size": 1, "sources": src, "cache_dir": str(tmp_path / "c")}
    off = list(Loader(cfg))
    on_loader = Loader(cfg | {"repeat_filter": True})
    on = list(on_loader)
    flagged = [i for i, b in enumerate(on) if b["filtered"][0]]
    assert flagged and on_loader.state_dict()["filtered_samples"] == len(flagged)
    for i, (a, b) in enumerate(zip(off, on, strict=True)):
        assert np.array_equal(a["input_ids"], b["input_ids"])
        ids = a["input_ids"][0]
        repetitive = any(np.all(ids[j : j + 64] == ids[j + 2 : j + 66]) for j in range(SEQ - 66))
        if i in flagged:
            assert repetitive and np.all(b["labels"] == -100)
        else:
            assert np.array_equal(a["labels"], b["labels"])


def test_bad_data_fails_before_training(data: Path, tmp_path: Path) -> None:
    # A dataset written with another tokenizer.
    write_jsonl(tmp_path / "l.jsonl", [{"text": "some text for another tokenizer"} for _ in range(50)])
    shardforge.tokenize(tmp_path / "l.jsonl", tmp_path / "llama", tokenizer=str(LLAMA3), eos_token="<|eot|>")
    mixed = [{"name": "code", "datasets": [str(data / "code"), str(tmp_path / "llama")]}]
    with pytest.raises(shardforge.ConfigError, match="tokenizer sha256"):
        Loader(config(data, tmp_path, sources=mixed, weights={"code": 1}))

    def broken(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(data / "code", dst)
        return dst

    def only(path: Path) -> dict[str, Any]:
        return config(data, tmp_path, sources=[{"name": "x", "datasets": [str(path)]}], weights={"x": 1})

    missing = broken("missing")
    (missing / "00001.tokens").unlink()
    with pytest.raises(shardforge.CorruptDatasetError, match=r"00001\.tokens: missing"):
        Loader(only(missing))

    flipped = broken("flipped")
    raw = bytearray((flipped / "00000.tokens").read_bytes())
    raw[1000] ^= 0xFF
    (flipped / "00000.tokens").write_bytes(bytes(raw))
    with pytest.raises(shardforge.CorruptDatasetError, match=r"00000\.tokens"):
        Loader(only(flipped))

    nothing = [{"name": "code", "datasets": [str(data / "code")], "where": "quality > 5"}]
    with pytest.raises(shardforge.ConfigError, match="matches no documents"):
        Loader(config(data, tmp_path, sources=nothing, weights={"code": 1}))
    bad_sql = [{"name": "code", "datasets": [str(data / "code")], "where": "no_such_column = 1"}]
    with pytest.raises(shardforge.ConfigError, match="bad selection"):
        Loader(config(data, tmp_path, sources=bad_sql, weights={"code": 1}))
    with pytest.raises(shardforge.ConfigError, match="unknown sources"):
        Loader(config(data, tmp_path, weights={"code": 1, "web": 1}))
    with pytest.raises(shardforge.ConfigError, match="too small"):
        Loader(config(data, tmp_path, weights={"code": 1, "prose": 0.01, "short": 1}))
    with pytest.raises(shardforge.CorruptDatasetError, match="no manifest"):
        Loader(only(tmp_path / "nowhere"))


def test_plan_command_checks_a_config_file(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shardforge.cli import main

    cfg = config(data, tmp_path, packing="best_fit")
    (tmp_path / "loader.json").write_text(json.dumps(cfg))
    assert main(["plan", str(tmp_path / "loader.json")]) == 0
    out = capsys.readouterr().out
    assert "320 samples" in out and "best_fit" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["code", "prose", "short"]
    assert main(["plan", str(tmp_path / "loader.json"), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["samples"] == 320 and 0 < plan["sources"][0]["packing"]["padding_fraction"] < 0.5
    cfg["sources"][0]["where"] = "quality > 5"
    (tmp_path / "bad.json").write_text(json.dumps(cfg))
    assert main(["plan", str(tmp_path / "bad.json")]) == 2
    assert "source 'code'" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["plan", str(tmp_path / "broken.json")]) == 2
    assert "broken.json:1: not JSON" in capsys.readouterr().err
