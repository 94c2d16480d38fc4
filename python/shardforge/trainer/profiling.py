"""Profiling a few training steps with `torch.profiler`: a Chrome trace (open it in Perfetto or
chrome://tracing) and a table of the operators that took the most device time, written under
`<out_dir>/profile/` by rank 0."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


class StepProfiler:
    """Records steps `start` .. `start + steps - 1` (1-based, as the metrics count them); does
    nothing when `start` is 0."""

    def __init__(self, out_dir: Path, start: int, steps: int, enabled: bool) -> None:
        self.dir, self.start, self.last = out_dir / "profile", start, start + steps - 1
        self.enabled = enabled and start > 0 and steps > 0
        self.prof: profile | None = None

    def begin(self, step: int) -> None:
        if self.enabled and step == self.start:
            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
            self.prof = profile(activities=activities, record_shapes=True)
            self.prof.start()

    def end(self, step: int) -> None:
        if self.prof is None or step != self.last:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.prof.stop()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prof.export_chrome_trace(str(self.dir / "trace.json"))
        key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        table = self.prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=60)
        (self.dir / "top_ops.txt").write_text(table + "\n")
        self.prof = None
