"""The Llama-style model against outside references: `transformers`' `LlamaForCausalLM` loaded from
our export gives the same logits; a packed sequence with document masking gives each document the
logits it gets alone; and the model trains to the same losses with the Triton kernels on and off,
reading real text through the loader."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch

import shardforge
from conftest import real_documents, write_jsonl
from shardforge.loader import Loader
from shardforge.trainer import ModelConfig, Transformer, checkpoint, model_config
from shardforge.trainer.hf import export_hf, import_hf
from shardforge.trainer.optim import lr_factor, param_groups
from shardforge.trainer.train import TrainConfig, format_duration, progress_line, singular_value_ratio, train

SMALL = ModelConfig(vocab_size=1000, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=128)


@pytest.mark.parametrize("tied", [False, True])
def test_transformers_llama_loaded_from_our_export_gives_the_same_logits(tmp_path: Path, tied: bool) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = SMALL.with_(tie_embeddings=tied, rope_base=50000.0)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # norms away from 1, so a swapped norm weight would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    export_hf(model, tmp_path / "hf")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 37))
    with torch.no_grad():
        ours = model(ids)
        theirs = hf(ids).logits
        back = import_hf(tmp_path / "hf")(ids)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    assert torch.equal(back, ours)


def test_document_masking_gives_each_document_its_own_logits() -> None:
    torch.manual_seed(1)
    model = Transformer(SMALL).eval()
    a, b = torch.randint(0, 1000, (1, 20)), torch.randint(0, 1000, (1, 15))
    packed = torch.cat([a, b], 1)
    pos = torch.cat([torch.arange(20), torch.arange(15)])[None]
    with torch.no_grad():
        together = model(packed, pos)
        alone = torch.cat([model(a), model(b)], 1)
        unmasked = model(packed)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unmasked[:, 20:], alone[:, 20:], atol=1e-3)


def test_sizes_and_flops() -> None:
    small = Transformer(SMALL)
    assert sum(p.numel() for p in small.parameters()) == SMALL.num_params()
    assert 7.0e9 < model_config("8b").num_params() < 8.2e9
    assert 1.0e8 < model_config("125m", vocab_size=50257).num_params() < 1.7e8
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        ModelConfig(n_heads=4, n_kv_heads=3)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real text, a 512-token BPE vocabulary trained on it, and its token dataset."""
    d = tmp_path_factory.mktemp("train")
    write_jsonl(d / "docs.jsonl", [{"text": t[:4000]} for t in real_documents(60, seed=4)])
    shardforge.train_tokenizer(d / "docs.jsonl", d / "tok.json", vocab_size=512)
    shardforge.tokenize(d / "docs.jsonl", d / "tokens", tokenizer=str(d / "tok.json"))
    return d / "tokens"


def train_losses(dataset: Path, cache: Path, kernels: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, kernels=kernels
    )
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    loader = Loader(
        {
            "seq_len": 32,
            "batch_size": 2,
            "sources": [{"name": "t", "datasets": [str(dataset)]}],
            "cache_dir": str(cache),
        },
        format="torch",
    )
    losses = []
    for _, batch in zip(range(steps), loader, strict=False):
        loss = model.loss(batch["input_ids"], batch["labels"], batch["position_ids"])
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # the kernels run under Triton's interpreter: about a minute
def test_debug_model_trains_to_the_same_loss_with_kernels_on_and_off(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    off = train_losses(tiny_dataset, tmp_path, kernels=False, steps=10)
    on = train_losses(tiny_dataset, tmp_path, kernels=True, steps=10)
    assert off[-1] < off[0] - 0.5, f"the loss falls: {off}"
    for step, (a, b) in enumerate(zip(off, on, strict=True)):
        assert abs(a - b) <= 1e-3 * abs(a), f"step {step}: {a} without kernels, {b} with"


def loop_config(dataset: Path, out: Path, **over: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "loader": {
            "seq_len": 32,
            "batch_size": 4,
            "sources": [{"name": "t", "datasets": [str(dataset)]}],
            "cache_dir": str(out.parent / "cache"),
        },
        "out_dir": str(out),
        "model_overrides": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 96},
        "steps": 12,
        "warmup_steps": 3,
        "checkpoint_every": 4,
        "keep_checkpoints": 2,
    }
    return TrainConfig(**(base | over))


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_an_interrupted_run_resumes_bit_identically(tiny_dataset: Path, tmp_path: Path) -> None:
    train(loop_config(tiny_dataset, tmp_path / "a"), quiet=True)
    b = loop_config(tiny_dataset, tmp_path / "b")
    train(b, stop_after=6, quiet=True)  # the last checkpoint is step 4: steps 5 and 6 are redone
    assert [m["step"] for m in metrics(tmp_path / "b")] == list(range(1, 7))
    train(b, quiet=True)
    a_losses = [m["loss"] for m in metrics(tmp_path / "a")]
    assert [m["loss"] for m in metrics(tmp_path / "b")] == a_losses
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "b" / "checkpoints")] == [
        "step_00000008",
        "step_00000012",
    ]
    assert a_losses[-1] < a_losses[0] - 0.3
    m = metrics(tmp_path / "a")[-1]
    assert m["tokens"] == 12 * 4 * 32 and set(m["grad_norm_groups"]) == {"decay", "no_decay"}


