"""Run one stage over manifest rows: pick what is not done, work in parallel, record each outcome.

Workers only compute; the calling thread is the single manifest writer. An item that raises is
recorded as failed with a one-line reason and the rest carries on; failed items are retried on
the next run. Nothing is recorded for an item until its outputs are complete on disk.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from streamlearn import console
from streamlearn.errors import StreamlearnError
from streamlearn.manifest import DONE, FAILED, Manifest, one_line, status_of


@dataclass
class StageResult:
    stage: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # not run: prerequisite missing

    @property
    def ok(self) -> bool:
        return not self.failed


def select(manifest: Manifest, stage: str, requires: Iterable[str] = (), only: Iterable[str] | None = None,
           force: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Rows to run (pending or failed, or all with force) and rows skipped for a missing prerequisite."""
    only = set(only or [])
    key = manifest.table.key
    rows = manifest.read()
    if only:
        unknown = only - {r[key] for r in rows}
        if unknown:
            raise StreamlearnError(f"unknown {key} {sorted(unknown)[0]!r} in --only; "
                                   f"see `streamlearn status` for the ids in {manifest.path.name}")
        rows = [r for r in rows if r[key] in only]
    todo, skipped = [], {}
    for row in rows:
        if status_of(row, stage) == DONE and not force:
            continue
        missing = [req for req in requires if status_of(row, req) != DONE]
        if missing:
            skipped[row[key]] = f"{missing[0]} not done"
            continue
        todo.append(row)
    return todo, skipped


def describe_exception(exc: BaseException) -> str:
    if isinstance(exc, StreamlearnError):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def run_stage(manifest: Manifest, stage: str, rows: list[dict], work: Callable[[dict], dict[str, Any]],
              parallel: int = 1, label: str | None = None, force: bool = False) -> StageResult:
    """Apply `work(row) -> stage values` to each row and record done/failed as results arrive."""
    key = manifest.table.key
    result = StageResult(stage)
    label = label or stage

    def record(row: dict, values: dict | None, exc: BaseException | None, prog) -> None:
        k = row[key]
        if exc is None:
            manifest.record(k, stage, DONE, force=force or status_of(row, stage) == DONE, **(values or {}))
            result.done.append(k)
            prog.advance(k)
        else:
            reason = describe_exception(exc)
            console.debug("".join(traceback.format_exception(exc)))
            manifest.record(k, stage, FAILED, error=reason, force=True)
            result.failed[k] = reason
            prog.advance(k, ok=False, note=reason)

    with console.stage_progress(label, len(rows)) as prog:
        if parallel <= 1:
            for row in rows:
                try:
                    values = work(row)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # noqa: BLE001 - recorded with its reason
                    record(row, None, exc, prog)
                else:
                    record(row, values, None, prog)
            return result
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=stage) as pool:
            pending = {pool.submit(work, row): row for row in rows}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        row = pending.pop(fut)
                        exc = fut.exception()
                        record(row, None if exc else fut.result(), exc, prog)
            except KeyboardInterrupt:
                for fut in pending:
                    fut.cancel()
                raise
    return result
