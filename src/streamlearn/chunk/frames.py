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
import tempfile
from pathlib import Path

import numpy as np

from streamlearn.media import vision_budget
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import NotApplicable, StreamlearnError
from streamlearn.corpus.framecache import extract, keyframe_times, samples_on_keyframes
from streamlearn.core.files import atomic_write_bytes, atomic_write_text
from streamlearn.media.probe import display_size, probe
from streamlearn.core.paths import contained
from streamlearn.runner import Stage, StageResult, run_stage, select
from streamlearn.core.store import Store, store_for


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
    out_dir = corpus.folder("frames", create=True)
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


def _work(corpus: Corpus, row: dict, g: vision_budget.VisionGeometry, videos: dict[str, dict]) -> dict:
    return frames_chunk(corpus, row, videos.get(row["video_id"]) or {}, store_for(corpus), g)


def run_frames(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
               geometry: vision_budget.VisionGeometry | None = None, executor=None) -> StageResult:
    from streamlearn.corpus.forecast import check_frames_room

    # videos.csv is read once for the run, not once a chunk (a stage's per-item cost stays independent of
    # the corpus's size, issue 26); the rows travel with the work to Ray tasks
    stage = Stage("frames", "chunks", partial(_work, g=geometry or vision_budget.VisionGeometry(),
                                              videos=corpus.videos.rows_by_key()))
    # one selection serves the room check and the run: the rows that will run are the rows counted
    rows, _ = select(corpus.chunks, stage.name, stage.requires, only, force, stage.match)
    check_frames_room(corpus, rows)  # before any work: the cache must fit (issue 28)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return run_stage(stage, corpus, rows, parallel=parallel, force=force, executor=executor)
