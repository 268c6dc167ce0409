"""The `signals` backend: a description without a vision model, from what can be measured.

On-screen text (OCR of frames every few seconds), scene changes (colour change between frames),
brightness, the speaker-attributed transcript and the video's metadata. A place is named only when
two independent signals agree (on-screen text that also appears in the title, description or
speech). It says what it cannot see in `limitations`, and never invents visual detail.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict

import numpy as np

from streamlearn.corpus import description as D
from streamlearn.core.config import DescribeSection
from streamlearn.describe.context import ChunkContext

CLOCK = re.compile(r"^\d{1,2}[:.]\d{2}([:.]\d{2})?$")
COUNT = re.compile(r"\b(\d+)\s+([a-z]+(?:\s[a-z]+)?)\b")
LIMITATION = ("Made without a vision model (signals backend): places and objects come from on-screen text, "
              "speech and metadata, scene changes from colour changes; visual details that are not written or "
              "said are missing.")

_OCR_LOCK = threading.Lock()
_OCR: list = []


def _ocr_engine():
    with _OCR_LOCK:
        if not _OCR:
            from rapidocr_onnxruntime import RapidOCR

            _OCR.append(RapidOCR())
        return _OCR[0]


def ocr(frame: np.ndarray, min_conf: float = 0.6) -> list[tuple[str, float]]:
    """(text, text height in px) of each line read in an RGB frame; words the engine returns as
    separate boxes on one baseline (LAS | VEGAS) are joined into one line."""
    engine = _ocr_engine()
    with _OCR_LOCK:  # one ONNX session, shared
        result, _ = engine(np.ascontiguousarray(frame[..., ::-1]))
    boxes = []
    for box, text, conf in result or []:
        if float(conf) >= min_conf and text.strip() and not _ocr_junk(text):
            xs, ys = [p[0] for p in box], [p[1] for p in box]
            boxes.append([min(xs), max(xs), (min(ys) + max(ys)) / 2, max(ys) - min(ys), " ".join(text.split())])
    boxes.sort(key=lambda b: (b[2], b[0]))
    lines: list[list] = []
    for b in boxes:
        last = lines[-1] if lines else None
        if last and abs(b[2] - last[2]) < 0.5 * max(b[3], last[3]) and 0 <= b[0] - last[1] < 1.5 * max(b[3], last[3]) \
                and abs(b[3] - last[3]) < 0.35 * max(b[3], last[3]):
            last[1], last[4] = b[1], f"{last[4]} {b[4]}"
        else:
            lines.append(list(b))
    return [(b[4], float(b[3])) for b in lines]


def thumbnail(frame: np.ndarray, w: int = 64, h: int = 36) -> np.ndarray:
    """A w x h grey picture of the frame (block means): cheap to compare, blind to noise."""
    grey = frame.astype(np.float32).mean(axis=2)
    ys = np.linspace(0, grey.shape[0], h + 1).astype(int)
    xs = np.linspace(0, grey.shape[1], w + 1).astype(int)
    rows = np.add.reduceat(grey, ys[:-1], axis=0) / np.diff(ys)[:, None]
    return np.add.reduceat(rows, xs[:-1], axis=1) / np.diff(xs)[None, :]


def read_text(frames, same_picture: float) -> list[list[tuple[str, float]]]:
    """OCR of each frame, except that a frame none of whose thumbnail blocks (64 x 36 grey block means)
    moved by `same_picture` 8-bit levels or more since the last frame read is the same picture: it gets
    that frame's text without another OCR pass. OCR costs seconds a frame at 960 px on 2 cores and a
    20-minute chunk samples 240 frames; a picture that holds still (a room, a screen, a parked camera)
    is read once (issue 26). The largest block change, not the mean, decides: new words in the same
    sign box move a few blocks by tens of levels and the mean by almost nothing. 0 reads every frame."""
    reads: list[list[tuple[str, float]]] = []
    last_thumb, last_read = None, None
    for f in frames:
        thumb = thumbnail(f) if same_picture > 0 else None
        if last_thumb is not None and float(np.abs(thumb - last_thumb).max()) < same_picture:
            reads.append(last_read)
            continue
        last_thumb, last_read = thumb, ocr(f)
        reads.append(last_read)
    return reads


def _ocr_junk(text: str) -> bool:
    """A read of very low content: one or two characters with no letter or digit of a word
    (a lone `一` or `|` that a stroke or an edge became)."""
    t = "".join(text.split())
    return len(t) <= 2 and not re.search(r"[A-Za-z0-9]", t) and not (len(t) == 2 and all(c.isalpha() for c in t))


def key(text: str) -> str:
    """Comparison key: case, spaces and punctuation ignored (OCR often drops spaces)."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def time_of_day(start_local: str | None, offset: float = 0.0) -> str:
    if not start_local:
        return "unknown"
    from datetime import datetime, timedelta

    hour = (datetime.fromisoformat(start_local) + timedelta(seconds=offset)).hour
    return "morning" if 5 <= hour < 12 else "afternoon" if hour < 17 else "evening" if hour < 21 else "night"


