"""Chunking with the real ffmpeg: stream copy, keyframe cuts, coverage and packet conservation,
deterministic resume, node parts and merges, verify, the S3 path against a real S3-compatible
server (moto) on loopback, and bad inputs.

Run: python -m pytest tests/test_chunk.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlearn.acquire.download import run_download
from streamlearn.acquire.playlist import run_playlist
from streamlearn.chunk import merge, run_chunk, verify
from streamlearn.core.config import Config, CorpusSection, StorageSection
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import ManifestError
from streamlearn.core.manifest import Manifest
from streamlearn.corpus.tables import CHUNKS


def packets(path: Path, stream: str) -> list[tuple[float, str]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "packet=pts_time,flags", "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split(",")[:2] for line in out.splitlines() if line.strip()]
    return [(float(t) if t not in ("", "N/A") else 0.0, f) for t, f in rows]


def make_corpus(tmp: Path, tour: Path, variants=("mkv", "mp4"), days=(0, 1), storage: str = "") -> Corpus:
    truth = json.loads((tour / "ground_truth.json").read_text())
    rec = tmp / "recordings"
    rec.mkdir(parents=True, exist_ok=True)
    for d in days:
        vid = truth["days"][d]["video_id"]
        for v in variants:
            shutil.copy(tour / "media" / f"{vid}.{v}", rec / f"day{d + 1}.{v}")
    corpus, _ = Corpus.init(tmp / "corpus", Config(corpus=CorpusSection(timezone="America/Chicago"),
                                                   storage=StorageSection(uri=storage)))
    run_playlist(corpus, from_dir=rec)
    assert run_download(corpus).ok
    return corpus


@pytest.fixture(scope="module")
def chunked(tour, tmp_path_factory):
    corpus = make_corpus(tmp_path_factory.mktemp("chunk"), tour)
    result = run_chunk(corpus, chunk_seconds=10)
    assert result.ok and len(result.done) == 4
    return corpus


def test_rows_ids_and_times(chunked):
    rows = chunked.chunks.read()
    by_video: dict[str, list[dict]] = {}
    for r in rows:
        by_video.setdefault(r["video_id"], []).append(r)
    videos = chunked.videos.rows_by_key()
    assert len(by_video) == 4
    for vid, rs in by_video.items():
        assert [r["chunk_id"] for r in rs] == [f"{vid}_c{i:03d}" for i in range(len(rs))]
        assert len(rs) == 4 and all(r["n_chunks"] == 4 for r in rs)
        assert rs[0]["start_s"] == 0 and all(a["end_s"] == b["start_s"] for a, b in zip(rs, rs[1:]))
        assert abs(sum(r["duration_s"] for r in rs) - videos[vid]["probe_duration_s"]) < 0.1
        # GOP 2 s divides 10 s: cuts land on the requested boundaries (H.264 in MP4 is offset by the
        # first keyframe's presentation delay, 2 frames)
        assert all(abs(r["start_s"] - 10 * i) < 0.1 for i, r in enumerate(rs)), [r["start_s"] for r in rs]
        assert rs[0]["time_source"] == "container" and rs[0]["timezone"] == "America/Chicago"
        start = videos[vid]["release_timestamp"]
        from datetime import datetime, timezone

        assert rs[1]["start_utc"] == datetime.fromtimestamp(start + 10, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert rs[1]["start_local"].endswith("-05:00")  # August in Chicago
        assert rs[0]["media_uri"].startswith(f"store/chunks/{vid}/")  # relative: the corpus can move
    assert chunked.videos.read()[0]["chunk_status"] == "done"
    assert not (chunked.root / ".staging").exists() or not any((chunked.root / ".staging").iterdir())


def test_stream_copy_conserves_packets_and_cuts_on_keyframes(chunked):
    videos = chunked.videos.rows_by_key()
    for vid, row in videos.items():
        src = chunked.abs(row["media_path"])
        parts = [chunked.root / r["media_uri"] for r in chunked.chunks.read() if r["video_id"] == vid]
        for stream in ("v:0", "a:0"):
            assert len(packets(src, stream)) == sum(len(packets(p, stream)) for p in parts), (vid, stream)
        for p in parts:
            first = packets(p, "v:0")[0]
            assert first[1].startswith("K") and first[0] < 0.1  # starts on a keyframe, timestamps reset
        from streamlearn.media.probe import probe

        assert {(probe(p).vcodec, probe(p).acodec) for p in parts} == {(row["vcodec"], row["acodec"])}


def test_keyframe_interval_not_dividing_chunk_length(tour, tmp_path):
    corpus = make_corpus(tmp_path, tour, variants=("mp4",), days=(0,))
    assert run_chunk(corpus, chunk_seconds=7).ok
    rows = corpus.chunks.read()
    starts = [round(r["start_s"]) for r in rows]
    # GOP 2 s: requested cuts at 7, 14, 21... snap to the next keyframe at 8, 14, 22, 28, 36
    assert starts == [0, 8, 14, 22, 28, 36]
    assert problems_ok(verify(corpus))


def problems_ok(problems: list[str]) -> bool:
    assert problems == []
    return True


def test_verify_clean_then_detects_damage(chunked):
    assert verify(chunked) == []
    rows = chunked.chunks.read()
    victim = chunked.root / rows[0]["media_uri"]
    saved = victim.read_bytes()
    try:
        victim.write_bytes(saved[:-10] + b"0123456789")
        problems = verify(chunked)
        uri = rows[0]["media_uri"]
        assert len(problems) == 1 and problems[0].startswith(f"{rows[0]['chunk_id']}: object {uri} has")
        victim.unlink()
        assert verify(chunked, check_hash=False) == [f"{rows[0]['chunk_id']}: object {uri} is missing"]
    finally:
        victim.write_bytes(saved)
    assert verify(chunked) == []


def test_short_unreadable_and_empty_videos(tour, tmp_path):
    corpus = make_corpus(tmp_path, tour, variants=("mkv",), days=(0,))
    vid = corpus.videos.read()[0]["video_id"]
    assert run_chunk(corpus, chunk_seconds=1200).ok  # shorter than one chunk: one chunk
    rows = corpus.chunks.read()
    assert len(rows) == 1 and rows[0]["chunk_id"] == f"{vid}_c000" and rows[0]["n_chunks"] == 1
    media = corpus.abs(corpus.videos.get(vid)["media_path"])
    target = media.resolve()
    saved = target.read_bytes()
    try:
        target.write_bytes(b"not a video at all")
        result = run_chunk(corpus, force=True, chunk_seconds=10)
        assert result.failed[vid] == (f"{media.name}: not a media file (no audio or video container ffmpeg knows); "
                                      "remove it from the folder, or export it from the recorder as MP4/MKV/M4A")
        assert corpus.videos.get(vid)["chunk_status"] == "failed"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.01", "-frames:v", "0",
                        "-f", "matroska", str(target)], check=True)
        result = run_chunk(corpus, chunk_seconds=10)
        assert vid in result.failed and corpus.videos.get(vid)["chunk_status"] == "failed"
    finally:
        target.write_bytes(saved)
    assert len(corpus.chunks.read()) == 1  # the earlier, good rows were not touched by the failures


def test_killed_run_resumes_to_the_same_manifest(tour, tmp_path):
    a = make_corpus(tmp_path / "a", tour)
    b = make_corpus(tmp_path / "b", tour)
    assert run_chunk(a, chunk_seconds=5).ok
    proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "chunk", str(b.root), "--chunk-seconds", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if b.chunks.exists() and len({r["video_id"] for r in b.chunks.read()}) >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_chunk(b, chunk_seconds=5).ok
    assert b.chunks.path.read_text() == a.chunks.path.read_text()
    assert verify(b) == []


def test_node_parts_merge_and_conflicts(tour, tmp_path):
    corpus = make_corpus(tmp_path, tour, variants=("mkv",))
    vids = [r["video_id"] for r in corpus.videos.read()]
    assert run_chunk(corpus, chunk_seconds=10, node="node-a", only=[vids[0]]).ok
    assert run_chunk(corpus, chunk_seconds=10, node="node-b", only=[vids[1]]).ok
    assert not corpus.chunks.exists()
    assert run_chunk(corpus, chunk_seconds=10, node="node-a", only=[vids[0]]).done == []  # already complete
    total, new = merge(corpus)
    # the merged videos record their chunk length as a one-node run does
    assert {corpus.videos.get(v)["chunk_seconds"] for v in vids[:2]} == {10.0}
    assert (total, new) == (8, 8)
    assert {r["node"] for r in corpus.chunks.read()} == {"node-a", "node-b"}
    assert all(r["chunk_status"] == "done" for r in corpus.videos.read())
    assert verify(corpus) == []
    part = Manifest(corpus.folder("parts") / "node-b.csv", CHUNKS)
    part.transform(lambda rows: rows[0].update(sha256="0" * 64))
    with pytest.raises(ManifestError) as e:
        merge(corpus)
    assert str(e.value).startswith(f"merge refused: 1 conflicting duplicate chunk_ids: {vids[1]}_c000 "
                                   "(chunks.csv vs chunks.d/node-b.csv: sha256)")


def test_transcript_slices_are_chunk_relative(tour, tmp_path):
    corpus = make_corpus(tmp_path, tour, variants=("mkv",), days=(0,))
    row = corpus.videos.read()[0]
    vdir = corpus.video_dir(row["video_id"])
    from streamlearn.corpus import transcript

    doc = {"video_id": row["video_id"], "source": "asr", "segments": [
        {"start": 9.0, "end": 12.0, "text": "across the cut", "speaker": "SPEAKER_00", "words": [
            {"start": 9.0, "end": 9.5, "word": "across", "speaker": "SPEAKER_00"},
            {"start": 10.5, "end": 11.0, "word": "the", "speaker": "SPEAKER_00"},
            {"start": 11.2, "end": 12.0, "word": "cut", "speaker": "SPEAKER_00"}]}]}
    transcript.save(vdir / "transcript.speakers.json", doc)
    (vdir / "diarization.rttm").write_text(f"SPEAKER {row['video_id']} 1 9.000 3.000 <NA> <NA> SPEAKER_00 <NA> <NA>\n")

    def point(rows):
        rows[0].update(speaker_transcript_path=corpus.rel(vdir / "transcript.speakers.json"),
                       rttm_path=corpus.rel(vdir / "diarization.rttm"))

    corpus.videos.transform(point)
    assert run_chunk(corpus, chunk_seconds=10).ok
    c1 = corpus.chunks.read()[1]
    sliced = transcript.load(corpus.abs(c1["transcript_path"]))
    off = c1["start_s"]
    assert 10.0 <= off < 10.1 and sliced["offset_s"] == off and sliced["chunk_id"] == c1["chunk_id"]
    assert [(w["word"], w["start"]) for w in sliced["segments"][0]["words"]] == [
        ("the", round(10.5 - off, 3)), ("cut", round(11.2 - off, 3))]
    rttm = corpus.abs(c1["diarization_path"]).read_text().split()
    assert rttm[1] == c1["chunk_id"] and rttm[3:5] == ["0.000", f"{12.0 - off:.3f}"]


def _old_write_slices(corpus, row, chunk_id, start, end):
    """write_slices as it was before issue 28 (the whole transcript and RTTM read for every chunk): the
    reference the one-read slicing must match byte for byte."""
    from streamlearn.corpus import transcript
    from streamlearn.core.files import atomic_write_text

    out = corpus.video_dir(row["video_id"]) / "chunks"
    out.mkdir(exist_ok=True)
    doc = transcript.slice_doc(transcript.load(corpus.abs(row["transcript_path"])), start, end)
    doc["chunk_id"] = chunk_id
    transcript.save(out / f"{chunk_id}.transcript.json", doc)
    lines = []
    for line in corpus.abs(row["rttm_path"]).read_text().splitlines():
        parts = line.split()
        a, b = float(parts[3]), float(parts[3]) + float(parts[4])
        if b <= start or a >= end:
            continue
        a, b = max(a, start) - start, min(b, end) - start
        parts[1], parts[3], parts[4] = chunk_id, f"{a:.3f}", f"{b - a:.3f}"
        lines.append(" ".join(parts))
    atomic_write_text(out / f"{chunk_id}.rttm", "".join(x + "\n" for x in lines))


def test_slices_from_one_read_are_the_per_chunk_slices(tmp_path):
    """Segments and turns across cuts, a segment without words, a segment whose words lie in another chunk
    than its middle, segments out of order: every chunk's slices are the bytes the per-chunk code wrote."""
    import random

    from streamlearn.corpus import transcript
    from streamlearn.chunk.chunking import Slices

    corpus, _ = Corpus.init(tmp_path / "c", Config())
    vid = "vid"
    vdir = corpus.video_dir(vid)
    vdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(4)
    segments = []
    for k in range(120):
        t0 = rng.uniform(0, 590)
        n = rng.choice([0, 1, 3, 8])
        words, t = [], t0
        for j in range(n):
            d = rng.uniform(0.1, 1.5)
            words.append({"start": round(t, 3), "end": round(t + d, 3), "word": f"w{k}_{j}"})
            t += d + rng.uniform(0, 0.4)
        end = max(t, t0 + 0.5) if k % 7 else t0 + 40  # a long segment: its middle far from its words
        segments.append({"start": round(t0, 3), "end": round(end, 3), "text": f"segment {k}",
                         "speaker": f"SPEAKER_0{k % 2}", "words": words})
    transcript.save(vdir / "transcript.json", {"video_id": vid, "source": "asr", "segments": segments})
    turns = [f"SPEAKER {vid} 1 {rng.uniform(0, 600):.3f} {rng.uniform(0.2, 45):.3f} <NA> <NA> SPEAKER_0{k % 3} <NA> "
             "<NA>" for k in range(200)]
    (vdir / "diarization.rttm").write_text("\n".join(turns) + "\n")
    row = {"video_id": vid, "transcript_path": corpus.rel(vdir / "transcript.json"),
           "rttm_path": corpus.rel(vdir / "diarization.rttm")}
    cuts = sorted({0.0, *(round(rng.uniform(1, 600), 6) for _ in range(40))})
    spans = list(zip(cuts, cuts[1:] + [600.0]))
    for i, (a, b) in enumerate(spans):
        _old_write_slices(corpus, row, f"old{i:03d}", a, b)
    slices = Slices(corpus, row, spans)
    for i in range(len(spans)):
        slices.write(i, f"new{i:03d}")
    out = vdir / "chunks"
    kept = 0
    for i in range(len(spans)):
        for ext in (".transcript.json", ".rttm"):
            old = (out / f"old{i:03d}{ext}").read_bytes().replace(f"old{i:03d}".encode(), b"CHUNK")
            assert (out / f"new{i:03d}{ext}").read_bytes().replace(f"new{i:03d}".encode(), b"CHUNK") == old
        kept += len(json.loads((out / f"new{i:03d}.transcript.json").read_text())["segments"])
    assert kept > len(segments)  # segments across cuts are in both chunks


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="tour")
    yield url
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_s3_store_round_trip(tour, tmp_path, s3_server):
    import boto3

    corpus = make_corpus(tmp_path, tour, variants=("mkv",), days=(0,), storage="s3://tour/chunks-v1")
    corpus.config.storage = StorageSection(uri="s3://tour/chunks-v1", endpoint_url=s3_server)
    corpus.save_config()
    assert run_chunk(corpus, chunk_seconds=10).ok
    rows = corpus.chunks.read()
    assert all(r["media_uri"].startswith("s3://tour/chunks-v1/chunks/") for r in rows)
    keys = sorted(o["Key"] for o in boto3.client("s3", endpoint_url=s3_server)
                  .list_objects_v2(Bucket="tour")["Contents"])
    assert keys == sorted(r["media_uri"][len("s3://tour/"):] for r in rows)
    assert verify(corpus) == []
    assert not any((corpus.root / ".staging").rglob("*.mkv"))  # staged copies deleted after upload
    from streamlearn.chunk.frames import run_frames

    assert run_frames(corpus, only=[rows[1]["chunk_id"]]).ok  # frames fetched back from S3
    # a bucket that does not exist, then a server that is not there: failed rows, nothing recorded
    vid = rows[0]["video_id"]
    result = run_chunk(corpus, chunk_seconds=10, store_uri="s3://no-such-bucket/x", force=True)
    assert result.failed[vid].startswith("store s3://no-such-bucket/x: cannot write chunks/")
    assert corpus.videos.get(vid)["chunk_status"] == "failed"
    corpus.config.storage = StorageSection(uri="s3://tour/chunks-v1", endpoint_url="http://127.0.0.1:9")
    corpus.save_config()
    result = run_chunk(corpus, chunk_seconds=10, force=True)
    assert result.failed[vid].startswith("store s3://tour/chunks-v1: cannot write chunks/")
    assert len(corpus.chunks.read()) == len(rows)


