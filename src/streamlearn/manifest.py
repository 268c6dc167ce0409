"""CSV manifests: the spine of every stage.

A manifest is one CSV file, one row per item (video or chunk), keyed by an id column.
Static columns come from the source (the playlist, the chunker); each stage owns a block of
runtime columns: `<stage>_status` (pending|done|failed|skipped), `<stage>_error` (the reason for
failed and skipped) and its own values. `skipped` means the stage does not apply to the item (no
audio to transcribe, no picture to sample): not a failure, and not retried.

Every change is made under a file lock on a fresh read of the file, written to a temporary
file, fsynced and renamed over the old one, so concurrent workers never lose a row and a
writer killed mid-write leaves either the old file or the new one, never a truncated file.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from streamlearn.redact import redact
from streamlearn.errors import ManifestError

PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"
STATUSES = (PENDING, DONE, FAILED, SKIPPED)
SETTLED = (DONE, SKIPPED)  # nothing left to do for the item in that stage

Row = dict[str, Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "str"  # str | int | float | bool
    added: bool = False  # a column added after files were written: an older file without it reads as empty

    def parse(self, raw: str) -> Any:
        if raw == "":
            return None
        if self.type == "str":
            return raw
        if self.type == "int":
            return int(raw)
        if self.type == "float":
            value = float(raw)
            if math.isnan(value):
                raise ValueError("NaN")
            return value
        if self.type == "bool":
            lowered = raw.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError("not a boolean")
        raise AssertionError(f"unknown column type {self.type}")

    def format(self, value: Any) -> str:
        if value is None or value == "":
            return ""
        if self.type == "bool":
            return "true" if value else "false"
        if self.type == "float":
            return repr(round(float(value), 6))
        if self.type == "int":
            return str(int(value))
        return str(value)


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


@dataclass(frozen=True)
class Table:
    """A manifest's schema: key, static columns, and per-stage runtime columns."""

    name: str
    key: str
    static: tuple[Column, ...]
    stages: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    def columns(self) -> list[Column]:
        cols = [Column(self.key)] + list(self.static)
        for stage, stage_cols in self.stages.items():
            cols += [Column(f"{stage}_status"), Column(f"{stage}_error")] + list(stage_cols)
        return cols

    def column(self, name: str) -> Column | None:
        return self._by_name().get(name)

    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns()}

    def required(self) -> list[str]:
        return [self.key] + [c.name for c in self.static if not c.added]

    def stage_columns(self, stage: str) -> list[str]:
        if stage not in self.stages:
            raise AssertionError(f"{self.name} has no stage {stage!r}")
        return [f"{stage}_status", f"{stage}_error"] + [c.name for c in self.stages[stage]]


def status_of(row: Row, stage: str) -> str:
    return row.get(f"{stage}_status") or PENDING


