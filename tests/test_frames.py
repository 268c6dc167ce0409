"""Frame cache: sampled like the model's processor, at the planned size, right frames at the right
times; keyframe-only decoding used only where it gives identical frames; bad inputs.

Run: python -m pytest tests/test_frames.py -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from streamlearn.chunk import run_chunk
from streamlearn.core.config import Config, CorpusSection, OperatingPoint
from streamlearn.corpus.layout import Corpus
from streamlearn.corpus.framecache import extract, keyframe_times, load_frames, samples_on_keyframes
from streamlearn.chunk.frames import run_frames
from streamlearn.media.vision_budget import plan


def decode_all_pyav(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def framed(tour, tmp_path_factory):
    from streamlearn.acquire.download import run_download
    from streamlearn.acquire.playlist import run_playlist

    tmp = tmp_path_factory.mktemp("frames")
    vid = json.loads((tour / "ground_truth.json").read_text())["days"][0]["video_id"]
    (tmp / "rec").mkdir()
    shutil.copy(tour / "media" / f"{vid}.mp4", tmp / "rec" / "day1.mp4")
    op = OperatingPoint(chunk_seconds=20, fps=1.0, max_frames=64, total_pixels=20 * 100352 // 2,
                        frame_min_pixels=3136, frame_max_pixels=100352)
    corpus, _ = Corpus.init(tmp / "corpus", Config(corpus=CorpusSection(timezone="UTC"), operating_point=op))
    run_playlist(corpus, from_dir=tmp / "rec")
    run_download(corpus)
    run_chunk(corpus)
    assert run_frames(corpus).ok
    return corpus


def test_cache_matches_the_plan(framed):
    video = framed.videos.read()[0]
    for chunk in framed.chunks.read():
        frames, meta = load_frames(framed, chunk)
        p = plan(chunk["duration_s"], video["width"], video["height"], framed.config.operating_point,
                 source_fps=video["fps"])
        assert frames.shape == (p.n_frames, p.frame_height, p.frame_width, 3) and frames.dtype == np.uint8
        assert meta["grid_thw"] == list(p.grid_thw) and chunk["vision_tokens"] == p.vision_tokens
        assert meta["timestamps"] == [round(i * chunk["duration_s"] / p.n_frames, 4) for i in range(p.n_frames)]
        assert meta["sample_fps"] == p.sample_fps and meta["source"] == "chunk"


def test_frames_are_the_ones_at_the_sample_times(tmp_path):
    """A video whose every frame carries its own index (red level = 4 * (n mod 64)): each cached frame
    must be the source frame nearest its sample time."""
    src = tmp_path / "indexed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=320x180:r=30:d=12",
                    "-vf", "format=rgb24,geq=r='mod(N,64)*4':g=0:b=0", "-c:v", "libx264", "-crf", "1",
                    "-g", "60", "-pix_fmt", "yuv444p", str(src)], check=True)
    n = 12
    for n in (12, 7):  # 1 frame/s, and a step that is not a whole number of source frames
        frames = extract(src, 0.0, 12.0, n, 112, 56)
        for i in range(n):
            got = int(round(frames[i, ..., 0].mean() / 4)) % 64
            want = round(i * 12.0 / n * 30) % 64
            assert min((got - want) % 64, (want - got) % 64) <= 1, (n, i, got, want)


def test_keyframe_only_decoding_is_used_only_when_identical(tmp_path):
    src = tmp_path / "gop1s.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=6", "-c:v", "libx264",
                    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(src)], check=True)
    keys = keyframe_times(src)
    assert keys == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    times = [i * 6 / 6 for i in range(6)]
    assert samples_on_keyframes(times, keys, tolerance=0.5 / 30)
    assert not samples_on_keyframes([t + 0.5 for t in times], keys, tolerance=0.5 / 30)
    fast = extract(src, 0.0, 6.0, 6, 112, 56, keyframes_only=True)
    full = extract(src, 0.0, 6.0, 6, 112, 56, keyframes_only=False)
    assert np.array_equal(fast, full)


def test_sparse_samples_by_seeking_are_the_frames_a_straight_decode_gives(tmp_path, monkeypatch):
    """Samples SEEK_GAP_S or more apart are fetched by one seek each (issue 26): the very frames a
    decode from the start picks, on a video whose frames carry their index, in H.264 and VP9."""
    from streamlearn.corpus import framecache

    real, gap = framecache._extract_seeking, framecache.SEEK_GAP_S
    for codec, name in ((["libx264", "-crf", "1", "-pix_fmt", "yuv444p"], "indexed.mp4"),
                        (["libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "4", "-b:v", "0"],
                         "indexed.mkv")):
        src = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=320x180:r=30:d=40",
                        "-vf", "format=rgb24,geq=r='mod(N,64)*4':g=0:b=0", "-c:v", *codec, "-g", "60",
                        str(src)], check=True)
        calls = []
        monkeypatch.setattr(framecache, "SEEK_GAP_S", gap)
        monkeypatch.setattr(framecache, "_extract_seeking", lambda *a: calls.append(1) or real(*a))
        n = 7  # a sample every 5.7 s, off the 2 s keyframe grid
        seeking = extract(src, 0.0, 40.0, n, 112, 56, source_fps=30.0)
        assert calls == [1]
        for i in range(n):
            got = int(round(seeking[i, ..., 0].mean() / 4)) % 64
            want = round(i * 40.0 / n * 30) % 64
            assert min((got - want) % 64, (want - got) % 64) <= 1, (name, i, got, want)
        monkeypatch.setattr(framecache, "SEEK_GAP_S", 1e9)
        assert np.array_equal(seeking, extract(src, 0.0, 40.0, n, 112, 56, source_fps=30.0)), name


def test_vp9_keyframes_come_from_packet_flags_not_from_decoding(tmp_path):
    """The seed's codec: libavcodec's VP9 decoder ignores skip_frame, so a frame-based keyframe probe
    lists every frame. keyframe_times must list the keyframes only, and with 2 s keyframes and 1 fps
    samples the frames stage must not take the keyframe path (it would give other frames)."""
    src = tmp_path / "gop2s.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=6", "-c:v", "libvpx-vp9",
                    "-deadline", "realtime", "-cpu-used", "8", "-g", "60", "-keyint_min", "60", str(src)], check=True)
    keys = keyframe_times(src)
    assert len(keys) == 3 and [round(k - keys[0], 3) for k in keys] == [0.0, 2.0, 4.0]
    times = [keys[0] + i for i in range(6)]
    assert not samples_on_keyframes(times, keys, tolerance=0.5 / 30)
    assert samples_on_keyframes(times[::2], keys, tolerance=0.5 / 30)


def test_missing_chunk_file_fails_with_reason(framed):
    chunk = framed.chunks.read()[0]
    path = framed.root / chunk["media_uri"]
    saved = path.read_bytes()
    try:
        path.unlink()
        result = run_frames(framed, only=[chunk["chunk_id"]], force=True)
        assert result.failed[chunk["chunk_id"]] == (f"{chunk['chunk_id']}: chunk file {chunk['media_uri']} is "
                                                    "missing; run `streamlearn chunk --verify`")
    finally:
        path.write_bytes(saved)
    assert run_frames(framed, only=[chunk["chunk_id"]]).ok


def test_a_full_disk_leaves_no_temp_file_and_marks_nothing_done(framed, tmp_path, run_cli, monkeypatch):
    """The frame file cannot be put in place (no space left): the chunk is failed with that reason, its
    temp file is gone; a temp file a killed run left is removed when frames next starts; a manifest that
    cannot be written stops the stage with one line."""
    import errno
    import os
    import time

    from streamlearn.core import manifest

    root = tmp_path / "c"
    shutil.copytree(framed.root, root)
    victim = Corpus.open(root).chunks.read()[0]["chunk_id"]
    real_replace = os.replace

    def full(src, dst, *a, **k):
        if str(dst).endswith(".npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(manifest.os, "replace", full)
    res = run_cli("frames", root, "--force", "--only", victim)
    monkeypatch.setattr(manifest.os, "replace", real_replace)
    assert res.exit_code == 1
    row = Corpus.open(root).chunks.get(victim)
    assert row["frames_status"] == "failed" and "No space left on device" in row["frames_error"]
    assert not list((root / "frames").glob(".*.tmp"))
    stale = root / "frames" / f".{victim}.npy.999999.tmp"  # from a killed run: its pid is gone
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    res = run_cli("frames", root, "--only", victim)
    assert res.exit_code == 0 and "frames: removed 1 temp file(s) a killed run left behind" in res.output
    assert not stale.exists() and Corpus.open(root).chunks.get(victim)["frames_status"] == "done"

    def no_room(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest.Manifest, "record", no_room)
    res = run_cli("frames", root, "--force", "--only", victim)
    assert res.exit_code == 1 and res.stderr.startswith(f"error: cannot record {victim} in chunks.csv: No space left")
    assert res.stderr.count("\n") == 1
