"""The one item loop. A stage says what it does to one item (`Stage`); the runner picks the items
that are not done, runs them here (a thread pool) or on Ray, and records each outcome.

Workers only compute; the calling process is the single manifest writer. An item that raises is
recorded as failed with a one-line reason and the rest carries on; failed items are retried on
the next run. An item the stage does not apply to (the worker raises `NotApplicable`: no audio
to transcribe, no picture to sample) is recorded as skipped with the reason and is not retried.
Nothing is recorded for an item until its outputs are complete on disk. Items that share a
`group_by` value run in order in one worker (describe: each chunk sees its predecessor's text).
Each outcome is one line appended to the manifest's journal (core/manifest.py); when the stage's loop
ends, however it ends, the journal is folded into the CSV, which then holds every outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from streamlearn.core import console
from streamlearn.core.errors import NotApplicable, StreamlearnError
from streamlearn.core.manifest import DONE, FAILED, SETTLED, SKIPPED, Manifest, one_line, remove_stale_temps, status_of

TABLES = ("videos", "chunks")
# where each stage writes (Corpus.folder names): its killed runs' temp files are cleared when it starts
SCRATCH = {"download": ("videos",), "transcribe": ("videos",), "diarize": ("videos",), "chunk": ("parts",),
           "frames": ("frames",), "describe": ("descriptions",), "rewrite": ("rewrites",)}


@dataclass(frozen=True)
class Stage:
    """One per-item stage: `work(corpus, row) -> the row's values for this stage` (picklable for
    Ray: a module-level function or a functools.partial of one)."""

    name: str
    table: str  # the manifest whose rows are the items: "videos" or "chunks"
    work: Callable
    requires: tuple[str, ...] = ()  # stages each item must have settled first
    group_by: str | None = None  # items sharing this column run in order, in one worker
    match: tuple[str, ...] = ()  # further columns --only may name (describe: a video id)

    def __post_init__(self):
        if self.table not in TABLES:
            raise AssertionError(f"stage {self.name}: table must be one of {TABLES}, not {self.table!r}")


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
           force: bool = False, match: Iterable[str] = ()) -> tuple[list[dict], dict[str, str]]:
    """Rows to run (pending or failed, or all with force) and rows waiting for a prerequisite.

    Rows already done or skipped are settled. A prerequisite counts when it is done or skipped:
    the worker then sees the item and says itself whether the stage applies (e.g. diarize after
    a transcribe skipped for lack of audio is skipped for the same reason)."""
    only = set(only or [])
    key = manifest.table.key
    columns = (key, *match)
    rows = manifest.read()
    if only:
        unknown = only - {r[c] for r in rows for c in columns}
        if unknown:
            raise StreamlearnError(f"unknown {' or '.join(columns)} {sorted(unknown)[0]!r} in --only; "
                                   f"see `streamlearn status` for the ids in {manifest.path.name}")
        rows = [r for r in rows if any(r[c] in only for c in columns)]
    todo, skipped = [], {}
    for row in rows:
        if status_of(row, stage) in SETTLED and not force:
            continue
        missing = [req for req in requires if status_of(row, req) not in SETTLED]
        if missing:
            skipped[row[key]] = f"{missing[0]} not done"
            continue
        todo.append(row)
    if skipped:  # said here once for every caller: items waiting are not done, not failed, and not silent
        first = next(iter(skipped.items()))
        console.info(f"{stage}: {len(skipped)} items wait for a prerequisite (e.g. {first[0]}: {first[1]}); "
                     "run that stage first")
    return todo, skipped


def _record_or_stop(manifest: Manifest, key: str, stage: str, status: str, **values) -> None:
    """Record one outcome; a manifest that cannot be written (a full disk) stops the stage with one line."""
    try:
        manifest.record(key, stage, status, **values)
    except OSError as exc:
        raise StreamlearnError(f"cannot record {key} in {manifest.path.name}: {exc.strerror or exc} (errno "
                               f"{exc.errno}); free space on {manifest.path.parent} and run {stage} again "
                               f"(the manifest still holds what was recorded before)") from None


def _compact_or_stop(manifest: Manifest, stage: str) -> None:
    """Fold the stage's journal of records into the CSV, so that after a stage the CSV alone holds everything."""
    try:
        manifest.compact()
    except OSError as exc:
        raise StreamlearnError(f"cannot fold {manifest.journal_path.name} into {manifest.path.name}: "
                               f"{exc.strerror or exc} (errno {exc.errno}); free space on {manifest.path.parent} "
                               f"and run {stage} again (every record is kept in the journal, and reads apply it)"
                               ) from None


