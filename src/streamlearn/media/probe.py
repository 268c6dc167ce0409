"""ffprobe/ffmpeg helpers shared by every stage: probing, hashing, streaming audio in windows."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamlearn.core import console
from streamlearn.core.errors import StreamlearnError

MEDIA_EXTENSIONS = {".mkv", ".mp4", ".webm", ".mov", ".m4v", ".avi", ".ts", ".flv", ".mts", ".m2ts", ".3gp",
                    ".m4a", ".opus", ".mp3", ".wav", ".flac", ".ogg"}


def arg_path(path) -> str:
    """A file name as a command-line argument that can never read as an option: a user's file called
    `-report` is passed as `/abs/dir/-report` (ffprobe would take `-report` as its logging flag)."""
    return os.path.abspath(str(path))


@dataclass
class Probe:
    duration_s: float | None
    vcodec: str | None
    acodec: str | None
    width: int | None  # coded picture size
    height: int | None
    fps: float | None
    has_video: bool
    has_audio: bool
    creation_time: str | None
    format_name: str
    bytes: int
    rotation: int = 0  # degrees counter-clockwise to turn the coded picture to show it (display matrix)
    sar: float = 1.0  # sample (pixel) aspect ratio
    vfr: bool = False  # frame rate not constant (r_frame_rate != avg_frame_rate)
    start_s: float = 0.0  # the container's start time: time 0 as players (and our transcripts) count it

    @property
    def display_width(self) -> int | None:
        """Width of the picture as a player shows it (pixel aspect and rotation applied)."""
        return self.display_size()[0]

    @property
    def display_height(self) -> int | None:
        return self.display_size()[1]

    def display_size(self) -> tuple[int | None, int | None]:
        if not self.width or not self.height:
            return self.width, self.height
        return display_size(self.width, self.height, self.rotation, self.sar)


def display_size(width: int, height: int, rotation: int = 0, sar: float = 1.0) -> tuple[int, int]:
    """(width, height) of a coded picture as a player shows it: pixel aspect, then rotation."""
    w, h = width, height
    if sar and abs(sar - 1.0) > 1e-3:
        w = int(round(w * sar / 2)) * 2 or w
    return (h, w) if rotation % 180 else (w, h)


class MediaError(StreamlearnError):
    """A file that is not usable media; the message names the file, the cause and the fix."""


# ffprobe/ffmpeg wording -> (cause, fix). Raw library text goes to the log only.
_CAUSES = (
    ("moov atom not found", "incomplete MP4/MOV: the index (moov atom) is missing, so the recording or the "
     "transfer was cut off", "copy or export the complete file again"),
    ("permission denied", "unreadable: permission denied", "make it readable (chmod a+r) or copy it somewhere readable"),
    ("no such file", "the file is gone", "restore it or remove its row"),
    ("decoder (codec", "unsupported codec: this ffmpeg has no decoder for it", "convert it with a full ffmpeg build "
     "(e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4) and add the converted file"),
    ("invalid data found when processing input", "not a media file (no audio or video container ffmpeg knows)",
     "remove it from the folder, or export it from the recorder as MP4/MKV/M4A"),
    ("end of file", "truncated: the file ends inside its header", "copy or download the complete file again"),
)


_MAGIC = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"fLaC", b"ID3",
          b"FLV", b"\x47", b"\x00\x00\x01\xba")


def _looks_like_media(path: Path) -> bool:
    """A container signature near the start (MP4/MOV boxes, Matroska, RIFF, Ogg, FLAC, MP3, FLV, TS, PS)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return True
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True
    return any(head.startswith(m) for m in _MAGIC[5:]) or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf1")


