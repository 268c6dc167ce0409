"""`streamlearn frames`: each chunk's sampled frames at model resolution, cached for training.

Frames are sampled as the model's processor samples them (uniform, `vision_budget`), resized by
ffmpeg to the planned size and stored as one uint8 array per chunk (`frames/<chunk_id>.npy`,
T x H x W x 3) with a JSON sidecar (sample fps, timestamps, grid). Training never touches the
source video again.

Decoding avoids decode-and-discard where that gives the same frames: when every sample time has
a keyframe, only keyframe packets are decoded; when the video has a low-resolution training
rendition (`acquire.train_format` / `train_rendition_height`), frames come from it instead of the
archival file. Otherwise libavcodec decodes with frame threads and only the sampled frames are
scaled and converted.
"""

from __future__ import annotations

import json
import os
from functools import partial
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from streamlearn import vision_budget
from streamlearn.corpus import Corpus
from streamlearn.errors import NotApplicable, StreamlearnError
from streamlearn.manifest import atomic_write_bytes, atomic_write_text
from streamlearn.media import display_size, probe
from streamlearn.paths import contained
from streamlearn.runner import Stage, StageResult, run
from streamlearn.store import Store


def keyframe_times(src: Path, start: float = 0.0, duration: float | None = None) -> list[float]:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries",
           "frame=pts_time,best_effort_timestamp_time", "-of", "csv=p=0"]
    if start or duration:
        cmd += ["-read_intervals", f"{start}%{'+' + str(duration) if duration else ''}"]
    out = subprocess.run(cmd + [str(src)], capture_output=True, text=True)
    times = []
    for line in out.stdout.splitlines():
        for field in line.split(","):
            try:
                times.append(float(field))
                break
            except ValueError:
                continue
    return sorted(times)


