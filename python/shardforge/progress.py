"""Progress display for long jobs: a one-line bar on a terminal, JSON lines for machines, or
nothing (stderr is not a terminal and JSON was not asked for)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from shardforge.dedup import STAGES


class Progress:
    def __init__(
        self, mode: str = "auto", stream: TextIO | None = None, stages: Sequence[str] = STAGES
    ) -> None:
        self.stream = stream or sys.stderr
        self.stages = tuple(stages)
        self.done = len(self.stages) - 1
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "none"
        self.mode = mode
        self.start = time.monotonic()
        self._last_json = 0.0

    def __call__(self, stage: int, files_done: int, files_total: int, docs: int, text_bytes: int) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        name = self.stages[stage] if stage < len(self.stages) else str(stage)
        if self.mode == "json":
            now = time.monotonic()
            if now - self._last_json < 1.0 and stage < self.done:
                return
            self._last_json = now
            record = {
                "stage": name,
                "files_done": files_done,
                "files_total": files_total,
                "docs": docs,
                "text_bytes": text_bytes,
                "elapsed_s": round(elapsed, 3),
            }
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
        elif self.mode == "bar":
            width = 24
            frac = files_done / files_total if files_total else 0.0
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            mbps = text_bytes / 1e6 / elapsed
            line = (
                f"\r{name:<10} [{bar}] {files_done}/{files_total} files  {docs:,} docs  "
                f"{text_bytes / 1e6:,.1f} MB  {mbps:,.1f} MB/s  {elapsed:,.0f}s"
            )
            self.stream.write(line)
            if stage >= self.done:
                self.stream.write("\n")
            self.stream.flush()
