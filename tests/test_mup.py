"""μP: the coordinate check (after a few Adam steps the activations' size stays flat with the width
under μP and grows under the standard parametrization), the per-layer learning rates and weight
decay, the width-scaled init, and that μP at the base width is the standard model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import cast

import pytest

pytest.importorskip("torch")

import torch

from shardforge.trainer import Transformer, model_config
from shardforge.trainer.model import Attention
from shardforge.trainer.optim import param_groups

WIDTHS = (64, 128, 256, 512)
BASE = 128  # the debug model's width


def coordinates(mup: bool, width: int, steps: int = 5, lr: float = 3e-3) -> dict[str, float]:
    """Mean |activation| of the last block's attention and MLP outputs, its residual stream, and
    the logits, after `steps` AdamW steps on one batch."""
    torch.manual_seed(0)
    cfg = model_config("debug", dim=width, n_layers=2, vocab_size=512, mup=mup, mup_base_width=BASE)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(param_groups(model, 0.1), betas=(0.9, 0.95))
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]
    ids = torch.randint(0, cfg.vocab_size, (4, 65), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        loss = model.loss(ids[:, :-1], ids[:, 1:])
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
    size: dict[str, float] = {}
    last = f"layers.{cfg.n_layers - 1}"
    watched = {"attn": f"{last}.attn", "mlp": f"{last}.mlp", "residual": last, "logits": "lm_head"}
    for name, module in watched.items():
        model.get_submodule(module).register_forward_hook(
            lambda m, i, out, name=name: size.update({name: out.abs().mean().item()})
        )
    with torch.no_grad():
        model(ids[:, :-1])
    return size


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small matmuls: one thread is faster than several on a loaded machine, and as fast idle."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.usefixtures("one_thread")
def test_coordinate_check() -> None:
    mup = {w: coordinates(True, w) for w in WIDTHS}
    sp = {w: coordinates(False, w) for w in WIDTHS}
    assert mup[BASE] == sp[BASE], "at the base width μP is the standard model"
    for name in mup[BASE]:
        sizes = [mup[w][name] for w in WIDTHS]
        # Measured (seeds 0-3): max/min at most 1.9; under the standard parametrization 7-200.
        assert max(sizes) / min(sizes) < 2.5, f"μP {name}: {sizes}"
    logits = [sp[w]["logits"] for w in WIDTHS]
    assert logits == sorted(logits) and logits[-1] / logits[0] > 5, f"standard logits: {logits}"
    mlp = [sp[w]["mlp"] for w in WIDTHS]
    assert mlp[-1] / mlp[0] > 30, f"standard MLP output: {mlp}"


def test_mup_learning_rates_weight_decay_and_init() -> None:
    torch.manual_seed(0)
    cfg = model_config("debug", dim=512, vocab_size=512, mup=True, mup_base_width=BASE)
    model = Transformer(cfg)
    groups = {g["name"]: g for g in param_groups(model, 0.1)}
    # dim 512 / 128 = 4; the MLP's hidden size (Llama's rule) 1536 / 512 = 3.
    assert set(groups) == {"decay", "no_decay", "hidden_x3", "hidden_x4"}
    assert groups["hidden_x4"]["lr_scale"] == 0.25
    assert groups["hidden_x4"]["weight_decay"] == pytest.approx(0.4)
    downs = [model.get_parameter(f"layers.{i}.mlp.down.weight") for i in range(cfg.n_layers)]
    assert len(groups["hidden_x3"]["params"]) == len(downs)
    assert all(p is q for p, q in zip(groups["hidden_x3"]["params"], downs, strict=True))
    assert len(groups["decay"]["params"]) == 1 and groups["decay"]["params"][0] is model.lm_head.weight
    assert groups["decay"]["lr_scale"] == groups["no_decay"]["lr_scale"] == 1.0
    assert any(p is model.embed.weight for p in groups["no_decay"]["params"])
    std = cfg.init_std
    assert model.get_parameter("layers.0.attn.q.weight").std().item() == pytest.approx(std / 2, rel=0.02)
    down = std / math.sqrt(2 * cfg.n_layers) / math.sqrt(3)
    assert downs[0].std().item() == pytest.approx(down, rel=0.02)
    assert model.embed.weight.std().item() == pytest.approx(std, rel=0.02)
    assert model.lm_head.weight.std().item() == pytest.approx(std, rel=0.02)
    assert model.output_multiplier == 0.25
    attn = cast(Attention, model.get_submodule("layers.0.attn"))
    assert attn.scale == pytest.approx(math.sqrt(32) / 128)


def test_mup_at_the_base_width_is_the_standard_model() -> None:
    ids = torch.randint(0, 512, (2, 16))
    logits = []
    for mup in (False, True):
        torch.manual_seed(0)
        model = Transformer(model_config("debug", vocab_size=512, mup=mup, mup_base_width=128))
        logits.append(model(ids))
    assert torch.equal(logits[0], logits[1])
    with pytest.raises(ValueError, match="mup_base_width 6"):
        model_config("debug", mup=True, mup_base_width=6)
