"""The training loop, top to bottom: model and optimizer, resume from the last checkpoint, then per
step: learning rate, gradient accumulation over loader batches, clipping, the stability guards,
the optimizer step, metrics, checkpoints.

Stability guards, each counted and logged:
- a non-finite loss or gradient norm skips the step;
- a gradient norm above `spike_factor` × the median of the last 100 accepted ones skips the step;
- a loss above `loss_spike_factor` × the median of the last 100 losses that has not come back
  within `rollback_after` steps, or `rollback_after` skipped steps in a row (a model broken by one
  bad update only produces huge gradients, so skipping alone never recovers it), rolls the run back
  to the last checkpoint saved before the update that preceded the trouble and multiplies the
  learning rate by `rollback_lr_factor` from then on. No checkpoint is saved during a spike, and a
  fresh run saves one at step 0, so there is always one to go back to.

Besides the loss, learning rate, norms, throughput and MFU, every `collapse_every` steps the
metrics carry `embed_sv_ratio`, σ1/σ2 of the token embedding: a ratio that climbs means the
embeddings are collapsing onto one direction. Rank 0 prints a progress line every `log_every`
steps, with an ETA from the median of the recent step times.

Under pipeline parallelism (`parallel.pp` > 1) one schedule step runs the step's `grad_accum`
loader batches as microbatches. The loss comes from the last stage and is shared with the other
stages, and each group's gradient norm is summed over the stages, before the guards, so every rank
takes the same decision; each rank's optimizer and checkpoint shards hold its own stages."""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from shardforge.loader import Loader
from shardforge.trainer import activation_checkpointing, checkpoint
from shardforge.trainer.config import check_keys, model_config
from shardforge.trainer.master_weights import MasterWeights
from shardforge.trainer.model import Transformer, materialize
from shardforge.trainer.optim import Schedule, lr_factor, param_groups
from shardforge.trainer.parallel import ParallelConfig, Pipeline, build_mesh, compile_blocks, parallelize
from shardforge.trainer.profiling import StepProfiler

