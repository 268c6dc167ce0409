"""`streamlearn download`: archival download with yt-dlp's Python API, verified per file.

Per video: media merged to MKV (best resolution, >30 fps, AV1 > VP9.2 > VP9 > H.264, Opus
audio: the Archivist preset's order, as a yt-dlp format sort), a sanitized info.json,
description, thumbnail and platform subtitles (manual and auto, VTT). Missing fragments abort
the video instead of leaving a silent gap. After each file: sha256, and ffprobe's duration
checked against the platform's. yt-dlp's download archive plus `.part` files make a killed run
resume without re-downloading what finished. Recordings from `--from-dir` are verified in place
and linked into the corpus.
"""

from __future__ import annotations

import json
import random
from functools import partial
import shutil
import subprocess
import time
from pathlib import Path

from streamlearn.core import console
from streamlearn.core.config import AcquireSection
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text
from streamlearn.media.probe import check_decodes, not_a_recording, probe
from streamlearn.core.files import sha256_file
from streamlearn.runner import Stage, StageResult, run_stage, select

# The Archivist order as a sort: resolution, then frame rate, then codec (yt-dlp's codec order is
# av01 > vp9.2 > vp9 > h265 > h264), Opus preferred over other audio.
ARCHIVAL_FORMAT = "bv*+ba/b"
ARCHIVAL_SORT = ["res", "fps", "vcodec", "acodec:opus"]
MEDIA_SUFFIXES = (".mkv", ".mp4", ".webm", ".mov", ".m4a", ".opus", ".flv", ".ts")
_STRIP = {"url", "manifest_url", "fragment_base_url", "fragments", "http_headers", "cookies", "filepath",
          "filename", "_filename", "__files_to_move", "__write_download_archive", "__finaldir",
          "__postprocessors", "__real_download", "requested_downloads"}
_PERMANENT = ("HTTP Error 404", "HTTP Error 403", "HTTP Error 410", "Private video", "Video unavailable",
              "not available", "Unsupported URL", "members-only", "removed", "fragment", "No video formats")


def sanitize_info(info: dict) -> dict:
    """Drop what can carry credentials or expiring signed URLs (headers, cookies, format URLs)."""
    if isinstance(info, dict):
        return {k: sanitize_info(v) for k, v in info.items() if k not in _STRIP}
    if isinstance(info, list):
        return [sanitize_info(v) for v in info]
    return info


