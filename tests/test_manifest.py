"""Manifest module: typed rows, done-row protection, merges, concurrency and crash safety.

Run: python -m pytest tests/test_manifest.py -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spawnkit import run_processes

from streamlearn.core.errors import ManifestError
from streamlearn.core.manifest import DONE, FAILED, Column, Manifest, Table, merge_parts, status_of

T = Table(name="items", key="item_id", static=(Column("title"), Column("size", "int"), Column("dur", "float")),
          stages={"fetch": (Column("path"), Column("ok", "bool"))})


def test_roundtrip_types(tmp_path):
    m = Manifest(tmp_path / "items.csv", T)
    m.upsert([{"item_id": "a", "title": "Día 1, \"quoted\"\nnewline", "size": 3, "dur": 1.25},
              {"item_id": "b", "title": "b", "size": None, "dur": 0.1}])
    rows = m.read()
    assert rows[0]["title"] == "Día 1, \"quoted\"\nnewline"
    assert rows[0]["size"] == 3 and rows[0]["dur"] == 1.25
    assert rows[1]["size"] is None
    assert status_of(rows[0], "fetch") == "pending"
    m.record("a", "fetch", DONE, path="x/a.bin", ok=True)
    row = m.get("a")
    assert row["fetch_status"] == DONE and row["ok"] is True and row["path"] == "x/a.bin"


def test_upsert_never_clobbers(tmp_path):
    m = Manifest(tmp_path / "items.csv", T)
    m.upsert([{"item_id": "a", "title": "first", "size": None}])
    m.record("a", "fetch", DONE, path="p")
    added, filled = m.upsert([{"item_id": "a", "title": "second", "size": 9}, {"item_id": "c", "title": "c"}])
    assert (added, filled) == (1, 1)
    row = m.get("a")
    assert row["title"] == "first" and row["size"] == 9 and row["fetch_status"] == DONE and row["path"] == "p"


def test_done_rows_need_force(tmp_path):
    m = Manifest(tmp_path / "items.csv", T)
    m.upsert([{"item_id": "a"}])
    m.record("a", "fetch", DONE, path="p")
    with pytest.raises(ManifestError, match="items.csv: a is already done for fetch; pass --force to redo it"):
        m.record("a", "fetch", FAILED, error="boom")
    m.record("a", "fetch", FAILED, error="boom\nsecond line", force=True)
    row = m.get("a")
    assert row["fetch_status"] == FAILED and row["fetch_error"] == "boom second line" and row["path"] is None


def test_missing_column_error(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,dur\na,x,1\n")
    with pytest.raises(ManifestError) as e:
        Manifest(p, T).read()
    assert str(e.value).startswith("items.csv: missing column 'size' in the header")


def test_bad_type_error_names_line_and_column(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,size,dur\na,x,1,2.0\nb,y,lots,3\n")
    with pytest.raises(ManifestError) as e:
        Manifest(p, T).read()
    assert str(e.value) == "items.csv line 3, column size: 'lots' is not an integer; fix or clear the value"


def test_duplicate_and_ragged_rows(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,size,dur\na,x,1,2\na,y,1,2\n")
    with pytest.raises(ManifestError, match="line 3: duplicate item_id 'a'"):
        Manifest(p, T).read()
    p.write_text("item_id,title,size,dur\na,x,1\n")
    with pytest.raises(ManifestError, match="line 2: 3 fields where the header has 4"):
        Manifest(p, T).read()


def test_unknown_columns_are_kept(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,title,size,dur,note\na,x,1,2,keep me\n")
    m = Manifest(p, T)
    m.record("a", "fetch", DONE, path="p")
    assert m.get("a")["note"] == "keep me"
    assert p.read_text().splitlines()[0].endswith(",note")


def test_merge_parts_union_and_conflict(tmp_path):
    parts = tmp_path / "items.d"
    parts.mkdir()
    Manifest(parts / "n1.csv", T).upsert([{"item_id": "a", "title": "A", "size": 1}, {"item_id": "b", "title": "B"}])
    Manifest(parts / "n2.csv", T).upsert([{"item_id": "b", "title": "B"}, {"item_id": "c", "title": "C"}])
    target = Manifest(tmp_path / "items.csv", T)
    assert merge_parts(sorted(parts.glob("*.csv")), target) == (3, 3)
    assert [r["item_id"] for r in target.read()] == ["a", "b", "c"]
    Manifest(parts / "n3.csv", T).upsert([{"item_id": "a", "title": "not A"}, {"item_id": "c", "title": "C2"}])
    with pytest.raises(ManifestError) as e:
        merge_parts(sorted(parts.glob("*.csv")), target)
    msg = str(e.value)
    assert msg.startswith("merge refused: 2 conflicting duplicate item_ids: a (items.csv vs items.d/n3.csv: title)")
    assert "c (" in msg
    assert [r["title"] for r in target.read()] == ["A", "B", "C"]  # nothing written


def _worker(path: str, prefix: str, n: int) -> None:
    m = Manifest(Path(path), T)
    for i in range(n):
        m.record(f"{prefix}{i}", "fetch", DONE, path=f"{prefix}-{i}")


def test_two_processes_lose_nothing(tmp_path):
    m = Manifest(tmp_path / "items.csv", T)
    n = 60
    m.upsert([{"item_id": f"{p}{i}"} for p in "xy" for i in range(n)])
    run_processes(_worker, [(str(m.path), p, n) for p in "xy"])
    rows = m.read()
    assert len(rows) == 2 * n
    assert all(r["fetch_status"] == DONE and r["path"] == f"{r['item_id'][0]}-{r['item_id'][1:]}" for r in rows)


WRITER = """
import sys
from pathlib import Path
from streamlearn.core.manifest import Column, Manifest, Table
T = Table(name="items", key="item_id", static=(Column("title"), Column("size", "int"), Column("dur", "float")))
m = Manifest(Path(sys.argv[1]), T)
v = 0
while True:
    v += 1
    m.write([{"item_id": f"r{i}", "title": "x" * 200, "size": v, "dur": 0.5} for i in range(3000)])
    print(v, flush=True)
