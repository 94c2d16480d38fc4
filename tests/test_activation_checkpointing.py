"""Activation checkpointing, full and selective: the same loss and gradients as none, and backward
recomputes what each mode promises (counted by dispatching every aten op of the backward pass)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from shardforge.trainer import ModelConfig, Transformer
from shardforge.trainer import activation_checkpointing as ac
from shardforge.trainer.parallel import ParallelConfig

CFG = ModelConfig(vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=64)


class _CountOps(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


def _run(mode: str | None) -> tuple[float, dict[str, torch.Tensor], Counter[str]]:
    torch.manual_seed(0)
    model = Transformer(CFG)
    if mode:
        ac.apply(model.layers, mode)
    ids = torch.randint(0, CFG.vocab_size, (2, 24))
    pos = torch.cat([torch.arange(10), torch.arange(14)]).expand(2, 24)
    loss = model.loss(ids, torch.roll(ids, -1, 1), pos)
    with _CountOps() as counter:
        torch.autograd.backward(loss)
    grads = {
        n.replace("_checkpoint_wrapped_module.", ""): p.grad
        for n, p in model.named_parameters()
        if p.grad is not None
    }
    return float(loss.detach()), grads, counter.ops


def test_full_and_selective_checkpointing_give_the_same_gradients_and_recompute_what_they_say() -> None:
    loss, grads, none_ops = _run(None)
    results = {m: _run(m) for m in ("full", "selective")}
    for mode, (l_m, g_m, _) in results.items():
        assert l_m == pytest.approx(loss, rel=1e-6), mode
        for n, g in grads.items():
            torch.testing.assert_close(g_m[n], g, rtol=1e-5, atol=1e-6, msg=f"{mode}: {n}")
    full_ops, sel_ops = results["full"][2], results["selective"][2]
    # Full reruns each block's forward matmuls in backward; selective saved them.
    assert full_ops["mm"] > none_ops["mm"] and sel_ops["mm"] == none_ops["mm"]
    # Selective still recomputes the cheap ops (norms, SiLU, RoPE), so it does more than none.
    assert sum(none_ops.values()) < sum(sel_ops.values()) < sum(full_ops.values())


def test_a_wrong_checkpointing_mode_is_named() -> None:
    with pytest.raises(ValueError, match="none, full or selective, not 'some'"):
        ParallelConfig(activation_checkpointing="some")
    assert ac.mode_of(True) == "full" and ac.mode_of("none") is None
