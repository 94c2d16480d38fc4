"""FSDP2 and tensor parallelism on CPU (gloo, several processes under torchrun): one training step
gives the loss and the updated weights of the same step in one plain process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch

from shardforge.trainer import ModelConfig, Transformer

CFG = ModelConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=64)


def reference_step(init: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
    model = Transformer(CFG)
    model.load_state_dict(init["weights"])
    opt = torch.optim.SGD(
        model.parameters(), lr=0.5
    )  # linear in the gradient (Adam's first step is its sign)
    ids, labels, pos = init["batch"]
    loss = model.loss(ids, labels, pos)
    torch.autograd.backward(loss)
    opt.step()
    return loss.item(), {n: p.detach() for n, p in model.named_parameters()}


@pytest.mark.slow  # starts torch in 2-4 processes per case
@pytest.mark.parametrize(
    ("nproc", "tp", "ac"),
    [(2, 1, 0), (2, 2, 0), (2, 1, 1), (4, 2, 0)],
    ids=["fsdp2", "tp2", "fsdp2-ac", "fsdp2xtp2"],
)
def test_parallel_step_equals_the_single_process_step(tmp_path: Path, nproc: int, tp: int, ac: int) -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, CFG.vocab_size, (4, 24))
    pos = torch.cat([torch.arange(10), torch.arange(14)]).expand(4, 24)
    init = {
        "config": CFG,
        "weights": Transformer(CFG).state_dict(),
        "batch": (ids, torch.roll(ids, -1, 1), pos),
    }
    torch.save(init, tmp_path / "init.pt")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("parallel_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    done = subprocess.run(
        [*cmd, str(worker), str(tmp_path), str(tp), str(ac)],
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
def test_training_under_torchrun_matches_one_process(tmp_path: Path) -> None:
    """`shardforge train` on 2 data-parallel ranks (2 samples each) follows the losses of one process
    reading the same 4-sample global batches, and writes one metrics file."""
    import json

    import shardforge
    from conftest import real_documents, write_jsonl

    write_jsonl(tmp_path / "docs.jsonl", [{"text": t[:3000]} for t in real_documents(40, seed=2)])
    shardforge.train_tokenizer(tmp_path / "docs.jsonl", tmp_path / "tok.json", vocab_size=400)
    shardforge.tokenize(tmp_path / "docs.jsonl", tmp_path / "tokens", tokenizer=str(tmp_path / "tok.json"))

    def config(out: str, batch: int) -> Path:
        cfg = {
            "loader": {
                "seq_len": 32,
                "batch_size": batch,
                "sources": [{"name": "t", "datasets": [str(tmp_path / "tokens")]}],
                "cache_dir": str(tmp_path / "cache"),
            },
            "out_dir": str(tmp_path / out),
            "model_overrides": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 96},
            "steps": 6,
            "warmup_steps": 2,
            "checkpoint_every": 3,
        }
        path = tmp_path / f"{out}.json"
        path.write_text(json.dumps(cfg))
        return path

    from shardforge.cli import main

    assert main(["train", str(config("one", 4))]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cli = ["-m", "shardforge.cli", "train", str(config("two", 2))]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, *cli], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    def losses(out: str) -> list[float]:
        lines = (tmp_path / out / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    one, two = losses("one"), losses("two")
    assert len(one) == len(two) == 6
    assert two == pytest.approx(one, rel=1e-3)
    assert (tmp_path / "two" / "checkpoints" / "step_00000006" / "extra.pt").exists()
