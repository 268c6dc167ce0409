"""The manifest's journal (issue 26): a record appends one line instead of rewriting the table; reads
apply it; folds put it into the CSV; the caller-visible behaviour of `record_many` is unchanged; several
writers (threads, processes, a killed one) lose nothing; a torn line, a fold cut short and a hand edit
are all read as they should be. (`streamlearn status` over records not yet folded: test_cli.py.)

Run: python -m pytest tests/test_manifest_journal.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from spawnkit import run_processes

import streamlearn.core.manifest as M
from streamlearn.core.errors import ManifestError
from streamlearn.core.manifest import DONE, FAILED, Column, Manifest, Table

T = Table(name="items", key="item_id", static=(Column("title"), Column("size", "int")),
          stages={"fetch": (Column("path"), Column("ok", "bool"), Column("secs", "float")),
                  "tag": (Column("label"),)})


def items(tmp_path: Path, n: int = 6, name: str = "items.csv") -> Manifest:
    m = Manifest(tmp_path / name, T)
    m.upsert([{"item_id": f"i{k}", "title": f"t{k}", "size": k} for k in range(n)])
    return m


def csv_alone(m: Manifest, tmp_path: Path) -> list[dict]:
    """What the CSV holds by itself: a copy read without its journal."""
    alone = tmp_path / "alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(m.path, alone / m.path.name)
    return Manifest(alone / m.path.name, T).read()


def journal_lines(m: Manifest) -> list[dict]:
    return [json.loads(line) for line in m.journal_path.read_text().splitlines()]


def test_a_record_appends_one_line_and_a_fold_puts_it_in_the_csv(tmp_path):
    m = items(tmp_path)
    csv_before = m.path.read_bytes()
    got = m.record("i1", "fetch", DONE, path="p/1", ok=True, secs=1.23456789)
    assert got["fetch_status"] == DONE and got["secs"] == 1.23456789 and got["title"] == "t1"  # as before
    assert m.path.read_bytes() == csv_before  # the table was not rewritten
    header, line = journal_lines(m)
    assert header["journal_of"] == "items.csv" and header["token"]
    assert line == {"key": "i1", "stage": "fetch", "set": {"fetch_status": "done", "fetch_error": "", "path": "p/1",
                                                          "ok": "true", "secs": "1.234568"}}
    merged = m.read()
    assert merged[1]["fetch_status"] == DONE and merged[1]["secs"] == 1.234568  # as the CSV will hold it
    m.compact()
    assert len(journal_lines(m)) == 1 and journal_lines(m)[0]["token"] != header["token"]  # a new journal
    assert m.read() == merged == csv_alone(m, tmp_path)


def test_record_many_keeps_its_checks_its_return_and_the_whole_stage_state(tmp_path):
    m = items(tmp_path)
    m.record("i0", "fetch", FAILED, error="boom", path="half", secs=2.0)
    out = m.record_many([("i0", "fetch", DONE, None, {"path": "p/0"}), ("i2", "tag", DONE, None, {"label": "x"})])
    assert [r["item_id"] for r in out] == ["i0", "i2"]
    row = m.get("i0")  # the earlier attempt's values went with it
    assert row["fetch_status"] == DONE and row["fetch_error"] is None and row["path"] == "p/0" and row["secs"] is None
    before = m.journal_path.read_bytes()
    with pytest.raises(ManifestError, match=r"^items.csv: i0 is already done for fetch; pass --force to redo it$"):
        m.record_many([("i3", "fetch", DONE, None, {}), ("i0", "fetch", FAILED, "again", {})])
    with pytest.raises(ManifestError, match=r"^items.csv: no row with item_id 'nope'; run the stage that creates it"):
        m.record("nope", "fetch", DONE)
    with pytest.raises(AssertionError, match=r"columns \['label'\] do not belong to stage fetch"):
        m.record("i3", "fetch", DONE, label="x")
    with pytest.raises(ManifestError, match="i4 is already done for tag"):  # a batch sees its own earlier updates
        m.record_many([("i4", "tag", DONE, None, {}), ("i4", "tag", DONE, None, {})])
    assert m.journal_path.read_bytes() == before  # a refused call records nothing, not even its first update
    assert m.get("i3")["fetch_status"] is None
    m.record("i0", "fetch", FAILED, error="redo", force=True)
    assert m.get("i0")["fetch_status"] == FAILED


def test_a_batch_is_one_line(tmp_path):
    m = items(tmp_path)
    m.record_many([("i1", "tag", DONE, None, {"label": "a"}), ("i2", "tag", DONE, None, {"label": "b"})])
    batch = journal_lines(m)[1]
    assert [r["key"] for r in batch] == ["i1", "i2"]  # a kill mid-append loses both or neither


def test_errors_in_the_journal_are_one_line_and_redacted(tmp_path):
    m = items(tmp_path)
    secret = "sk-proj-" + "A1b2C3d4" * 4
    m.record("i1", "fetch", FAILED, error=f"HTTP 401 for key {secret}\ntraceback line")
    text = m.journal_path.read_text()
    assert secret not in text and "HTTP 401 for key *** traceback line" in text
    m.compact()
    assert secret not in m.path.read_text()


def test_a_journal_that_outgrows_the_csv_is_folded(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "FOLD_FLOOR_BYTES", 0)  # as a large table's journal would, past the CSV's size
    m = items(tmp_path, 2)
    for n in range(12):
        m.record(f"i{n % 2}", "fetch", DONE, force=True, path="x" * 40 + str(n))
        assert m.journal_path.stat().st_size <= m.path.stat().st_size + 400  # one line past it at most
    assert [r["path"][-2:] for r in m.read()] == ["10", "11"]
    assert "x" * 40 in m.path.read_text()  # folded without a compact()


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    m = items(tmp_path)
    m.record("i1", "tag", DONE, label="kept")
    whole = m.journal_path.read_bytes()
    with open(m.journal_path, "ab") as fh:
        fh.write(b'{"key":"i2","stage":"tag","set":{"tag_st')  # a writer killed mid-append
    assert m.get("i1")["label"] == "kept" and m.get("i2")["tag_status"] is None
    m.record("i3", "tag", DONE, label="after")
    text = m.journal_path.read_bytes()
    assert text.startswith(whole) and b"tag_st\n" not in text and b'"i2"' not in text
    assert [r["label"] for r in m.read()][1:4] == ["kept", None, "after"]
    with open(m.journal_path, "ab") as fh:
        fh.write(b"\x00" * 40 + b"\n")  # a last line that does not parse, newline and all
    assert m.get("i3")["label"] == "after"
    m.record("i4", "tag", DONE)
    assert b"\x00" not in m.journal_path.read_bytes()


def test_a_bad_line_inside_the_journal_is_an_error_naming_it(tmp_path):
    m = items(tmp_path)
    m.record("i1", "tag", DONE)
    m.record("i2", "tag", DONE)
    lines = m.journal_path.read_text().splitlines()
    lines[1] = "not json"
    m.journal_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"^items.csv.journal line 2: not a journal record; delete that line"):
        m.read()
    m.journal_path.write_text("item_id,title\n")
    with pytest.raises(ManifestError, match=r"^items.csv.journal: the first line is not a journal header"):
        m.read()


def test_replaying_a_journal_the_csv_already_holds_changes_nothing(tmp_path):
    """A kill between a fold's CSV rename and its new journal leaves the old journal beside a CSV that holds
    it; reading it, recording after it and folding it again give the same rows."""
    m = items(tmp_path)
    m.record("i1", "fetch", FAILED, error="first try", path="x")
    m.record("i1", "fetch", DONE, path="second", ok=True, force=True)
    m.record("i2", "tag", DONE, label="L")
    old_journal = m.journal_path.read_bytes()
    merged = m.read()
    m.compact()
    m.journal_path.write_bytes(old_journal)  # as if the fold was killed after its rename
    assert m.read() == merged == csv_alone(m, tmp_path)
    m.record("i3", "tag", DONE, label="M")
    m.compact()
    m.compact()  # nothing left to fold: the CSV is not touched
    assert [r["label"] for r in csv_alone(m, tmp_path)] == [None, None, "L", "M", None, None]
    assert csv_alone(m, tmp_path)[1]["path"] == "second"


def test_a_whole_table_write_cut_short_does_not_undo_itself(tmp_path, monkeypatch):
    """reset_stage (like transform, upsert and write) folds the journal first: killed before its new
    journal, it leaves a journal with no records that could put the cleared values back."""
    m = items(tmp_path)
    m.record("i1", "fetch", DONE, path="p")
    journals = []
    real = M.atomic_write_bytes

    def killed_at_the_second_journal(path, data):
        if Path(path) == m.journal_path:
            journals.append(path)
            if len(journals) == 2:
                raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(M, "atomic_write_bytes", killed_at_the_second_journal)
    with pytest.raises(KeyboardInterrupt):
        m.reset_stage(["i1"], "fetch")
    monkeypatch.undo()
    assert m.get("i1")["fetch_status"] is None and m.get("i1")["path"] is None


def test_the_runner_leaves_everything_in_the_csv_even_when_interrupted(tmp_path):
    from streamlearn.runner import Stage, run_stage

    m = items(tmp_path)

    def work(corpus, row):
        if row["item_id"] == "i3":
            raise KeyboardInterrupt  # ^C in the middle of a stage
        return {"label": row["title"]}

    rows = m.read()
    assert run_stage(Stage("tag", "videos", work), SimpleNamespace(videos=m), rows[:3]).done == ["i0", "i1", "i2"]
    assert len(journal_lines(m)) == 1 and m.read() == csv_alone(m, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_stage(Stage("tag", "videos", work), SimpleNamespace(videos=m), rows, force=True)
    assert len(journal_lines(m)) == 1
    assert [r["label"] for r in csv_alone(m, tmp_path)] == ["t0", "t1", "t2", None, None, None]


def test_a_hand_edit_and_another_writer_are_seen_by_the_next_record(tmp_path):
    """Each writer keeps the rows it checks against between records; another writer's lines, a fold and a
    hand edit of the CSV all reach it."""
    a = items(tmp_path)
    b = Manifest(a.path, T)
    a.record("i0", "tag", DONE)  # a reads the table
    b.record("i1", "tag", DONE)
    with pytest.raises(ManifestError, match="i1 is already done for tag"):
        a.record("i1", "tag", DONE)
    b.compact()
    with pytest.raises(ManifestError, match="i0 is already done for tag"):
        a.record("i0", "tag", DONE)
    b.record("i2", "tag", DONE)
    # a user clears i1 in a spreadsheet (the journal holds nothing about i1 since the fold)
    a.path.write_text(a.path.read_text().replace("i1,t1,1,,,,,,done", "i1,t1,1,,,,,,"))
    a.record("i1", "tag", DONE, label="redone")
    with pytest.raises(ManifestError, match="i2 is already done for tag"):
        a.record("i2", "tag", DONE)
    assert [r["tag_status"] for r in b.read()][:3] == [DONE, DONE, DONE] and b.get("i1")["label"] == "redone"


def test_a_rewritten_csv_that_looks_unchanged_is_still_noticed(tmp_path, monkeypatch):
    """On a filesystem that reuses an inode and keeps coarse mtimes, a rewritten CSV of the same size can
    look unchanged; the new journal token every CSV write brings tells a writer's cache anyway."""
    m = items(tmp_path)
    m.record("i0", "tag", DONE, label="x")
    m.compact()
    monkeypatch.setattr(M, "_identity", lambda st: M._FileId(0, st.st_size, 0))  # such a filesystem
    a = Manifest(m.path, T)
    with pytest.raises(ManifestError, match="i0 is already done for tag"):
        a.record("i0", "tag", DONE)  # a now holds the rows
    size = m.path.stat().st_size
    m.transform(lambda rows: rows[0].update(tag_status=None, label="abcde"))  # another writer redoes i0
    assert m.path.stat().st_size == size
    assert a.record("i0", "tag", DONE, label="y")["label"] == "y"


