"""Manifest bookkeeping at scale (issue 26): the per-item cost of recording a stage's status in chunks.csv
at 100, 2,300 and 23,000 rows, through the runner's own loop (`run_stage` on a trivial `describe` stage,
which calls `Manifest.record` once per item and folds the journal when the loop ends).

Two paths measured in the same run on copies of the same file:

- `old`: the whole-rewrite algorithm issue 26 replaced (`WholeRewrite` below reproduces it: under the lock,
  read and parse the whole CSV, edit one row, write the whole CSV to a temporary file, fsync, rename);
- `new`: the product's `Manifest` (one journal line appended and fsynced per record; the rows to check
  against kept between records and validated by the CSV's identity and the journal's token).

For each: ms per item over a whole run (the loop, every record and, on the new path, the first record's
read of the table and the fold at the end, both once a run), with the first record, a later record's
median and the fold apart. The new path records every row by default (its fixed costs are then spread
as in a real stage); the old one a sample spread over the table (each of its records costs a whole
rewrite). `--alternatives` also measures the other two designs issue 26 named, as bare prototypes:
per-item marker files and a WAL-mode sqlite file beside the CSV.

    python benchmarks/manifest_bookkeeping.py                  # 100, 2300, 23000 rows
    python benchmarks/manifest_bookkeeping.py --alternatives   # and markers / sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streamlearn.core import console  # noqa: E402
from streamlearn.core.manifest import DONE, STATUSES, ManifestError, Manifest, one_line, status_of
from streamlearn.core.files import atomic_write_bytes, atomic_write_text
from streamlearn.runner import Stage, run_stage  # noqa: E402
from streamlearn.corpus.tables import CHUNKS  # noqa: E402


class WholeRewrite(Manifest):
    """The record path before issue 26: every record re-reads, edits and rewrites the whole CSV."""

    def record_many(self, updates, force=False):
        updates = list(updates)
        if not updates:
            return []
        with self._locked():
            rows = self._parse(self._decode(self.path.read_bytes()))
            index = {r[self.table.key]: r for r in rows}
            out = []
            for key, stage, status, error, values in updates:
                if status not in STATUSES:
                    raise AssertionError(f"bad status {status!r}")
                unknown = set(values) - set(self.table.stage_columns(stage))
                if unknown:
                    raise AssertionError(f"columns {sorted(unknown)} do not belong to stage {stage}")
                row = index.get(key)
                if row is None:
                    raise ManifestError(f"{self.path.name}: no row with {self.table.key} {key!r}")
                if status_of(row, stage) == DONE and not force:
                    raise ManifestError(f"{self.path.name}: {key} is already done for {stage}")
                for col in self.table.stage_columns(stage)[2:]:
                    row[col] = None
                row.update(values)
                row[f"{stage}_status"] = status
                row[f"{stage}_error"] = one_line(error) if error else None
                out.append(dict(row))
            for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
            atomic_write_text(self.path, self._format(rows))
        return out

    def compact(self) -> None:  # nothing to fold: every record rewrote the CSV
        pass


def chunk_rows(n: int) -> list[dict]:
    """Rows shaped like a real chunks.csv after `frames` (about 900 bytes each): 20-minute chunks of
    35 days of streams, store URIs, digests, local times, titles, frame-cache values."""
    rows = []
    per_video = max(1, n // 35)
    for i in range(n):
        vid, k = f"vid{i // per_video:04d}abcdEFG", i % per_video
        start = 1_700_000_000 + (i // per_video) * 86_400 + k * 1200
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        rows.append({
            "chunk_id": f"{vid}_{k:04d}", "video_id": vid, "chunk_index": k, "n_chunks": per_video,
            "start_s": k * 1200.0, "end_s": (k + 1) * 1200.0, "duration_s": 1200.0, "chunk_seconds": 1200.0,
            "media_uri": f"s3://streamlearn-seed/corpus/store/{vid}/{vid}_{k:04d}.mkv", "bytes": 812_345_678 + i,
            "sha256": f"{i:064x}", "day_index": i // per_video + 1, "start_utc": stamp + "+00:00",
            "end_utc": stamp + "+00:00", "start_local": stamp + "-07:00", "end_local": stamp + "-07:00",
            "timezone": "America/Los_Angeles", "time_source": "release_timestamp",
            "title": f"Day {i // per_video + 1}: building a house from scratch, live with chat (part {k})",
            "ascii_title": f"day-{i // per_video + 1}-building-a-house-from-scratch-live-with-chat",
            "transcript_path": f"videos/{vid}/transcript.json", "diarization_path": f"videos/{vid}/speakers.rttm",
            "node": "node-03", "frames_status": "done", "frames_path": f"frames/{vid}/{vid}_{k:04d}.npy",
            "n_frames": 1200, "sample_fps": 1.0, "frame_width": 168, "frame_height": 84, "vision_tokens": 10800,
        })
    return rows


def describe_work(corpus, row: dict) -> dict:
    """A trivial describe: the values a real one records, computed from nothing."""
    return {"description_path": f"descriptions/{row['chunk_id']}.json", "describe_backend": "openai",
            "describe_model": "gpt-4o-mini-2024-07-18", "prompt_tokens": 12_345, "completion_tokens": 678,
            "cost_usd": 0.0023}


def spread(rows: list[dict], k: int) -> list[dict]:
    """k rows spread over the whole table (not only its head)."""
    step = max(1, len(rows) // k)
    return rows[::step][:k]


def through_runner(cls, template: Path, work: Path, items: int) -> dict:
    """One describe run over `items` rows of a fresh copy of the template. ms per item over the whole run
    (the loop, every record, the fold at its end), and apart: the first record (the new path reads the
    table there, once a run) and the fold."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(template, work / "chunks.csv")
    manifest = cls(work / "chunks.csv", CHUNKS)
    rows = spread(manifest.read(), items)
    calls: dict[str, list[float]] = {"record": [], "compact": []}

    def timed(name, inner):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                calls[name].append(time.perf_counter() - t)
        return call

    manifest.record = timed("record", manifest.record)
    manifest.compact = timed("compact", manifest.compact)
    t0 = time.perf_counter()
    result = run_stage(Stage("describe", "chunks", describe_work), SimpleNamespace(chunks=manifest), rows)
    total = time.perf_counter() - t0
    assert len(result.done) == len(rows) and not result.failed
    got = manifest.rows_by_key()
    assert all(got[r["chunk_id"]]["describe_status"] == DONE for r in rows)
    return {"items": len(rows), "item_ms": total / len(rows) * 1e3, "first_record_ms": calls["record"][0] * 1e3,
            "later_record_ms": statistics.median(calls["record"][1:] or calls["record"]) * 1e3,
            "fold_ms": sum(calls["compact"]) * 1e3}


