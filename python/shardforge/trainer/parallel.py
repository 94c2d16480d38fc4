"""One DeviceMesh and the one place where parallelism is applied, in a fixed order: tensor
parallelism → activation checkpointing → `torch.compile` → FSDP2 (torchtitan's order: each step
wraps what the previous one produced).

- Tensor parallel: per block, q/k/v and gate/up split by output (columns), o and down by input
  (rows), so each block needs one all-reduce after attention and one after the MLP. The embedding
  and the LM head stay whole on the TP ranks (FSDP shards them over data parallel) so that the
  fused loss sees the full head weight.
- FSDP2 (`fully_shard`): every block, then the root; parameters in `param_dtype` for compute,
  gradients reduced in fp32.
- Pipeline parallel (`Pipeline`, `torch.distributed.pipelining`): the layers are cut into
  contiguous, even runs, one stage each: pp stages under "1F1B", 2 × pp under "Interleaved1F1B",
  where rank r holds stages r and r + pp. A stage is a `TransformerStage` (the embedding on the
  first, the norm, head and loss on the last) and goes through `parallelize` on its own; FSDP then
  keeps its parameters gathered from one microbatch to the next. The schedule splits each batch
  into microbatches and averages their gradients.

The mesh is ("pp", "dp", "tp"), tensor parallel innermost (the ranks that talk most are closest).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.pipelining import PipelineStage
from torch.distributed.pipelining.schedules import (
    PipelineScheduleMulti,
    PipelineScheduleSingle,
    Schedule1F1B,
    ScheduleInterleaved1F1B,
)
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    PrepareModuleInput,
    PrepareModuleOutput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from shardforge.trainer import activation_checkpointing
from shardforge.trainer.model import Transformer, TransformerStage

# Pipeline schedules by name, with the stages each rank holds.
SCHEDULES = {"1F1B": 1, "Interleaved1F1B": 2}
# `reshard_after_forward` settings and what `fully_shard` is given for each (None: "auto").
RESHARD = {"auto": None, "always": True, "never": False}


@dataclass(frozen=True)
class ParallelConfig:
    dp: int = -1  # -1: whatever the world size leaves after tp and pp
    tp: int = 1
    # With tp > 1: norms and residuals on sequence slices (Megatron's sequence parallelism).
    sequence_parallel: bool = False
    pp: int = 1
    pp_schedule: str = "1F1B"  # or "Interleaved1F1B"
    # Microbatches per loader batch (it must divide the batch size); 0: one per pipeline stage.
    pp_microbatches: int = 0
    # False / "none", True / "full", or "selective" (matmul and attention outputs kept).
    activation_checkpointing: bool | str = False
    compile: bool = False
    param_dtype: str = "float32"  # "bfloat16" on GPUs
    # Free each block's gathered parameters after its forward ("always": FSDP's memory saving, one
    # more all-gather per block in the backward), keep them to the backward ("never": ZeRO-2's
    # traffic, whole parameters held), or "auto": always, except where resharding saves nothing
    # (one rank) or multiplies the traffic (pipeline stages, which run forward per microbatch).
    reshard_after_forward: str = "auto"

    def __post_init__(self) -> None:
        activation_checkpointing.mode_of(self.activation_checkpointing)  # names a wrong value
        if self.reshard_after_forward not in RESHARD:
            raise ValueError(
                f"reshard_after_forward is {', '.join(RESHARD)}, not {self.reshard_after_forward!r}"
            )
        if self.sequence_parallel and (self.tp < 2 or self.pp > 1):
            raise ValueError("sequence_parallel needs tp > 1 and no pipeline parallelism (pp 1)")


def build_mesh(cfg: ParallelConfig, world_size: int, device_type: str) -> DeviceMesh:
    """A 3-D ("pp", "dp", "tp") mesh; `pp × dp × tp` must equal the world size."""
    dp = world_size // (cfg.pp * cfg.tp) if cfg.dp == -1 else cfg.dp
    if cfg.pp * dp * cfg.tp != world_size:
        raise ValueError(f"pp {cfg.pp} x dp {dp} x tp {cfg.tp} != world size {world_size}")
    return init_device_mesh(device_type, (cfg.pp, dp, cfg.tp), mesh_dim_names=("pp", "dp", "tp"))


def compile_blocks(layers: nn.Module) -> None:
    """`torch.compile` each block of `layers` in place (torchtitan's granularity: one graph per
    block, reused by every block of the same shape)."""
    for name, block in list(layers.named_children()):
        layers.register_module(name, torch.compile(block))  # type: ignore[arg-type]


def parallelize(
    model: Transformer | TransformerStage, mesh: DeviceMesh, cfg: ParallelConfig
) -> Transformer | TransformerStage:
    mc = model.cfg
    layers: nn.Module = model.layers  # a list, or a pipeline stage's dict keyed by layer index
    tp = mesh["tp"].size()
    if tp > 1:
        if mc.n_kv_heads % tp or mc.hidden_dim % tp:
            raise ValueError(f"tp {tp} must divide n_kv_heads {mc.n_kv_heads} and ffn dim {mc.hidden_dim}")
        # Sequence parallel: between the blocks' matmuls (norms, residual adds) each TP rank holds
        # a slice of the sequence; attention and the MLP all-gather it on entry, and their row-wise
        # output is reduce-scattered back to slices instead of all-reduced.
        sp = cfg.sequence_parallel
        if sp and mc.kernels:
            raise ValueError(
                "sequence_parallel runs the norms on DTensors, which the Triton kernels do not take"
            )
        row = RowwiseParallel(output_layouts=Shard(1), use_local_output=False) if sp else RowwiseParallel()
        for block in layers.children():
            plan: dict[str, ParallelStyle] = {
                "attn.q": ColwiseParallel(),
                "attn.k": ColwiseParallel(),
                "attn.v": ColwiseParallel(),
                "attn.o": row,
                "mlp.gate": ColwiseParallel(),
                "mlp.up": ColwiseParallel(),
                "mlp.down": row,
            }
            if sp:
                plan |= {
                    "attn_norm": SequenceParallel(),
                    "mlp_norm": SequenceParallel(),
                    "attn": PrepareModuleInput(
                        input_layouts=(Shard(1), None, None, None),
                        desired_input_layouts=(Replicate(), None, None, None),
                    ),
                    "mlp": PrepareModuleInput(
                        input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)
                    ),
                }
            parallelize_module(block, mesh["tp"], plan)
        if sp:
            # The embedding stays whole on every TP rank; its output is cut into sequence slices
            # (no communication), and the final norm's slices are gathered back for the head.
            parallelize_module(
                model,
                mesh["tp"],
                {
                    "embed": PrepareModuleOutput(
                        output_layouts=Replicate(), desired_output_layouts=Shard(1), use_local_output=False
                    ),
                    "norm": SequenceParallel(),
                },
            )
    activation_checkpointing.apply(layers, cfg.activation_checkpointing)
    if cfg.compile:
        compile_blocks(layers)
    dtype = getattr(torch, cfg.param_dtype)
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    dp_mesh = mesh["dp"]
    reshard = RESHARD[cfg.reshard_after_forward]
    if reshard is None:
        # A pipeline stage runs forward once per microbatch: gathering its parameters each time
        # would multiply FSDP's traffic. One rank saves no memory by resharding, and gathering
        # again for the backward costs it a copy of every parameter. Otherwise FSDP's default
        # (None: reshard all but the root).
        reshard = False if isinstance(model, TransformerStage) or dp_mesh.size() == 1 else None
    for block in layers.children():
        fully_shard(block, mesh=dp_mesh, mp_policy=mp, reshard_after_forward=reshard)
    fully_shard(model, mesh=dp_mesh, mp_policy=mp, reshard_after_forward=reshard)
    return model


def split_layers(n_layers: int, n_stages: int) -> list[range]:
    """Contiguous runs of layers, one per stage, as even as they can be (the first ones longer)."""
    if n_layers < n_stages:
        raise ValueError(f"{n_stages} pipeline stages need at least as many layers, not {n_layers}")
    q, r = divmod(n_layers, n_stages)
    bounds = [i * q + min(i, r) for i in range(n_stages + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


class Pipeline:
    """This rank's pipeline stages, each parallelized, and the schedule that runs them.

    `part` holds all of this rank's parameters under the whole model's names: the optimizer,
    gradient clipping and checkpoints work on it (a checkpoint of a pipelined run has the same
    names as any other). `step` runs `grad_accum` loader batches joined as one batch, each split
    into `pp_microbatches` microbatches, so one schedule step is one optimizer step."""

    def __init__(
        self,
        model: Transformer,
        mesh: DeviceMesh,
        cfg: ParallelConfig,
        device: torch.device,
        batch_size: int,
        grad_accum: int = 1,
    ) -> None:
        if cfg.pp_schedule not in SCHEDULES:
            raise ValueError(f"unknown pp_schedule {cfg.pp_schedule!r}; known: {sorted(SCHEDULES)}")
        per_rank = SCHEDULES[cfg.pp_schedule]
        pp, rank = mesh["pp"].size(), mesh["pp"].get_local_rank()
        n_stages = pp * per_rank
        runs = split_layers(model.cfg.n_layers, n_stages)
        mine = [rank + k * pp for k in range(per_rank)]
        self.microbatches = cfg.pp_microbatches or n_stages
        if batch_size % self.microbatches:
            raise ValueError(f"pp_microbatches {self.microbatches} must divide the batch size {batch_size}")
        self.n_microbatches = self.microbatches * grad_accum
        self.first, self.last = 0 in mine, n_stages - 1 in mine
        self.part = TransformerStage(model, [i for s in mine for i in runs[s]], self.first, self.last)
        self.stage_modules = [
            parallelize(TransformerStage(model, runs[s], s == 0, s == n_stages - 1), mesh, cfg) for s in mine
        ]
        self.group = mesh["pp"].get_group()
        stages = [
            PipelineStage(m, s, n_stages, device, group=self.group)
            for m, s in zip(self.stage_modules, mine, strict=True)
        ]
        self.schedule: PipelineScheduleSingle | PipelineScheduleMulti
        if per_rank == 1:
            self.schedule = Schedule1F1B(stages[0], self.n_microbatches, loss_fn=_stage_loss)
        else:
            # torch annotates a list of its private stage base class, and lists are invariant.
            self.schedule = ScheduleInterleaved1F1B(stages, self.n_microbatches, loss_fn=_stage_loss)  # type: ignore[arg-type]

    def step(self, batch: dict[str, torch.Tensor], train: bool = True) -> torch.Tensor:
        """Forward and backward over `batch` (gradients averaged over its microbatches), or
        forward only. Every rank of the pipeline calls this with the same batch and gets each
        microbatch's loss."""
        ids, labels, pos = batch["input_ids"], batch["labels"], batch["position_ids"]
        losses: list[torch.Tensor] = []
        run = self.schedule.step if train else self.schedule.eval
        # Keyword inputs are split into microbatches too and reach every stage.
        run(*((ids,) if self.first else ()), position_ids=pos, labels=labels, target=labels, losses=losses)
        if not train:
            for m in self.stage_modules:
                if isinstance(m, FSDPModule):
                    m.reshard()  # a forward-only pass leaves them gathered
        if losses:
            out = torch.stack(losses).detach().float()
        else:
            out = torch.zeros(self.n_microbatches, device=labels.device)
        dist.all_reduce(out, group=self.group)  # only the last stage has them; the others add 0
        return out


def _stage_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The schedule's loss function: the last stage's forward already computed the loss."""
    return output.squeeze(0)
