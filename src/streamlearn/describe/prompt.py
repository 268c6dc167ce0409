"""The generator prompt: what a VLM is asked, with which inputs, and how to repair bad output."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

import numpy as np
from PIL import Image

from streamlearn.corpus import description as D
from streamlearn.describe.context import ChunkContext

SYSTEM = (
    "You write gold descriptions of chunks of one person's first-person livestream. The description is "
    "the training target for a model that must learn this person's reality, so be concrete and exact: "
    "places, times, who speaks, what is said, what is written on screen, what happens. Use only what the "
    "frames, the transcript and the metadata show; put anything you cannot tell in \"limitations\". "
    "Answer with one JSON object and nothing else."
)

SHAPE = {
    "setting": {"city": "string or null", "region": "string or null", "venue": "string or null",
                "indoor": "true, false or null"},
    "time_of_day": "|".join(D.TIME_OF_DAY), "lighting": "string or null",
    "timeline": [{"start_s": "seconds from chunk start", "end_s": "seconds", "event": "what happens"}],
    "people": [{"id": "speaker label (SPEAKER_00...) or person_1...", "name": "string or null",
                "role": "string or null", "speaks": "true|false", "description": "string or null"}],
    "speech": [{"start_s": "seconds", "speaker": "speaker label", "text": "a key quote"}],
    "on_screen_text": [{"start_s": "seconds", "text": "text as written"}],
    "notable": ["string"], "continuity": {"from_previous": "string or null", "sets_up": "string or null"},
    "summary": "one paragraph", "limitations": ["string"],
    "qa": [{"question": "answerable by someone who saw this chunk; name the day and local time",
            "answer": "short answer", "type": "|".join(D.QA_TYPES[:7]), "evidence_s": ["start", "end"],
            "variants": [{"kind": "paraphrase", "question": "the same question in other words and word order"},
                         {"kind": "reverse", "question": "the other direction: ask for the cue given the answer "
                          "(when was X said/shown, who said X); omit when there is none", "answer": "its answer"}]}],
}


def _jpeg_data_url(frame: np.ndarray, quality: int = 85) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def transcript_lines(doc: dict | None, limit: int = 400) -> str:
    if not doc or not doc.get("segments"):
        return "(no speech transcribed)"
    lines = [f"[{s['start']:7.1f}s] {s.get('speaker') or '?'}: {s['text'].strip()}" for s in doc["segments"][:limit]]
    return "\n".join(lines)


def user_text(ctx: ChunkContext) -> str:
    c = ctx.chunk
    prev = ctx.previous
    prev_text = D.render_target(prev) if prev else "(this is the first chunk)"
    return "\n".join([
        f"Chunk {c['chunk_id']} of video {c['video_id']} ({int(c['chunk_index']) + 1} of {c['n_chunks']}), "
        f"day {c.get('day_index') or '?'} of {ctx.n_days or '?'}, {float(c['duration_s']):.0f} s long.",
        f"Local time: {c.get('start_local') or 'unknown'} to {c.get('end_local') or 'unknown'} "
        f"({c.get('timezone') or 'timezone unknown'}).",
        f"Video title: {ctx.video.get('title') or ''}",
        f"Platform description: {ctx.info().get('description') or ''}",
        "", "Previous chunk's description:", prev_text,
        "", "Speaker-attributed transcript (seconds from chunk start):", transcript_lines(ctx.transcript()),
        "", "Frames follow, each labelled with its time from chunk start.",
        "Return JSON with exactly these fields:", json.dumps(SHAPE, indent=1),
    ])


def messages(ctx: ChunkContext, n_frames: int, frame_width: int) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": user_text(ctx)}]
    times, frames = ctx.frames(n_frames, frame_width) if n_frames else ([], [])
    for t, f in zip(times, frames):
        content.append({"type": "text", "text": f"Frame at {t:.1f}s:"})
        content.append({"type": "image_url", "image_url": {"url": _jpeg_data_url(f)}})
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


def repair_messages(base: list[dict], bad_output: str, problems: list[str]) -> list[dict]:
    return base + [
        {"role": "assistant", "content": bad_output[:20000]},
        {"role": "user", "content": "That output cannot be used: " + "; ".join(problems[:12]) +
         ". Return the corrected description as one JSON object, nothing else."},
    ]


def request_key(model: str, msgs: list[dict], extra: dict | None = None) -> str:
    """Cache key: model + the full prompt (images included) + generation settings."""
    blob = json.dumps({"model": model, "messages": msgs, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def extract_json(text: str) -> dict:
    """The first complete JSON object in a reply (code fences and chatter around it ignored)."""
    text = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.M)
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return json.loads(text[start:i + 1])
    raise ValueError("the JSON object is not closed (truncated reply?)")
