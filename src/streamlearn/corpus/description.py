"""The description format (the training target) and its rendering to target text.

`descriptions/<chunk_id>.json` follows SCHEMA (versioned). `render_target` turns one into the text
the model learns to predict, with metadata injected in a fixed, documented layout
(docs/targets.md). Shared by describe (writes), train (reads targets) and eval (reads QA pairs).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import read_object

SCHEMA = "streamlearn.description/1"
QA_TYPES = ("place", "time", "people", "spoken", "ocr", "visual", "counting", "cross_day", "abstention")
TIME_OF_DAY = ("morning", "afternoon", "evening", "night", "unknown")


def empty(chunk: dict, n_days: int | None) -> dict:
    """A description skeleton carrying the chunk's metadata; generators fill the rest."""
    return {
        "schema": SCHEMA, "chunk_id": chunk["chunk_id"], "video_id": chunk["video_id"],
        "day_index": chunk.get("day_index"), "n_days": n_days, "start_local": chunk.get("start_local"),
        "end_local": chunk.get("end_local"), "timezone": chunk.get("timezone"),
        "duration_s": float(chunk["duration_s"]),
        "setting": {"city": None, "region": None, "venue": None, "indoor": None},
        "time_of_day": "unknown", "lighting": None, "timeline": [], "people": [], "speech": [],
        "on_screen_text": [], "notable": [], "continuity": {"from_previous": None, "sets_up": None},
        "summary": "", "limitations": [], "qa": [], "generator": {},
    }


def _type_error(path: str, want: str, got) -> str:
    return f"{path} must be {want}, got {type(got).__name__}"


def validate(doc) -> list[str]:
    """Problems with a description (empty list = valid). Messages name the field."""
    if not isinstance(doc, dict):
        return [_type_error("description", "a JSON object", doc)]
    errs = []
    if doc.get("schema") != SCHEMA:
        errs.append(f"schema must be {SCHEMA!r}")
    for key in ("chunk_id", "summary"):
        if not isinstance(doc.get(key), str) or not doc.get(key, "").strip():
            errs.append(f"{key} must be a non-empty string")
    duration = doc.get("duration_s")
    if not isinstance(duration, (int, float)):
        errs.append(_type_error("duration_s", "a number", duration))
        duration = 1e9
    setting = doc.get("setting")
    if not isinstance(setting, dict):
        errs.append(_type_error("setting", "an object", setting))
    else:
        for k in ("city", "region", "venue"):
            if setting.get(k) is not None and not isinstance(setting[k], str):
                errs.append(_type_error(f"setting.{k}", "a string or null", setting[k]))
        if setting.get("indoor") is not None and not isinstance(setting["indoor"], bool):
            errs.append(_type_error("setting.indoor", "true, false or null", setting["indoor"]))
    if doc.get("time_of_day") not in TIME_OF_DAY:
        errs.append(f"time_of_day must be one of {', '.join(TIME_OF_DAY)}")
    for key, fields in (("timeline", ("start_s", "end_s", "event")), ("speech", ("start_s", "text")),
                        ("on_screen_text", ("start_s", "text"))):
        items = doc.get(key)
        if not isinstance(items, list):
            errs.append(_type_error(key, "a list", items))
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errs.append(_type_error(f"{key}[{i}]", "an object", item))
                continue
            for f in fields:
                v = item.get(f)
                if f.endswith("_s"):
                    if not isinstance(v, (int, float)) or not -1 <= v <= duration + 1:
                        errs.append(f"{key}[{i}].{f} must be a time in seconds within the chunk, got {v!r}")
                elif not isinstance(v, str) or not v.strip():
                    errs.append(f"{key}[{i}].{f} must be a non-empty string")
    for key in ("people", "notable", "limitations"):
        if not isinstance(doc.get(key), list):
            errs.append(_type_error(key, "a list", doc.get(key)))
    qa = doc.get("qa")
    if not isinstance(qa, list):
        errs.append(_type_error("qa", "a list", qa))
    else:
        for i, q in enumerate(qa):
            if not isinstance(q, dict):
                errs.append(_type_error(f"qa[{i}]", "an object", q))
                continue
            for f in ("question", "answer"):
                if not isinstance(q.get(f), str) or not q.get(f, "").strip():
                    errs.append(f"qa[{i}].{f} must be a non-empty string")
            if q.get("type") not in QA_TYPES:
                errs.append(f"qa[{i}].type must be one of {', '.join(QA_TYPES)}")
            for j, v in enumerate(q.get("variants") or []):
                if not isinstance(v, dict) or v.get("kind") not in ("paraphrase", "reverse") \
                        or not isinstance(v.get("question"), str) or not v["question"].strip():
                    errs.append(f"qa[{i}].variants[{j}] must be {{kind: paraphrase|reverse, question, answer}}")
                elif v["kind"] == "reverse" and (not isinstance(v.get("answer"), str) or not v["answer"].strip()):
                    errs.append(f"qa[{i}].variants[{j}].answer must be a non-empty string (a reversed question "
                                "has its own answer)")
            ev = q.get("evidence_s")
            if not (isinstance(ev, list) and len(ev) == 2 and all(isinstance(x, (int, float)) for x in ev)):
                errs.append(f"qa[{i}].evidence_s must be [start, end] in seconds")
    return errs


