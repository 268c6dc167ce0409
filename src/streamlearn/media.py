"""ffprobe/ffmpeg helpers shared by every stage: probing, hashing, streaming audio in windows."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamlearn.errors import StreamlearnError

MEDIA_EXTENSIONS = {".mkv", ".mp4", ".webm", ".mov", ".m4v", ".avi", ".ts", ".flv", ".mts", ".m2ts", ".3gp",
                    ".m4a", ".opus", ".mp3", ".wav", ".flac", ".ogg"}


@dataclass
class Probe:
    duration_s: float | None
    vcodec: str | None
    acodec: str | None
    width: int | None
    height: int | None
    fps: float | None
    has_video: bool
    has_audio: bool
    creation_time: str | None
    format_name: str
    bytes: int


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) if value > 0 else None


def probe(path: Path) -> Probe:
    """ffprobe a file; a file it cannot read raises StreamlearnError with ffprobe's reason."""
    path = Path(path)
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.strip().split())[-200:] or f"exit status {proc.returncode}"
        raise StreamlearnError(f"ffprobe cannot read {path.name}: {reason}")
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = fmt.get("duration")
    tags = {k.lower(): v for k, v in (fmt.get("tags") or {}).items()}
    if video:
        tags.update({k.lower(): v for k, v in (video.get("tags") or {}).items() if k.lower() not in tags})
    creation = tags.get("creation_time") or tags.get("com.apple.quicktime.creationdate")
    return Probe(
        duration_s=float(duration) if duration not in (None, "N/A") else None,
        vcodec=video.get("codec_name") if video else None,
        acodec=audio.get("codec_name") if audio else None,
        width=int(video["width"]) if video and video.get("width") else None,
        height=int(video["height"]) if video and video.get("height") else None,
        fps=_rate(video.get("avg_frame_rate") or video.get("r_frame_rate")) if video else None,
        has_video=video is not None,
        has_audio=audio is not None,
        creation_time=creation,
        format_name=fmt.get("format_name", ""),
        bytes=path.stat().st_size,
    )


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def head_hash(path: Path, nbytes: int = 1 << 20) -> str:
    """A cheap content id: sha1 of the size and the first MiB."""
    h = hashlib.sha1(str(Path(path).stat().st_size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(nbytes))
    return h.hexdigest()


def decode_audio(path: Path, start_s: float = 0.0, duration_s: float | None = None, rate: int = 16000) -> np.ndarray:
    """Decode a span of audio to mono float32 at `rate` (the whole file if duration_s is None)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start_s:.3f}", "-i", str(path)]
    if duration_s is not None:
        cmd += ["-t", f"{duration_s:.3f}"]
    cmd += ["-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise StreamlearnError(f"ffmpeg cannot decode audio of {Path(path).name}: "
                               f"{' '.join(proc.stderr.decode(errors='replace').split())[-200:]}")
    return np.frombuffer(proc.stdout, dtype=np.int16).astype(np.float32) / 32768.0


def iter_audio_windows(path: Path, window_s: float = 600.0, rate: int = 16000,
                       search_s: float = 15.0) -> Iterator[tuple[float, np.ndarray]]:
    """Stream a file's audio as (offset_s, samples) windows of about `window_s` seconds.

    One ffmpeg process decodes the whole file sequentially; memory holds one window plus the
    search margin. Each cut is moved to the quietest 200 ms in the last `search_s` seconds, so
    words are rarely split across windows.
    """
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
           "-f", "s16le", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = int(window_s * rate)
    carry = np.zeros(0, dtype=np.float32)
    offset = 0
    try:
        while True:
            need = target - len(carry)
            raw = proc.stdout.read(max(0, need) * 2) if need > 0 else b""
            block = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0
            buf = np.concatenate([carry, block])
            if len(raw) < need * 2:  # end of stream
                if len(buf):
                    yield offset / rate, buf
                break
            cut = _quiet_cut(buf, rate, search_s)
            yield offset / rate, buf[:cut]
            carry = buf[cut:]
            offset += cut
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise StreamlearnError(f"ffmpeg cannot decode audio of {Path(path).name}: {' '.join(err.split())[-200:]}")


def _quiet_cut(buf: np.ndarray, rate: int, search_s: float) -> int:
    hop = int(0.2 * rate)
    lo = max(hop, len(buf) - int(search_s * rate))
    tail = buf[lo: len(buf) - len(buf[lo:]) % hop]
    if len(tail) < hop:
        return len(buf)
    energy = (tail.reshape(-1, hop) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * hop + hop // 2
