"""The runner on fake stages, fast: which rows a stage selects (pending and failed, waiting ones said
once), what it records for done, failed and not-applicable items, and that items sharing a group run in
order while groups run in parallel.

Run: python -m pytest tests/test_runner.py -q
"""

from __future__ import annotations

import threading
import time

from streamlearn.core.config import Config
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import NotApplicable
from streamlearn.core.manifest import DONE, FAILED, SKIPPED, status_of
from streamlearn.runner import Stage, run_stage, select

SEEN: list[str] = []
LOCK = threading.Lock()


def fake_work(corpus, row):
    if row["video_id"] == "v2":
        raise ValueError("the file is truncated")
    if row["video_id"] == "v3":
        raise NotApplicable("no audio track")
    with LOCK:
        SEEN.append(row["video_id"])
    time.sleep(0.01)
    return {"media_bytes": 123}


def corpus_with(tmp_path, n: int) -> Corpus:
    corpus, _ = Corpus.init(tmp_path / "c", Config())
    corpus.videos.upsert([{"video_id": f"v{i}", "title": f"t{i}", "channel": "a" if i % 2 else "b"}
                          for i in range(1, n + 1)])
    return corpus


def test_select_run_record_and_waiting_rows(tmp_path, capsys):
    corpus = corpus_with(tmp_path, 4)
    rows, waiting = select(corpus.videos, "transcribe", requires=("download",))
    assert rows == [] and waiting == {f"v{i}": "download not done" for i in range(1, 5)}
    assert "transcribe: 4 items wait for a prerequisite (e.g. v1: download not done); run that stage first" in \
        capsys.readouterr().out
    download = Stage("download", "videos", fake_work)
    rows, waiting = select(corpus.videos, "download")
    assert [r["video_id"] for r in rows] == ["v1", "v2", "v3", "v4"] and waiting == {}
    result = run_stage(download, corpus, rows)
    assert result.done == ["v1", "v4"] and result.failed == {"v2": "ValueError: the file is truncated"}
    assert result.skipped == {"v3": "no audio track"} and not result.ok
    got = corpus.videos.rows_by_key()
    assert [status_of(got[f"v{i}"], "download") for i in range(1, 5)] == [DONE, FAILED, SKIPPED, DONE]
    assert got["v1"]["media_bytes"] == 123 and got["v2"]["download_error"] == "ValueError: the file is truncated"
    # a re-run takes the failed row only; --force takes every row
    assert [r["video_id"] for r in select(corpus.videos, "download")[0]] == ["v2"]
    assert len(select(corpus.videos, "download", force=True)[0]) == 4
    # the next stage: done and skipped prerequisites count (the worker decides), the failed one waits
    rows, waiting = select(corpus.videos, "transcribe", requires=("download",))
    assert [r["video_id"] for r in rows] == ["v1", "v3", "v4"] and waiting == {"v2": "download not done"}


def test_groups_run_in_order_in_parallel(tmp_path):
    corpus = corpus_with(tmp_path, 8)
    SEEN.clear()
    stage = Stage("download", "videos", fake_work, group_by="channel")
    rows = [r for r in select(corpus.videos, "download")[0] if r["video_id"] not in ("v2", "v3")]  # ones that finish
    result = run_stage(stage, corpus, rows, parallel=3)
    assert sorted(result.done) == ["v1", "v4", "v5", "v6", "v7", "v8"]
    for channel in ("a", "b"):
        ids = [r["video_id"] for r in rows if r["channel"] == channel]
        assert [v for v in SEEN if v in ids] == ids  # a group's items in their order, one worker
