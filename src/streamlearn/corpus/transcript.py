"""The transcript format every stage shares: segments with word timings, optionally speakers.

    {"video_id", "source": "captions"|"asr", "model", "language", "duration_s",
     "segments": [{"start", "end", "text", "speaker"?, "words": [{"start", "end", "word", "prob"?, "speaker"?}]}]}

Times are seconds from the start of the video (or of the chunk, for slices).
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import Path

from streamlearn.core.files import atomic_write_text

SCHEMA = "streamlearn.transcript/1"


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save(path: Path, doc: dict) -> None:
    doc = {"schema": SCHEMA, **{k: v for k, v in doc.items() if k != "schema"}}
    atomic_write_text(Path(path), json.dumps(doc, ensure_ascii=False, indent=1))


def _ts(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _label(seg: dict) -> str:
    return f"[{seg['speaker']}] " if seg.get("speaker") else ""


def to_srt(doc: dict) -> str:
    blocks = [f"{i}\n{_ts(s['start'], ',')} --> {_ts(s['end'], ',')}\n{_label(s)}{s['text']}\n"
              for i, s in enumerate(doc["segments"], start=1)]
    return "\n".join(blocks)


def to_vtt(doc: dict) -> str:
    blocks = [f"{_ts(s['start'], '.')} --> {_ts(s['end'], '.')}\n{_label(s)}{s['text']}\n" for s in doc["segments"]]
    return "WEBVTT\n\n" + "\n".join(blocks)


def save_all(stem: Path, doc: dict) -> None:
    """stem.json + stem.srt + stem.vtt."""
    save(stem.with_suffix(".json"), doc)
    atomic_write_text(stem.with_suffix(".srt"), to_srt(doc))
    atomic_write_text(stem.with_suffix(".vtt"), to_vtt(doc))


def resegment(words: list[dict], max_gap: float = 0.8, max_len: float = 12.0) -> list[dict]:
    """Segments from word timings: split at sentence ends, pauses and a maximum length
    (batched ASR returns ~30 s segments, too coarse for alignment)."""
    segments: list[dict] = []
    cur: list[dict] = []
    for w in words:
        if cur and (w["start"] - cur[-1]["end"] > max_gap or w["end"] - cur[0]["start"] > max_len):
            segments.append(_segment(cur))
            cur = []
        cur.append(w)
        if re.search(r"[.!?]$", w["word"].strip()):
            segments.append(_segment(cur))
            cur = []
    if cur:
        segments.append(_segment(cur))
    return segments


_GLUE_BEFORE = ("-", "'", "’", ",", ".", "!", "?", ";", ":", "%", ")", "]", "…")
_GLUE_AFTER = ("-", "(", "[", "“")


def join_words(words: list[dict]) -> str:
    """Words back into text: a space between words, none before a word that continues the previous
    one (`-disposed`, `'s`, `n't`, punctuation) or after one that opens (`ill-`, `(`), so
    "ill-disposed" does not become "ill -disposed"."""
    out = ""
    for w in words:
        word = w["word"].strip()
        if not word:
            continue
        if out and not word.startswith(_GLUE_BEFORE) and not out.endswith(_GLUE_AFTER) \
                and not (word.startswith("n't") or word.lower() in ("n't",)):
            out += " "
        out += word
    return out


def _segment(words: list[dict]) -> dict:
    return {"start": words[0]["start"], "end": words[-1]["end"], "text": join_words(words), "words": words}


def _slice_segment(seg: dict, start: float, end: float) -> dict | None:
    """A segment's part inside [start, end), re-timed relative to `start`; None when it has none: no word
    whose middle is inside and, without such words, a middle outside."""
    words = [w for w in seg.get("words", []) if start <= (w["start"] + w["end"]) / 2 < end]
    mid = (seg["start"] + seg["end"]) / 2
    if not words and not (start <= mid < end):
        return None
    shifted = [{**w, "start": round(w["start"] - start, 3), "end": round(w["end"] - start, 3)} for w in words]
    if words:
        text = join_words(words)
        s0, s1 = words[0]["start"], words[-1]["end"]
    else:
        text, s0, s1 = seg["text"], seg["start"], seg["end"]
    return {**seg, "start": round(max(s0, start) - start, 3), "end": round(min(s1, end) - start, 3),
            "text": text, "words": shifted}


def _sliced(doc: dict, start: float, segments: list[dict]) -> dict:
    return {**{k: v for k, v in doc.items() if k != "segments"}, "offset_s": start, "segments": segments}


def slice_doc(doc: dict, start: float, end: float) -> dict:
    """The part of a transcript inside [start, end), re-timed relative to `start`."""
    out = [part for part in (_slice_segment(seg, start, end) for seg in doc["segments"]) if part]
    return _sliced(doc, start, out)


class Slicer:
    """`slice_doc` for many spans of one transcript (a video's chunks): each span costs what it keeps,
    not a pass over every segment. A segment belongs to a span holding one of its anchors (its words'
    middles and its own), so the anchors are sorted once and a span's segments are a range of them."""

    def __init__(self, doc: dict):
        self.doc = doc
        anchors = sorted((t, k) for k, seg in enumerate(doc["segments"])
                         for t in [*((w["start"] + w["end"]) / 2 for w in seg.get("words", [])),
                                   (seg["start"] + seg["end"]) / 2] if t == t)  # a NaN is in no span
        self.times = [t for t, _ in anchors]
        self.segments = [k for _, k in anchors]

    def slice(self, start: float, end: float) -> dict:
        """= slice_doc(doc, start, end)."""
        first, last = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, end)
        picked = sorted(set(self.segments[first:last]))  # in the transcript's order
        segs = self.doc["segments"]
        out = [part for part in (_slice_segment(segs[k], start, end) for k in picked) if part]
        return _sliced(self.doc, start, out)