def median_run(cls, template: Path, work: Path, items: int, repeat: int) -> dict:
    runs = [through_runner(cls, template, work, items) for _ in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# ------------------------------------------------------------------ the other two designs, as prototypes
def markers_record(folder: Path, lock, key: str, values: dict) -> None:
    """(b) one marker file per item and stage, written atomically (temp file, fsync, rename, directory fsync)."""
    with lock:
        atomic_write_bytes(folder / f"{key}.describe.json", json.dumps(values).encode())


def markers_read(manifest: Manifest, folder: Path) -> list[dict]:
    rows = manifest._parse(manifest._decode(manifest.path.read_bytes()))
    index = {r["chunk_id"]: r for r in rows}
    for name in os.listdir(folder):
        index[name.split(".")[0]].update(json.loads((folder / name).read_bytes()))
    return rows


def sqlite_open(path: Path) -> sqlite3.Connection:
    """(c) a WAL-mode sqlite file beside the CSV, fsynced per commit (synchronous=FULL)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS status (key TEXT, stage TEXT, v TEXT, PRIMARY KEY (key, stage))")
    return db


def sqlite_read(manifest: Manifest, db: sqlite3.Connection) -> list[dict]:
    rows = manifest._parse(manifest._decode(manifest.path.read_bytes()))
    index = {r["chunk_id"]: r for r in rows}
    for key, v in db.execute("SELECT key, v FROM status"):
        index[key].update(json.loads(v))
    return rows


def alternatives(template: Path, work: Path, items: int) -> dict:
    """Per-record ms for the journal, markers and sqlite (`items` records), and ms for a read of the table
    with every row recorded (each design's worst case before a fold)."""
    out = {}
    values = describe_work(None, {"chunk_id": "x"}) | {"describe_status": "done"}
    for design in ("journal", "markers", "sqlite"):
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        shutil.copy(template, work / "chunks.csv")
        manifest = Manifest(work / "chunks.csv", CHUNKS)
        keys = [r["chunk_id"] for r in manifest.read()]
        picked = keys[1:][:: max(1, len(keys) // items)][:items]
        folder, db = work / "chunks.csv.d", None
        folder.mkdir()
        if design == "sqlite":
            db = sqlite_open(work / "chunks.csv.sqlite")
        elif design == "journal":  # the table is read once a run, by the first record: not timed here (the
            manifest.record(keys[0], "describe", DONE)  # prototypes make no checks, so they need no rows)
        t0 = time.perf_counter()
        for key in picked:
            if design == "journal":
                manifest.record(key, "describe", DONE, **{k: v for k, v in values.items() if k != "describe_status"})
            elif design == "markers":
                markers_record(folder, manifest._lock, key, values)
            else:
                with manifest._lock:
                    db.execute("INSERT OR REPLACE INTO status VALUES (?, 'describe', ?)", (key, json.dumps(values)))
        record_ms = (time.perf_counter() - t0) / len(picked) * 1e3
        # every row recorded (without fsync: only the read is timed), as at the end of a stage before its fold
        if design == "journal":
            line = {"key": "", "stage": "describe", "set": {k: str(v) for k, v in values.items()}}
            with open(manifest.journal_path, "a") as fh:
                fh.writelines(json.dumps(line | {"key": k}) + "\n" for k in keys)
            read = manifest.read
        elif design == "markers":
            for k in keys:
                (folder / f"{k}.describe.json").write_text(json.dumps(values))
            read = lambda: markers_read(manifest, folder)  # noqa: E731
        else:
            db.executemany("INSERT OR REPLACE INTO status VALUES (?, 'describe', ?)",
                           [(k, json.dumps(values)) for k in keys])
            read = lambda: sqlite_read(manifest, db)  # noqa: E731
        t0 = time.perf_counter()
        got = read()
        read_ms = (time.perf_counter() - t0) * 1e3
        assert all(r["describe_status"] == DONE for r in got)
        if db is not None:
            db.close()
        out[design] = {"record_ms": record_ms, "read_all_recorded_ms": read_ms}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,2300,23000", help="row counts, comma-separated")
    ap.add_argument("--items", type=int, default=0, help="items recorded per run on the new path (0: every row)")
    ap.add_argument("--old-items", type=int, default=20,
                    help="items recorded per run on the old path (each costs the same: a whole rewrite)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is kept)")
    ap.add_argument("--alternatives", action="store_true", help="also measure per-item markers and sqlite")
    ap.add_argument("--alt-items", type=int, default=300, help="records per design with --alternatives")
    ap.add_argument("--out", default=os.environ.get("OUT"), help="folder for manifest_bookkeeping.json")
    args = ap.parse_args()
    console.set_verbosity(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="manifest_bookkeeping."))
    results: dict = {"cpu": f"{os.cpu_count()} cores", "sizes": {}}
    try:
        for n in sizes:
            template = base / f"template{n}" / "chunks.csv"
            Manifest(template, CHUNKS).write(chunk_rows(n))
            (template.parent / "chunks.csv.journal").unlink()  # a CSV as an older streamlearn left it
            size = {"csv_bytes": template.stat().st_size}
            for label, cls, items in (("old", WholeRewrite, args.old_items), ("new", Manifest, args.items)):
                got = median_run(cls, template, base / "work", min(n, items or n), args.repeat)
                size[label] = got
                print(f"{n:>6} rows  {label}: {got['item_ms']:8.3f} ms/item over a run of {got['items']} items "
                      f"(first record {got['first_record_ms']:.1f} ms, later ones {got['later_record_ms']:.3f} ms, "
                      f"fold {got['fold_ms']:.1f} ms)", flush=True)
            if args.alternatives:
                size["alternatives"] = alternatives(template, base / "work", min(n, args.alt_items))
                for design, got in size["alternatives"].items():
                    print(f"{n:>6} rows  {design:>8}: record {got['record_ms']:8.3f} ms/item  read with every row "
                          f"recorded {got['read_all_recorded_ms']:8.1f} ms", flush=True)
            results["sizes"][n] = size
        small = min(sizes)
        print()
        for n in sizes:
            old, new = results["sizes"][n]["old"], results["sizes"][n]["new"]
            line = f"{n:>6} rows: new is {old['item_ms'] / new['item_ms']:6.1f}x faster than old"
            if n != small:
                for label, got in (("old", old), ("new", new)):
                    ratio = got["item_ms"] / results["sizes"][small][label]["item_ms"]
                    results["sizes"][n][label][f"ratio_vs_{small}"] = ratio
                    line += f"; {label} {ratio:5.2f}x its cost at {small} rows"
            print(line)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "manifest_bookkeeping.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