def explain_failure(path: Path, raw: str, default_fix: str = "check the file plays in a media player") -> str:
    """One line a person can act on: `<file>: <cause>; <fix>`; the raw library text goes to the log."""
    console.debug(f"{Path(path).name}: {' '.join(raw.split())}")
    low = raw.lower()
    if ("moov atom not found" in low or "invalid data" in low) and not _looks_like_media(Path(path)):
        return (f"{Path(path).name}: not a media file (no audio or video container ffmpeg knows); "
                "remove it from the folder, or export it from the recorder as MP4/MKV/M4A")
    for needle, cause, fix in _CAUSES:
        if needle in low:
            return f"{Path(path).name}: {cause}; {fix}"
    return f"{Path(path).name}: ffmpeg cannot read it; {default_fix}"


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
    """ffprobe a file. A file that is not usable media raises MediaError with a one-line message
    naming the file, the cause (empty, not media, incomplete, unreadable, no streams, unsupported
    codec) and the fix; ffprobe's own text goes to the debug log."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError(f"{path.name}: the file is gone; restore it or remove its row") from None
    if size == 0:
        raise MediaError(f"{path.name}: empty file (0 bytes), the copy or recording never got any data; "
                         "copy it again from the device or delete it")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise MediaError(f"{path.name}: unreadable: permission denied; make it readable (chmod a+r) "
                         "or copy it somewhere readable") from None
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", arg_path(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(explain_failure(path, proc.stderr or f"exit status {proc.returncode}"))
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
    if video is None and audio is None:
        raise MediaError(f"{path.name}: no audio or video stream in it ({fmt.get('format_name') or 'unknown format'}); "
                         "it is not a recording: remove it from the folder")
    for s in (video, audio):
        if s is not None and s.get("codec_name") in (None, "", "none"):
            raise MediaError(f"{path.name}: unsupported codec ({s.get('codec_tag_string') or 'unknown'} "
                             f"{s.get('codec_type')}): this ffmpeg cannot decode it; convert it with a full ffmpeg "
                             "build (e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4) and add the converted file")
    rotation = 0
    if video:
        for side in video.get("side_data_list") or []:
            if side.get("rotation") is not None:
                rotation = int(round(float(side["rotation"])))
        if not rotation and (video.get("tags") or {}).get("rotate"):
            rotation = -int(float(video["tags"]["rotate"]))  # the old tag is clockwise
    sar = 1.0
    if video and video.get("sample_aspect_ratio") not in (None, "0:1", "1:1", "N/A"):
        num, _, den = video["sample_aspect_ratio"].partition(":")
        try:
            sar = float(num) / float(den) if float(num) > 0 and float(den) > 0 else 1.0
        except ValueError:
            sar = 1.0
    avg = _rate(video.get("avg_frame_rate")) if video else None
    real = _rate(video.get("r_frame_rate")) if video else None
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
        bytes=size,
        rotation=((rotation + 180) % 360) - 180,
        sar=sar,
        vfr=bool(avg and real and abs(avg - real) > 0.01 * real),
        start_s=float(fmt["start_time"]) if fmt.get("start_time") not in (None, "N/A") else 0.0,
    )


def _packet_ends(path: Path, interval: str | None) -> tuple[float | None, bool]:
    """(latest packet end time whose bytes are all in the file, whether any packet was listed)."""
    cmd = ["ffprobe", "-v", "error", "-show_entries", "packet=pts_time,dts_time,duration_time,pos,size",
           "-of", "csv=p=0"]
    if interval:
        cmd += ["-read_intervals", interval]
    proc = subprocess.run(cmd + [arg_path(path)], capture_output=True, text=True)
    size = path.stat().st_size
    best, any_packet = None, False
    for line in proc.stdout.splitlines():
        parts = line.split(",")
        if len(parts) < 5:
            continue
        any_packet = True
        pts, dts, dur, pos, nbytes = parts[:5]
        try:
            t = float(pts if pts not in ("", "N/A") else dts)
        except ValueError:
            continue
        try:
            if pos not in ("", "N/A") and int(pos) + int(nbytes) > size:
                continue  # the index points past the end of the file: the data is not there
        except ValueError:
            pass
        end = t + (float(dur) if dur not in ("", "N/A") else 0.0)
        best = end if best is None else max(best, end)
    return best, any_packet


def decodable_duration(path: Path, claimed_s: float | None, tail_s: float = 8.0) -> float | None:
    """Seconds of media actually present: the end of the last packet whose data is in the file.

    A fast packet-level scan (the demuxer only, no decoding) of the last `tail_s` seconds the
    header claims; only when that finds the file short is the whole file scanned to say how much
    of it is there. A truncated transfer or recording keeps its header's duration, so this, not
    the header, says whether the file is complete."""
    path = Path(path)
    if claimed_s and claimed_s > tail_s:
        end, _ = _packet_ends(path, f"{claimed_s - tail_s:.3f}%")
        if end is not None and end >= claimed_s - max(1.0, 0.01 * claimed_s):
            return end
    end, _ = _packet_ends(path, None)
    return end


def not_a_recording(path: Path, p: Probe) -> str | None:
    """Why a file ffprobe opens is still no recording (a still image, a pipe format), or None."""
    if (p.has_video or p.has_audio) and not p.format_name.endswith("_pipe") and p.format_name not in ("image2", "tty"):
        return None
    return f"{Path(path).name}: not a recording ({p.format_name}); remove it from the folder"


def check_decodes(path: Path, p: Probe) -> float | None:
    """Raise MediaError when `path` does not hold the media its header claims: truncated (fewer
    seconds of packets than the duration says) or undecodable (the decoder fails on its last
    second). Returns the decodable duration."""
    end = decodable_duration(path, p.duration_s)
    if end is None:
        raise MediaError(f"{path.name}: damaged: no readable audio or video packets; copy or download it again")
    if p.duration_s and end < p.duration_s - max(1.0, 0.01 * p.duration_s):
        raise MediaError(f"{path.name}: truncated: decodes {end:.1f} s of {p.duration_s:.1f} s; the copy or "
                         "download was cut off, fetch the complete file again")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-ss", f"{max(0.0, end - 1.0):.3f}", "-i", str(path),
           "-t", "1", "-map", "0:v:0?", "-map", "0:a:0?", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(explain_failure(path, proc.stderr, "the end of the file does not decode; fetch it again"))
    return end


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
        raise MediaError(explain_failure(path, proc.stderr.decode(errors="replace"),
                                         "its audio does not decode; fetch the file again"))
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
        raise MediaError(explain_failure(path, err, "its audio does not decode; fetch the file again"))


def _quiet_cut(buf: np.ndarray, rate: int, search_s: float) -> int:
    hop = int(0.2 * rate)
    lo = max(hop, len(buf) - int(search_s * rate))
    tail = buf[lo: len(buf) - len(buf[lo:]) % hop]
    if len(tail) < hop:
        return len(buf)
    energy = (tail.reshape(-1, hop) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * hop + hop // 2
