"""`streamlearn chunk`: lossless chunking into the durable chunk store, plus merge and verify.

Per video: ffmpeg's segment muxer with stream copy (`-map 0 -c copy`, timestamps reset per chunk,
never a re-encode) into a local staging folder; the segment list gives each chunk's true start
and end in source time (cuts snap to keyframes). Each chunk is uploaded, read back and checked
against its sha256, and only then is the staged copy deleted. Rows are recorded after every
chunk of the video is in the store: a killed run leaves nothing recorded half-done, and a
re-run produces the same rows (muxing is bit-exact). Transcript and diarization slices, with
times relative to the chunk, are written beside the video.
"""

from __future__ import annotations

import bisect
import csv
import json
from functools import partial
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from streamlearn.core import console
from streamlearn.corpus import transcript
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.manifest import Manifest, merge_parts
from streamlearn.core.files import atomic_write_text
from streamlearn.media.probe import arg_path, check_decodes, probe
from streamlearn.core.files import sha256_file
from streamlearn.runner import Stage, StageResult, run_stage, select
from streamlearn.core.store import Store, store_for
from streamlearn.corpus.tables import CHUNKS

CONTAINER = {".mkv": ".mkv", ".webm": ".mkv", ".mp4": ".mp4", ".mov": ".mp4", ".m4v": ".mp4", ".m4a": ".m4a"}


def segment(media: Path, out_dir: Path, video_id: str, chunk_seconds: float) -> list[dict]:
    """Stream-copy `media` into chunks; returns [{path, start_s, end_s}] in source time."""
    ext = CONTAINER.get(media.suffix.lower(), ".mkv")
    fmt = "matroska" if ext == ".mkv" else "ipod" if ext == ".m4a" else "mp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    seg_list = out_dir / "segments.csv"
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(media), "-map", "0", "-dn", "-ignore_unknown",
           "-c", "copy", "-f", "segment", "-segment_time", f"{chunk_seconds:g}", "-reset_timestamps", "1",
           "-segment_format", fmt, "-segment_list", str(seg_list), "-segment_list_type", "csv",
           "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
           str(out_dir / f"{video_id}_c%03d{ext}")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StreamlearnError(f"ffmpeg could not segment {media.name}: {' '.join(proc.stderr.split())[-240:]}")
    rows = []
    with open(seg_list, newline="") as fh:
        for name, start, end in csv.reader(fh):
            rows.append({"path": out_dir / name, "start_s": float(start), "end_s": float(end)})
    if not rows:
        raise StreamlearnError(f"{media.name} produced no chunks (no packets?)")
    return rows


def cut_time(media: Path, approx: float, video: bool, search_s: float = 1.5) -> float | None:
    """The presentation time of the packet a segment really starts with: the keyframe (or, for
    audio only, the packet) nearest the segment muxer's listed start. The list's own number is
    not exact (it was 60 ms after the keyframe on a VFR file), so it only says where to look."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0" if video else "a:0", "-show_entries",
           "packet=pts_time,flags", "-read_intervals", f"{max(0.0, approx - search_s):.3f}%{approx + search_s:.3f}",
           "-of", "csv=p=0", arg_path(media)]
    best = None
    for line in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines():
        pts, _, flags = line.partition(",")
        if pts in ("", "N/A") or (video and "K" not in flags):
            continue
        t = float(pts)
        if best is None or abs(t - approx) < abs(best - approx):
            best = t
    return best


def exact_times(pieces: list[dict], media: Path, origin: float, end: float | None, video: bool) -> list[dict]:
    """Chunk times in the source's own clock, as players and transcripts count it (0 = the
    container's start time), from the packets themselves: each cut is the presentation time of
    the keyframe the segment starts with; each chunk ends where the next begins, the last at the
    end of the source's last packet. So chunks are contiguous and cover the source exactly,
    constant frame rate or not, and transcripts are sliced with the same times."""
    out = []
    for i, piece in enumerate(pieces):
        if i == 0:
            start = 0.0
        else:
            t = cut_time(media, piece["start_s"], video)
            start = max(0.0, (t if t is not None else piece["start_s"]) - origin)
        out.append({**piece, "start_s": round(start, 6)})
    for i, piece in enumerate(out):
        if i + 1 < len(out):
            piece["end_s"] = out[i + 1]["start_s"]
        else:
            piece["end_s"] = round(max(piece["start_s"], (end if end is not None else piece["end_s"]) - origin), 6)
    return out


def stream_start(corpus: Corpus, row: dict) -> tuple[datetime | None, str]:
    """When the stream started: the platform's info.json, else the playlist entry, else the
    container's creation time; (None, "") when nothing says (status flags those chunks)."""
    info_path = corpus.video_dir(row["video_id"]) / f"{row['video_id']}.info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    for key in ("release_timestamp", "timestamp"):
        if info.get(key):
            return datetime.fromtimestamp(int(info[key]), timezone.utc), f"info.{key}"
    if row.get("source") == "dir" and row.get("release_timestamp"):
        return datetime.fromtimestamp(int(row["release_timestamp"]), timezone.utc), row.get("start_source") or "dir"
    for key in ("release_timestamp", "timestamp"):
        if row.get(key):
            return datetime.fromtimestamp(int(row[key]), timezone.utc), "playlist"
    if row.get("creation_time"):
        try:
            when = datetime.fromisoformat(str(row["creation_time"]).replace("Z", "+00:00"))
            return when.astimezone(timezone.utc), "container"
        except ValueError:
            pass
    return None, ""


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z") if when else None


