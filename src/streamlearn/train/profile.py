"""`train.profile_dir`: torch.profiler over a few steps of the real run (CPU and CUDA activities).

Writes `trace.json.gz` (open in Perfetto or chrome://tracing) and `report.txt`: the step's parts as
the engine marks them (`sl.*`: waiting for data, token counts, forward, backward, clipping, optimizer,
the end-of-step sync), then the operator tables by device time and by self CPU time.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import torch


class StepProfiler:
    """Profiles steps [first, first + steps) of the run when given a folder; does nothing otherwise."""

    def __init__(self, folder: str | None, device: torch.device, first: int = 2, steps: int = 3):
        self.folder = Path(folder) if folder else None
        self.first, self.last, self.device = first, first + steps, device
        self.prof = None

    def before(self, taken: int) -> None:
        if self.folder is not None and taken == self.first and self.prof is None:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
            self.prof = profile(activities=acts, record_shapes=False, with_stack=False)
            self.prof.__enter__()

    def after(self, taken: int) -> None:
        if self.prof is not None and taken == self.last:
            self.finish()

    def finish(self) -> None:
        if self.prof is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.prof.__exit__(None, None, None)
        write_profile(self.prof, self.folder, self.device)
        self.prof = None


def write_profile(prof, folder: Path, device: torch.device) -> None:
    """`trace.json.gz` and `report.txt` (the `sl.*` ranges, then the operators by device time and by
    self CPU time) of a finished torch.profiler run."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "trace.json"
    prof.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.open(folder / "trace.json.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    events = prof.key_averages()
    ranges = [e for e in events if e.key.startswith("sl.")]
    text = ["step parts (sl.* ranges):"]
    text += [f"{e.key:24s} calls {e.count:5d}  cpu {e.cpu_time_total / 1e3:10.1f} ms  "
             f"device {getattr(e, 'device_time_total', 0) / 1e3:10.1f} ms" for e in sorted(ranges, key=lambda e: e.key)]
    key = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    text += ["", f"operators by {key}:", events.table(sort_by=key, row_limit=50), "",
             "operators by self CPU time:", events.table(sort_by="self_cpu_time_total", row_limit=50)]
    (folder / "report.txt").write_text("\n".join(text) + "\n")
