"""`streamlearn playlist`: a playlist URL, a saved flat playlist or a folder of recordings → videos.csv.

Re-running appends new entries; existing rows keep their runtime columns and any value a user
edited (day_index, timezone). Ids become folder names only once made path-safe.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text, read_json_lines
from streamlearn.media.probe import MEDIA_EXTENSIONS, head_hash, not_a_recording, probe
from streamlearn.core.paths import ascii_name, derive_id

# fields of a flat entry that can hold credentials or expiring signed URLs: never stored
_SECRET_KEYS = {"http_headers", "cookies", "formats", "requested_formats", "fragments", "__post_extractor"}


def clean_entry(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in _SECRET_KEYS and not k.startswith("__")}


def entry_id(entry: dict) -> str:
    from yt_dlp.utils import unsmuggle_url

    raw = entry.get("id")
    url, data = unsmuggle_url(entry.get("url") or "", {})
    raw = raw or (data or {}).get("force_videoid")
    if not raw:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        stem = "-".join(parts[-2:]) if parts else "video"
        raw = f"{stem}|{url}"  # not path-safe, so derive_id adds a hash of the whole URL
    return derive_id(str(raw))


def entry_row(entry: dict, index: int, source: str, default_tz: str) -> dict:
    from yt_dlp.utils import unsmuggle_url

    title = entry.get("title") or entry.get("id") or ""
    duration = entry.get("duration")
    url = entry.get("url") or entry.get("webpage_url") or entry.get("original_url")
    return {
        "video_id": entry_id(entry),
        "title": title,
        "ascii_title": ascii_name(title),
        "url": unsmuggle_url(url)[0] if url else None,
        "webpage_url": unsmuggle_url(entry["webpage_url"])[0] if entry.get("webpage_url") else None,
        "source": source,
        "playlist_index": entry.get("playlist_index") or index,
        "upload_date": entry.get("upload_date"),
        "release_timestamp": entry.get("release_timestamp"),
        "timestamp": entry.get("timestamp"),
        "duration_s": float(duration) if duration else None,
        "channel": entry.get("channel") or entry.get("uploader"),
        "live_status": entry.get("live_status"),
        "timezone": default_tz,
    }


def extract_flat(url: str) -> list[dict]:
    import yt_dlp

    from streamlearn.acquire.ytdlp_log import YtdlpLogger

    opts = {"extract_flat": "in_playlist", "skip_download": True, "quiet": True, "no_warnings": True,
            "noprogress": True, "logger": YtdlpLogger(), "socket_timeout": 30}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=False)
    except yt_dlp.utils.DownloadError as exc:
        from streamlearn.acquire.ytdlp_log import clean_error

        raise StreamlearnError(f"cannot read playlist {url}: {clean_error(exc)}") from None
    if info.get("_type") in ("playlist", "multi_video"):
        entries = [e for e in info.get("entries") or [] if e]
    else:
        entries = [info]  # a single video URL is a playlist of one
    for i, e in enumerate(entries, start=1):
        e.setdefault("playlist_index", i)
    return entries


# fields a playlist entry gives as numbers (yt-dlp's flat playlist): checked before anything is written
NUMBER_FIELDS = {"release_timestamp": int, "timestamp": int, "duration": float, "playlist_index": int}


def check_entry(entry: dict, where: str) -> None:
    for name, kind in NUMBER_FIELDS.items():
        value = entry.get(name)
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            continue
        raise StreamlearnError(f"{where}: field {name!r} is {value!r}, not a number"
                               + (" (a Unix time in seconds)" if "timestamp" in name else "")
                               + "; fix the value or remove the field")
    if entry.get("upload_date") is not None and not re.fullmatch(r"\d{8}", str(entry["upload_date"])):
        raise StreamlearnError(f"{where}: field 'upload_date' is {entry['upload_date']!r}, not YYYYMMDD; fix the "
                               "value or remove the field")


def read_jsonl(path: Path) -> list[dict]:
    entries = []
    for n, entry in read_json_lines(path, "fix or delete the line", "save the playlist as UTF-8"):
        if not isinstance(entry, dict) or not (entry.get("url") or entry.get("webpage_url") or entry.get("id")):
            raise StreamlearnError(f"{Path(path).name} line {n}: an entry needs a url or an id; fix or delete the line")
        check_entry(entry, f"{Path(path).name} line {n}")
        entries.append(entry)
    return entries


def scan_dir(folder: Path, default_tz: str) -> tuple[list[dict], list[tuple[dict, str]], list[str]]:
    """Recordings in a folder → (rows, failed rows with reasons, ignored file names)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StreamlearnError(f"{folder} is not a folder; pass the folder that holds your recordings")
    rows, failed, ignored = [], [], []
    seen: dict[str, Path] = {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts[-1:]))
    for i, path in enumerate(files, start=1):
        media_ext = path.suffix.lower() in MEDIA_EXTENSIONS
        try:
            info = probe(path)
            reason = not_a_recording(path, info) or ""
            readable = not reason
        except StreamlearnError as exc:
            info, readable, reason = None, False, str(exc)
        if not readable and not media_ext:
            ignored.append(path.name)
            continue
        vid = "rec-" + head_hash(path)[:12]
        if vid in seen:
            console.warn(f"{path} has the same content as {seen[vid]}; keeping only the first")
            continue
        seen[vid] = path
        ts, start_source = None, None
        if info and info.creation_time:
            try:
                ts = int(datetime.fromisoformat(info.creation_time.replace("Z", "+00:00")).timestamp())
                start_source = "container"
            except ValueError:
                pass
        if ts is None:
            ts, start_source = int(path.stat().st_mtime), "file_mtime"
            if readable:
                console.warn(f"{path.name}: no creation time in the file; its start time is the file's modification "
                             "time (start_source=file_mtime in videos.csv); set release_timestamp there if that is wrong")
        title = path.stem
        row = {"video_id": vid, "title": title, "ascii_title": ascii_name(title), "url": path.resolve().as_uri(),
               "source": "dir", "playlist_index": i, "release_timestamp": ts, "start_source": start_source,
               "duration_s": info.duration_s if info else None, "timezone": default_tz,
               "local_path": str(path.resolve())}
        if readable:
            rows.append(row)
        else:
            failed.append((row, reason))
    return rows, failed, ignored


