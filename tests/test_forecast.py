"""The forecast of what a run writes (issue 28): `plan CORPUS --forecast`, train refused before writing
anything when its states and exports do not fit the free space, and the forecast against what a run wrote.

Run: python -m pytest tests/test_forecast.py -q
"""

from __future__ import annotations

import shutil
from collections import namedtuple

from trainkit import make_train_corpus

from streamlearn.corpus import forecast as F

FAST = {"lr": 1e-3, "warmup_steps": 1}
Usage = namedtuple("Usage", "total used free")


def size_of(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_train_that_does_not_fit_is_refused_before_writing(tmp_path, run_cli, monkeypatch):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1, train=FAST)
    real = shutil.disk_usage
    monkeypatch.setattr(F.shutil, "disk_usage", lambda p: Usage(10**12, 10**12 - 10**6, 10**6))  # 1 MB free
    res = run_cli("train", corpus.root)
    assert res.exit_code == 1 and not (corpus.root / "runs" / "main").exists()
    assert "train would write ~" in res.output and "but 0.00 GB are free on the corpus's filesystem; lower " \
        "train.keep_days (1 keeps only the newest state)" in res.output
    res = run_cli("plan", corpus.root, "--forecast")
    assert res.exit_code == 0 and "of 0.00 GB free here" in res.output and "Day-N exports" in res.output
    monkeypatch.setattr(F.shutil, "disk_usage", real)  # with room, the check passes and says what it keeps
    need = F.check_room(corpus, corpus.config.train, 1)
    assert need["states_kept"] == 1 and need["states"] > 0 and need["exports"] == 2 * need["export_each"]


def test_the_forecast_is_what_a_run_writes(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=1, train=FAST)
    f = F.forecast(corpus)
    # the default keeps the newest state only; eval: weights, video and rag at Day-0, 1 and 2
    assert (f["days"], f["states_kept"], f["eval_passes"]) == (2, 1, 3 * 3)
    assert run_cli("train", corpus.root).exit_code == 0
    run = corpus.root / "runs" / "main"
    wrote = size_of(run / "checkpoints") + size_of(run / "export")
    assert 0.8 < (f["states"] + f["exports"]) / wrote < 1.2, (f["states"], f["exports"], wrote)


def test_frames_that_do_not_fit_are_refused_before_caching(tmp_path, run_cli, monkeypatch):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1, train=FAST)
    corpus.chunks.reset_stage([r["chunk_id"] for r in corpus.chunks.read()], "frames")  # not cached yet
    for f in (corpus.root / "frames").glob("*.npy"):
        f.unlink()
    monkeypatch.setattr(F.shutil, "disk_usage", lambda p: Usage(10**12, 10**12 - 10**3, 10**3))  # 1 kB free
    res = run_cli("frames", corpus.root)
    assert res.exit_code == 1 and not list((corpus.root / "frames").glob("*.npy"))
    assert "frames would cache ~" in res.output and "for 1 chunks but 0.00 GB are free on the corpus's filesystem; " \
        "lower the operating point" in res.output
    assert F.eval_passes(["weights", "video", "openai"], list(range(1, 36))) == 36 + 8 + 1  # video: 8 of 36
