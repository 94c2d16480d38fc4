"""The loader's steps for `torch.utils.data` worker processes (imported only when torch is)."""

from __future__ import annotations

from collections.abc import Iterator

import torch.utils.data

from shardforge import _core
from shardforge.loader import Batch, DocCols, to_torch


class StepDataset(torch.utils.data.IterableDataset[tuple[int, Batch]]):
    """The steps from `start`: worker `w` of `n` makes steps `w, w + n, ...`, and the DataLoader
    takes them from the workers in turn, so the order is the one without workers. Each worker
    builds its own Rust index (it is not picklable; the spec and document columns are)."""

    def __init__(self, spec: str, docs: list[DocCols], rank: int, batch_size: int, world_size: int) -> None:
        self.spec, self.docs = spec, docs
        self.rank, self.batch_size = rank, batch_size
        self.global_batch = batch_size * world_size
        self.start = 0

    def __iter__(self) -> Iterator[tuple[int, Batch]]:
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info is not None else (0, 1)
        index = _core.SampleIndex(self.spec, self.docs)
        end = index.end
        k = self.start + w * self.global_batch
        while end is None or k + self.global_batch <= end:
            batch = dict(index.batch(k + self.rank * self.batch_size, self.batch_size))
            yield k, to_torch(batch, False)
            k += n * self.global_batch