def test_sync_is_additive_and_incremental(chunked, tmp_path, run_cli):
    target = tmp_path / "backup"
    res = run_cli("sync", chunked.root, target)
    assert res.exit_code == 0
    assert "sync: 3 copied" in res.output  # config and the two manifests; the media is chunked already
    for name in ("streamlearn.toml", "videos.csv", "chunks.csv"):
        assert (target / "corpus" / name).read_bytes() == (chunked.root / name).read_bytes()
    res = run_cli("sync", chunked.root, target)
    assert "sync: 0 copied (0.0 MB)" in res.output
    extra = chunked.root / "questions" / "bank.jsonl"
    extra.write_text('{"id": "q1"}\n')
    res = run_cli("sync", chunked.root, target)
    assert "sync: 1 copied" in res.output
    extra.unlink()
    run_cli("sync", chunked.root, target)
    assert (target / "corpus" / "questions" / "bank.jsonl").exists()  # never deleted remotely


def test_sync_of_many_files_completes_and_resumes_after_a_crash(chunked, tmp_path, run_cli, monkeypatch):
    """More than 100 files: the state is saved every 50 uploads; a run that dies at upload 75 is resumed
    by the next, which uploads only what the saved state does not show as copied."""
    from streamlearn.chunk import sync
    from streamlearn.core.store import Store

    root = tmp_path / "c"
    shutil.copytree(chunked.root, root)
    for n in range(120):
        (root / "descriptions" / f"note{n:03d}.json").write_text(f'{{"n": {n}}}')
    target = tmp_path / "backup"
    real_put, calls = Store.put, []

    def dying_put(self, local, rel, sha256=None, move=False):
        calls.append(rel)
        if len(calls) == 75:
            raise KeyboardInterrupt  # the process dies: nothing after this is recorded
        return real_put(self, local, rel, sha256=sha256, move=move)

    monkeypatch.setattr(Store, "put", dying_put)
    with pytest.raises(KeyboardInterrupt):
        sync.run_sync(Corpus.open(root), str(target))
    monkeypatch.setattr(Store, "put", real_put)
    res = run_cli("sync", root, target)
    assert res.exit_code == 0, res.output
    total = len(sync.files_to_sync(Corpus.open(root)))
    assert total > 120 and f"sync: {total - 50} copied" in res.output  # the first 50 were recorded
    assert all((target / "corpus" / "descriptions" / f"note{n:03d}.json").exists() for n in range(120))
    assert "sync: 0 copied" in run_cli("sync", root, target).output


