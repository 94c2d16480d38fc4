"""The training loop, top to bottom: model and optimizer, resume from the last checkpoint, then per
step: learning rate, gradient accumulation over loader batches, clipping, the stability guards,
the optimizer step, metrics, checkpoints.

Stability guards: a non-finite loss or gradient norm skips the step, and so does a gradient norm
above `spike_factor` × the median of the last 100 accepted ones. Both are counted and logged."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from shardforge.loader import Loader
from shardforge.trainer import checkpoint
from shardforge.trainer.config import model_config
from shardforge.trainer.model import Transformer
from shardforge.trainer.optim import Schedule, lr_factor, param_groups
from shardforge.trainer.parallel import ParallelConfig, build_mesh, parallelize

# Dense bf16 peak FLOP/s by device name, for MFU.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


@dataclass
class TrainConfig:
    loader: dict[str, Any]
    out_dir: str
    model: str = "debug"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 200
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    schedule: Schedule = "cosine"
    decay_fraction: float = 0.2
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    grad_accum: int = 1
    spike_factor: float = 5.0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    # ParallelConfig fields (dp, tp, activation_checkpointing, compile, param_dtype); used under torchrun.
    parallel: dict[str, Any] = field(default_factory=dict)


def train(cfg: TrainConfig, stop_after: int | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train (or resume) and return the last step's metrics. `stop_after` ends this run after that
    many steps, as an interruption would."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank

    vocab = cfg.model_overrides.get("vocab_size") or _dataset_vocab(cfg.loader)
    mcfg = model_config(cfg.model, **({"vocab_size": vocab} | cfg.model_overrides))
    model = Transformer(mcfg).to(device)
    dp_rank, dp = 0, 1
    if world > 1:
        pcfg = ParallelConfig(**cfg.parallel)
        mesh = build_mesh(pcfg, world, device.type)
        parallelize(model, mesh, pcfg)
        dp_rank, dp = mesh["dp"].get_local_rank(), mesh["dp"].size()
    # Tensor-parallel ranks read the same batches: the loader's ranks are the data-parallel ones.
    loader = Loader(cfg.loader, rank=dp_rank, world_size=dp, format="torch")
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, fused=False)
    groups = {g["name"]: g["params"] for g in opt.param_groups}

    step, skipped = 0, {"non_finite": 0, "grad_spike": 0}
    norms: deque[float] = deque(maxlen=100)
    ckpts = out / "checkpoints"
    last = checkpoint.list_checkpoints(ckpts)
    if last:
        extra = checkpoint.load(last[-1], model, opt)
        step, skipped = extra["step"], extra["skipped"]
        norms.extend(extra["grad_norms"])
        loader.load_state_dict(extra["loader"])
        torch.set_rng_state(extra["rng"])
    metrics_path = out / "metrics.jsonl"
    _truncate_metrics(metrics_path, step)

    seq_tokens = cfg.loader.get("seq_len", 2048) * loader.config.batch_size * dp * cfg.grad_accum
    peak = next(
        (v for k, v in PEAK_FLOPS.items() if torch.cuda.is_available() and k in torch.cuda.get_device_name()),
        None,
    )
    batches = iter(loader)
    first, record = step, {}
    while step < cfg.steps and (stop_after is None or step - first < stop_after):
        t0 = time.perf_counter()
        lr = cfg.lr * lr_factor(
            step, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio, cfg.decay_fraction
        )
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for _ in range(cfg.grad_accum):
            b = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            loss = model.loss(b["input_ids"], b["labels"], b["position_ids"]) / cfg.grad_accum
            torch.autograd.backward(loss)
            loss_sum += _mean_over_ranks(loss.detach())
        group_norms = {
            # A DTensor's norm is a replicated scalar: cheap to read, nothing gathered.
            n: math.sqrt(sum(float(_full(p.grad.norm())) ** 2 for p in ps if p.grad is not None))
            for n, ps in groups.items()
        }
        grad_norm = float(_full(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
        skip = None
        if not (math.isfinite(loss_sum) and math.isfinite(grad_norm)):
            skip = "non_finite"
        elif len(norms) >= 10 and grad_norm > cfg.spike_factor * statistics.median(norms):
            skip = "grad_spike"
        if skip:
            skipped[skip] += 1
        else:
            opt.step()
            norms.append(grad_norm)
        opt.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t0
        tps = seq_tokens / dt
        record = {
            "step": step,
            "loss": loss_sum,
            "lr": lr,
            "grad_norm": grad_norm,
            "grad_norm_groups": group_norms,
            "tokens": step * seq_tokens,
            "tokens_per_s": tps,
            "mfu": mcfg.flops_per_token(cfg.loader.get("seq_len", 2048)) * tps / (peak * world)
            if peak
            else None,
            "skipped": dict(skipped),
            "skipped_this_step": skip,
            "memory_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        }
        if rank == 0:
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if not quiet and (step % cfg.log_every == 0 or step == cfg.steps):
                print(
                    f"step {step:>6}/{cfg.steps}  loss {loss_sum:7.4f}  lr {lr:.2e}  grad {grad_norm:6.3f}  "
                    f"{tps:,.0f} tok/s  skipped {sum(skipped.values())}",
                    flush=True,
                )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            extra = {
                "step": step,
                "skipped": skipped,
                "grad_norms": list(norms),
                "loader": loader.state_dict(),
                "rng": torch.get_rng_state(),  # rank 0's; the model itself draws no random numbers
                "config": asdict(cfg),
            }
            checkpoint.save(ckpts, step, model, opt, extra, cfg.keep_checkpoints)
    return record


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a DTensor (FSDP/TP shards), else the tensor."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def _mean_over_ranks(x: torch.Tensor) -> float:
    if dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return float(x)


def _dataset_vocab(loader_cfg: dict[str, Any]) -> int:
    from shardforge.dataset import open_dataset

    path = loader_cfg["sources"][0]["datasets"][0]
    return int(open_dataset(path).manifest["tokenizer"]["vocab_size"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines a resumed run will write again (steps after its checkpoint)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))
