"""Coarser granularities: one summary per video (a day of the stream) and a whole-stream digest,
aggregated from the chunk descriptions. Each is usable as context and as a training target."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.files import atomic_write_text
from streamlearn.core.paths import contained

DAY_SCHEMA = "streamlearn.day_summary/1"
DIGEST_SCHEMA = "streamlearn.stream_digest/1"


def _load(path: Path) -> dict:
    return D.load(path, checked=True)


def day_summary(video: dict, docs: list[dict], n_days: int | None) -> dict:
    cities = Counter(d["setting"]["city"] for d in docs if d["setting"].get("city"))
    venues = [v for v in dict.fromkeys(d["setting"].get("venue") for d in docs) if v]
    speakers = sorted({p["id"] for d in docs for p in d.get("people", [])})
    texts = list(dict.fromkeys(t["text"] for d in docs for t in d.get("on_screen_text", [])))
    place = ", ".join(c for c, _ in cities.most_common()) or "an unidentified place"
    start = docs[0].get("start_local") if docs else None
    end = docs[-1].get("end_local") if docs else None
    summary = (f"Day {video.get('day_index') or '?'}" + (f" of {n_days}" if n_days else "") + f": {place}"
               + (f", from {start[11:16]} to {end[11:16]} local time" if start and end else "")
               + f"; {len(docs)} chunk(s)" + (f"; stops: {', '.join(venues)}" if venues else "")
               + f"; {len(speakers)} voice(s).")
    qa = []
    if cities:
        qa.append({"question": f"Which city was the stream in on day {video.get('day_index')}?",
                   "answer": cities.most_common(1)[0][0], "type": "place", "evidence_s": [0.0, 0.0]})
    return {"schema": DAY_SCHEMA, "video_id": video["video_id"], "title": video.get("title"),
            "day_index": video.get("day_index"), "n_days": n_days, "start_local": start, "end_local": end,
            "cities": [c for c, _ in cities.most_common()], "venues": venues, "speakers": speakers,
            "on_screen_text": texts[:30],
            "chunks": [{"chunk_id": d["chunk_id"], "start_local": d.get("start_local"), "summary": d["summary"]}
                       for d in docs],
            "summary": summary, "qa": qa}


def digest(days: list[dict]) -> dict:
    lines = []
    for d in sorted(days, key=lambda x: (x.get("day_index") or 0, x.get("start_local") or "")):
        lines.append({"day_index": d.get("day_index"), "video_id": d["video_id"], "cities": d["cities"],
                      "summary": d["summary"]})
    route = []
    for d in lines:
        for c in d["cities"]:
            if not route or route[-1] != c:
                route.append(c)
    return {"schema": DIGEST_SCHEMA, "days": lines, "route": route,
            "summary": (f"{len(lines)} video(s) over {len({d['day_index'] for d in lines})} day(s); route: "
                        + (" -> ".join(route) if route else "unknown") + ".")}


def write_all(corpus: Corpus, n_days: int | None) -> tuple[int, bool]:
    """Summaries for every video whose chunks are all described; the digest when every video has one."""
    days_dir = corpus.folder("day_summaries", create=True)
    chunks = corpus.chunks.read()
    by_video: dict[str, list[dict]] = {}
    for c in chunks:
        by_video.setdefault(c["video_id"], []).append(c)
    videos = corpus.videos.rows_by_key()
    written = []
    for vid, rows in by_video.items():
        if not all(status_of(r, "describe") == DONE for r in rows):
            continue
        docs = [_load(corpus.abs(r["description_path"])) for r in sorted(rows, key=lambda r: r["chunk_index"])]
        doc = day_summary({**videos.get(vid, {}), "video_id": vid}, docs, n_days)
        atomic_write_text(contained(days_dir, vid).with_suffix(".json"),
                          json.dumps(doc, ensure_ascii=False, indent=1))
        written.append(doc)
    complete = bool(by_video) and len(written) == len(by_video)
    if complete:
        atomic_write_text(corpus.folder("descriptions") / "stream.json",
                          json.dumps(digest(written), ensure_ascii=False, indent=1))
    console.info(f"describe: {len(written)}/{len(by_video)} day summaries"
                 + (", stream digest written" if complete else ""))
    return len(written), complete