def describe_exception(exc: BaseException) -> str:
    if isinstance(exc, StreamlearnError):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


@dataclass
class Executor:
    """Where items run: `local` (a thread pool in this process) or `ray` (one Ray task per item or
    group, with resource requests; attaches to a running cluster with `address`)."""

    kind: str = "local"
    parallel: int = 1
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2  # Ray re-runs a task whose worker died (node loss, OOM kill)

    def __post_init__(self):
        if self.kind not in ("local", "ray"):
            raise StreamlearnError(f"--executor {self.kind!r}: use local or ray")


def _run_group(work: Callable, corpus, rows: list[dict], emit: Callable | None = None) -> list[tuple]:
    """(row, values, exception) per row, in order; `emit` sees each as it finishes."""
    out = []
    for row in rows:
        try:
            item = (row, work(corpus, row), None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - recorded with its reason
            item = (row, None, exc)
        out.append(item)
        if emit:
            emit(item)
    return out


def _ray_group(corpus_root: str, work: Callable, rows: list[dict]) -> list[tuple]:
    import pickle

    from streamlearn.corpus.layout import Corpus

    out = []
    for row, values, exc in _run_group(work, Corpus.open(corpus_root), rows):
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception Ray cannot carry travels as its reason
            exc = StreamlearnError(describe_exception(exc))
        out.append((row, values, exc))
    return out


def groups_of(rows: list[dict], group_by: str | None) -> list[list[dict]]:
    if group_by is None:
        return [[r] for r in rows]
    groups: dict[object, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[group_by], []).append(r)
    return list(groups.values())


def run_stage(stage: Stage, corpus, rows: list[dict], parallel: int = 1, force: bool = False,
              executor: Executor | None = None, on_result: Callable[[dict, dict], None] | None = None,
              record_status: bool = True) -> StageResult:
    """Apply `stage.work` to each row and record done/skipped/failed as results arrive.

    This process is the single manifest writer: `on_result(row, values)` lets a stage write what
    a result carries for another manifest (chunk rows), here too. `record_status=False` leaves the
    stage's table alone (a chunking node whose part file is its only record)."""
    manifest: Manifest = getattr(corpus, stage.table)
    key = manifest.table.key
    name = stage.name
    result = StageResult(name)
    ex = executor or Executor(parallel=parallel)

    def record(item: tuple, prog) -> None:
        row, values, exc = item
        k = row[key]
        if isinstance(exc, NotApplicable):
            reason = one_line(str(exc))
            if record_status:
                _record_or_stop(manifest, k, name, SKIPPED, error=reason, force=True)
            result.skipped[k] = reason
            prog.advance(k, note=reason, skipped=True)
            return
        if exc is None:
            try:
                if on_result:
                    on_result(row, values)
                values = {c: v for c, v in (values or {}).items() if not c.startswith("_")}
                if record_status:
                    _record_or_stop(manifest, k, name, DONE, force=force or status_of(row, name) == DONE, **values)
            except StreamlearnError as err:
                exc = err
            else:
                result.done.append(k)
                prog.advance(k)
                return
        reason = describe_exception(exc)
        console.debug("".join(traceback.format_exception(exc)))
        if record_status:
            _record_or_stop(manifest, k, name, FAILED, error=reason, force=True)
        result.failed[k] = reason
        prog.advance(k, ok=False, note=reason)

    groups = groups_of(rows, stage.group_by)
    try:
        with console.stage_progress(name, len(rows)) as prog:
            if ex.kind == "ray":
                _run_ray(ex, corpus, stage.work, groups, lambda item: record(item, prog))
            elif ex.parallel <= 1:
                for group in groups:
                    _run_group(stage.work, corpus, group, lambda item: record(item, prog))
            else:
                _run_threads(ex.parallel, name, corpus, stage.work, groups, lambda item: record(item, prog))
    except BaseException:
        if record_status:  # what was recorded goes into the CSV; a second error must not hide the first
            with contextlib.suppress(Exception):
                manifest.compact()
        raise
    if record_status:
        _compact_or_stop(manifest, name)
    return result


def _run_threads(workers: int, name: str, corpus, work: Callable, groups: list[list[dict]], record) -> None:
    results: queue.Queue = queue.Queue()
    left = sum(len(g) for g in groups)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(_run_group, work, corpus, g, results.put) for g in groups]
        try:
            while left:
                try:
                    item = results.get(timeout=0.2)
                except queue.Empty:
                    for f in futures:  # a worker that died outside an item (a bug) must not hang us
                        if f.done() and f.exception() is not None:
                            raise f.exception()
                    continue
                record(item)
                left -= 1
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            raise


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


