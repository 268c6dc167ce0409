"""What a training run records about its data, for the evaluation to check.

    runs/<run>/heldout.json          when the run started and the sealed banks (name, sha256) it honoured
    runs/<run>/targets/day-NN.jsonl  every distinct sample trained on day NN: key, kind, chunk, its
                                     frame caches, the instruction and target text, and how many
                                     times it was taken

Written by `train` before a day's first step (a day killed part-way is recorded in full, so the
record never misses a target); read by `eval`'s contamination audit and its bank-date check.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from streamlearn.core.files import atomic_write_text, read_json_lines


def heldout_path(run_dir: Path) -> Path:
    return Path(run_dir) / "heldout.json"


def read_heldout(run_dir: Path) -> dict | None:
    path = heldout_path(run_dir)
    return json.loads(path.read_text()) if path.exists() else None


def start_heldout(run_dir: Path, banks: list[dict]) -> dict:
    """The run's record of the banks it honours, written once when it first starts."""
    record = read_heldout(run_dir)
    if record is None:
        record = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "banks": banks}
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(heldout_path(run_dir), json.dumps(record, indent=1))
    return record


def write_day_targets(run_dir: Path, day: int, specs: list) -> Path:
    counts = Counter(s.key for s in specs)
    seen: dict[str, dict] = {}
    for s in specs:
        if s.key not in seen:
            seen[s.key] = {"key": s.key, "kind": s.kind, "day": s.day, "chunk_id": (s.meta or {}).get("chunk_id"),
                           "frames": list(s.frames), "instruction": s.instruction, "target": s.target,
                           "taken": counts[s.key]}
    path = Path(run_dir) / "targets" / f"day-{day:02d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in seen.values()))
    return path


def read_targets(run_dir: Path) -> list[dict]:
    """Every recorded target of the run, with the training day that took it (`trained_on`)."""
    out = []
    for path in sorted((Path(run_dir) / "targets").glob("day-*.jsonl")):
        day = int(path.stem.split("-")[1])
        fix = "the run's record is damaged; restore it, or train the run again"
        out += [{**target, "trained_on": day} for _, target in read_json_lines(path, fix)]
    return out