# Dynamo reads `.grad` of FSDP's unsharded parameters while tracing; torch warns, we don't care.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_one_process_trains_bf16_parameters_against_fp32_master_weights(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    bf16 = {"parallel": {"param_dtype": "bfloat16"}, "grad_accum": 2}
    train(loop_config(tiny_dataset, tmp_path / "fp32", steps=8, grad_accum=2), quiet=True)
    train(loop_config(tiny_dataset, tmp_path / "bf16", steps=8, **bf16), quiet=True)
    assert not torch.distributed.is_initialized()  # no process group: no FSDP on one process
    fp32 = [m["loss"] for m in metrics(tmp_path / "fp32")]
    half = [m["loss"] for m in metrics(tmp_path / "bf16")]
    assert half != fp32 and max(abs(a - b) for a, b in zip(half, fp32, strict=True)) < 0.05
    # The same arithmetic as FSDP2's mixed precision on a one-rank mesh (bf16 compute copies of
    # fp32 weights, fp32 gradients, accumulated in fp32 over the two batches of a step), so the
    # same losses to the bit.
    store = torch.distributed.HashStore()  # type: ignore[attr-defined]
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        train(loop_config(tiny_dataset, tmp_path / "fsdp", steps=8, **bf16), quiet=True)
    finally:
        torch.distributed.destroy_process_group()
    fsdp = [m["loss"] for m in metrics(tmp_path / "fsdp")]
    assert half == fsdp
    # The checkpoint holds the fp32 master weights, and resuming from it is exact: 8 steps in
    # one go equal 6 + resume.
    model = Transformer(
        model_config("debug", **({"vocab_size": 512} | loop_config(tiny_dataset, tmp_path).model_overrides))
    )
    opt = torch.optim.AdamW(param_groups(model, 0.1))
    checkpoint.load(tmp_path / "bf16" / "checkpoints" / "step_00000008", model, opt)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert any((p != p.to(torch.bfloat16).float()).any() for p in model.parameters())
    cut = loop_config(tiny_dataset, tmp_path / "cut", steps=8, **bf16)
    train(cut, stop_after=6, quiet=True)
    train(cut, quiet=True)
    assert [m["loss"] for m in metrics(tmp_path / "cut")] == half
    # `compile` applies without a mesh too: compiled fp32 blocks give the eager losses.
    train(loop_config(tiny_dataset, tmp_path / "compiled", steps=8, parallel={"compile": True}), quiet=True)
    compiled = [m["loss"] for m in metrics(tmp_path / "compiled")]
    fp32_1 = loop_config(tiny_dataset, tmp_path / "fp32_1", steps=8)
    train(fp32_1, quiet=True)
    eager = [m["loss"] for m in metrics(tmp_path / "fp32_1")]
    assert max(abs(a - b) for a, b in zip(compiled, eager, strict=True)) < 1e-4


