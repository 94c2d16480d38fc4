"""One training step of a small model under `parallelize`, run by torchrun from test_parallel.py:
    torchrun --nproc-per-node N tests/parallel_worker.py WORKDIR TP ACTIVATION_CHECKPOINTING
Reads WORKDIR/init.pt (weights and a batch), writes WORKDIR/result.pt on rank 0 (the loss averaged
over data-parallel ranks and every parameter after the step, gathered whole)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from shardforge.trainer import Transformer
from shardforge.trainer.parallel import ParallelConfig, build_mesh, parallelize


def main() -> None:
    work, tp, ac = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    dist.init_process_group("gloo")
    init = torch.load(work / "init.pt", weights_only=False)
    model = Transformer(init["config"])
    model.load_state_dict(init["weights"])
    pcfg = ParallelConfig(tp=tp, activation_checkpointing=ac)
    mesh = build_mesh(pcfg, dist.get_world_size(), "cpu")
    parallelize(model, mesh, pcfg)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.5
    )  # linear in the gradient (Adam's first step is its sign)
    dp, dp_rank = mesh["dp"].size(), mesh["dp"].get_local_rank()
    ids, labels, pos = init["batch"]
    rows = slice(dp_rank * len(ids) // dp, (dp_rank + 1) * len(ids) // dp)
    loss = model.loss(ids[rows], labels[rows], pos[rows])
    torch.autograd.backward(loss)
    opt.step()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()  # tp ranks hold the same loss, dp ranks their shard's
    # Activation checkpointing wraps each block; its parameters keep their names underneath.
    params = {
        n.replace("_checkpoint_wrapped_module.", ""): (
            p.full_tensor() if isinstance(p, DTensor) else p
        ).detach()
        for n, p in model.named_parameters()
    }
    if dist.get_rank() == 0:
        torch.save({"loss": mean.item(), "params": params}, work / "result.pt")
    # A rank tearing gloo down while its peer is still working aborts now and then ("terminate
    # called without an active exception"); leave together.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