@pytest.mark.parametrize("uri", ["store/../../../../etc/hostname", "/etc/hostname"])
def test_a_manifest_path_outside_the_corpus_is_never_read(chunked, tmp_path, run_cli, uri):
    root = tmp_path / "c"
    shutil.copytree(chunked.root, root)
    corpus = Corpus.open(root)
    victim = corpus.chunks.read()[0]["chunk_id"]
    corpus.chunks.transform(lambda rows: [r.update(media_uri=uri) for r in rows if r["chunk_id"] == victim])
    res = run_cli("frames", root, "--force", "--only", victim)
    assert res.exit_code == 1
    row = Corpus.open(root).chunks.get(victim)
    assert row["frames_status"] == "failed" and "is not in the store" in row["frames_error"]
    assert not (root / "frames" / f"{victim}.npy").exists()
    res = run_cli("chunk", root, "--verify", "--quick")
    assert res.exit_code != 0 and f"{victim}: media_uri {uri} is outside the store" in res.output + res.stderr


def test_a_second_run_of_a_stage_stops_at_once_or_waits(chunked, tmp_path, run_cli):
    """Two `frames` on one corpus: the second says which run holds the stage and exits 1, touching no row;
    with --wait it starts when the first is done. A killed holder frees the lock (an OS file lock)."""
    import threading

    from streamlearn.runner import stage_lock

    root = tmp_path / "c"
    shutil.copytree(chunked.root, root)
    corpus = Corpus.open(root)
    before = (root / "chunks.csv").read_text()
    with stage_lock(corpus, "frames"):
        res = run_cli("frames", root)
        assert res.exit_code == 1 and res.stderr.startswith("error: frames is already running on this corpus (pid ")
        assert "pass --wait" in res.stderr and res.stderr.count("\n") == 1
        assert (root / "chunks.csv").read_text() == before
        res = run_cli("chunk", root, "--node", "a")  # another stage, or a node's part, is not held up
        assert "already running" not in (res.stderr or "")
    done = threading.Event()

    def hold():
        with stage_lock(corpus, "frames"):
            done.wait(1.0)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    res = run_cli("frames", root, "--wait")
    t.join()
    assert res.exit_code == 0, res.output
    assert "frames: waiting for the run that holds it" in res.output
    assert all(r["frames_status"] == "done" for r in Corpus.open(root).chunks.read())