def start_time(row: dict) -> int | None:
    for col in ("release_timestamp", "timestamp"):
        if row.get(col):
            return int(row[col])
    if row.get("upload_date"):
        try:
            return int(datetime.strptime(str(row["upload_date"]), "%Y%m%d").replace(tzinfo=timezone.utc).timestamp())
        except ValueError:
            return None
    return None


def assign_days(rows: list[dict]) -> None:
    """day_index = calendar days since the earliest video (local dates), for rows that have none."""
    dated = [(r, start_time(r)) for r in rows]
    local_dates = {}
    for r, ts in dated:
        if ts is not None:
            tz = ZoneInfo(r.get("timezone") or "UTC")
            local_dates[r["video_id"]] = datetime.fromtimestamp(ts, tz).date()
    if not local_dates:
        return
    first = min(local_dates.values())
    for r in rows:
        if r.get("day_index") is None and r["video_id"] in local_dates:
            r["day_index"] = (local_dates[r["video_id"]] - first).days + 1


def add_entries(corpus: Corpus, rows: list[dict], raw_entries: list[dict] | None = None) -> tuple[int, int]:
    if raw_entries:
        existing = set()
        raw_path = corpus.root / "playlist_raw.jsonl"
        if raw_path.exists():
            existing = {json.loads(line).get("id") or json.loads(line).get("url")
                        for line in raw_path.read_text(encoding="utf-8").splitlines() if line.strip()}
        new = [clean_entry(e) for e in raw_entries if (e.get("id") or e.get("url")) not in existing]
        if new:
            old = raw_path.read_text(encoding="utf-8") if raw_path.exists() else ""
            atomic_write_text(raw_path, old + "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in new))
    unique: dict[str, dict] = {}
    for r in rows:
        unique.setdefault(r["video_id"], r)
    added, filled = corpus.videos.upsert(unique.values())
    corpus.videos.transform(assign_days)
    return added, filled


def run_playlist(corpus: Corpus, url: str | None = None, from_jsonl: Path | None = None,
                 from_dir: Path | None = None) -> dict:
    given = [x for x in (url, from_jsonl, from_dir) if x]
    if len(given) != 1:
        raise StreamlearnError("give exactly one of --url, --from-jsonl or --from-dir")
    tz = corpus.config.corpus.timezone
    failed: list[tuple[dict, str]] = []
    ignored: list[str] = []
    if url:
        entries = extract_flat(url)
        rows = [entry_row(e, i, "url", tz) for i, e in enumerate(entries, start=1)]
        raw = entries
    elif from_jsonl:
        if not Path(from_jsonl).is_file():
            raise StreamlearnError(f"{from_jsonl} does not exist; pass a saved flat playlist (.jsonl)")
        entries = read_jsonl(Path(from_jsonl))
        rows = [entry_row(e, i, "jsonl", tz) for i, e in enumerate(entries, start=1)]
        raw = entries
    else:
        rows, failed, ignored = scan_dir(Path(from_dir), tz)
        raw = None
    added, _ = add_entries(corpus, rows + [r for r, _ in failed], raw)
    total = len(corpus.videos.read())
    console.info(f"playlist: {len(rows) + len(failed)} entries, {added} new, {total} videos in {corpus.videos.path.name}")
    for row, reason in failed:
        console.info(f"playlist: {row['video_id']} will fail to download: {reason}")
    if ignored:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        console.info(f"playlist: ignored {len(ignored)} files that are not media: {shown}")
    return {"entries": len(rows) + len(failed), "added": added, "total": total, "failed": len(failed),
            "ignored": ignored}

