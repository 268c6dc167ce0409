"""The Ray executor: the same manifests as the local one, failures recorded with their reasons (the
exports are tested in test_export.py).

Run: python -m pytest tests/test_interop.py -q
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import downloaded_tour

from streamlearn.chunk import run_chunk
from streamlearn.chunk.frames import run_frames
from streamlearn.runner import Executor


@pytest.fixture(scope="module")
def base_corpus(tour, tmp_path_factory):
    return downloaded_tour(tour, tmp_path_factory.mktemp("interop"))


def test_ray_executor_gives_the_same_manifests(base_corpus, tmp_path):
    from streamlearn.corpus.layout import Corpus

    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    shutil.copytree(base_corpus.root, local_root)
    shutil.copytree(base_corpus.root, ray_root)
    local, remote = Corpus.open(local_root), Corpus.open(ray_root)
    assert run_chunk(local).ok and run_frames(local).ok
    ex = Executor(kind="ray", parallel=2)
    try:
        assert run_chunk(remote, executor=ex).ok
        assert run_frames(remote, executor=ex).ok
    finally:
        import ray

        ray.shutdown()
    assert (ray_root / "chunks.csv").read_text() == (local_root / "chunks.csv").read_text()
    assert (ray_root / "videos.csv").read_text() == (local_root / "videos.csv").read_text()
    for npy in sorted((local_root / "frames").glob("*.npy")):
        assert np.array_equal(np.load(npy), np.load(ray_root / "frames" / npy.name))


def test_ray_records_failures_with_reasons(base_corpus, tmp_path):
    from streamlearn.corpus.layout import Corpus

    root = tmp_path / "c"
    shutil.copytree(base_corpus.root, root)
    corpus = Corpus.open(root)
    victim = corpus.videos.read()[0]
    corpus.abs(victim["media_path"]).resolve().write_bytes(b"broken")
    try:
        result = run_chunk(corpus, executor=Executor(kind="ray", parallel=2))
    finally:
        import ray

        ray.shutdown()
    assert "not a media file" in result.failed[victim["video_id"]]
    assert len(result.done) == len(corpus.videos.read()) - 1
    assert corpus.videos.get(victim["video_id"])["chunk_status"] == "failed"