class Slices:
    """A video's transcript (speaker-attributed if available) and RTTM, each read once, cut into every
    chunk's slices with chunk-relative times: a chunk no longer reads the whole files again, which made a
    long video's slicing quadratic in its chunks. `spans` are the chunks' (start, end) in order."""

    def __init__(self, corpus: Corpus, row: dict, spans: list[tuple[float, float]]):
        self.corpus, self.out, self.spans = corpus, corpus.video_dir(row["video_id"]) / "chunks", spans
        source = row.get("speaker_transcript_path") or row.get("transcript_path")
        self.transcript = None
        if source and corpus.abs(source).exists():
            self.transcript = transcript.Slicer(transcript.load(corpus.abs(source)))
        self.rttm = None
        if row.get("rttm_path") and corpus.abs(row["rttm_path"]).exists():
            self.rttm = _rttm_by_chunk(corpus.abs(row["rttm_path"]).read_text().splitlines(), spans)

    def write(self, i: int, chunk_id: str) -> tuple[str | None, str | None]:
        """Chunk i's slices, written beside the video; (transcript path, RTTM path), None where none."""
        start, end = self.spans[i]
        t_path = r_path = None
        if self.transcript is not None:
            self.out.mkdir(exist_ok=True)
            doc = self.transcript.slice(start, end)
            doc["chunk_id"] = chunk_id
            transcript.save(self.out / f"{chunk_id}.transcript.json", doc)
            t_path = self.corpus.rel(self.out / f"{chunk_id}.transcript.json")
        if self.rttm is not None:
            self.out.mkdir(exist_ok=True)
            lines = []
            for parts in self.rttm[i]:
                a, b = float(parts[3]), float(parts[3]) + float(parts[4])
                a, b = max(a, start) - start, min(b, end) - start
                lines.append(" ".join([parts[0], chunk_id, parts[2], f"{a:.3f}", f"{b - a:.3f}", *parts[5:]]))
            atomic_write_text(self.out / f"{chunk_id}.rttm", "".join(x + "\n" for x in lines))
            r_path = self.corpus.rel(self.out / f"{chunk_id}.rttm")
        return t_path, r_path


def _rttm_by_chunk(lines: list[str], spans: list[tuple[float, float]]) -> list[list[list[str]]]:
    """Each chunk's RTTM turns (split lines, in the file's order): those overlapping its span. Chunks are
    contiguous and in order, so a turn's chunks are found by bisection, not by trying every chunk."""
    out: list[list[list[str]]] = [[] for _ in spans]
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    ordered = starts == sorted(starts) and ends == sorted(ends)
    for line in lines:
        parts = line.split()
        a, b = float(parts[3]), float(parts[3]) + float(parts[4])
        if ordered:  # the chunks whose end is after the turn's start and whose start is before its end
            candidates = range(bisect.bisect_right(ends, a), bisect.bisect_left(starts, b))
        else:
            candidates = range(len(spans))
        for j in candidates:
            if not (b <= spans[j][0] or a >= spans[j][1]):
                out[j].append(parts)
    return out


