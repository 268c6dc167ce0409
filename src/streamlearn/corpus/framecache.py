"""Frames: sampling a video at model resolution (`extract`, upright and at the planned size) and
reading the frame cache (`frames/<chunk_id>.npy` + its JSON sidecar) — the one reader used by
train, eval, export and the sweep."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from streamlearn.core.errors import StreamlearnError
from streamlearn.media.probe import arg_path


def keyframe_times(src: Path, start: float = 0.0, duration: float | None = None) -> list[float]:
    """Presentation times of the keyframes, from the container's packet flags: demuxing only, nothing
    is decoded. (Asking ffprobe for frames with `-skip_frame nokey` decodes every frame of a VP9 stream,
    whose native decoder ignores skip_frame, and then lists every frame as if it were a keyframe:
    the cost of a full decode, and a wrong answer, on the seed's codec; issue 26.)"""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags",
           "-of", "csv=p=0"]
    if start or duration:
        cmd += ["-read_intervals", f"{start}%{'+' + str(duration) if duration else ''}"]
    out = subprocess.run(cmd + [arg_path(src)], capture_output=True, text=True)
    times = []
    for line in out.stdout.splitlines():
        fields = line.split(",")
        if "K" not in fields[-1]:
            continue
        for field in fields[:-1]:  # pts, else dts where a muxer left pts out
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
    if not keyframes_only and n and duration / n >= SEEK_GAP_S:
        sparse = _extract_seeking(src, times, half, width, height, rotation)
        if sparse is not None:
            return sparse
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
                rgb, rotation = _rgb(frame, width, height, rotation)
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


# Samples this far apart or more are fetched by seeking: a seek lands on the keyframe at or before the
# sample time and decoding runs forward to it, so the frame is the one a decode from the start gives,
# and only the frames from that keyframe on are decoded (16 samples of a 20-minute 1080p60 chunk: ~2
# GOPs each instead of 72,000 frames). Denser sampling decodes straight through (issue 26).
SEEK_GAP_S = 4.0


def _rgb(frame, width: int, height: int, rotation: int | None) -> tuple[np.ndarray, int]:
    """One decoded frame as upright RGB of width x height, and the rotation used (the frame's own when
    `rotation` is None, so a caller passes it on to the next frame)."""
    if rotation is None:
        rotation = int(getattr(frame, "rotation", 0) or 0)
    quarter = int(round(rotation / 90.0)) % 2
    cw, ch = (height, width) if quarter else (width, height)
    return upright(frame.reformat(width=cw, height=ch, format="rgb24", interpolation="BICUBIC").to_ndarray(),
                   rotation), rotation


def _extract_seeking(src: Path, times: list[float], half: float, width: int, height: int,
                     rotation: int | None) -> np.ndarray | None:
    """The frames at `times` by one seek each; None when a seek cannot be trusted to give the frame a
    straight decode gives (it landed after the sample, or a frame has no time): the caller decodes."""
    import av

    out = []
    try:
        with av.open(str(src)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if stream.start_time is None:
                return None
            opening = float(stream.start_time * stream.time_base)  # the file's first frame: nothing before it
            for t in times:
                container.seek(int(max(0.0, t - half) / stream.time_base), stream=stream, backward=True)
                got, first = None, None
                for frame in container.decode(stream):
                    if frame.time is None or frame.time != frame.time:
                        return None
                    if first is None:
                        first = frame.time
                        if first > t - half and first > opening + half:  # landed past the sample: unsure
                            return None
                    if frame.time >= t - half:
                        got = frame
                        break
                if got is None:  # the file ends before this sample: the last frame, as the straight path does
                    if not out:
                        return None
                    out.append(out[-1])
                    continue
                rgb, rotation = _rgb(got, width, height, rotation)
                out.append(rgb)
    except av.error.FFmpegError as exc:
        raise StreamlearnError(f"cannot decode frames of {src.name}: {exc}") from None
    return np.stack(out)


def read_frames(path: Path, label: str | None = None) -> tuple[np.ndarray, float]:
    """A frame cache, memory-mapped (T, H, W, 3), and its sampling fps (from the sidecar)."""
    frames, meta = read_frame_cache(path, label)
    return frames, float(meta["sample_fps"])


def read_frame_cache(path: Path, label: str | None = None) -> tuple[np.ndarray, dict]:
    """A frame cache, memory-mapped (T, H, W, 3), and its sidecar (sample fps, timestamps, grid)."""
    path = Path(path)
    name = label or path.stem
    if not path.exists():
        raise StreamlearnError(f"{name}: frame cache {path.name} is missing; run "
                               f"`streamlearn frames --force --only {path.stem}`")
    meta = path.with_suffix(".json")
    if not meta.exists():
        raise StreamlearnError(f"{name}: frame cache {path.name} has no sidecar {meta.name} (its sampling fps); "
                               f"run `streamlearn frames --force --only {path.stem}`")
    return np.load(path, mmap_mode="r"), json.loads(meta.read_text())


def load_frames(corpus, chunk: dict) -> tuple[np.ndarray, dict]:
    """A chunk's cached frames (memory-mapped) and their sidecar."""
    if not chunk.get("frames_path"):
        raise StreamlearnError(f"{chunk['chunk_id']}: no cached frames; run `streamlearn frames` first")
    return read_frame_cache(corpus.abs(chunk["frames_path"]), chunk["chunk_id"])


def read_sample_frames(corpus_root: Path, paths: list[str], label: str,
                       max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """A training sample's video (T, H, W, 3) and its sampling fps from its frame caches (paths relative
    to the corpus or absolute): one chunk's frames, or several chunks' as one day montage (the same
    number of frames from each, at the first chunk's frame size)."""
    arrays, fps = [], []
    for rel in paths:
        path = Path(rel) if Path(rel).is_absolute() else Path(corpus_root) / rel
        arr, f = read_frames(path, label)
        arrays.append(arr)
        fps.append(f)
    if len(arrays) == 1:
        return np.asarray(arrays[0]), fps[0]
    per = max(2, (max_frames or 64) // len(arrays) // 2 * 2)
    h, w = arrays[0].shape[1:3]
    picked = [a[np.linspace(0, len(a) - 1, per).astype(int)] for a in arrays if a.shape[1:3] == (h, w)]
    frames = np.concatenate(picked)
    duration = sum(len(a) / f for a, f in zip(arrays, fps))
    return frames, len(frames) / duration