def test_a_non_finite_loss_skips_the_step(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Transformer.loss
    calls = {"n": 0}

    def sometimes_nan(self: Transformer, *args: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(self, *args)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(Transformer, "loss", sometimes_nan)
    train(loop_config(tiny_dataset, tmp_path / "n", steps=5), quiet=True)
    ms = metrics(tmp_path / "n")
    assert [m["skipped_this_step"] for m in ms] == [None, None, "non_finite", None, None]
    assert ms[-1]["skipped"] == {"non_finite": 1, "grad_spike": 0}
    assert all(math.isfinite(m["loss"]) for i, m in enumerate(ms) if i != 2)


def test_command_line_overrides_reach_nested_fields() -> None:
    from shardforge.cli import apply_overrides

    data = {"steps": 4, "loader": {"batch_size": 2, "sources": []}}
    out = apply_overrides(data, ["--steps=10", "--loader.batch_size=16", "--parallel.tp=2", "--model=125m"])
    assert out == {
        "steps": 10,
        "loader": {"batch_size": 16, "sources": []},
        "parallel": {"tp": 2},
        "model": "125m",
    }
    assert apply_overrides({}, ["--betas=[0.9, 0.99]", "--model-overrides.qk_norm=true"]) == {
        "betas": [0.9, 0.99],
        "model_overrides": {"qk_norm": True},
    }
    with pytest.raises(ValueError, match="is not a section"):
        apply_overrides({"steps": 4}, ["--steps.x=1"])


def test_learning_rate_schedules() -> None:
    assert lr_factor(0, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, "cosine", 0.1) == pytest.approx(0.1, abs=1e-3)
    assert lr_factor(55, 100, 10, "wsd", 0.0, decay_fraction=0.2) == 1.0
    assert lr_factor(90, 100, 10, "wsd", 0.0, decay_fraction=0.2) == pytest.approx(0.5)


def test_train_command_runs_and_resumes(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import asdict

    from shardforge.cli import main

    cfg = asdict(loop_config(tiny_dataset, tmp_path / "cli", steps=4, checkpoint_every=2))
    (tmp_path / "train.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "train.json")]) == 0
    assert "step 4: loss" in capsys.readouterr().out
    # The file says 4 steps; the command line says 6, and the run resumes at step 4.
    assert main(["train", str(tmp_path / "train.json"), "--steps=6"]) == 0
    assert [m["step"] for m in metrics(tmp_path / "cli")] == [1, 2, 3, 4, 5, 6]
    assert main(["train", str(tmp_path / "train.json"), "--steps"]) == 2
    assert "expected --section.key=value" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps(cfg | {"stepz": 3}))
    assert main(["train", str(tmp_path / "bad.json")]) == 2
    assert "unknown key 'stepz' (did you mean 'steps'?)" in capsys.readouterr().err
    # Keys and values of the sections built inside the run are refused before it starts, as a
    # config error naming the file, not a traceback.
    for override, message in [
        ("--parallel.tpp=2", "parallel: unknown key 'tpp' (did you mean 'tp' or 'pp'?)"),
        ("--model-overrides.dimm=64", "model_overrides: unknown key 'dimm' (did you mean 'dim'?)"),
        ("--parallel.reshard_after_forward=sometimes", "reshard_after_forward is auto, always, never, not"),
        ("--model-overrides.dim=65", "dim 65 is not a multiple of n_heads"),
    ]:
        out = tmp_path / "refused"
        assert main(["train", str(tmp_path / "train.json"), override, f"--out-dir={out}"]) == 2
        assert f"train.json: {message}" in capsys.readouterr().err
        assert not out.exists()


def test_a_loss_spike_that_lasts_rolls_back_with_a_lower_learning_rate(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Transformer.loss
    calls = {"n": 0}

    def spiking(self: Transformer, *args: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(self, *args)
        # 10x the value, the same gradient, on steps 13-16 the first time through.
        return loss + 9 * loss.detach() if 13 <= calls["n"] <= 16 else loss

    monkeypatch.setattr(Transformer, "loss", spiking)
    cfg = loop_config(tiny_dataset, tmp_path / "s", steps=20, checkpoint_every=2, keep_checkpoints=3)
    cfg.rollback_after = 3
    train(cfg, quiet=True)
    ms = metrics(tmp_path / "s")
    back = [m for m in ms if "rolled_back_to" in m]
    # The spike's first loss (step 13) came from the weights after step 12: back to step 10.
    assert len(back) == 1 and back[0]["step"] == 16 and back[0]["rolled_back_to"] == 10
    assert [m["loss_spike"] for m in ms[12:16]] == [True] * 4
    first_11, second_11 = (m for m in ms if m["step"] == 11)
    assert second_11["lr"] == pytest.approx(0.7 * first_11["lr"])
    assert ms[-1]["step"] == 20 and ms[-1]["rollbacks"] == 1 and not ms[-1]["loss_spike"]
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path / "s" / "checkpoints")]
    assert names == ["step_00000016", "step_00000018", "step_00000020"]


def test_skipped_steps_in_a_row_roll_back(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model broken by one bad update only yields huge gradients: every step is skipped, so the
    run must go back to earlier weights rather than skip forever."""
    real = Transformer.loss
    calls = {"n": 0}

    def huge_gradients(self: Transformer, *args: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(self, *args)
        # Same value, 1000x the gradient, on steps 13-15 the first time through.
        return loss + 999 * (loss - loss.detach()) if 13 <= calls["n"] <= 15 else loss

    monkeypatch.setattr(Transformer, "loss", huge_gradients)
    cfg = loop_config(tiny_dataset, tmp_path / "k", steps=18, checkpoint_every=2, keep_checkpoints=3)
    cfg.rollback_after = 3
    train(cfg, quiet=True)
    ms = metrics(tmp_path / "k")
    assert [m["skipped_this_step"] for m in ms[12:15]] == ["grad_spike"] * 3
    assert not any(m["loss_spike"] for m in ms)
    back = [m for m in ms if "rolled_back_to" in m]
    assert len(back) == 1 and back[0]["step"] == 15 and back[0]["rolled_back_to"] == 10
    assert ms[-1]["step"] == 18 and ms[-1]["rollbacks"] == 1 and ms[-1]["skipped_this_step"] is None
    assert ms[-1]["skipped"] == {"non_finite": 0, "grad_spike": 3}  # kept across the rollback


def test_validation_loss_and_tensorboard(tiny_dataset: Path, tmp_path: Path) -> None:
    val = {
        "seq_len": 32,
        "batch_size": 4,
        "sources": [{"name": "t", "datasets": [str(tiny_dataset)], "where": "doc_id LIKE '%:1_'"}],
        "cache_dir": str(tmp_path / "cache"),
    }
    cfg = loop_config(tiny_dataset, tmp_path / "v", val_loader=val, val_every=4, val_batches=3)
    train(cfg, quiet=True)
    vals = [(m["step"], m["val_loss"]) for m in metrics(tmp_path / "v") if "val_loss" in m]
    assert [s for s, _ in vals] == [4, 8, 12]
    assert vals[-1][1] < vals[0][1]
    assert list((tmp_path / "v" / "tensorboard").glob("events.out.tfevents.*"))


def test_embedding_collapse_ratio_in_the_metrics(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = loop_config(tiny_dataset, tmp_path / "c", steps=8, collapse_every=3)
    train(cfg, quiet=True)
    ms = metrics(tmp_path / "c")
    assert [m["step"] for m in ms if "embed_sv_ratio" in m] == [3, 6, 8]  # and the last step
    # The model of the last checkpoint (step 8) against an SVD of its embedding.
    model = Transformer(model_config("debug", **({"vocab_size": 512} | cfg.model_overrides)))
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay))
    checkpoint.load(tmp_path / "c" / "checkpoints" / "step_00000008", model, opt)
    s = torch.linalg.svdvals(model.embed.weight.detach())
    assert ms[-1]["embed_sv_ratio"] == pytest.approx((s[0] / s[1]).item(), rel=1e-5)
    collapsed = torch.randn(300, 40) + 5 * torch.randn(300, 1) @ torch.randn(1, 40)
    s = torch.linalg.svdvals(collapsed)
    assert singular_value_ratio(collapsed) == pytest.approx((s[0] / s[1]).item(), rel=1e-5)
    assert singular_value_ratio(collapsed.T) == pytest.approx((s[0] / s[1]).item(), rel=1e-5)
    assert singular_value_ratio(collapsed) > 5


def test_profiled_steps_and_garbage_collection_between_steps(tiny_dataset: Path, tmp_path: Path) -> None:
    import gc

    assert gc.isenabled()
    cfg = loop_config(tiny_dataset, tmp_path / "p", steps=5, profile_at=3, profile_steps=2, gc_every=2)
    train(cfg, quiet=True)
    assert gc.isenabled()  # switched back on after the loop
    prof = tmp_path / "p" / "profile"
    trace = json.loads((prof / "trace.json").read_text())
    # Steps 3 and 4 ran the model: its matrix products and the optimizer are in the trace.
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert any("aten::mm" in n or "aten::addmm" in n for n in names)
    assert "Optimizer.step#AdamW.step" in names
    assert "Self CPU time total" in (prof / "top_ops.txt").read_text()
    assert [m["step"] for m in metrics(tmp_path / "p")] == [1, 2, 3, 4, 5]


def test_progress_line_and_eta(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert [format_duration(s) for s in (0, 59.6, 61, 3600, 3 * 3600 + 62, 100 * 3600, -5)] == [
        "0:00:00",
        "0:01:00",
        "0:01:01",
        "1:00:00",
        "3:01:02",
        "100:00:00",
        "0:00:00",
    ]
    record = {
        "step": 40,
        "loss": 5.25,
        "lr": 3e-3,
        "grad_norm": 0.5,
        "tokens_per_s": 12345.6,
        "mfu": 0.4123,
        "skipped": {"non_finite": 1, "grad_spike": 0},
        "embed_sv_ratio": 3.21,
    }
    assert progress_line(record, 200, 83.0) == (
        "step     40/200  loss  5.2500  lr 3.00e-03  grad  0.500  12,346 tok/s  mfu 41.2%  "
        "eta 0:01:23  skipped 1  embed σ1/σ2 3.21"
    )
    train(loop_config(tiny_dataset, tmp_path / "p", steps=6, log_every=2, collapse_every=0))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    for step, line in zip((2, 4, 6), lines, strict=True):
        assert re.match(rf"step +{step}/6  loss .* mfu   n/a  eta \d+:\d\d:\d\d  skipped 0$", line), line
    assert lines[-1].endswith("eta 0:00:00  skipped 0")
