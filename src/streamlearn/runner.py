"""Run one stage over manifest rows: pick what is not done, work in parallel, record each outcome.

Workers only compute; the calling thread is the single manifest writer. An item that raises is
recorded as failed with a one-line reason and the rest carries on; failed items are retried on
the next run. An item the stage does not apply to (the worker raises `NotApplicable`: no audio
to transcribe, no picture to sample) is recorded as skipped with the reason and is not retried.
Nothing is recorded for an item until its outputs are complete on disk.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from streamlearn import console
from streamlearn.errors import NotApplicable, StreamlearnError
from streamlearn.manifest import DONE, FAILED, SETTLED, SKIPPED, Manifest, one_line, status_of


@dataclass
class StageResult:
    stage: str
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # the stage does not apply (or must wait), with why

    @property
    def ok(self) -> bool:
        """No item failed (skips are not failures: a re-run with only skips left exits 0)."""
        return not self.failed


def select(manifest: Manifest, stage: str, requires: Iterable[str] = (), only: Iterable[str] | None = None,
           force: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Rows to run (pending or failed, or all with force) and rows waiting for a prerequisite.

    Rows already done or skipped are settled. A prerequisite counts when it is done or skipped:
    the worker then sees the item and says itself whether the stage applies (e.g. diarize after
    a transcribe skipped for lack of audio is skipped for the same reason)."""
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
        if status_of(row, stage) in SETTLED and not force:
            continue
        missing = [req for req in requires if status_of(row, req) not in SETTLED]
        if missing:
            skipped[row[key]] = f"{missing[0]} not done"
            continue
        todo.append(row)
    return todo, skipped


def describe_exception(exc: BaseException) -> str:
    if isinstance(exc, StreamlearnError):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


@dataclass
class Executor:
    """Where items run: `local` (a thread pool in this process) or `ray` (one Ray task per item,
    with resource requests; attaches to a running cluster with `address`)."""

    kind: str = "local"
    parallel: int = 1
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2  # Ray re-runs a task whose worker died (node loss, OOM kill)

    def __post_init__(self):
        if self.kind not in ("local", "ray"):
            raise StreamlearnError(f"--executor {self.kind!r}: use local or ray")


def _ray_call(corpus_root: str, work, row: dict):
    from streamlearn.corpus import Corpus

    return work(Corpus.open(corpus_root), row)


def run_stage(manifest: Manifest, stage: str, rows: list[dict], work: Callable, corpus=None,
              parallel: int = 1, label: str | None = None, force: bool = False,
              executor: Executor | None = None, on_result: Callable[[dict, dict], None] | None = None) -> StageResult:
    """Apply `work(corpus, row) -> stage values` to each row and record done/failed as results arrive.

    Workers only compute and return values; this process is the single manifest writer
    (`on_result` lets a stage write what a result carries for other manifests, here too). `work`
    must be picklable (a module-level function or a functools.partial of one) for Ray.
    """
    key = manifest.table.key
    result = StageResult(stage)
    label = label or stage
    ex = executor or Executor(parallel=parallel)

    def record(row: dict, values: dict | None, exc: BaseException | None, prog) -> None:
        k = row[key]
        if isinstance(exc, NotApplicable):
            reason = one_line(str(exc))
            manifest.record(k, stage, SKIPPED, error=reason, force=True)
            result.skipped[k] = reason
            prog.advance(k, note=reason, skipped=True)
            return
        if exc is None:
            try:
                if on_result:
                    on_result(row, values)
                values = {c: v for c, v in (values or {}).items() if not c.startswith("_")}
                manifest.record(k, stage, DONE, force=force or status_of(row, stage) == DONE, **values)
            except StreamlearnError as err:
                exc = err
            else:
                result.done.append(k)
                prog.advance(k)
                return
        reason = describe_exception(exc)
        console.debug("".join(traceback.format_exception(exc)))
        manifest.record(k, stage, FAILED, error=reason, force=True)
        result.failed[k] = reason
        prog.advance(k, ok=False, note=reason)

    with console.stage_progress(label, len(rows)) as prog:
        if ex.kind == "ray":
            _run_ray(ex, corpus, work, rows, record, prog)
            return result
        if ex.parallel <= 1:
            for row in rows:
                try:
                    values = work(corpus, row)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # noqa: BLE001 - recorded with its reason
                    record(row, None, exc, prog)
                else:
                    record(row, values, None, prog)
            return result
        with ThreadPoolExecutor(max_workers=ex.parallel, thread_name_prefix=stage) as pool:
            pending = {pool.submit(work, corpus, row): row for row in rows}
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


def ray_init(ex: Executor):
    try:
        import ray
    except ImportError:
        raise StreamlearnError("--executor ray needs Ray: pip install 'streamlearn[ray]'") from None
    if not ray.is_initialized():
        if ex.address:
            ray.init(address=ex.address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, ex.parallel), ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)
    return ray


def _run_ray(ex: Executor, corpus, work, rows: list[dict], record, prog) -> None:
    ray = ray_init(ex)
    task = ray.remote(num_cpus=ex.num_cpus, num_gpus=ex.num_gpus, max_retries=ex.max_retries)(_ray_call)
    root = str(corpus.root)
    refs = {task.remote(root, work, row): row for row in rows}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            row = refs.pop(ref)
            try:
                values = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a task error carries the worker's exception
                cause = getattr(exc, "cause", None)
                record(row, None, cause if isinstance(cause, BaseException) else exc, prog)
            else:
                record(row, values, None, prog)