def test_a_read_racing_a_fold_retries(tmp_path, monkeypatch):
    """A reader that read the CSV before another writer's fold and the journal after it would miss what
    the fold moved; it sees the CSV changed under it and reads again."""
    m = items(tmp_path)
    m.record("i1", "tag", DONE, label="in the journal")
    real, raced = M._read_journal, []

    def fold_first(path, since=None):
        if not raced:
            raced.append(path)
            Manifest(m.path, T).compact()  # between this reader's CSV and its journal
        return real(path, since)

    monkeypatch.setattr(M, "_read_journal", fold_first)
    assert m.get("i1")["label"] == "in the journal" and raced


def test_a_spreadsheet_csv_without_a_journal_reads_as_before(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"\xef\xbb\xbfitem_id,title,size,fetch_status,path\r\na,x,1,done,p\r\nb,y,,,\r\n")
    m = Manifest(path, T)
    rows = m.read()
    assert [(r["item_id"], r["fetch_status"], r["path"], r["size"]) for r in rows] == [("a", DONE, "p", 1),
                                                                                       ("b", None, None, None)]
    assert not m.journal_path.exists()
    m.record("b", "fetch", DONE, path="q")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # a record leaves the user's file as it is
    m.compact()
    assert [r["path"] for r in Manifest(path, T).read()] == ["p", "q"]


