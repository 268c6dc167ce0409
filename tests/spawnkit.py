"""Run a test's writer function in several spawned processes at once (manifest concurrency tests)."""

from __future__ import annotations

import multiprocessing as mp


def run_processes(target, arg_tuples: list[tuple], timeout: float = 60) -> None:
    """Start one spawned process per argument tuple, wait for all, and assert each exited cleanly."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in arg_tuples]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0
