"""One training step of a small model under `parallelize` (or a `Pipeline` when PP > 1), run by
torchrun from test_parallel.py:
    torchrun --nproc-per-node N tests/parallel_worker.py
        WORKDIR TP ACTIVATION_CHECKPOINTING PP SCHEDULE SP RESHARD
Reads WORKDIR/init.pt (config, seed and a batch). Builds the model on the meta device as the trainer
does, parallelizes it, gives each rank its shard of the seeded initial weights, and writes
WORKDIR/result.pt on rank 0 (the loss averaged over data-parallel ranks and every parameter after
the step, gathered whole)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from shardforge.trainer import Transformer
from shardforge.trainer.model import materialize
from shardforge.trainer.parallel import ParallelConfig, Pipeline, build_mesh, parallelize


def main() -> None:
    work, tp, ac = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    pp, schedule, sp, reshard = int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1", sys.argv[7]
    dist.init_process_group("gloo")
    init = torch.load(work / "init.pt", weights_only=False)
    with torch.device("meta"):
        model = Transformer(init["config"])
    pcfg = ParallelConfig(
        tp=tp,
        pp=pp,
        pp_schedule=schedule,
        activation_checkpointing=ac,
        sequence_parallel=sp,
        reshard_after_forward=reshard,
    )
    mesh = build_mesh(pcfg, dist.get_world_size(), "cpu")
    dp, dp_rank = mesh["dp"].size(), mesh["dp"].get_local_rank()
    ids, labels, pos = init["batch"]
    rows = slice(dp_rank * len(ids) // dp, (dp_rank + 1) * len(ids) // dp)
    batch = {"input_ids": ids[rows], "labels": labels[rows], "position_ids": pos[rows]}
    part: torch.nn.Module
    if pp > 1:
        pipe = Pipeline(model, mesh, pcfg, torch.device("cpu"), batch_size=len(batch["input_ids"]))
        part = pipe.part
        materialize(pipe.stage_modules, part, init["config"], init["seed"], torch.device("cpu"))
        loss = pipe.step(batch).mean()  # every pipeline rank gets the last stage's losses
    else:
        part = parallelize(model, mesh, pcfg)
        materialize([part], part, init["config"], init["seed"], torch.device("cpu"))
        loss = model.loss(batch["input_ids"], batch["labels"], batch["position_ids"])
        if tp == 1:
            # Between forward and backward a resharded block holds its parameters as DTensor
            # shards, one kept gathered holds them whole (FSDP2 registers whichever it holds).
            # "auto" reshards when there is more than one data-parallel rank.
            held = next(model.layers[0].parameters())
            resharded = reshard == "always" or (reshard == "auto" and dp > 1)
            assert isinstance(held, DTensor) == resharded, (reshard, dp, type(held))
        torch.autograd.backward(loss)
    # SGD is linear in the gradient (Adam's first step is its sign).
    torch.optim.SGD(part.parameters(), lr=0.5).step()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()  # tp and pp ranks hold the same loss, dp ranks their shard's
    # Activation checkpointing wraps each block; its parameters keep their names underneath. A
    # pipeline rank holds its stages' parameters only: rank 0 collects them all.
    params = {
        n.replace("_checkpoint_wrapped_module.", ""): (
            p.full_tensor() if isinstance(p, DTensor) else p
        ).detach()
        for n, p in part.named_parameters()
    }
    everyone: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, params)
    if dist.get_rank() == 0:
        merged = {n: p for ps in everyone for n, p in ps.items()}
        torch.save({"loss": mean.item(), "params": merged}, work / "result.pt")
    # A rank tearing gloo down while its peer is still working aborts now and then ("terminate
    # called without an active exception"); leave together.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