def scene_starts(frames: np.ndarray, threshold: float = 18.0) -> list[int]:
    """Indexes where the picture changes a lot (mean abs difference of 16x9 thumbnails)."""
    t, h, w, _ = frames.shape
    ys, xs = np.linspace(0, h - 1, 9).astype(int), np.linspace(0, w - 1, 16).astype(int)
    thumbs = frames[:, ys][:, :, xs].astype(np.float32)
    starts = [0]
    for i in range(1, t):
        if np.abs(thumbs[i] - thumbs[i - 1]).mean() > threshold:
            starts.append(i)
    return starts


class SignalsBackend:
    name = "signals"
    model = "signals/1 (rapidocr, transcript, scene changes)"

    def __init__(self, section: DescribeSection | None = None):
        self.s = section or DescribeSection()

    def describe(self, ctx: ChunkContext) -> tuple[dict, dict]:
        doc = D.empty(ctx.chunk, ctx.n_days)
        dur = ctx.duration
        n = int(min(self.s.ocr_max_frames, max(2, math.ceil(dur / self.s.ocr_interval_s))))
        times, frames = ctx.frames(n, self.s.ocr_width)
        reads = read_text(frames, self.s.ocr_same_picture)
        tx = ctx.transcript() or {"segments": []}
        segments = [s for s in tx.get("segments", []) if s.get("text", "").strip()]
        speech_text = " ".join(s["text"] for s in segments)
        meta_text = ctx.metadata_text()

        # on-screen text: lines that are not a running clock, first time seen
        clock_seen = None
        first_seen: dict[str, tuple[float, str]] = {}
        count: Counter = Counter()
        height: dict[str, list[float]] = defaultdict(list)
        for t, lines in zip(times, reads):
            for text, hgt in lines:
                if CLOCK.match(text):
                    clock_seen = clock_seen or (t, text)
                    continue
                k = key(text)
                if not k:
                    continue
                first_seen.setdefault(k, (t, text))
                count[k] += 1
                height[k].append(hgt)
        # a place: large, persistent on-screen text that the title/description or speech also names
        evidence = key(meta_text) + " " + key(speech_text)
        places = sorted((k for k in count if len(k) >= 3 and not k.isdigit() and k in evidence),
                        key=lambda k: count[k] * float(np.mean(height[k])), reverse=True)
        city = first_seen[places[0]][1].title() if places else None
        region = None
        if city:
            m = re.search(rf"{re.escape(city)}\s*,\s*([A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)?)", meta_text, re.I)
            region = m.group(1) if m else None
        starts = scene_starts(frames)
        # a venue: the scene's other persistent on-screen text that speech also mentions
        venues = []
        for a, b in zip(starts, starts[1:] + [len(frames)]):
            in_scene = Counter(key(x) for lines in reads[a:b] for x, _ in lines if not CLOCK.match(x))
            cands = [k for k, c in in_scene.items() if c >= max(1, (b - a) // 2) and (not places or k != places[0])
                     and len(k) >= 4 and k in key(speech_text)]
            venues.append(first_seen[max(cands, key=lambda k: float(np.mean(height[k])))][1].title() if cands else None)
        doc["setting"].update(city=city, region=region, venue=next((v for v in venues if v), None))
        doc["time_of_day"] = time_of_day(ctx.chunk.get("start_local"), dur / 2)
        luma = float(frames.mean())
        doc["lighting"] = "bright picture" if luma > 110 else "dim picture" if luma > 50 else "dark picture"
        for i, (a, b) in enumerate(zip(starts, starts[1:] + [len(frames)])):
            shown = []
            for lines in reads[a:b]:
                for text, _ in lines:
                    if not CLOCK.match(text) and text not in shown:
                        shown.append(text)
            event = ("The picture changes; " if i else "") + (
                f"on screen: {', '.join(shown[:4])}" if shown else "no readable text on screen")
            if venues[i]:
                event += f" (at {venues[i]})"
            doc["timeline"].append({"start_s": round(times[a], 2), "end_s": round(times[b] if b < len(times) else dur, 2),
                                    "event": event})
        speakers = defaultdict(float)
        for s in segments:
            speakers[s.get("speaker") or "unknown speaker"] += s["end"] - s["start"]
            doc["speech"].append({"start_s": round(max(0.0, s["start"]), 2), "speaker": s.get("speaker"),
                                  "text": s["text"].strip()})
        doc["people"] = [{"id": spk, "name": None, "role": None, "speaks": True,
                          "description": f"speaks for {secs:.0f} s"} for spk, secs in sorted(speakers.items())]
        doc["on_screen_text"] = [{"start_s": round(t, 2), "text": text} for t, text in sorted(first_seen.values())]
        if clock_seen:
            doc["notable"].append(f"A clock on screen shows {clock_seen[1]} at +{int(clock_seen[0])} s")
        prev = ctx.previous
        if prev:
            pc = (prev.get("setting") or {}).get("city")
            if pc and city and key(pc) == key(city):
                doc["continuity"]["from_previous"] = f"Still in {city}, continuing from the previous chunk."
            elif pc and city:
                doc["continuity"]["from_previous"] = f"Moved on from {pc} to {city} since the previous chunk."
            else:
                doc["continuity"]["from_previous"] = "Follows the previous chunk of the stream."
        ahead = [s for s in segments if re.search(r"\b(tomorrow|next|later|going to)\b", s["text"], re.I)]
        if ahead:
            doc["continuity"]["sets_up"] = f"Said ahead: \"{ahead[-1]['text'].strip()}\""
        first_quote = f" First words: \"{segments[0]['text'].strip()}\"" if segments else ""
        where = f"in {city}" + (f" ({venues[0] or doc['setting']['venue']})" if doc["setting"]["venue"] else "") \
            if city else "at an unidentified place"
        doc["summary"] = (f"{doc['time_of_day'].capitalize()} {where}; {len(speakers)} voice(s) heard, "
                          f"{len(starts)} scene(s); on screen: "
                          f"{', '.join(t['text'] for t in doc['on_screen_text'][:5]) or 'nothing readable'}."
                          + first_quote)
        doc["limitations"] = [LIMITATION]
        doc["qa"] = self.qa(doc, segments, dur)
        return doc, {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}

    @staticmethod
    def qa(doc: dict, segments: list[dict], dur: float) -> list[dict]:
        """QA pairs about what was shown and said, each with a reworded paraphrase and, where the
        fact has a second direction, a reversed question (asked by the evaluation, never trained)."""
        d = doc.get("day_index")
        day = f" on day {d}" if d else ""
        on_day = f"On day {d}, " if d else ""

        def at(t: float) -> str:
            clock = D._clock(doc.get("start_local"), t)
            return f"at {clock}" if clock else f"{int(t)} s into chunk {doc['chunk_id']}"

        def when(t: float) -> str:
            return D._clock(doc.get("start_local"), t) or f"{int(t)} s into chunk {doc['chunk_id']}"

        def para(q: str) -> dict:
            return {"kind": "paraphrase", "question": q}

        qa = []
        city = doc["setting"]["city"]
        if city:
            t = dur / 2
            qa.append({"question": f"Which city was the streamer in {at(t)}{day}?", "answer": city, "type": "place",
                       "evidence_s": [0.0, round(dur, 2)],
                       "variants": [para(f"{on_day}{at(t)}, the stream was broadcasting from which city?")]})
        if doc.get("start_local"):
            shown = (doc["on_screen_text"] or [{"text": "this scene"}])[0]["text"]
            start = doc["start_local"][11:16]
            variants = [para(f"{on_day}when, in local time, did the stretch of stream that shows {shown} start?")]
            if doc["on_screen_text"]:
                variants.append({"kind": "reverse", "question": f"{on_day}what was the first text on screen in the "
                                 f"part of the stream that began at {start}?", "answer": shown})
            qa.append({"question": f"At what local time did the part of the stream showing {shown} begin{day}?",
                       "answer": start, "type": "time", "evidence_s": [0.0, 1.0], "variants": variants})
        skip = {key(city or ""), key(doc["setting"]["venue"] or "")}
        for item in [t for t in doc["on_screen_text"] if key(t["text"]) not in skip][:3]:
            t = item["start_s"]
            qa.append({"question": f"What did the text on screen read {at(t)}{day}?", "answer": item["text"],
                       "type": "ocr", "evidence_s": [t, t + 5.0],
                       "variants": [para(f"{on_day}{at(t)}, which words could be read on screen?"),
                                    {"kind": "reverse", "question": f"{on_day}at what time did the words "
                                     f"\"{item['text']}\" first appear on screen?", "answer": when(t)}]})
        for seg in segments[:3]:
            who = seg.get("speaker") or "someone"
            text = seg["text"].strip()
            qa.append({"question": f"What did {who} say {at(seg['start'])}{day}?", "answer": text, "type": "spoken",
                       "evidence_s": [round(seg["start"], 2), round(seg["end"], 2)],
                       "variants": [para(f"{on_day}{at(seg['start'])}, what were {who}'s words?"),
                                    {"kind": "reverse", "question": f"{on_day}at what time did {who} say "
                                     f"\"{text}\"?", "answer": when(seg["start"])}]})
        for seg in segments:
            m = COUNT.search(seg["text"].lower())
            if m:
                qa.append({"question": f"How many {m.group(2)} were mentioned {at(seg['start'])}{day}?",
                           "answer": m.group(1), "type": "counting",
                           "evidence_s": [round(seg["start"], 2), round(seg["end"], 2)],
                           "variants": [para(f"{on_day}{at(seg['start'])}, what number of {m.group(2)} came up "
                                             "in conversation?")]})
                break
        if doc["people"]:
            qa.append({"question": f"How many different voices are heard in the part of the stream starting "
                                   f"{at(0.0)}{day}?", "answer": str(len(doc["people"])), "type": "people",
                       "evidence_s": [0.0, round(dur, 2)],
                       "variants": [para(f"{on_day}how many distinct speakers can be heard in the stretch of "
                                         f"stream that starts {at(0.0)}?")]})
        # one answer per question: two texts on screen in the same second would make it ambiguous
        first: dict[str, dict] = {}
        for q in qa:
            first.setdefault(q["question"], q)
        return list(first.values())
