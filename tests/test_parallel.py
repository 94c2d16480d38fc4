"""FSDP2, tensor and pipeline parallelism on CPU (gloo, several processes under torchrun): one
training step gives the loss and the updated weights of the same step in one plain process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch

from shardforge.trainer import ModelConfig, Transformer, activation_checkpointing
from shardforge.trainer.model import TransformerStage, canonical_name, materialize
from shardforge.trainer.parallel import ParallelConfig, split_layers

CFG = ModelConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=64)


def reference_step(init: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
    model = Transformer(init["config"])
    model.init_weights(init["seed"])
    opt = torch.optim.SGD(
        model.parameters(), lr=0.5
    )  # linear in the gradient (Adam's first step is its sign)
    ids, labels, pos = init["batch"]
    loss = model.loss(ids, labels, pos)
    torch.autograd.backward(loss)
    opt.step()
    return loss.item(), {n: p.detach() for n, p in model.named_parameters()}


def test_pipeline_stages_chain_into_the_model() -> None:
    """Two stages hold the model's own modules under its names, and run one after the other they
    give its loss; layers split into even runs; tied embeddings are refused."""
    model = Transformer(CFG)
    first = TransformerStage(model, [0], first=True, last=False)
    last = TransformerStage(model, [1], first=False, last=True)
    names = dict(model.named_parameters())
    for stage in (first, last):
        assert all(p is names[n] for n, p in stage.named_parameters())
    assert {n for n, _ in first.named_parameters()} | {n for n, _ in last.named_parameters()} == set(names)
    torch.manual_seed(0)
    ids = torch.randint(0, CFG.vocab_size, (2, 16))
    pos = torch.cat([torch.arange(6), torch.arange(10)]).expand(2, 16)
    labels = torch.roll(ids, -1, 1)
    loss = last(first(ids, position_ids=pos), position_ids=pos, labels=labels)
    assert loss.shape == (1,)
    torch.testing.assert_close(loss[0], model.loss(ids, labels, pos), rtol=0, atol=0)

    assert split_layers(5, 2) == [range(0, 3), range(3, 5)]
    assert split_layers(4, 4) == [range(i, i + 1) for i in range(4)]
    with pytest.raises(ValueError, match="at least as many layers"):
        split_layers(2, 4)
    with pytest.raises(ValueError, match="untied"):
        TransformerStage(Transformer(CFG.with_(tie_embeddings=True)), [0], first=True, last=False)


def test_weights_initialised_after_building_on_meta_match_the_eager_model() -> None:
    """The trainer builds the model on the meta device and initialises each rank's parameters by
    name: a pipeline stage, with activation checkpointing around its blocks, gets exactly the
    whole model's values; another seed gives other values."""
    eager = Transformer(CFG)
    eager.init_weights(3)
    with torch.device("meta"):
        meta = Transformer(CFG)
    stage = TransformerStage(meta, [1], first=False, last=True)
    activation_checkpointing.apply(stage.layers, True)
    materialize([stage], stage, CFG, 3, torch.device("cpu"))
    want = dict(eager.named_parameters())
    got = {canonical_name(n): p for n, p in stage.named_parameters()}
    assert set(got) == {n for n in want if n.startswith(("layers.1.", "norm.", "lm_head."))}
    for n, p in got.items():
        assert torch.equal(p, want[n]), n
    assert got["layers.1.attn.o.weight"].std() < got["layers.1.attn.q.weight"].std()  # depth-scaled
    eager.init_weights(4)
    reseeded = dict(eager.named_parameters())["layers.1.attn.q.weight"]
    assert not torch.equal(reseeded, got["layers.1.attn.q.weight"])


def test_a_wrong_parallel_setting_is_named() -> None:
    with pytest.raises(ValueError, match="auto, always, never, not 'sometimes'"):
        ParallelConfig(reshard_after_forward="sometimes")
    with pytest.raises(ValueError, match="sequence_parallel needs tp > 1"):
        ParallelConfig(sequence_parallel=True)


