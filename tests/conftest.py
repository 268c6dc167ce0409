"""Shared fixtures: a small synthetic tour rendered once per session, served on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tour(tmp_path_factory) -> Path:
    """Two days of 40 s each, both container variants, captions on day 2 only."""
    from streamlearn.testdata.synth import synthesize

    out = tmp_path_factory.mktemp("tour")
    synthesize(out, days=2, minutes=40 / 60, seed=7, speakers=2, scene_seconds=20)
    return out


@pytest.fixture()
def served_tour(tour):
    from streamlearn.testdata.loopback import LoopbackServer

    with LoopbackServer(tour) as srv:
        yield srv


@pytest.fixture()
def run_cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, output, stderr)."""
    from streamlearn.cli import cli

    def _run(*args: str):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return _run


def downloaded_tour(tour: Path, root: Path, variant: str = "mp4"):
    """A corpus of the tour's recordings (one container variant) at a small operating point (20 s
    chunks, 0.5 fps, frames of at most 84x168), through `playlist --from-dir` and `download`."""
    import json
    import shutil

    from streamlearn.acquire.download import run_download
    from streamlearn.acquire.playlist import run_playlist
    from streamlearn.core.config import Config, CorpusSection, OperatingPoint
    from streamlearn.corpus.layout import Corpus

    truth = json.loads((tour / "ground_truth.json").read_text())
    (root / "rec").mkdir(parents=True)
    for d in truth["days"]:
        shutil.copy(tour / "media" / f"{d['video_id']}.{variant}", root / "rec" / f"{d['video_id']}.{variant}")
    op = OperatingPoint(chunk_seconds=20, fps=0.5, max_frames=16, total_pixels=16 * 3136, frame_min_pixels=3136,
                        frame_max_pixels=84 * 168)
    corpus, _ = Corpus.init(root / "corpus", Config(corpus=CorpusSection(timezone="UTC"), operating_point=op))
    run_playlist(corpus, from_dir=root / "rec")
    assert run_download(corpus).ok
    return corpus

