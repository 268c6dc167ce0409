"""CSV manifests: the spine of every stage.

A manifest is one CSV file, one row per item (video or chunk), keyed by an id column.
Static columns come from the source (the playlist, the chunker); each stage owns a block of
runtime columns: `<stage>_status` (pending|done|failed|skipped), `<stage>_error` (the reason for
failed and skipped) and its own values. `skipped` means the stage does not apply to the item (no
audio to transcribe, no picture to sample): not a failure, and not retried.

Whole-table changes (write, transform, upsert, reset_stage) are made under a file lock on a fresh
read of the file, written to a temporary file, fsynced and renamed over the old one, so concurrent
workers never lose a row and a writer killed mid-write leaves either the old file or the new one.

Recording one item's stage status (`record`, `record_many`) does not rewrite the table: it appends
one JSON line to a journal beside the CSV (`chunks.csv.journal`), under the same lock, and fsyncs
it. The journal's first line is a header with a random token; each further line sets one row's
whole stage block (`{"key", "stage", "set": {column: the text the CSV would hold}}`). `read()` is
the CSV with the journal replayed over it, in order. Replaying sets absolute values, so replaying a
journal over a CSV that already holds it changes nothing: a writer killed between folding the
journal into the CSV and starting a new journal loses nothing and duplicates nothing. A writer
killed mid-append leaves at most a torn last line, which reads ignore and the next append cuts off.

The journal is folded into the CSV (`compact`: the CSV rewritten atomically, then a new journal
with a new token) when the runner finishes a stage, before every whole-table change, and when the
journal grows past the CSV's size, so a read stays O(rows) and, after a stage, the CSV alone holds
every value. The checks a record makes (the row exists, it is not done already) use the rows this
process read last, kept while the CSV's (inode, size, mtime) and the journal's token are unchanged;
lines other processes appended since are applied from where this one stopped. So one record costs
O(1), not O(rows), however many nodes share the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from filelock import FileLock

from streamlearn.core.redact import redact
from streamlearn.core.errors import ManifestError
from streamlearn.core.files import atomic_write_bytes, atomic_write_text

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


JOURNAL_SUFFIX = ".journal"
# a journal is folded mid-run once it outgrows the CSV, and never below this (a tiny CSV would fold every few records)
FOLD_FLOOR_BYTES = 64 * 1024
_READ_TRIES = 20  # lock-free read attempts before a read waits for the lock (a writer replaced the CSV meanwhile)


class _FileId(NamedTuple):
    """What tells a file replaced or rewritten from the one read before (with the journal's token)."""

    inode: int
    size: int
    mtime_ns: int


@dataclass
class _Snapshot:
    """The rows as of one read: the CSV (its identity) with the journal (its token, how far) replayed."""

    rows: list[Row]
    index: dict[str, Row]
    csv_id: _FileId | None  # None: no CSV
    token: str | None  # the journal's; None: no journal
    offset: int  # journal bytes applied: the end of its last whole line
    size: int  # journal bytes seen; more than `offset` when the last line is torn


@dataclass
class _Tail:
    token: str | None
    records: list[dict]
    end: int
    size: int


def _identity(st: os.stat_result) -> _FileId:
    return _FileId(st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_identity(path: Path) -> _FileId | None:
    """The file's identity as its server has it now: opening the file makes an NFS client ask (close-to-open
    consistency), where a bare stat may answer from an attribute cache seconds old."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _identity(os.fstat(fd))
    finally:
        os.close(fd)


def _journal_header(manifest_name: str, token: str) -> bytes:
    return (json.dumps({"journal_of": manifest_name, "token": token}) + "\n").encode("utf-8")


def _is_record(rec: Any) -> bool:
    return (isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("set"), dict)
            and all(isinstance(v, str) for v in rec["set"].values()))


def _journal_entry(line: bytes) -> list[dict] | None:
    """A journal line's records: one record, or a list of them (one `record_many` call, so that a kill
    mid-append loses the whole call or nothing, as a whole-table write would). None: not a journal line."""
    try:
        entry = json.loads(line)
    except ValueError:  # json's errors and a torn UTF-8 sequence
        return None
    records = entry if isinstance(entry, list) else [entry]
    return records if records and all(_is_record(r) for r in records) else None


def _journal_lines(data: bytes, name: str, first_line: int | None) -> tuple[list[dict], int]:
    """Records in `data` and the bytes they fill. A last line that is unterminated or does not parse is a
    writer killed mid-append: left out. Any other bad line is an error naming it (`_Reread` when its
    number is unknown: the caller reads the whole journal, which names it)."""
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: b"" or a line cut short
    records: list[dict] = []
    used = 0
    for i, line in enumerate(lines):
        entry = _journal_entry(line) if line.strip() else []
        if entry is None:
            if i == len(lines) - 1 and not torn:
                break
            if first_line is None:
                raise _Reread()
            raise ManifestError(f"{name} line {first_line + i}: not a journal record; delete that line (the records "
                                "after it are kept) and run again")
        records += entry
        used += len(line) + 1
    return records, used


class _Reread(Exception):
    """An incremental journal read met something it cannot place: read the whole journal."""


def _read_journal(path: Path, since: tuple[str | None, int] | None = None) -> _Tail | None:
    """The journal's records after the header, or with `since` = (token, offset) only those after `offset`
    when the journal still carries that token and has not shrunk (None otherwise)."""
    name = path.name
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return _Tail(None, [], 0, 0) if since is None or since == (None, 0) else None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.readline()
        token = None
        if head:
            try:
                token = json.loads(head)["token"]
            except (ValueError, KeyError, TypeError):
                raise ManifestError(f"{name}: the first line is not a journal header; move the file away (its "
                                    "records are then lost) and run again") from None
        if since is not None and (since[0] != token or since[1] > size or since[1] < len(head)):
            return None
        begin = len(head) if since is None else since[1]
        fh.seek(begin)
        data = fh.read(size - begin)
    try:
        records, used = _journal_lines(data, name, 2 if since is None else None)
    except _Reread:
        return None
    return _Tail(token, records, begin + used, size)


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(lock_path: str) -> threading.RLock:
    """One in-process lock per manifest file: the cache of rows is shared by threads, and a file lock
    need not exclude threads of one process (POSIX locks on NFS do not)."""
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(os.path.abspath(lock_path), threading.RLock())


class Manifest:
    """One CSV manifest file bound to its table schema (and its journal of records, `<name>.journal`)."""

    def __init__(self, path: Path, table: Table):
        self.path = Path(path)
        self.table = table
        self.journal_path = Path(str(self.path) + JOURNAL_SUFFIX)
        self._lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = _thread_lock(str(self.path) + ".lock")
        self._cache: _Snapshot | None = None  # the rows record_many checks against; only used under the lock

    @contextlib.contextmanager
    def _locked(self):
        with self._thread_lock, self._lock:
            yield

    # ---------------------------------------------------------------- reading
    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> list[Row]:
        """Every row: the CSV with the journal applied. Lock-free; retried when a writer replaced the CSV
        between reading it and reading the journal."""
        for _ in range(_READ_TRIES):
            snap = self._snapshot()
            if snap is not None:
                return snap.rows
        with self._locked():
            return self._snapshot_unlocked().rows

    def rows_by_key(self) -> dict[str, Row]:
        return {r[self.table.key]: r for r in self.read()}

    def get(self, key: str) -> Row | None:
        return self.rows_by_key().get(key)

    def _snapshot_unlocked(self) -> _Snapshot:
        snap = self._snapshot()
        if snap is None:  # under the lock only a hand edit replaces the CSV: once more
            snap = self._snapshot()
        if snap is None:
            raise ManifestError(f"{self.path.name} keeps changing while being read; close the program that is "
                                "saving it and run again")
        return snap

    def _snapshot(self) -> _Snapshot | None:
        """The CSV, then the journal, then the CSV's identity again: a writer folds the journal by renaming a
        new CSV into place before it starts a new journal, so an unchanged CSV means the journal read
        belongs to it (the open file keeps its inode from being reused meanwhile). None: try again."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return _Snapshot([], {}, None, None, 0, 0)
        with fh:
            csv_id = _identity(os.fstat(fh.fileno()))
            data = fh.read()
            tail = _read_journal(self.journal_path)
            if _stat_identity(self.path) != csv_id:
                return None
        rows = self._parse(self._decode(data))
        index = {r[self.table.key]: r for r in rows}
        self._replay(index, tail.records)
        return _Snapshot(rows, index, csv_id, tail.token, tail.end, tail.size)

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the first column name
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ManifestError(f"{self.path.name} line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the "
                                "file as UTF-8 (a spreadsheet's \"CSV UTF-8\") and run again") from None

    def _replay(self, index: dict[str, Row], records: list[dict]) -> None:
        """Apply journal records in order. Each sets absolute values, so applying one twice is harmless. A
        record for a row that is gone (deleted by hand) has nothing to apply to."""
        by_name = self.table._by_name()
        for rec in records:
            row = index.get(rec["key"])
            if row is None:
                continue
            for col_name, raw in rec["set"].items():
                col = by_name.get(col_name, Column(col_name))
                try:
                    row[col_name] = col.parse(raw)
                except ValueError:
                    raise ManifestError(f"{self.journal_path.name}: {col_name} of {rec['key']} is {raw!r}, not "
                                        f"{_TYPE_WORDS[col.type]}; fix or clear the value in that line") from None

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
        """Replace the CSV, then start a new journal. Call only with the journal folded (`_fold_unlocked`):
        a kill between the two steps then leaves a journal with no records to replay over these rows."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # we hold the lock, so any temporary file left here belongs to a writer that was killed
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        atomic_write_text(self.path, self._format(rows))
        # a new token on every CSV we write: a process whose cached rows came from an older CSV sees it
        # changed even should the new file reuse the old one's inode, size and mtime
        atomic_write_bytes(self.journal_path, _journal_header(self.path.name, uuid.uuid4().hex))
        self._cache = None

    def _fold_unlocked(self) -> None:
        """Fold the journal's records into the CSV (nothing to do when it holds none)."""
        tail = _read_journal(self.journal_path)
        if tail.records:
            self._write_unlocked(self._snapshot_unlocked().rows)

    def compact(self) -> None:
        """Fold the journal into the CSV, so the CSV alone holds every value (the runner's end of a stage)."""
        with self._locked():
            self._fold_unlocked()

    def write(self, rows: Iterable[Row]) -> None:
        """Replace the whole manifest (under the lock, atomically)."""
        rows = list(rows)
        with self._locked():
            self._fold_unlocked()
            self._write_unlocked(rows)

    def transform(self, fn) -> None:
        """Read-modify-write all rows under the lock: `fn(rows)` edits the list in place."""
        with self._locked():
            self._fold_unlocked()
            rows = self._snapshot_unlocked().rows
            fn(rows)
            self._write_unlocked(rows)

    def upsert(self, new_rows: Iterable[Row]) -> tuple[int, int]:
        """Append rows with new keys; for known keys fill only static columns that are still empty.

        Runtime columns and values a user edited are never clobbered. Returns (added, filled).
        """
        key = self.table.key
        static = [c.name for c in self.table.static]
        added = filled = 0
        with self._locked():
            self._fold_unlocked()
            rows = self._snapshot_unlocked().rows
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
        """Set one row's stage status (and that stage's columns) under the lock: one journal line."""
        return self.record_many([(key, stage, status, error, values)], force=force)[0]

    def record_many(self, updates: Iterable[tuple[str, str, str, str | None, Mapping[str, Any]]],
                    force: bool = False) -> list[Row]:
        """Set several rows' stage blocks in one journal append; returns each row as recorded. Refuses (and
        records nothing) when a row is missing or already done for the stage without `force`."""
        updates = list(updates)
        if not updates:
            return []
        with self._locked():
            snap = self._current_unlocked()
            staged: dict[str, Row] = {}  # rows this call changed, as the next update of the same row sees them
            out, records = [], []
            for key, stage, status, error, values in updates:
                if status not in STATUSES:
                    raise AssertionError(f"bad status {status!r}")
                allowed = set(self.table.stage_columns(stage))
                unknown = set(values) - allowed
                if unknown:
                    raise AssertionError(f"columns {sorted(unknown)} do not belong to stage {stage}")
                row = staged.get(key) or snap.index.get(key)
                if row is None:
                    raise ManifestError(f"{self.path.name}: no row with {self.table.key} {key!r}; "
                                        "run the stage that creates it first")
                if status_of(row, stage) == DONE and not force:
                    raise ManifestError(
                        f"{self.path.name}: {key} is already done for {stage}; pass --force to redo it")
                row = dict(row)
                # each record carries the stage's whole state: stale values from an earlier attempt go
                for col in self.table.stage_columns(stage)[2:]:
                    row[col] = None
                row.update(values)
                row[f"{stage}_status"] = status
                row[f"{stage}_error"] = one_line(error) if error else None
                staged[key] = row
                out.append(dict(row))
                records.append(self._record(key, stage, row))
            self._append_unlocked(snap, _journal_line(records[0] if len(records) == 1 else records))
            self._replay(snap.index, records)  # the cache now holds what a read would
            if snap.size > max(FOLD_FLOOR_BYTES, snap.csv_id.size if snap.csv_id else 0):
                self._fold_unlocked()  # reads stay O(rows): the journal never outgrows the CSV for long
        return out

    def _record(self, key: str, stage: str, row: Row) -> dict:
        """A journal record: the stage's whole block as the CSV would hold it (errors already `one_line`d)."""
        by_name = self.table._by_name()
        return {"key": key, "stage": stage,
                "set": {c: by_name[c].format(row.get(c)) for c in self.table.stage_columns(stage)}}

    def _current_unlocked(self) -> _Snapshot:
        """The rows as they are now (call under the lock): the cached ones brought up to date with the lines
        any process appended since, or read afresh when the CSV or the journal's token changed."""
        snap = self._cache
        if snap is not None and _stat_identity(self.path) == snap.csv_id:
            tail = _read_journal(self.journal_path, since=(snap.token, snap.offset))
            if tail is not None:
                self._replay(snap.index, tail.records)
                snap.offset, snap.size = tail.end, tail.size
                return snap
        self._cache = snap = self._snapshot_unlocked()
        return snap

    def _append_unlocked(self, snap: _Snapshot, data: bytes) -> None:
        """Append whole lines to the journal and fsync them, starting a journal when there is none. On any
        failure the cache goes: whatever reached the file is read again next time."""
        try:
            if snap.token is None:
                header = _journal_header(self.path.name, uuid.uuid4().hex)
                atomic_write_bytes(self.journal_path, header)
                snap.token, snap.offset, snap.size = json.loads(header)["token"], len(header), len(header)
            elif snap.size > snap.offset:  # a writer killed mid-append left a torn line: cut it before ours
                os.truncate(self.journal_path, snap.offset)
                snap.size = snap.offset
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)  # a record is finished once it is on disk: the caller moves on
            finally:
                os.close(fd)
        except BaseException:
            self._cache = None
            raise
        snap.offset = snap.size = snap.offset + len(data)

    def reset_stage(self, keys: Iterable[str], stage: str) -> None:
        """Clear a stage's columns on some rows (used by --force re-runs)."""
        keys = set(keys)
        with self._locked():
            self._fold_unlocked()
            rows = self._snapshot_unlocked().rows
            for row in rows:
                if row[self.table.key] in keys:
                    for col in self.table.stage_columns(stage):
                        row[col] = None
            self._write_unlocked(rows)


def _journal_line(entry: dict | list[dict]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def one_line(text: str, limit: int = 500) -> str:
    """A reason as the manifests record it: one line, secrets masked (`redact`), at most `limit` chars."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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

