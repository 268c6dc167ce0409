"""The seed's scale in the bookkeeping (issue 26): a corpus of the seed's shape (67 videos, 2,290
chunks of 20 minutes, 752.8 h) whose rows are written as the stages write them and whose store
objects are small files. `status` must count chunks, hours, bytes and failures exactly, and
`chunk --verify` must name one planted fault, alone, among 2,290 chunks. (The media path at this size
is `benchmarks/scale.py --seed-shape`; these tests hold the numbers, not the speed.)"""

from __future__ import annotations

import hashlib

import pytest

from streamlearn.chunk import verify
from streamlearn.corpus.layout import Corpus
from streamlearn.corpus.status import corpus_status, format_status
from streamlearn.core.store import store_for

# 55 videos of 34 chunks (11.18 h) and 12 of 35 (11.49 h): the seed's 2,290 chunks and 752.8 h
SHAPE = [(11.18 * 3600, 34)] * 55 + [(11.49 * 3600, 35)] * 12


@pytest.fixture(scope="module")
def seed_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed") / "corpus"
    corpus, _ = Corpus.init(root)
    store = store_for(corpus)
    videos, chunks, updates = [], [], []
    for v, (seconds, n) in enumerate(SHAPE):
        vid = f"v{v:02d}"
        videos.append({"video_id": vid, "title": f"day {v}", "source": "dir", "duration_s": seconds})
        updates.append((vid, "download", "done", None, {"probe_duration_s": seconds, "media_bytes": 1000 + v}))
        updates.append((vid, "chunk", "done", None, {"n_chunks": n, "chunk_seconds": 1200.0}))
        for i in range(n):
            start, end = i * 1200.0, min(seconds, (i + 1) * 1200.0)
            cid = f"{vid}_c{i:03d}"
            body = f"chunk {cid}\n".encode() * 8
            path = store.local_path(f"{vid}/{cid}.mkv")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            chunks.append({"chunk_id": cid, "video_id": vid, "chunk_index": i, "n_chunks": n, "start_s": start,
                           "end_s": end, "duration_s": end - start, "chunk_seconds": 1200.0,
                           "media_uri": store.uri(f"{vid}/{cid}.mkv"), "bytes": len(body),
                           "sha256": hashlib.sha256(body).hexdigest(), "day_index": v + 1})
    corpus.videos.upsert(videos)
    corpus.videos.record_many(updates)
    corpus.chunks.upsert(chunks)
    # frames failed on 3 chunks and is done on the rest, as a partial run leaves it
    failed = {chunks[7]["chunk_id"], chunks[1000]["chunk_id"], chunks[-1]["chunk_id"]}
    corpus.chunks.record_many((c["chunk_id"], "frames", "failed" if c["chunk_id"] in failed else "done",
                               "decoder error (planted)" if c["chunk_id"] in failed else None, {})
                              for c in chunks)
    return Corpus.open(root), store, chunks, failed


def test_status_counts_the_seed_shape_exactly(seed_corpus):
    corpus, _, chunks, failed = seed_corpus
    report = corpus_status(corpus)
    assert report["chunks"]["rows"] == 2290 and report["videos"]["rows"] == 67
    assert report["chunks"]["hours"] == pytest.approx(sum(c["duration_s"] for c in chunks) / 3600, abs=1e-4)
    assert report["chunks"]["hours"] == pytest.approx(752.8, abs=0.05)
    assert report["chunks"]["bytes"] == sum(c["bytes"] for c in chunks)
    assert report["videos"]["bytes"] == sum(1000 + v for v in range(67))
    frames = next(s for s in report["stages"] if s["table"] == "chunks" and s["stage"] == "frames")
    assert (frames["done"], frames["failed"], frames["pending"]) == (2287, 3, 0)
    assert frames["hours"] == pytest.approx(sum(c["duration_s"] for c in chunks) / 3600 - sum(c["duration_s"] for c in chunks
                                                        if c["chunk_id"] in failed) / 3600, abs=1e-3)
    assert {f["id"] for f in report["failed"]} == failed
    assert all(f["error"] == "decoder error (planted)" for f in report["failed"])
    assert report["problems"] == []
    text = format_status(report)
    assert "2,290" in text or "2290" in text


def test_verify_names_one_planted_fault_among_2290_chunks(seed_corpus):
    corpus, store, chunks, _ = seed_corpus
    assert verify(corpus) == []
    victim = chunks[1145]
    path = store.local_path(store.rel_of(victim["media_uri"]))
    saved = path.read_bytes()
    try:
        path.write_bytes(saved[:40] + bytes([saved[40] ^ 0xFF]) + saved[41:])  # same size, one byte flipped
        problems = verify(corpus)
        assert len(problems) == 1 and problems[0].startswith(f"{victim['chunk_id']}: object ")
        assert verify(corpus, check_hash=False) == []  # --quick checks sizes only: a flipped byte passes it
        path.unlink()
        assert verify(corpus, check_hash=False) == [f"{victim['chunk_id']}: object {victim['media_uri']} is missing"]
    finally:
        path.write_bytes(saved)
    assert verify(corpus) == []