def chunk_video(corpus: Corpus, row: dict, chunk_seconds: float, store: Store, node: str | None,
                staging_root: Path) -> tuple[list[dict], dict]:
    vid = row["video_id"]
    media = corpus.abs(row["media_path"])
    if not media.exists():
        raise StreamlearnError(f"{media.name} is not on this machine; chunk it on the node that holds it")
    p = probe(media)
    if not p.duration_s or p.duration_s <= 0:
        raise StreamlearnError(f"{media.name} has zero length; re-download it (streamlearn download --force --only {vid})")
    try:  # a truncated or damaged source is refused before anything is cut from it
        end = check_decodes(media, p)
    except StreamlearnError as exc:
        raise StreamlearnError(f"{exc} (chunk refuses it: streamlearn download --force --only {vid})") from None
    staging = staging_root / vid
    shutil.rmtree(staging, ignore_errors=True)
    try:
        pieces = exact_times(segment(media, staging, vid, chunk_seconds), media, p.start_s, end, p.has_video)
        start_at, time_source = stream_start(corpus, row)
        tz = ZoneInfo(row.get("timezone") or corpus.config.corpus.timezone)
        slices = Slices(corpus, row, [(piece["start_s"], piece["end_s"]) for piece in pieces])
        n = len(pieces)
        rows = []
        for i, piece in enumerate(pieces):
            chunk_id = f"{vid}_c{i:03d}"
            path = piece["path"]
            cp = probe(path)  # the chunk must be readable on its own
            span = piece["end_s"] - piece["start_s"]
            if cp.duration_s is None or abs(cp.duration_s - span) > max(1.0, 0.01 * span):
                raise StreamlearnError(f"{path.name} lasts {cp.duration_s} s but the segment list says {span:.3f} s")
            digest = sha256_file(path)
            size = path.stat().st_size
            key = f"chunks/{vid}/{chunk_id}{path.suffix}"
            uri = store.put(path, key, sha256=digest, move=True)
            path.unlink(missing_ok=True)  # the store holds it now; local disk was only a staging area
            t_path, r_path = slices.write(i, chunk_id)
            a = start_at + timedelta(seconds=piece["start_s"]) if start_at else None
            b = start_at + timedelta(seconds=piece["end_s"]) if start_at else None
            rows.append({
                "chunk_id": chunk_id, "video_id": vid, "chunk_index": i, "n_chunks": n,
                "start_s": round(piece["start_s"], 6), "end_s": round(piece["end_s"], 6),
                "duration_s": round(span, 6),  # keyframe-aligned span from the segment list
                "chunk_seconds": chunk_seconds, "media_uri": uri, "bytes": size, "sha256": digest, "day_index": row.get("day_index"),
                "start_utc": _iso(a), "end_utc": _iso(b),
                "start_local": a.astimezone(tz).isoformat(timespec="seconds") if a else None,
                "end_local": b.astimezone(tz).isoformat(timespec="seconds") if b else None,
                "timezone": tz.key, "time_source": time_source, "title": row.get("title"),
                "ascii_title": row.get("ascii_title"), "transcript_path": t_path, "diarization_path": r_path,
                "node": node,
            })
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows, {"n_chunks": len(rows), "chunk_seconds": chunk_seconds}


def _target(corpus: Corpus, node: str | None) -> Manifest:
    if node:
        from streamlearn.core.paths import contained

        return Manifest(contained(corpus.folder("parts"), node).with_suffix(".csv"), CHUNKS)
    return corpus.chunks


def _replace_video_rows(target: Manifest, vid: str, rows: list[dict]) -> None:
    def edit(existing):
        existing[:] = [r for r in existing if r["video_id"] != vid]
        for r in rows:
            full = {c.name: None for c in CHUNKS.columns()}
            full.update(r)
            existing.append(full)
        existing.sort(key=lambda r: (str(r["video_id"]), int(r["chunk_index"])))

    target.transform(edit)


def _work(corpus: Corpus, row: dict, seconds: float, store_uri: str | None, node: str | None) -> dict:
    chunk_rows, values = chunk_video(corpus, row, seconds, store_for(corpus, store_uri), node,
                                     corpus.root / ".staging")
    return {**values, "_rows": chunk_rows}


def run_chunk(corpus: Corpus, chunk_seconds: float | None = None, store_uri: str | None = None,
              node: str | None = None, parallel: int = 1, only: list[str] | None = None,
              force: bool = False, executor=None) -> StageResult:
    seconds = chunk_seconds or corpus.config.operating_point.chunk_seconds
    if seconds <= 0:
        raise StreamlearnError("--chunk-seconds must be > 0")
    store_for(corpus, store_uri)  # a bad URI or a missing extra fails here, before any work
    target = _target(corpus, node)
    stage = Stage("chunk", "videos", partial(_work, seconds=seconds, store_uri=store_uri, node=node),
                  requires=("download",))
    rows, _ = select(corpus.videos, "chunk", requires=stage.requires, only=only, force=force)
    if node:
        # a node chunks the videos it holds; a video is done for it once its part has every chunk
        have: dict[str, list[dict]] = {}
        for r in target.read():
            have.setdefault(r["video_id"], []).append(r)
        complete = {vid for vid, rs in have.items() if len(rs) == rs[0]["n_chunks"]}
        rows = [r for r in rows if corpus.abs(r["media_path"]).exists() and (force or r["video_id"] not in complete)]

    def write_rows(row: dict, values: dict) -> None:  # in this process: the single manifest writer
        _replace_video_rows(target, row["video_id"], values["_rows"])

    # a node's part file is its output and its only record (videos.csv may be shared between nodes)
    return run_stage(stage, corpus, rows, parallel=parallel, force=force, executor=executor, on_result=write_rows,
                     record_status=not node)