@pytest.mark.slow  # starts torch in 2-4 processes per case
@pytest.mark.parametrize(
    ("nproc", "tp", "ac", "pp", "schedule", "sp", "reshard"),
    [
        (2, 1, 0, 1, "1F1B", 0, "auto"),
        (2, 1, 0, 1, "1F1B", 0, "never"),
        (2, 2, 0, 1, "1F1B", 0, "auto"),
        (2, 1, 1, 1, "1F1B", 0, "auto"),
        (4, 2, 0, 1, "1F1B", 0, "auto"),
        (2, 2, 0, 1, "1F1B", 1, "auto"),
        (4, 2, 0, 1, "1F1B", 1, "auto"),
        (2, 1, 0, 2, "1F1B", 0, "auto"),
        (2, 1, 0, 2, "Interleaved1F1B", 0, "auto"),
        (4, 1, 0, 2, "1F1B", 0, "auto"),
        (4, 2, 1, 2, "Interleaved1F1B", 0, "auto"),
    ],
    ids=[
        "fsdp2",
        "fsdp2-no-reshard",
        "tp2",
        "fsdp2-ac",
        "fsdp2xtp2",
        "tp2-sp",
        "fsdp2xtp2-sp",
        "pp2",
        "pp2-interleaved",
        "fsdp2xpp2",
        "tp2xpp2-interleaved-ac",
    ],
)
def test_parallel_step_equals_the_single_process_step(
    tmp_path: Path, nproc: int, tp: int, ac: int, pp: int, schedule: str, sp: int, reshard: str
) -> None:
    """Pipelines run 4 layers: 2 stages of 2, or under the interleaved schedule 4 stages of 1, two
    per rank. Each rank's batch is split into one microbatch per stage."""
    cfg = CFG.with_(n_layers=4) if pp > 1 else CFG
    torch.manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (4, 24))
    pos = torch.cat([torch.arange(10), torch.arange(14)]).expand(4, 24)
    init = {
        "config": cfg,
        "seed": 7,  # the ranks build their shards of the initial weights from it
        "batch": (ids, torch.roll(ids, -1, 1), pos),
    }
    torch.save(init, tmp_path / "init.pt")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("parallel_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    done = subprocess.run(
        [*cmd, str(worker), str(tmp_path), str(tp), str(ac), str(pp), schedule, str(sp), reshard],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(tmp_path / "result.pt", weights_only=False)
    loss, params = reference_step(init)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)
    assert got["params"].keys() == params.keys()
    for n, p in params.items():
        torch.testing.assert_close(got["params"][n], p, rtol=1e-4, atol=1e-5, msg=f"{n} differs")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parallel", "batch", "accum"),
    [
        ({}, 2, 1),
        ({"pp": 2}, 4, 2),
        ({"tp": 2, "sequence_parallel": True}, 4, 1),
        ({"compile": True}, 2, 1),
        ({"pp": 2, "compile": True}, 4, 2),
    ],
    ids=["dp2", "pp2", "tp2-sp", "dp2-compile", "pp2-compile"],
)
def test_training_under_torchrun_matches_one_process(
    tmp_path: Path, parallel: dict[str, Any], batch: int, accum: int
) -> None:
    """`shardforge train` on 2 ranks follows the losses (and validation losses and embedding
    σ1/σ2) of one process reading the same global batches, writes one metrics file, and
    checkpoints under the whole model's names. Data parallel: 2 samples per rank, one process
    reads 4. Pipeline parallel: both ranks read 4 samples twice per step (gradient accumulation
    becomes microbatches), and validation runs 3 batches in schedule steps of 2. Tensor plus
    sequence parallel: both ranks read the same 4 samples and hold half of every matrix. Both
    checkpoints load into one plain process and give the same weights."""
    import json

    from torch.distributed.checkpoint.filesystem import FileSystemReader

    import shardforge
    from conftest import real_documents, write_jsonl
    from shardforge.dataset import open_dataset
    from shardforge.trainer import checkpoint
    from shardforge.trainer.config import model_config
    from shardforge.trainer.optim import param_groups

    write_jsonl(tmp_path / "docs.jsonl", [{"text": t[:3000]} for t in real_documents(40, seed=2)])
    shardforge.train_tokenizer(tmp_path / "docs.jsonl", tmp_path / "tok.json", vocab_size=400)
    shardforge.tokenize(tmp_path / "docs.jsonl", tmp_path / "tokens", tokenizer=str(tmp_path / "tok.json"))

    overrides = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 96}

    def config(out: str, batch: int, parallel: dict[str, Any]) -> Path:
        loader = {
            "seq_len": 32,
            "batch_size": batch,
            "sources": [{"name": "t", "datasets": [str(tmp_path / "tokens")]}],
            "cache_dir": str(tmp_path / "cache"),
        }
        cfg = {
            "loader": loader,
            "val_loader": loader,
            "val_every": 3,
            "val_batches": 3,
            "out_dir": str(tmp_path / out),
            "model_overrides": overrides,
            "steps": 6,
            "warmup_steps": 2,
            "grad_accum": accum,
            "checkpoint_every": 3,
            "parallel": parallel,
        }
        path = tmp_path / f"{out}.json"
        path.write_text(json.dumps(cfg))
        return path

    from shardforge.cli import main

    assert main(["train", str(config("one", 4, {}))]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cli = ["-m", "shardforge.cli", "train", str(config("two", batch, parallel))]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, *cli], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    def metrics(out: str) -> list[dict[str, Any]]:
        lines = (tmp_path / out / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    one, two = metrics("one"), metrics("two")
    assert len(one) == len(two) == 6
    for key in ("loss", "grad_norm", "val_loss", "embed_sv_ratio"):
        want = {r["step"]: r[key] for r in one if key in r}
        got = {r["step"]: r[key] for r in two if key in r}
        assert got.keys() == want.keys() and got == pytest.approx(want, rel=1e-3), key
    assert [r["step"] for r in two if "val_loss" in r] == [3, 6]

    def last_checkpoint(out: str) -> tuple[set[str], dict[str, torch.Tensor]]:
        """Its names, and the weights it gives a plain model of one process."""
        path = tmp_path / out / "checkpoints" / "step_00000006"
        names = set(FileSystemReader(str(path)).read_metadata().state_dict_metadata)
        vocab = open_dataset(tmp_path / "tokens").manifest["tokenizer"]["vocab_size"]
        model = Transformer(model_config("debug", vocab_size=vocab, **overrides))
        checkpoint.load(path, model, torch.optim.AdamW(param_groups(model, 0.1)))
        return names, model.state_dict()

    (names_one, weights_one), (names_two, weights_two) = last_checkpoint("one"), last_checkpoint("two")
    assert names_two == names_one
    for n, w in weights_one.items():
        torch.testing.assert_close(weights_two[n], w, rtol=1e-4, atol=1e-5, msg=f"{n} differs")
