"""One DeviceMesh and the one place where parallelism is applied, in a fixed order: tensor
parallelism → activation checkpointing → `torch.compile` → FSDP2 (torchtitan's order: each step
wraps what the previous one produced).

- Tensor parallel: per block, q/k/v and gate/up split by output (columns), o and down by input
  (rows), so each block needs one all-reduce after attention and one after the MLP. The embedding
  and the LM head stay whole on the TP ranks (FSDP shards them over data parallel) so that the
  fused loss sees the full head weight.
- FSDP2 (`fully_shard`): every block, then the root; parameters in `param_dtype` for compute,
  gradients reduced in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from shardforge.trainer.model import Transformer


@dataclass(frozen=True)
class ParallelConfig:
    dp: int = -1  # -1: whatever the world size leaves after tp
    tp: int = 1
    activation_checkpointing: bool = False
    compile: bool = False
    param_dtype: str = "float32"  # "bfloat16" on GPUs


def build_mesh(cfg: ParallelConfig, world_size: int, device_type: str) -> DeviceMesh:
    """A 2-D ("dp", "tp") mesh; `dp × tp` must equal the world size."""
    dp = world_size // cfg.tp if cfg.dp == -1 else cfg.dp
    if dp * cfg.tp != world_size:
        raise ValueError(f"dp {dp} x tp {cfg.tp} != world size {world_size}")
    return init_device_mesh(device_type, (dp, cfg.tp), mesh_dim_names=("dp", "tp"))


def parallelize(model: Transformer, mesh: DeviceMesh, cfg: ParallelConfig) -> Transformer:
    mc = model.cfg
    tp = mesh["tp"].size()
    if tp > 1:
        if mc.n_kv_heads % tp or mc.hidden_dim % tp:
            raise ValueError(f"tp {tp} must divide n_kv_heads {mc.n_kv_heads} and ffn dim {mc.hidden_dim}")
        for block in model.layers:
            parallelize_module(
                block,
                mesh["tp"],
                {
                    "attn.q": ColwiseParallel(),
                    "attn.k": ColwiseParallel(),
                    "attn.v": ColwiseParallel(),
                    "attn.o": RowwiseParallel(),
                    "mlp.gate": ColwiseParallel(),
                    "mlp.up": ColwiseParallel(),
                    "mlp.down": RowwiseParallel(),
                },
            )
    if cfg.activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

        for i, block in enumerate(model.layers):
            model.layers[i] = checkpoint_wrapper(block)
    if cfg.compile:
        for i, block in enumerate(model.layers):
            model.layers[i] = torch.compile(block)  # type: ignore[assignment]
    dtype = getattr(torch, cfg.param_dtype)
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    dp_mesh = mesh["dp"]
    for block in model.layers:
        fully_shard(block, mesh=dp_mesh, mp_policy=mp)
    fully_shard(model, mesh=dp_mesh, mp_policy=mp)
    return model