def samples_on_keyframes(sample_times: list[float], keyframes: list[float], tolerance: float) -> bool:
    if not keyframes:
        return False
    k = np.asarray(keyframes)
    return all(float(np.min(np.abs(k - t))) <= tolerance for t in sample_times)


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded (coded-orientation) picture the way a player shows it: `rotation` is the
    display matrix's counter-clockwise angle (ffprobe's `rotation`, e.g. -90 for a phone held
    upright), so the picture is turned by that angle."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def extract(src: Path, start: float, duration: float, n: int, width: int, height: int,
            keyframes_only: bool = False, source_fps: float = 30.0, rotation: int | None = None) -> np.ndarray:
    """n frames at times start + i*duration/n (the first source frame at or after each time, less
    half a source frame: the nearest one), resized to width x height, RGB uint8.

    width x height is the picture as a player shows it: the coded picture is scaled (which also
    undoes a non-square sample aspect ratio) and turned by the display matrix's rotation
    (`rotation`, else what the decoder reports on the frame), so a portrait phone video gives
    upright portrait frames.

    libavcodec decodes with frame threads, and only the sampled frames are scaled and converted
    (converting every 1080p frame to RGB is most of the cost of the usual decode-all loop). With
    `keyframes_only`, packets that are not keyframes never reach the decoder.
    """
    import av

    times = [start + i * duration / n for i in range(n)]
    half = 0.5 / source_fps
    out: list[np.ndarray | None] = [None] * n
    k = 0
    try:
        with av.open(str(src)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if start > 0:
                container.seek(int(max(0.0, start - 1.0) / stream.time_base), stream=stream, backward=True)

            def decoded():
                """(time, frame) in presentation order."""
                ctx = stream.codec_context
                last = None
                for packet in container.demux(stream):
                    if packet.size == 0 or (keyframes_only and not packet.is_keyframe):
                        continue
                    frames = list(packet.decode())
                    if keyframes_only:  # drain per keyframe: its one frame, stamped with the packet's time
                        frames += list(ctx.decode(None))
                        ctx.flush_buffers()
                        for f in frames:
                            yield float(packet.pts * packet.time_base), f
                        continue
                    for f in frames:
                        last = f.time if f.time is not None and f.time == f.time else (last or 0.0) + 1 / source_fps
                        yield last, f
                for f in ctx.decode(None):  # frames the decoder still holds at the end of the file
                    last = f.time if f.time is not None and f.time == f.time else (last or 0.0) + 1 / source_fps
                    yield last, f

            for t, frame in decoded():
                if t < times[k] - half:
                    continue
                if rotation is None:
                    rotation = int(getattr(frame, "rotation", 0) or 0)
                quarter = int(round(rotation / 90.0)) % 2
                cw, ch = (height, width) if quarter else (width, height)
                rgb = upright(frame.reformat(width=cw, height=ch, format="rgb24",
                                             interpolation="BICUBIC").to_ndarray(), rotation)
                while k < n and t >= times[k] - half:  # a sparse source fills several samples
                    out[k] = rgb
                    k += 1
                if k >= n:
                    break
    except av.error.FFmpegError as exc:
        raise StreamlearnError(f"cannot decode frames of {src.name}: {exc}") from None
    got = [f for f in out if f is not None]
    if not got:
        raise StreamlearnError(f"{src.name} gave no frames between {start:.1f}s and {start + duration:.1f}s")
    last = got[-1]
    return np.stack([f if f is not None else last for f in out])  # a clip can end before its last sample time


def _source(corpus: Corpus, chunk: dict, video: dict, store: Store, tmp: Path) -> tuple[Path, float, str]:
    """(file to decode, offset of the chunk in it, label)."""
    if video.get("train_media_path") and corpus.abs(video["train_media_path"]).exists():
        return corpus.abs(video["train_media_path"]), float(chunk["start_s"]), "train_rendition"
    key = store.rel_of(chunk["media_uri"] or "")
    if key is None:
        raise StreamlearnError(f"{chunk['chunk_id']}: media_uri {chunk['media_uri']} is not in the store "
                               f"{store.display}; set storage.uri or re-chunk")
    local = store.local_path(key)
    if local is None:
        local = store.get(key, tmp / Path(key).name)
    if not local.exists():
        raise StreamlearnError(f"{chunk['chunk_id']}: chunk file {chunk['media_uri']} is missing; "
                               "run `streamlearn chunk --verify`")
    return local, 0.0, "chunk"


def frames_chunk(corpus: Corpus, chunk: dict, video: dict, store: Store,
                 geometry: vision_budget.VisionGeometry) -> dict:
    op = corpus.config.operating_point
    out_dir = corpus.subdir("frames")
    with tempfile.TemporaryDirectory() as tmp:
        src, offset, label = _source(corpus, chunk, video, store, Path(tmp))
        info = probe(src)
        if not info.has_video:
            raise NotApplicable(f"{chunk['chunk_id']}: {src.name} has no video stream (an audio-only recording); "
                                "no frames to sample, the chunk stays a transcript-only item")
        duration = float(chunk["duration_s"])
        fps = info.fps or 30.0
        # plan from the archival picture as it is shown (rotation and pixel aspect applied), whichever
        # file is decoded, so a rendition changes nothing
        if video.get("width") and video.get("height"):
            width, height = display_size(int(video["width"]), int(video["height"]), int(video.get("rotation") or 0),
                                         float(video.get("sar") or 1.0))
        else:
            width, height = info.display_size()
        p = vision_budget.plan(duration, width, height, op, geometry, source_fps=fps)
        times = [offset + i * duration / p.n_frames for i in range(p.n_frames)]
        keys = keyframe_times(src, offset, duration)
        exact = samples_on_keyframes(times, keys, tolerance=0.5 / fps)
        frames = extract(src, offset, duration, p.n_frames, p.frame_width, p.frame_height, keyframes_only=exact,
                         source_fps=fps, rotation=info.rotation)
    name = contained(out_dir, chunk["chunk_id"])
    buf = _npy_bytes(frames)
    atomic_write_bytes(name.with_suffix(".npy"), buf)
    meta = {"chunk_id": chunk["chunk_id"], "n_frames": p.n_frames, "sample_fps": p.sample_fps,
            "timestamps": [round(t - offset, 4) for t in times], "width": p.frame_width, "height": p.frame_height,
            "grid_thw": list(p.grid_thw), "vision_tokens": p.vision_tokens, "seconds_per_grid": p.seconds_per_grid,
            "source": label, "keyframes_only": exact,
            # what was done, not only what was configured: the chunk length the video was cut at
            "operating_point": {**op.__dict__, "chunk_seconds": float(video.get("chunk_seconds") or duration)},
            "chunk_duration_s": duration,
            "source_picture": {"coded_width": info.width, "coded_height": info.height, "rotation": info.rotation,
                               "sample_aspect_ratio": info.sar, "display_width": width, "display_height": height,
                               "fps": fps, "variable_frame_rate": info.vfr},
            "geometry": geometry.__dict__}
    atomic_write_text(name.with_suffix(".json"), json.dumps(meta, indent=1))
    return {"frames_path": corpus.rel(name.with_suffix(".npy")), "n_frames": p.n_frames,
            "sample_fps": p.sample_fps, "frame_width": p.frame_width, "frame_height": p.frame_height,
            "vision_tokens": p.vision_tokens}


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    bio = io.BytesIO()
    np.save(bio, arr, allow_pickle=False)
    return bio.getvalue()


def load_frames(corpus: Corpus, chunk: dict) -> tuple[np.ndarray, dict]:
    """The cached frames (memory-mapped) and their sidecar."""
    if not chunk.get("frames_path"):
        raise StreamlearnError(f"{chunk['chunk_id']}: no cached frames; run `streamlearn frames` first")
    path = corpus.abs(chunk["frames_path"])
    if not path.exists():
        raise StreamlearnError(f"{chunk['chunk_id']}: frame cache {path.name} is missing; run "
                               f"`streamlearn frames --force --only {chunk['chunk_id']}`")
    return np.load(path, mmap_mode="r"), json.loads(path.with_suffix(".json").read_text())


def _work(corpus: Corpus, row: dict, g: vision_budget.VisionGeometry) -> dict:
    from streamlearn.chunk import store_for

    return frames_chunk(corpus, row, corpus.videos.get(row["video_id"]) or {}, store_for(corpus), g)


def run_frames(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
               geometry: vision_budget.VisionGeometry | None = None, executor=None) -> StageResult:
    g = geometry or vision_budget.VisionGeometry()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run(Stage("frames", "chunks", partial(_work, g=g)), corpus, only=only, force=force, parallel=parallel,
               executor=executor)
