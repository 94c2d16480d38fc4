"""Checkpoints with `torch.distributed.checkpoint` (sharded when the model is): model, optimizer,
and a small `extra.pt` with the step, loader state, RNG states and the skip counters. Each one is
written into a temporary directory, fsync'ed, then renamed to `step_NNNNNNNN`, so a checkpoint
directory is either complete or absent. The last `keep` are kept.

Parameters are saved under the whole model's names, and the optimizer's state and hyperparameters
per parameter name (flattened): pipeline-parallel ranks, which hold different parameters, then
write disjoint keys instead of each its own list of param groups, and a checkpoint loads under any
other layout of ranks."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

_NAME = re.compile(r"^step_(\d{8})$")
_OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)


def _rank0() -> bool:
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def _single() -> bool:
    """One process, no process group: DCP is told so instead of warning about it."""
    return not torch.distributed.is_initialized()


@contextlib.contextmanager
def _single_process_ok() -> Iterator[None]:
    """DCP warns on every single-process save and load, even when told `no_dist`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.tmp"
    if _rank0():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_OPTIONS)
    with _single_process_ok():
        dcp_save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp), no_dist=_single())
    if _rank0():
        torch.save(extra, tmp / "extra.pt")
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old)
    _barrier()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _NAME.match(p.name) and (p / "extra.pt").exists())


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer in place; returns the extra state."""
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_OPTIONS)
    state = {"model": model_sd, "optim": optim_sd}
    with _single_process_ok():
        dcp_load(state, checkpoint_id=str(path), no_dist=_single())
    # DCP loaded into the tensors of model_sd and optim_sd in place.
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd, options=_OPTIONS)
    extra: dict[str, Any] = torch.load(path / "extra.pt", weights_only=False)
    return extra