def _merged(complete: dict[str, tuple[int, float | None]], corpus: Corpus, row: dict) -> dict:
    n, seconds = complete[row["video_id"]]
    return {"n_chunks": n, "chunk_seconds": seconds}  # as a one-node run records them


def merge(corpus: Corpus) -> tuple[int, int]:
    parts = sorted(corpus.folder("parts").glob("*.csv"))
    if not parts:
        raise StreamlearnError(f"no part files in {corpus.folder('parts')}; run `streamlearn chunk --node NAME` first")
    total, new = merge_parts(parts, corpus.chunks)
    # a video whose chunks are all present is chunked; the runner records it like any chunk result
    by_video: dict[str, list[dict]] = {}
    for r in corpus.chunks.read():
        by_video.setdefault(r["video_id"], []).append(r)
    complete = {vid: (len(rows), rows[0].get("chunk_seconds")) for vid, rows in by_video.items()
                if len(rows) == rows[0]["n_chunks"]}
    todo, _ = select(corpus.videos, "chunk")
    run_stage(Stage("chunk", "videos", partial(_merged, complete)), corpus,
              [r for r in todo if r["video_id"] in complete])
    console.info(f"merge: {len(parts)} parts -> {total} chunks in chunks.csv ({new} new)")
    return total, new


def verify(corpus: Corpus, store_uri: str | None = None, check_hash: bool = True) -> list[str]:
    """Integrity of chunks.csv against the videos and the store; returns problems (empty = ok)."""
    store = store_for(corpus, store_uri)
    problems: list[str] = []
    rows = corpus.chunks.read()  # a duplicate chunk id makes the reader refuse the file
    videos = corpus.videos.rows_by_key()
    by_video: dict[str, list[dict]] = {}
    for r in rows:
        by_video.setdefault(r["video_id"], []).append(r)
        if store.rel_of(r["media_uri"] or "") is None:
            problems.append(f"{r['chunk_id']}: media_uri {r['media_uri']} is outside the store {store.display}")
    for vid, rs in by_video.items():
        idx = sorted(r["chunk_index"] for r in rs)
        if any(r["n_chunks"] != len(rs) for r in rs) or idx != list(range(len(rs))):
            problems.append(f"{vid}: n_chunks says {rs[0]['n_chunks']} but {len(rs)} chunks are listed (indexes {idx})")
        src = (videos.get(vid) or {}).get("probe_duration_s")
        ordered = sorted(rs, key=lambda r: r["chunk_index"])
        gaps = [f"{a['chunk_id']}->{b['chunk_id']}" for a, b in zip(ordered, ordered[1:])
                if abs(a["end_s"] - b["start_s"]) > 1e-3]
        covered = sum(r["duration_s"] for r in rs)
        if gaps:
            problems.append(f"{vid}: chunks are not contiguous at {', '.join(gaps[:3])}")
        if src is None:
            problems.append(f"{vid}: not in videos.csv or never probed")
        elif abs(covered - src) > 0.1 or abs(ordered[0]["start_s"]) > 0.1:
            problems.append(f"{vid}: chunks cover {covered:.3f} s of a {src:.3f} s video (off by {covered - src:+.3f} s)")
    with console.stage_progress("verify", len(rows)) as prog:
        for r in rows:
            key = store.rel_of(r["media_uri"] or "")
            if key is None:
                prog.advance(r["chunk_id"], ok=False, note="outside the store")
                continue
            size, digest = store.stat(key, with_hash=check_hash)
            if size is None:
                problems.append(f"{r['chunk_id']}: object {r['media_uri']} is missing")
            elif size != r["bytes"] or (check_hash and digest != r["sha256"]):
                problems.append(f"{r['chunk_id']}: object {r['media_uri']} has {size} bytes / sha256 "
                                f"{(digest or '?')[:12]}, chunks.csv says {r['bytes']} / {r['sha256'][:12]}")
            prog.advance(r["chunk_id"])
    return problems


def verify_command(corpus: Corpus, store_uri: str | None = None, quick: bool = False) -> int:
    """`chunk --verify`: one line per problem and a summary; 1 when there is any."""
    problems = verify(corpus, store_uri, check_hash=not quick)
    for p in problems:
        print(f"verify: {p}")
    print(f"verify: {len(corpus.chunks.read())} chunks, {len(problems)} problems")
    return 1 if problems else 0