class Manifest:
    """One CSV manifest file bound to its table schema."""

    def __init__(self, path: Path, table: Table):
        self.path = Path(path)
        self.table = table
        self._lock = FileLock(str(self.path) + ".lock")

    # ---------------------------------------------------------------- reading
    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[Row]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the first column name
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ManifestError(f"{self.path.name} line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the "
                                "file as UTF-8 (a spreadsheet's \"CSV UTF-8\") and run again") from None
        return self._parse(text)

    def rows_by_key(self) -> dict[str, Row]:
        return {r[self.table.key]: r for r in self.read()}

    def get(self, key: str) -> Row | None:
        return self.rows_by_key().get(key)

    def _parse(self, text: str) -> list[Row]:
        name = self.path.name
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(f"{name}: file is empty; delete it and re-run the stage that writes it")
        missing = [c for c in self.table.required() if c not in header]
        if missing:
            raise ManifestError(
                f"{name}: missing column {missing[0]!r} in the header; restore the column "
                f"(header must include {', '.join(self.table.required())})"
            )
        known = {c.name.lower(): c.name for c in self.table.columns()}
        for h in header:
            if h not in known.values() and h.lower() in known:
                raise ManifestError(f"{name}: column {h!r} is spelled differently from {known[h.lower()]!r}; rename it "
                                    "(a misspelled status column would make every item look pending)")
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            raise ManifestError(f"{name}: column {sorted(dupes)[0]!r} appears twice in the header; remove one")
        by_name = self.table._by_name()
        rows: list[Row] = []
        seen: set[str] = set()
        for line_no, values in enumerate(reader, start=2):
            if not values or all(v == "" for v in values):
                continue
            if len(values) != len(header):
                raise ManifestError(
                    f"{name} line {line_no}: {len(values)} fields where the header has {len(header)}; "
                    "fix the quoting or the number of commas on that line"
                )
            row: Row = {}
            for col_name, raw in zip(header, values):
                col = by_name.get(col_name, Column(col_name))
                if col_name.endswith("_status") and col_name in by_name and raw not in ("",) + STATUSES:
                    raise ManifestError(f"{name} line {line_no}, column {col_name}: {raw!r} is not a status; use one "
                                        f"of {', '.join(STATUSES)} (or clear it to redo the item)")
                try:
                    row[col_name] = col.parse(raw)
                except ValueError:
                    raise ManifestError(
                        f"{name} line {line_no}, column {col_name}: {raw!r} is not "
                        f"{_TYPE_WORDS[col.type]}; fix or clear the value"
                    ) from None
            key = row.get(self.table.key)
            if not key:
                raise ManifestError(f"{name} line {line_no}: empty {self.table.key}; fill it in or delete the line")
            if key in seen:
                raise ManifestError(f"{name} line {line_no}: duplicate {self.table.key} {key!r}; keep one of the rows")
            seen.add(key)
            for col in by_name:
                row.setdefault(col, None)
            rows.append(row)
        return rows

    # ---------------------------------------------------------------- writing
    def _header(self, rows: list[Row]) -> list[str]:
        names = [c.name for c in self.table.columns()]
        extra: list[str] = []
        for row in rows:
            for k in row:
                if k not in names and k not in extra:
                    extra.append(k)
        return names + extra

    def _format(self, rows: list[Row]) -> str:
        header = self._header(rows)
        by_name = self.table._by_name()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([by_name.get(h, Column(h)).format(row.get(h)) for h in header])
        return buf.getvalue()

    def _write_unlocked(self, rows: list[Row]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # we hold the lock, so any temporary file left here belongs to a writer that was killed
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write_text(self.path, self._format(rows))

    def write(self, rows: Iterable[Row]) -> None:
        """Replace the whole manifest (under the lock, atomically)."""
        rows = list(rows)
        with self._lock:
            self._write_unlocked(rows)

    def transform(self, fn) -> None:
        """Read-modify-write all rows under the lock: `fn(rows)` edits the list in place."""
        with self._lock:
            rows = self.read()
            fn(rows)
            self._write_unlocked(rows)

    def upsert(self, new_rows: Iterable[Row]) -> tuple[int, int]:
        """Append rows with new keys; for known keys fill only static columns that are still empty.

        Runtime columns and values a user edited are never clobbered. Returns (added, filled).
        """
        key = self.table.key
        static = [c.name for c in self.table.static]
        added = filled = 0
        with self._lock:
            rows = self.read()
            index = {r[key]: r for r in rows}
            for new in new_rows:
                old = index.get(new[key])
                if old is None:
                    row = {c.name: None for c in self.table.columns()}
                    row.update(new)
                    rows.append(row)
                    index[new[key]] = row
                    added += 1
                    continue
                changed = False
                for col in static:
                    if old.get(col) in (None, "") and new.get(col) not in (None, ""):
                        old[col] = new[col]
                        changed = True
                filled += changed
            self._write_unlocked(rows)
        return added, filled

    def record(self, key: str, stage: str, status: str, error: str | None = None,
               force: bool = False, **values: Any) -> Row:
        """Set one row's stage status (and that stage's columns) under the lock."""
        return self.record_many([(key, stage, status, error, values)], force=force)[0]

    def record_many(self, updates: Iterable[tuple[str, str, str, str | None, Mapping[str, Any]]],
                    force: bool = False) -> list[Row]:
        updates = list(updates)
        if not updates:
            return []
        with self._lock:
            rows = self.read()
            index = {r[self.table.key]: r for r in rows}
            out = []
            for key, stage, status, error, values in updates:
                if status not in STATUSES:
                    raise AssertionError(f"bad status {status!r}")
                allowed = set(self.table.stage_columns(stage))
                unknown = set(values) - allowed
                if unknown:
                    raise AssertionError(f"columns {sorted(unknown)} do not belong to stage {stage}")
                row = index.get(key)
                if row is None:
                    raise ManifestError(f"{self.path.name}: no row with {self.table.key} {key!r}; "
                                        "run the stage that creates it first")
                if status_of(row, stage) == DONE and not force:
                    raise ManifestError(
                        f"{self.path.name}: {key} is already done for {stage}; pass --force to redo it")
                # each record carries the stage's whole state: stale values from an earlier attempt go
                for col in self.table.stage_columns(stage)[2:]:
                    row[col] = None
                row.update(values)
                row[f"{stage}_status"] = status
                row[f"{stage}_error"] = one_line(error) if error else None
                out.append(dict(row))
            self._write_unlocked(rows)
        return out

    def reset_stage(self, keys: Iterable[str], stage: str) -> None:
        """Clear a stage's columns on some rows (used by --force re-runs)."""
        keys = set(keys)
        with self._lock:
            rows = self.read()
            for row in rows:
                if row[self.table.key] in keys:
                    for col in self.table.stage_columns(stage):
                        row[col] = None
            self._write_unlocked(rows)


def one_line(text: str, limit: int = 500) -> str:
    """A reason as the manifests record it: one line, secrets masked (`redact`), at most `limit` chars."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to `path` so that a crash leaves the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a kill mid-write: no partial temp file stays behind
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def merge_parts(parts: list[Path], target: Manifest) -> tuple[int, int]:
    """Union per-node part files into the target manifest.

    Rows that appear in several places must agree on every value both sides have; otherwise
    nothing is written and the error names the conflicting ids. Returns (rows, new rows).
    """
    key = target.table.key
    merged: dict[str, Row] = {}
    origin: dict[str, str] = {}
    conflicts: list[str] = []
    sources = [(target.path.name, target.read())]
    for part in sorted(parts):
        sources.append((f"{part.parent.name}/{part.name}", Manifest(part, target.table).read()))
    before = len(sources[0][1])
    for source_name, rows in sources:
        for row in rows:
            k = row[key]
            if k not in merged:
                merged[k] = dict(row)
                origin[k] = source_name
                continue
            have = merged[k]
            clash = [c for c, v in row.items() if v is not None and have.get(c) is not None and have[c] != v]
            if clash:
                conflicts.append(f"{k} ({origin[k]} vs {source_name}: {clash[0]})")
                continue
            for c, v in row.items():
                if have.get(c) is None:
                    have[c] = v
    if conflicts:
        shown = "; ".join(conflicts[:10]) + (f"; and {len(conflicts) - 10} more" if len(conflicts) > 10 else "")
        raise ManifestError(
            f"merge refused: {len(conflicts)} conflicting duplicate {key}s: {shown}; "
            "remove the stale rows from one part file and merge again")
    target.write(merged.values())
    return len(merged), len(merged) - before


def remove_stale_temps(folder: Path, min_age_s: float = 600.0) -> int:
    """Remove `.<name>.<pid>.tmp` files (atomic writes) under `folder` whose writer is gone: its pid is
    not running here and the file is older than `min_age_s` (a writer on another host keeps its own).
    Returns how many went."""
    import re
    import time

    pattern = re.compile(r"^\..+\.(\d+)\.tmp$")
    gone = 0
    for p in Path(folder).rglob(".*.tmp") if Path(folder).is_dir() else []:
        m = pattern.match(p.name)
        if not m or time.time() - p.stat().st_mtime < min_age_s:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its writer still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        p.unlink(missing_ok=True)
        gone += 1
    return gone