def test_threads_lose_nothing(tmp_path):
    m = items(tmp_path, 80)
    other = Manifest(m.path, T)  # a second instance in the same process: its own cache, the same file

    def writer(manifest, keys):
        for k in keys:
            manifest.record(k, "tag", DONE, label=k)
            if k.endswith("7"):
                manifest.compact()

    threads = [threading.Thread(target=writer, args=(mm, [f"i{k}" for k in range(j, 80, 4)]))
               for j, mm in enumerate((m, m, other, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r["label"] == r["item_id"] for r in m.read())
    m.compact()
    assert all(r["label"] == r["item_id"] for r in csv_alone(m, tmp_path))


def _process_writer(path: str, keys: list[str]) -> None:
    m = Manifest(Path(path), T)
    for n, k in enumerate(keys):
        m.record(k, "fetch", DONE, path=f"by-{os.getpid()}", secs=float(n))
        if n % 9 == 8:  # folds from several processes, between the others' appends
            m.compact()
        if n % 13 == 12:
            m.record_many([(k, "tag", DONE, None, {"label": k})])


def test_processes_lose_nothing(tmp_path):
    n_procs, per = 4, 30
    m = items(tmp_path, n_procs * per)
    run_processes(_process_writer, [(str(m.path), [f"i{k}" for k in range(j, n_procs * per, n_procs)])
                                    for j in range(n_procs)])
    rows = m.read()
    assert len(rows) == n_procs * per and all(r["fetch_status"] == DONE for r in rows)
    assert len({r["path"] for r in rows}) == n_procs  # each row holds its own writer's values
    tagged = [r["item_id"] for r in rows if r["tag_status"] == DONE]
    assert len(tagged) == n_procs * 2 and all(m.get(k)["label"] == k for k in tagged)
    m.compact()
    assert csv_alone(m, tmp_path) == rows


KILLED = """
import sys
from pathlib import Path
from streamlearn.core.manifest import Column, Manifest, Table
T = Table(name="items", key="item_id", static=(Column("title"), Column("size", "int")),
          stages={"fetch": (Column("path"), Column("ok", "bool"), Column("secs", "float")),
                  "tag": (Column("label"),)})
m = Manifest(Path(sys.argv[1]), T)
for n in range(100000):
    k = f"i{n % 400}"
    m.record(k, "fetch", "done", force=True, path=str(n), secs=float(n))
    print(k, n, flush=True)  # finished: the record is on disk
    if n % 25 == 24:
        m.compact()
"""


@pytest.mark.parametrize("finished", [37, 180])
def test_a_writer_killed_mid_run_loses_nothing_it_finished(tmp_path, finished):
    m = items(tmp_path, 400)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(m.path)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [str(Path(M.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])})
    last = {}
    for _ in range(finished):
        k, n = proc.stdout.readline().split()
        last[k] = int(n)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = m.rows_by_key()  # reads cleanly, whatever the kill interrupted
    assert all(int(rows[k]["path"]) >= n for k, n in last.items())  # a later record may have finished unseen
    m.record("i399", "tag", DONE)  # and the next writer carries on from it
    m.compact()
    assert all(int(csv_alone(m, tmp_path)[int(k[1:])]["path"]) >= n for k, n in last.items())