def _only_generic(url: str) -> bool:
    from yt_dlp.extractor import gen_extractor_classes

    return not any(ie.suitable(url) for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


def _backoff(base: float):
    return lambda n: min(60.0, base * (2 ** n)) * random.uniform(0.8, 1.2)


def ytdlp_options(vdir: Path, video_id: str, archive: Path, s: AcquireSection, logger) -> dict:
    return {
        "format": s.format or ARCHIVAL_FORMAT,
        "format_sort": list(s.format_sort or ARCHIVAL_SORT),
        "merge_output_format": s.merge_output_format,
        "outtmpl": {"default": f"{video_id}.%(ext)s"},
        "paths": {"home": str(vdir), "temp": str(vdir / ".partial")},
        "writedescription": True,
        "writethumbnail": True,
        "writesubtitles": True,
        "writeautomaticsub": True,
        "subtitleslangs": list(s.sub_langs),
        "subtitlesformat": "vtt",
        "download_archive": str(archive),
        "skip_unavailable_fragments": False,  # a missing fragment is an error, never a silent gap
        "retries": s.retries,
        "fragment_retries": s.retries,
        "extractor_retries": min(3, s.retries),
        "retry_sleep_functions": {"http": _backoff(s.retry_sleep), "fragment": _backoff(s.retry_sleep),
                                  "extractor": _backoff(s.retry_sleep)},
        "continuedl": True,
        "overwrites": False,
        "socket_timeout": s.socket_timeout,
        "concurrent_fragment_downloads": 4,
        "match_filter": _not_live,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger,
        "restrictfilenames": True,
    }


def _not_live(info, *, incomplete=False):
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        return "the stream is live or upcoming; download it once the VOD is ready"
    return None


def _find_media(vdir: Path, video_id: str) -> Path | None:
    for suffix in MEDIA_SUFFIXES:
        p = vdir / f"{video_id}{suffix}"
        if p.exists():
            return p
    return None


def _forget_archive(archive: Path, video_id: str) -> None:
    if archive.exists():
        lines = [line for line in archive.read_text().splitlines() if line.split(" ")[-1] != video_id]
        atomic_write_text(archive, "".join(line + "\n" for line in lines))


def fetch(url: str, vdir: Path, video_id: str, archive: Path, s: AcquireSection) -> tuple[Path, dict]:
    import yt_dlp

    from streamlearn.acquire.ytdlp_log import YtdlpLogger, clean_error

    if _only_generic(url):
        # generic pages have no stable id of their own (every DASH manifest is "manifest"):
        # pin ours so the download archive and file names use it
        url = yt_dlp.utils.smuggle_url(url, {"force_videoid": video_id})
    last = ""
    partial_dir = vdir / ".partial"
    # what a killed run left behind; yt-dlp resumes from it, but a fragment written whole and
    # not yet renamed is resumed past its end (HTTP 416) and fails every run after: start clean once
    leftovers = partial_dir.is_dir() and any(partial_dir.iterdir())
    attempt = 0
    while attempt < s.video_attempts:
        attempt += 1
        log = YtdlpLogger()
        try:
            with yt_dlp.YoutubeDL(ytdlp_options(vdir, video_id, archive, s, log)) as ydl:
                info = ydl.extract_info(url, download=True)
                if info is None:  # skipped: already in the archive, or filtered out
                    media = _find_media(vdir, video_id)
                    if media is None:
                        _forget_archive(archive, video_id)  # archived but the file is gone: fetch again
                        continue
                    info_path = vdir / f"{video_id}.info.json"
                    return media, json.loads(info_path.read_text()) if info_path.exists() else {}
                reason = _not_live(info)
                if reason:
                    raise StreamlearnError(reason)
                clean = sanitize_info(ydl.sanitize_info(info))
                downloads = info.get("requested_downloads") or []
                media = Path(downloads[0]["filepath"]) if downloads else _find_media(vdir, video_id)
            if media is None or not media.exists():
                raise StreamlearnError("yt-dlp finished without a media file")
            return media, clean
        except yt_dlp.utils.DownloadError as exc:
            last = log.explain(clean_error(exc))
            if leftovers and "fragment" in last.lower():
                leftovers = False
                console.info(f"download {video_id}: resuming the killed run's fragments failed ({last}); "
                             "starting this video again from the first fragment")
                shutil.rmtree(partial_dir, ignore_errors=True)
                attempt -= 1  # the restart is not one of the video's attempts
                continue
            if any(p.lower() in last.lower() for p in _PERMANENT) or attempt == s.video_attempts:
                raise StreamlearnError(last) from None
            wait = _backoff(s.retry_sleep)(attempt)
            console.debug(f"download {video_id}: {last}; retrying in {wait:.1f}s")
            time.sleep(wait)
    raise StreamlearnError(last or "download archive lists the video but its file is missing")


def verify(media: Path, expected_s: float | None) -> dict:
    """sha256 + ffprobe; the file must decode to the duration its header claims (a packet-level
    scan of its end: a truncated transfer keeps its header), and that duration must match the
    platform's when there is one."""
    p = probe(media)  # empty, not media, no streams, unsupported codec: one-line reasons
    problem = not_a_recording(media, p)
    if problem:
        raise StreamlearnError(problem)
    check_decodes(media, p)  # truncated or damaged: "truncated: decodes 10.4 s of 21.3 s"
    integrity = "no_reference"
    if expected_s and p.duration_s is not None:
        tolerance = max(1.5, 0.005 * expected_s)
        if abs(p.duration_s - expected_s) > tolerance:
            raise StreamlearnError(f"integrity: {media.name} lasts {p.duration_s:.1f} s but the platform says "
                                   f"{expected_s:.1f} s (truncated?); it will be downloaded again next run")
        integrity = "ok"
    elif p.duration_s is None:
        raise StreamlearnError(f"integrity: ffprobe finds no duration in {media.name}")
    return {"media_bytes": p.bytes, "media_sha256": sha256_file(media), "probe_duration_s": p.duration_s,
            "integrity": integrity, "vcodec": p.vcodec, "acodec": p.acodec, "width": p.width,
            "height": p.height, "fps": p.fps, "has_audio": p.has_audio, "creation_time": p.creation_time,
            "rotation": p.rotation or None, "sar": p.sar if abs(p.sar - 1.0) > 1e-3 else None}


def train_rendition(media: Path, height: int) -> Path:
    """A small H.264 copy for training-side decoding (the archival file stays untouched)."""
    out = media.with_name(f"{media.stem}.train.mp4")
    tmp = out.with_name(out.name + ".tmp.mp4")
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(media), "-map", "0:v:0", "-map", "0:a:0?",
           "-vf", f"scale=-2:{height}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
           "-c:a", "aac", "-b:a", "64k", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise StreamlearnError(f"ffmpeg failed making the training rendition: {proc.stderr.strip()[-200:]}")
    tmp.replace(out)
    return out


def fetch_rendition(url: str, vdir: Path, video_id: str, s: AcquireSection) -> Path:
    """The platform's own low-resolution rendition (no re-encode), e.g. "bv*[height<=360]"."""
    import yt_dlp

    from streamlearn.acquire.ytdlp_log import YtdlpLogger, clean_error

    if _only_generic(url):
        url = yt_dlp.utils.smuggle_url(url, {"force_videoid": video_id})
    opts = {**ytdlp_options(vdir, video_id, vdir / ".no-archive", s, YtdlpLogger()), "format": s.train_format,
            "format_sort": [], "outtmpl": {"default": f"{video_id}.train.%(ext)s"}, "writedescription": False,
            "writethumbnail": False, "writesubtitles": False, "writeautomaticsub": False, "download_archive": None}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as exc:
        raise StreamlearnError(f"training rendition ({s.train_format}): {clean_error(exc)}") from None
    return Path(info["requested_downloads"][0]["filepath"])


def download_row(corpus: Corpus, row: dict, s: AcquireSection) -> dict:
    vid = row["video_id"]
    vdir = corpus.video_dir(vid, create=True)
    if row.get("live_status") in ("is_live", "is_upcoming"):
        raise StreamlearnError("the stream is live or upcoming; download it once the VOD is ready")
    if row.get("source") == "dir":
        src = Path(row["local_path"] or "")
        if not src.is_file():
            raise StreamlearnError(f"recording {src} is gone; restore it or delete the row")
        media = vdir / f"{vid}{src.suffix.lower()}"
        if not media.is_symlink() and not media.exists():
            media.symlink_to(src)
        info: dict = {}
        expected = row.get("duration_s")
    else:
        if not row.get("url"):
            raise StreamlearnError("row has no url; fill the url column or re-run `streamlearn playlist`")
        media, info = fetch(row["url"], vdir, vid, corpus.root / "download_archive.txt", s)
        info = merge_entry(info, playlist_entry(corpus, vid))
        expected = info.get("duration") or row.get("duration_s")
        if info:
            atomic_write_text(vdir / f"{vid}.info.json", json.dumps(info, ensure_ascii=False, indent=1))
    try:  # a recording is checked under its own name, so a failure names the user's file
        values = verify(src if row.get("source") == "dir" else media, float(expected) if expected else None)
    except StreamlearnError:
        if row.get("source") != "dir":
            media.unlink(missing_ok=True)  # a bad file must not be taken as finished next run
            _forget_archive(corpus.root / "download_archive.txt", vid)
        raise
    subs = sorted(vdir.glob(f"{vid}.*.vtt"))
    manual = set((info.get("subtitles") or {}).keys())
    values.update({
        "media_path": corpus.rel(media),
        "format_id": info.get("format_id"),
        "info_json": corpus.rel(vdir / f"{vid}.info.json") if info else None,
        "subtitles": ";".join(f"{p.name[len(vid) + 1:-4]}:{'manual' if p.name[len(vid) + 1:-4] in manual else 'auto'}"
                              for p in subs) or None,
    })
    if s.train_format and row.get("source") != "dir":
        values["train_media_path"] = corpus.rel(fetch_rendition(row["url"], vdir, vid, s))
    elif s.train_rendition_height:
        values["train_media_path"] = corpus.rel(train_rendition(media, s.train_rendition_height))
    shutil.rmtree(vdir / ".partial", ignore_errors=True)
    return values


ENTRY_KEYS = ("title", "description", "timestamp", "release_timestamp", "upload_date", "duration", "channel",
              "uploader", "live_status", "webpage_url")


def playlist_entry(corpus: Corpus, video_id: str) -> dict:
    """This video's line in playlist_raw.jsonl (what the playlist said about it), or {}."""
    from streamlearn.acquire.playlist import entry_id

    path = corpus.root / "playlist_raw.jsonl"
    if not path.exists():
        return {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry_id(entry) == video_id:
                return entry
    return {}


def merge_entry(info: dict, entry: dict) -> dict:
    """yt-dlp's url_transparent rule: a generic page knows less than the playlist that linked it,
    so the playlist's title/description/times win there; elsewhere they only fill gaps."""
    generic = (info.get("extractor_key") or "").lower() == "generic"
    out = dict(info)
    for k in ENTRY_KEYS:
        if entry.get(k) not in (None, "") and (generic or out.get(k) in (None, "")):
            out[k] = entry[k]
    return out


def _fill_static(corpus: Corpus, vid: str) -> None:
    """Platform metadata the flat playlist lacked (start time, duration...) fills empty columns."""
    info_path = corpus.video_dir(vid) / f"{vid}.info.json"
    if not info_path.exists():
        return
    info = json.loads(info_path.read_text(encoding="utf-8"))
    corpus.videos.upsert([{"video_id": vid, "title": info.get("title"), "upload_date": info.get("upload_date"),
                           "release_timestamp": info.get("release_timestamp"), "timestamp": info.get("timestamp"),
                           "duration_s": info.get("duration"), "channel": info.get("channel"),
                           "live_status": info.get("live_status"), "webpage_url": info.get("webpage_url")}])


def _work(corpus: Corpus, row: dict, s: AcquireSection) -> dict:
    return download_row(corpus, row, s)


def run_download(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
                 settings: AcquireSection | None = None, executor=None) -> StageResult:
    s = settings or corpus.config.acquire
    stage = Stage("download", "videos", partial(_work, s=s))
    rows, _ = select(corpus.videos, "download", only=only, force=force)
    if force:
        for row in rows:
            _forget_archive(corpus.root / "download_archive.txt", row["video_id"])
    return run_stage(stage, corpus, rows, parallel=parallel, force=force, executor=executor,
                     on_result=lambda row, values: _fill_static(corpus, row["video_id"]))