"""


@settings(max_examples=6, deadline=None)
@given(delay=st.floats(min_value=0.05, max_value=0.6))
def test_sigkill_mid_write_leaves_old_or_new(tmp_path_factory, delay):
    path = tmp_path_factory.mktemp("kill") / "items.csv"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # at least one complete version exists
    assert first.strip() == "1"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = Manifest(path, T).read()  # parses: never truncated
    assert len(rows) == 3000
    versions = {r["size"] for r in rows}
    assert len(versions) == 1 and versions.pop() >= 1


def test_stale_tmp_removed_on_next_write(tmp_path):
    m = Manifest(tmp_path / "items.csv", T)
    (tmp_path / ".items.csv.99999.tmp").write_text("half a file")
    m.upsert([{"item_id": "a"}])
    assert not list(tmp_path.glob(".items.csv.*.tmp"))


def test_a_spreadsheet_bom_bad_bytes_a_misspelled_status_column_and_an_unknown_status(tmp_path):
    path = tmp_path / "items.csv"
    m = Manifest(path, T)
    path.write_bytes(b"\xef\xbb\xbfitem_id,title,size,dur\na,x,1,1.0\n")  # Excel's "CSV UTF-8"
    assert m.read()[0]["item_id"] == "a"
    path.write_bytes(b"item_id,title,size,dur\na,caf\xe9,1,1.0\n")  # Latin-1
    with pytest.raises(ManifestError, match=r"^items.csv line 2: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        m.read()
    path.write_text("item_id,title,size,dur,Fetch_Status\na,x,1,1.0,done\n")
    with pytest.raises(ManifestError, match=r"^items.csv: column 'Fetch_Status' is spelled differently from "
                                            r"'fetch_status'; rename it"):
        m.read()
    path.write_text("item_id,title,size,dur,fetch_status\na,x,1,1.0,DONE\n")
    with pytest.raises(ManifestError, match=r"^items.csv line 2, column fetch_status: 'DONE' is not a status; use one "
                                            r"of pending, done, failed, skipped"):
        m.read()