def load(path: Path, checked: bool = False) -> dict:
    """A description file; a file that is not one (bad JSON, not an object, or with `checked`, outside the
    schema) raises one line naming the file and how to make it again."""
    path = Path(path)
    fix = f"re-describe the chunk: `streamlearn describe CORPUS --force --only {path.stem}`"
    doc = read_object(path, "description", fix)
    if checked:
        problems = validate(doc)
        if problems:
            raise StreamlearnError(f"description {path.name} fails the schema ({problems[0]}); {fix}")
    return doc


def _clock(start_local: str | None, offset_s: float) -> str | None:
    if not start_local:
        return None
    return (datetime.fromisoformat(start_local) + timedelta(seconds=offset_s)).strftime("%H:%M:%S")


def _mmss(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 60}:{s % 60:02d}"


def header(doc: dict) -> str:
    """`Day 2 of 35 · Boston, Massachusetts · Sat 2 Aug 2025, 11:30-11:50 (America/New_York)`"""
    parts = []
    if doc.get("day_index"):
        parts.append(f"Day {doc['day_index']}" + (f" of {doc['n_days']}" if doc.get("n_days") else ""))
    setting = doc.get("setting") or {}
    place = ", ".join(x for x in (setting.get("city"), setting.get("region")) if x)
    parts.append(place or "place unknown")
    if doc.get("start_local"):
        a = datetime.fromisoformat(doc["start_local"])
        b = datetime.fromisoformat(doc["end_local"]) if doc.get("end_local") else None
        span = a.strftime("%a %-d %b %Y, %H:%M") + (f"-{b.strftime('%H:%M')}" if b else "")
        parts.append(span + (f" ({doc['timezone']})" if doc.get("timezone") else ""))
    else:
        parts.append("time unknown")
    return " · ".join(parts)


