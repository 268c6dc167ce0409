"""Dense, boring progress output: one line per step, `k/N done` for data stages.

A rich progress bar (k/N, bytes, ETA) is shown only on a TTY; logs and CI get plain lines.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from streamlearn.core.redact import redact

VERBOSITY = {"level": 1}  # 0 quiet, 1 normal, 2 verbose


def set_verbosity(level: int) -> None:
    VERBOSITY["level"] = level


def info(msg: str) -> None:
    if VERBOSITY["level"] >= 1:
        print(redact(msg), flush=True)


def result(msg: str) -> None:
    """A command's result (the verdict): printed at every verbosity, --quiet included."""
    print(redact(msg), flush=True)


def debug(msg: str) -> None:
    if VERBOSITY["level"] >= 2:
        print(redact(msg), file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    print(f"warning: {redact(msg)}", file=sys.stderr, flush=True)


def _tty() -> bool:
    return sys.stdout.isatty() and VERBOSITY["level"] >= 1


class StageProgress:
    """Counts items of one stage: `label k/N done` lines, or a rich bar on a TTY."""

    def __init__(self, label: str, total: int, unit: str = "items", item_lines: bool = True):
        self.label, self.total, self.unit = label, total, unit
        # a line per item for small stages, about every 5 % for large ones (failures always); without
        # item_lines only failures and the closing line (a pass of an evaluation is one step)
        self.every = (1 if total <= 50 else max(1, total // 20)) if item_lines else total + 1
        self.done = self.failed = self.skipped = 0
        self.t0 = time.monotonic()
        self._bar = None
        self._task = None
        if _tty() and total > 0:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)

    def advance(self, item: str = "", ok: bool = True, note: str = "", skipped: bool = False) -> None:
        """One item finished: done (ok), failed (not ok) or skipped (the stage does not apply)."""
        self.done += 1
        self.failed += 0 if ok else 1
        self.skipped += 1 if skipped else 0
        if self._bar is not None:
            self._bar.advance(self._task)
            if not ok or skipped:
                self._bar.console.print(redact(f"{self.label} {'skipped' if skipped else 'failed'} {item}: {note}"))
            return
        if ok and not skipped and (self.every > self.total or (self.done % self.every and self.done != self.total)):
            return
        status = "skipped" if skipped else "done" if ok else "FAILED"
        tail = f" {item}" if item else ""
        tail += f" ({note})" if note else ""
        info(f"{self.label} {self.done}/{self.total} {status}{tail}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        dt = time.monotonic() - self.t0
        ok = self.done - self.failed - self.skipped
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        info(f"{self.label}: {ok} done, {self.failed} failed{skipped} of {self.total} in {dt:.1f}s")


@contextmanager
def stage_progress(label: str, total: int, unit: str = "items", item_lines: bool = True):
    prog = StageProgress(label, total, unit, item_lines)
    try:
        yield prog
    finally:
        prog.close()
