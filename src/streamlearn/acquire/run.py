"""`streamlearn acquire`: the acquire steps in order, each resuming from videos.csv."""

from __future__ import annotations

from pathlib import Path

from streamlearn.core import console
from streamlearn.acquire.diarize import run_diarize
from streamlearn.acquire.download import run_download
from streamlearn.acquire.playlist import run_playlist
from streamlearn.acquire.transcribe import run_transcribe
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.runner import StageResult, stage_lock


def run_acquire(corpus: Corpus, url: str | None = None, from_jsonl: Path | None = None,
                from_dir: Path | None = None, parallel: int = 1) -> list[StageResult]:
    if url or from_jsonl or from_dir:
        run_playlist(corpus, url=url, from_jsonl=from_jsonl, from_dir=from_dir)
    elif not corpus.videos.read():
        raise StreamlearnError("videos.csv is empty; pass --url, --from-jsonl or --from-dir")
    results = []
    for name, step in (("download", run_download), ("transcribe", run_transcribe), ("diarize", run_diarize)):
        with stage_lock(corpus, name):  # as the stage's own command holds it
            results.append(step(corpus, parallel=parallel))
    failed = sum(len(r.failed) for r in results)
    console.info(f"acquire: finished with {failed} failed items; `streamlearn status` lists them")
    return results
