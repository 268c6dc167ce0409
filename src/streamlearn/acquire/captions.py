"""Platform captions (WebVTT) → normalized transcript segments with word times.

Handles real-shaped files: cue settings, identifiers, NOTE/STYLE blocks, HTML entities, inline
word timestamps (`<00:00:01.290><c> word</c>`), overlapping cues, and YouTube's rolling
auto-captions, where each cue repeats the previous line and a 10 ms cue repeats the finished
one. Each spoken line comes out once.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from streamlearn.core.errors import StreamlearnError

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s+-->\s+{_TIME}(?:\s+.*)?$")
_INLINE_TS = re.compile(rf"<{_TIME}>")
_TAG = re.compile(r"</?[^>]*>")


class CaptionError(StreamlearnError):
    pass


def _seconds(h, m, s, ms) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000.0


def _clean(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).replace("\u00a0", " ").split())


def parse_cues(text: str, name: str = "captions") -> list[tuple[float, float, list[str]]]:
    """(start, end, raw payload lines) for every cue; malformed timing raises CaptionError."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or not lines[0].startswith("WEBVTT"):
        raise CaptionError(f"{name} is not WebVTT (first line {lines[0][:40]!r}); delete it to use ASR instead")
    cues = []
    i = 1
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        block = []
        # only a truly empty line ends a cue: YouTube's auto-captions use " " as a payload line
        while i < len(lines) and lines[i] != "":
            block.append(lines[i])
            i += 1
        head = block[0].strip()
        timing_idx = next((k for k, line in enumerate(block[:2]) if "-->" in line), None)
        if timing_idx is None:
            if head.startswith(("NOTE", "STYLE", "REGION")) or (not cues and all(":" in b for b in block)):
                continue  # comment/style blocks and header metadata (Kind:, Language:)
            raise CaptionError(f"{name} line {block_start + 1}: expected a cue timing 'HH:MM:SS.mmm --> HH:MM:SS.mmm', "
                               f"got {head[:60]!r}")
        m = _TIMING.match(block[timing_idx])
        if not m:
            raise CaptionError(f"{name} line {block_start + timing_idx + 1}: bad cue timing {block[timing_idx][:60]!r}")
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if end < start:
            raise CaptionError(f"{name} line {block_start + timing_idx + 1}: cue ends before it starts")
        cues.append((start, end, block[timing_idx + 1:]))
    return cues


def _timed_words(raw: str, start: float, end: float) -> list[dict]:
    """Words of one payload line; inline timestamps give word starts, else spread evenly."""
    pieces = _INLINE_TS.split(raw)
    if len(pieces) > 1:
        # split() gives [text, h, m, s, ms, text, h, m, s, ms, text, ...]
        stamps = [start]
        texts = [pieces[0]]
        for k in range(1, len(pieces), 5):
            stamps.append(_seconds(*pieces[k:k + 4]))
            texts.append(pieces[k + 4])
        words = []
        for t0, chunk in zip(stamps, texts):
            for w in _clean(chunk).split():
                words.append({"start": round(t0, 3), "word": w})
        for a, b in zip(words, words[1:]):
            a["end"] = max(a["start"], b["start"])
        if words:
            words[-1]["end"] = round(max(words[-1]["start"], end), 3)
        return words
    tokens = _clean(raw).split()
    if not tokens:
        return []
    step = (end - start) / len(tokens)
    return [{"start": round(start + k * step, 3), "end": round(start + (k + 1) * step, 3), "word": t,
             "approx": True} for k, t in enumerate(tokens)]


def vtt_to_segments(text: str, name: str = "captions") -> list[dict]:
    cues = sorted(parse_cues(text, name), key=lambda c: (c[0], c[1]))
    segments = []
    previous: list[str] = []
    for start, end, payload in cues:
        cleaned = [_clean(p) for p in payload]
        if end - start < 0.05:  # rolling auto-captions: a 10 ms cue re-showing the finished line
            previous = [c for c in cleaned if c]
            continue
        new = [(raw, c) for raw, c in zip(payload, cleaned) if c and c not in previous]
        previous = [c for c in cleaned if c]
        if not new:
            continue
        words = [w for raw, _ in new for w in _timed_words(raw, start, end)]
        segments.append({"start": round(start, 3), "end": round(end, 3), "text": " ".join(c for _, c in new),
                         "words": words})
    return segments


def load_captions(path: Path) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaptionError(f"{Path(path).name} is not UTF-8 text; delete it to use ASR instead") from None
    return vtt_to_segments(text, Path(path).name)