def render_target(doc: dict, max_speech: int = 40) -> str:
    """The training target: the description with injected metadata, in a fixed layout."""
    lines = [header(doc)]
    cont = doc.get("continuity") or {}
    if cont.get("from_previous"):
        lines.append(f"Continuing: {cont['from_previous']}")
    setting = doc.get("setting") or {}
    where = [x for x in (setting.get("venue"), setting.get("city")) if x]
    inout = {True: "indoors", False: "outdoors"}.get(setting.get("indoor"))
    when = [x for x in (doc.get("time_of_day") if doc.get("time_of_day") != "unknown" else None,
                        doc.get("lighting")) if x]
    lines.append("Setting: " + ", ".join(where + ([inout] if inout else []) or ["unknown"]) +
                 (". " + ", ".join(when).capitalize() + "." if when else "."))
    if doc.get("timeline"):
        lines.append("Timeline:")
        for ev in doc["timeline"]:
            clock = _clock(doc.get("start_local"), ev["start_s"])
            lines.append(f"- {clock + ' ' if clock else ''}(+{_mmss(ev['start_s'])}) {ev['event']}")
    if doc.get("people"):
        ppl = []
        for p in doc["people"]:
            name = p.get("name") or p.get("id")
            extra = ", ".join(x for x in (p.get("role"), p.get("description")) if x)
            ppl.append(name + (f" ({extra})" if extra else "") + ("" if p.get("speaks", True) else ", silent"))
        lines.append("People: " + "; ".join(ppl) + ".")
    if doc.get("speech"):
        lines.append("Said:")
        for s in doc["speech"][:max_speech]:
            clock = _clock(doc.get("start_local"), s["start_s"])
            who = s.get("speaker") or "someone"
            lines.append(f"- {clock + ' ' if clock else ''}{who}: \"{s['text']}\"")
    if doc.get("on_screen_text"):
        lines.append("On screen: " + "; ".join(
            f"\"{t['text']}\" ({_clock(doc.get('start_local'), t['start_s']) or '+' + _mmss(t['start_s'])})"
            for t in doc["on_screen_text"]) + ".")
    if doc.get("notable"):
        lines.append("Notable: " + " ".join(n.rstrip(".") + "." for n in doc["notable"]))
    if cont.get("sets_up"):
        lines.append(f"Next: {cont['sets_up']}")
    lines.append(f"Summary: {doc['summary']}")
    return "\n".join(lines)


def render_qa(q: dict) -> str:
    """A QA pair as an extra training sample's target."""
    return f"Q: {q['question']}\nA: {q['answer']}"


def render_day(doc: dict) -> str:
    """A day summary (streamlearn.day_summary/1) as target text."""
    lines = [doc["summary"]]
    for c in doc["chunks"]:
        lines.append(f"- {c['start_local'][11:16] if c.get('start_local') else '?'} {c['summary']}")
    return "\n".join(lines)


# Each fact in many wordings (at least 10 a kind, so a dozen renderings rarely repeat one): which element
# leads (time, place, person, quote, on-screen text), active and passive voice, both directions of a relation, always with its day and clock time. The wordings avoid the
# question templates' own phrases (describe/signals.py: "what did ... say", "which words could be read",
# "first appear on screen", "broadcasting from", "distinct speakers"), so a rendering states a fact without
# restating how the bank asks it (the contamination audit checks every target anyway).
FACT_TEMPLATES = {
    "place": ["On day {day}, from {start} to {end}, the stream was in {place}.",
              "{place} is where the stream was on day {day} between {start} and {end}.",
              "Between {start} and {end} on day {day} the streamer was in {place}.",
              "Day {day}, {start}-{end}: location {place}.",
              "The streamer spent {start} to {end} of day {day} in {place}.",
              "{place} was the setting from {start} until {end} on day {day}.",
              "From {start} until {end}, day {day} of the tour took place in {place}.",
              "During the stretch from {start} to {end} on day {day}, the location was {place}.",
              "On day {day} the stream moved to {place} by {start} and stayed until {end}.",
              "The tour stopped in {place} on day {day}; the camera rolled there from {start} to {end}.",
              "{start} to {end}, day {day}, in {place}: that is where this part of the stream happened."],
    "opening": ["Day {day}, {start} local time: this part opens with {text} on screen.",
                "The stretch that started at {start} on day {day} opened on the words {text}.",
                "{text} was the first thing on screen when this part began at {start} on day {day}.",
                "At {start} on day {day} a new stretch began, opening on {text}.",
                "The part beginning {start}, day {day}, shows {text} first.",
                "First on screen in the stretch from {start} on day {day}: {text}.",
                "On day {day} the scene that starts at {start} begins with {text}.",
                "{text} opens the part of day {day} that starts at {start}.",
              "The opening shot of the stretch from {start} on day {day} shows {text}.",
              "Day {day}: the part from {start} onward starts on {text}.",
              "Before anything else in the stretch starting {start} on day {day}, {text} is on screen."],
    "shown": ["On day {day} at {clock}, the words \"{text}\" were on screen.",
              "The words \"{text}\" appeared on screen at {clock} on day {day}.",
              "At {clock} on day {day} the picture showed \"{text}\".",
              "\"{text}\" was visible on screen on day {day}, {clock}.",
              "Day {day}, {clock}: a sign in view said \"{text}\".",
              "The screen showed \"{text}\" on day {day} at {clock}.",
              "{clock} on day {day} is when \"{text}\" could be seen in the picture.",
              "In the picture at {clock} (day {day}): \"{text}\".",
              "Someone watching on day {day} at {clock} could read \"{text}\" in the frame.",
              "\"{text}\": in view at {clock}, day {day}.",
              "The camera caught the text \"{text}\" on day {day} at {clock}."],
    "said": ["At {clock} on day {day}, {who} said: \"{text}\"",
             "{who} said \"{text}\" on day {day} at {clock}.",
             "On day {day}, {clock}: {who}: \"{text}\"",
             "\"{text}\" ({who}, day {day}, {clock}).",
             "The line \"{text}\" was spoken by {who} at {clock} on day {day}.",
             "Day {day}, {clock}, {who} speaking: \"{text}\"",
             "{who} was heard at {clock} on day {day} saying \"{text}\"",
             "When it was {clock} on day {day}, the line from {who} was \"{text}\"",
             "Day {day} at {clock}: \"{text}\", in the voice of {who}.",
             "The words \"{text}\" came from {who}, day {day}, {clock}.",
             "{who}, at {clock} on day {day}, told the camera: \"{text}\""],
    "voices": ["{n} voices are heard on day {day} from {start} to {end}.",
               "From {start} to {end} on day {day}, {n} different people speak.",
               "{n} people talk on day {day} between {start} and {end}.",
               "Day {day}, {start}-{end}: {n} voices.",
               "The number of people speaking from {start} to {end} on day {day} is {n}.",
               "On day {day}, {start}-{end}, the voices heard number {n}.",
               "Between {start} and {end} on day {day}, the audio carries {n} speakers.",
               "{n}: that many people can be heard talking on day {day} from {start} until {end}.",
               "Day {day} from {start} to {end} has {n} people speaking on it.",
               "From {start}, day {day}, until {end}, {n} people take part in the talk."],
}