def _run_ray(ex: Executor, corpus, work: Callable, groups: list[list[dict]], record) -> None:
    ray = ray_init(ex)
    task = ray.remote(num_cpus=ex.num_cpus, num_gpus=ex.num_gpus, max_retries=ex.max_retries)(_ray_group)
    root = str(corpus.root)
    refs = {task.remote(root, work, g): g for g in groups}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            group = refs.pop(ref)
            try:
                items = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task died: every item of it failed with why
                cause = getattr(exc, "cause", None)
                items = [(row, None, cause if isinstance(cause, BaseException) else exc) for row in group]
            for item in items:
                record(item)


def run(stage: Stage, corpus, only: list[str] | None = None, force: bool = False, parallel: int = 1,
        executor: Executor | None = None, on_result=None) -> StageResult:
    """Select the stage's items and run them."""
    rows, _ = select(getattr(corpus, stage.table), stage.name, stage.requires, only, force, stage.match)
    return run_stage(stage, corpus, rows, parallel=parallel, force=force, executor=executor, on_result=on_result)


@contextlib.contextmanager
def stage_lock(corpus, name: str, wait: bool = False):
    """Hold the corpus's lock for one stage (`name`: the stage, or `chunk.<node>` for a node's part)
    while it runs: a second run of it says at once who holds it and stops, or with `wait` waits for it.
    An OS file lock, so a killed run frees it; its holder (pid, host, command, since) is written beside."""
    from filelock import FileLock, Timeout

    folder = corpus.folder("locks", create=True)
    lock = FileLock(str(folder / f"{name}.lock"), timeout=-1 if wait else 0)
    holder = folder / f"{name}.holder.json"
    try:
        if wait and not _try(lock):
            console.info(f"{name}: waiting for the run that holds it ({_who(holder)})")
        lock.acquire()
    except Timeout:
        raise StreamlearnError(f"{name} is already running on this corpus ({_who(holder)}); wait for it to "
                               "finish, or pass --wait to start when it does") from None
    try:
        holder.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime(
            "%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv[1:])[:200]}))
        stale = sum(remove_stale_temps(corpus.folder(f)) for f in SCRATCH.get(name.split(".")[0], ()))
        if stale:
            console.info(f"{name}: removed {stale} temp file(s) a killed run left behind")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _try(lock) -> bool:
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def _who(holder) -> str:
    try:
        h = json.loads(holder.read_text())
    except (OSError, ValueError):
        return "another process"
    return f"pid {h.get('pid')} on {h.get('host')} since {h.get('since')}: streamlearn {h.get('command')}"