Batch = dict[str, torch.Tensor]

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
    loss_spike_factor: float = 1.5
    rollback_after: int = 50
    rollback_lr_factor: float = 0.7
    # Held-out data: a loader config read from its start at every evaluation.
    val_loader: dict[str, Any] | None = None
    val_every: int = 100
    val_batches: int = 10
    tensorboard: bool = True
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 10
    # σ1/σ2 of the token embedding every this many steps (and at the last); 0: never.
    collapse_every: int = 100
    # Python's garbage collector runs every this many steps, between steps, instead of wherever
    # it happens to trigger inside one (torchtitan does the same); 0: Python's own schedule.
    gc_every: int = 50
    # Profile `profile_steps` steps from this one (1-based) into <out_dir>/profile/; 0: never.
    profile_at: int = 0
    profile_steps: int = 2
    seed: int = 0
    # ParallelConfig fields (dp, tp, pp, pp_schedule, pp_microbatches, activation_checkpointing,
    # compile, param_dtype, reshard_after_forward); a single process applies compile itself and
    # param_dtype through fp32 master weights (`master_weights.py`), with no process group.
    parallel: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The sections built later, inside `train`, are checked now: a wrong key or value fails
        # before any process group, dataset or model is set up.
        model_config(self.model, **self.model_overrides)
        check_keys("parallel", self.parallel, ParallelConfig)
        ParallelConfig(**self.parallel)


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
    torch.manual_seed(cfg.seed)

    vocab = cfg.model_overrides.get("vocab_size") or _dataset_vocab(cfg.loader)
    mcfg = model_config(cfg.model, **({"vocab_size": vocab} | cfg.model_overrides))
    # Built on the meta device (no memory, no initialisation) and parallelized there; each rank
    # then allocates and initialises only the parameters it holds.
    with torch.device("meta"):
        model = Transformer(mcfg)
    # What this rank trains, checkpoints and clips: the model, or its pipeline stages' part of it.
    part: torch.nn.Module = model
    pcfg, mesh, pipe, dp_rank, dp = ParallelConfig(**cfg.parallel), None, None, 0, 1
    # One process trains without a mesh unless its caller made a process group.
    if dist.is_initialized():
        mesh = build_mesh(pcfg, world, device.type)
        dp_rank, dp = mesh["dp"].get_local_rank(), mesh["dp"].size()
    # Tensor- and pipeline-parallel ranks read the same batches: the loader's ranks are the
    # data-parallel ones.
    loader = Loader(cfg.loader, rank=dp_rank, world_size=dp, format="torch")
    if mesh is not None and pcfg.pp > 1:
        pipe = Pipeline(model, mesh, pcfg, device, loader.config.batch_size, cfg.grad_accum)
        part = pipe.part
    elif mesh is not None:
        parallelize(model, mesh, pcfg)
    else:
        activation_checkpointing.apply(model.layers, pcfg.activation_checkpointing)
    # Seeded by name, the same on every rank whatever it holds (see `init_parameters`).
    materialize(pipe.stage_modules if pipe is not None else [model], part, mcfg, cfg.seed, device)
    # Without a mesh, `param_dtype` and `compile` apply here rather than in `parallelize`: the
    # optimizer, clipping and checkpoints then see the fp32 twin.
    twin = None
    if mesh is None and pcfg.param_dtype != "float32":
        twin = MasterWeights(model, getattr(torch, pcfg.param_dtype))
        part = twin.master
    if mesh is None and pcfg.compile:
        compile_blocks(model.layers)
    # On a GPU, one fused kernel does the whole update (torchtitan's default too); the CPU keeps
    # the per-parameter loop.
    opt = torch.optim.AdamW(
        param_groups(part, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda"
    )
    groups = {g["name"]: g["params"] for g in opt.param_groups}

    st = _State()
    ckpts = out / "checkpoints"
    last = checkpoint.list_checkpoints(ckpts)
    if last:
        st = _restore(last[-1], part, opt, loader, twin)
    elif cfg.steps > 0:
        checkpoint.save(ckpts, 0, part, opt, st.extra(loader, cfg), cfg.keep_checkpoints)
        opt.state.clear()  # saving fills AdamW's state with a zero step; the first real step starts it
    metrics_path = out / "metrics.jsonl"
    _truncate_metrics(metrics_path, st.step)
    board = _board(out, cfg) if rank == 0 else None

    seq_len = cfg.loader.get("seq_len", 2048)
    step_tokens = seq_len * loader.config.batch_size * dp * cfg.grad_accum
    device_name = torch.cuda.get_device_name() if cuda else ""
    peak = next((v for k, v in PEAK_FLOPS.items() if k in device_name), None)
    flops_per_token = mcfg.flops_per_token(seq_len)
    batches = iter(loader)
    first, record = st.step, {}
    step_times: deque[float] = deque(maxlen=50)  # whole iterations, for the ETA
    profiler = StepProfiler(out, cfg.profile_at, cfg.profile_steps, enabled=rank == 0)
    with _garbage_between_steps(cfg.gc_every) as collect_garbage:
        while st.step < cfg.steps and (stop_after is None or st.step - first < stop_after):
            t0 = time.perf_counter()
            profiler.begin(st.step + 1)
            lr = (
                cfg.lr
                * st.lr_scale
                * lr_factor(
                    st.step, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio, cfg.decay_fraction
                )
            )
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)  # μP: hidden matrices get less
            if pipe is None:
                loss_sum = _accumulate(model, batches, cfg.grad_accum, device, twin)
            else:
                loss_sum = _pipeline_step(pipe, batches, cfg.grad_accum, device)
            # Norms computed once, kept on the device (no host sync per parameter), then clipped by.
            group_norm_t = {
                n: _grad_norm([p.grad for p in ps if p.grad is not None]) for n, ps in groups.items()
            }
            if pipe is not None:
                group_norm_t = _norms_over_stages(group_norm_t, pipe)
            total_norm = torch.stack(list(group_norm_t.values())).norm()
            _clip_grads(list(part.parameters()), cfg.grad_clip, total_norm)
            group_norms = {n: float(v) for n, v in group_norm_t.items()}
            grad_norm = float(total_norm)
            skip = None
            if not (math.isfinite(loss_sum) and math.isfinite(grad_norm)):
                skip = "non_finite"
            elif len(st.grad_norms) >= 10 and grad_norm > cfg.spike_factor * statistics.median(st.grad_norms):
                skip = "grad_spike"
            if skip:
                st.skipped[skip] += 1
            else:
                opt.step()
                if twin is not None:
                    twin.copy_to_model()
                st.grad_norms.append(grad_norm)
            opt.zero_grad(set_to_none=True)
            st.step += 1
            spiking = _track_loss_spike(st, loss_sum, cfg.loss_spike_factor)
            dt = time.perf_counter() - t0
            tps = step_tokens / dt
            record = {
                "step": st.step,
                "loss": loss_sum,
                "lr": lr,
                "grad_norm": grad_norm,
                "grad_norm_groups": group_norms,
                "tokens": st.step * step_tokens,
                "tokens_per_s": tps,
                "mfu": flops_per_token * tps / (peak * world) if peak else None,
                "skipped": dict(st.skipped),
                "skipped_this_step": skip,
                "loss_spike": spiking,
                "rollbacks": st.rollbacks,
                "memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            }
            if cfg.val_loader and (st.step % cfg.val_every == 0 or st.step == cfg.steps):
                record["val_loss"] = _validate(model, pipe, cfg, dp_rank, dp, device)
            collapse_due = cfg.collapse_every and (st.step % cfg.collapse_every == 0 or st.step == cfg.steps)
            embed = getattr(part, "embed", None)  # under pipeline parallelism, the first stage's only
            if collapse_due and embed is not None:
                record["embed_sv_ratio"] = singular_value_ratio(embed.weight)
            rolled_back_to = None
            st.skip_streak = st.skip_streak + 1 if skip else 0
            spike_lasts = spiking and st.step - st.spike_start >= cfg.rollback_after
            if spike_lasts or st.skip_streak >= cfg.rollback_after:
                # The first bad loss (or gradient) at step k was computed on the weights after k - 1
                # updates, so those are suspect too: go back to a checkpoint before them.
                start = st.spike_start if spike_lasts else st.step - st.skip_streak + 1
                good = [c for c in checkpoint.list_checkpoints(ckpts) if _step_of(c) < start - 1]
                if good:
                    rollbacks, scale = st.rollbacks + 1, st.lr_scale * cfg.rollback_lr_factor
                    skipped = st.skipped  # the abandoned stretch's skips still happened
                    st = _restore(good[-1], part, opt, loader, twin)
                    st.rollbacks, st.lr_scale, st.skipped = rollbacks, scale, skipped
                    batches = iter(loader)
                    rolled_back_to = st.step
                    record["rolled_back_to"] = rolled_back_to
            if rank == 0:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                if board is not None:
                    for key in (
                        "loss",
                        "lr",
                        "grad_norm",
                        "tokens_per_s",
                        "val_loss",
                        "mfu",
                        "embed_sv_ratio",
                    ):
                        if record.get(key) is not None:
                            board.add_scalar(f"train/{key}", record[key], record["step"])
                    board.flush()
                if not quiet and (
                    record["step"] % cfg.log_every == 0 or record["step"] == cfg.steps or rolled_back_to
                ):
                    eta = (cfg.steps - st.step) * statistics.median(step_times or [dt])
                    print(progress_line(record, cfg.steps, eta), flush=True)
            if (
                rolled_back_to is None
                and not spiking
                and (st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps)
            ):
                checkpoint.save(ckpts, st.step, part, opt, st.extra(loader, cfg), cfg.keep_checkpoints)
            step_times.append(time.perf_counter() - t0)
            profiler.end(st.step)
            collect_garbage(st.step)
    if board is not None:
        board.close()
    return record


def progress_line(record: dict[str, Any], total: int, eta_s: float) -> str:
    """One line of a metrics record: step/total, loss, lr, gradient norm, throughput, MFU, ETA."""
    val = f"  val {record['val_loss']:.4f}" if "val_loss" in record else ""
    sv = f"  embed σ1/σ2 {record['embed_sv_ratio']:.2f}" if "embed_sv_ratio" in record else ""
    mfu = f"{record['mfu']:5.1%}" if record.get("mfu") is not None else "  n/a"
    skipped = sum(record["skipped"].values())
    back = record.get("rolled_back_to")
    return (
        f"step {record['step']:>6}/{total}  loss {record['loss']:7.4f}{val}  lr {record['lr']:.2e}  "
        f"grad {record['grad_norm']:6.3f}  {record['tokens_per_s']:,.0f} tok/s  mfu {mfu}  "
        f"eta {format_duration(eta_s)}  skipped {skipped}{sv}"
        + (f"  rolled back to step {back}" if back is not None else "")
    )


def format_duration(seconds: float) -> str:
    """h:mm:ss, the hours unbounded."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@torch.no_grad()
def singular_value_ratio(weight: torch.Tensor) -> float:
    """σ1/σ2 of a matrix, from the two largest eigenvalues of its Gram matrix (dim × dim for an
    embedding): one matmul and a small eigendecomposition instead of an SVD of the whole table.
    For a sharded DTensor each rank's Gram matrix is a partial sum that `_full` adds up, so no rank
    gathers the table; every rank must call this, and all get the same value."""
    w = weight.float()
    gram = _full(w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T)
    top = torch.linalg.eigvalsh(gram)[-2:].tolist()  # ascending: σ2², σ1²
    return math.sqrt(top[1] / top[0]) if top[0] > 0 else math.inf


@dataclass
class _State:
    """What a checkpoint carries besides the model and optimizer."""

    step: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: {"non_finite": 0, "grad_spike": 0})
    grad_norms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    losses: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    spike_start: int = -1  # first step of the loss spike in progress, -1: none
    skip_streak: int = 0  # skipped steps in a row, up to this one
    rollbacks: int = 0
    lr_scale: float = 1.0

    def extra(self, loader: Loader, cfg: TrainConfig) -> dict[str, Any]:
        return {
            "step": self.step,
            "skipped": dict(self.skipped),
            "grad_norms": list(self.grad_norms),
            "losses": list(self.losses),
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
            "skip_streak": self.skip_streak,
            "loader": loader.state_dict(),
            "rng": torch.get_rng_state(),  # rank 0's; the model itself draws no random numbers
            "config": asdict(cfg),
        }


def _restore(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, loader: Loader, twin: MasterWeights | None
) -> _State:
    extra = checkpoint.load(path, model, opt)
    if twin is not None:
        twin.copy_to_model()
    if extra["step"] == 0:
        opt.state.clear()  # as in a fresh run: the saved state is a placeholder
    loader.load_state_dict(extra["loader"])
    torch.set_rng_state(extra["rng"])
    return _State(
        step=extra["step"],
        skipped=dict(extra["skipped"]),
        grad_norms=deque(extra["grad_norms"], maxlen=100),
        losses=deque(extra.get("losses", []), maxlen=100),
        rollbacks=extra.get("rollbacks", 0),
        lr_scale=extra.get("lr_scale", 1.0),
        skip_streak=extra.get("skip_streak", 0),
    )


def _track_loss_spike(st: _State, loss: float, factor: float) -> bool:
    """Whether the run is in a loss spike after this step's loss; the losses of a spike are kept
    out of the median that defines one."""
    if len(st.losses) >= 10 and not (loss <= factor * statistics.median(st.losses)):
        if st.spike_start < 0:
            st.spike_start = st.step
        return True
    st.spike_start = -1
    st.losses.append(loss)
    return False


def _step_of(path: Path) -> int:
    return int(path.name.removeprefix("step_"))


@contextmanager
def _garbage_between_steps(every: int) -> Iterator[Callable[[int], None]]:
    """Python's cyclic garbage collector switched off for the loop and run every `every` steps:
    a collection inside a step stalls the host while the device waits for work."""
    if every <= 0:
        yield lambda step: None
        return
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()

    def collect(step: int) -> None:
        if step % every == 0:
            gc.collect(1)

    try:
        yield collect
    finally:
        if was_enabled:
            gc.enable()


def _accumulate(
    model: Transformer,
    batches: Iterator[Batch],
    grad_accum: int,
    device: torch.device,
    twin: MasterWeights | None,
) -> float:
    """Forward and backward over `grad_accum` loader batches; their mean loss, averaged over ranks.
    With master weights, each backward's gradients go to the fp32 twin at once."""
    loss_sum = 0.0
    for _ in range(grad_accum):
        b = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        loss = model.loss(b["input_ids"], b["labels"], b["position_ids"]) / grad_accum
        torch.autograd.backward(loss)
        if twin is not None:
            twin.take_grads()
        loss_sum += _mean_over_ranks(loss.detach())
    return loss_sum


def _pipeline_step(pipe: Pipeline, batches: Iterator[Batch], grad_accum: int, device: torch.device) -> float:
    """One schedule step over `grad_accum` loader batches joined (each split into the same number
    of microbatches, so the mean over microbatches is the mean over batches); the mean loss, the
    same on every rank (the pipeline shares it, then data-parallel ranks average)."""
    b = _join([next(batches) for _ in range(grad_accum)], device)
    return _mean_over_ranks(pipe.step(b).mean())


def _norms_over_stages(norms: dict[str, torch.Tensor], pipe: Pipeline) -> dict[str, torch.Tensor]:
    """Each group's gradient norm over the whole model from each stage's part of it. Every stage
    holds blocks, so every rank has the same groups."""
    squares = torch.stack(list(norms.values())) ** 2
    dist.all_reduce(squares, group=pipe.group)
    return dict(zip(norms, squares.sqrt(), strict=True))


def _join(batches: list[Batch], device: torch.device) -> Batch:
    """The model's inputs of several loader batches as one batch."""
    return {k: torch.cat([b[k] for b in batches]).to(device) for k in ("input_ids", "labels", "position_ids")}


@torch.no_grad()
def _validate(
    model: Transformer, pipe: Pipeline | None, cfg: TrainConfig, rank: int, world: int, device: torch.device
) -> float:
    """Mean loss over the first `val_batches` batches of the held-out loader (always the same ones).
    A pipeline runs them `grad_accum` at a time, as in training; the last group is filled up with
    copies of its last batch, whose losses are left out."""
    assert cfg.val_loader is not None
    model.eval()
    loader = Loader(cfg.val_loader, rank=rank, world_size=world, format="torch")
    batches = list(itertools.islice(loader, cfg.val_batches))
    losses: list[float] = []
    if pipe is None:
        for b in batches:
            b = {k: v.to(device) for k, v in b.items()}
            losses.append(_mean_over_ranks(model.loss(b["input_ids"], b["labels"], b["position_ids"])))
    else:
        if loader.config.batch_size % pipe.microbatches:
            raise ValueError(
                f"pp_microbatches {pipe.microbatches} must divide the validation batch size "
                f"{loader.config.batch_size}"
            )
        for i in range(0, len(batches), cfg.grad_accum):
            group = batches[i : i + cfg.grad_accum]
            real = len(group)
            group += group[-1:] * (cfg.grad_accum - real)
            per_batch = pipe.step(_join(group, device), train=False).view(cfg.grad_accum, -1).mean(1)
            losses += [_mean_over_ranks(x) for x in per_batch[:real]]
    model.train()
    return sum(losses) / max(1, len(losses))


def _board(out: Path, cfg: TrainConfig) -> Any:
    if not cfg.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))


def _by_mesh(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """`tensors` split by DTensor mesh (plain tensors together), in first-seen order. Under tensor
    parallelism a TP-sharded weight lives on the (dp, tp) mesh and a replicated norm weight on dp
    alone, and torch's norm and clip helpers refuse to mix meshes in one call."""
    groups: dict[object, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.device_mesh if isinstance(t, DTensor) else None, []).append(t)
    return list(groups.values())


def _grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all of `grads` together, taken per mesh and combined. Every rank holds the
    same parameters in the same order, so the collectives line up."""
    parts = [_full(torch.nn.utils.get_total_norm(gs)) for gs in _by_mesh(grads)]
    if not parts:
        return torch.zeros(())
    return parts[0] if len(parts) == 1 else torch.stack(parts).norm()


def _clip_grads(params: list[torch.Tensor], max_norm: float, total_norm: torch.Tensor) -> None:
    """Scale every gradient by the one clip factor of `total_norm`, one mesh at a time."""
    for ps in _by_mesh([p for p in params if p.grad is not None]):
        torch.nn.utils.clip_grads_with_norm_(ps, max_norm, total_norm)


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