def _pick(seed: int, *parts) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()[:4], "big")


def render_facts(doc: dict, variant: int = 0) -> str:
    """An augmented description: every fact of the description as a self-contained sentence that
    carries its own day and clock time, worded by one of the `FACT_TEMPLATES` and shuffled, both
    chosen by `variant` (Allen-Zhu & Li, Physics of LMs 3.1: knowledge becomes extractable when each
    statement names its anchor and appears in varied wordings and orders; Pan et al. 2025: in the
    order a question asks it). Made from the description alone, never from its QA pairs."""
    import random

    day = doc.get("day_index") or "?"
    start = _clock(doc.get("start_local"), 0.0) or "+0:00"
    end = _clock(doc.get("start_local"), float(doc.get("duration_s") or 0)) or f"+{_mmss(doc.get('duration_s') or 0)}"
    facts: list[tuple[str, dict]] = []
    setting = doc.get("setting") or {}
    place = ", ".join(x for x in (setting.get("venue"), setting.get("city"), setting.get("region")) if x)
    if place:
        facts.append(("place", {"place": place}))
    shown = doc.get("on_screen_text") or []
    if shown and doc.get("start_local"):
        facts.append(("opening", {"text": shown[0]["text"]}))
    for t in shown:
        facts.append(("shown", {"text": t["text"], "clock": _clock(doc.get("start_local"), t["start_s"])
                                or f"+{_mmss(t['start_s'])}"}))
    for s in doc.get("speech") or []:
        facts.append(("said", {"text": s["text"], "who": s.get("speaker") or "someone",
                               "clock": _clock(doc.get("start_local"), s["start_s"]) or f"+{_mmss(s['start_s'])}"}))
    if doc.get("people"):
        facts.append(("voices", {"n": len(doc["people"])}))
    lines = []
    for k, (kind, values) in enumerate(facts):
        options = FACT_TEMPLATES[kind]
        lines.append(options[_pick(variant, doc.get("chunk_id"), k) % len(options)].format(
            day=day, start=start, end=end, **values))
    random.Random(_pick(variant, doc.get("chunk_id"), "order")).shuffle(lines)
    return "\n".join(lines)
