"""What each described chunk teaches: the training samples before encoding (`SampleSpec`).

A described chunk gives its description as a target, and as configured (`train.targets`) its facts
(varied wording and order), its generated rewrites (`streamlearn rewrite`), a paraphrase, its QA pairs
with and without the video; a video gives its day summary over a montage of its chunks. `train`
encodes these; `export` writes them in other tools' shapes. Held-out facts (`streamlearn.corpus.heldout`)
never become QA targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from streamlearn.corpus import description as D
from streamlearn.corpus import rewrites as R
from streamlearn.core.config import TrainConfig
from streamlearn.corpus.layout import Corpus, stream_order
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus.heldout import Constraints, load_constraints
from streamlearn.core.manifest import DONE, SKIPPED, status_of

INSTRUCTIONS = {
    "description": None,  # TrainConfig.instruction
    "qa": "Answer these questions about this part of the stream.",
    "qa_text": "Answer these questions about the stream.",
    "paraphrase": "Tell what happens in this part of the stream.",
    "facts": "List the facts of this part of the stream, each with its day and time.",
    "rewrites": "Retell this part of the stream, every fact with its day and time.",
    "day_summary": "Summarize this day of the stream.",
    "audio": "Tell what was said in this audio recording.",  # the description of a chunk with no picture
}


@dataclass
class SampleSpec:
    """One training sample before encoding: which frames, which target text, which day."""

    key: str  # unique, e.g. <chunk_id>/description
    kind: str
    day: int
    frames: list[str]  # frame-cache paths (relative to the corpus); several for a day montage
    target: str
    instruction: str
    meta: dict = field(default_factory=dict)


def paraphrase(doc: dict) -> str:
    """The same facts in a different order and voice (facts are learned from many paraphrases)."""
    s = doc.get("setting") or {}
    place = ", ".join(x for x in (s.get("venue"), s.get("city"), s.get("region")) if x) or "an unidentified place"
    parts = [f"{doc['summary']}", f"This was {('day ' + str(doc['day_index'])) if doc.get('day_index') else 'a day'}"
             + (f" of {doc['n_days']}" if doc.get("n_days") else "") + f" of the stream, at {place}"
             + (f", starting {doc['start_local'][11:16]} local time" if doc.get("start_local") else "") + "."]
    if doc.get("speech"):
        parts.append("Among the things said: " + " ".join(f"{q.get('speaker') or 'someone'} said \"{q['text']}\"."
                                                           for q in doc["speech"][:12]))
    if doc.get("on_screen_text"):
        parts.append("Written on screen: " + ", ".join(f"\"{t['text']}\"" for t in doc["on_screen_text"]) + ".")
    return "\n".join(parts)


def build_specs(corpus: Corpus, cfg: TrainConfig, days: list[int] | None = None,
                constraints: Constraints | None = None) -> tuple[dict[int, list[SampleSpec]], dict]:
    """Samples grouped by day in stream order, and the items skipped with their reasons.

    With `constraints` (the sealed banks' held-out split) a QA pair is a `qa`/`qa_text` target only
    when a sealed split records its fact as QA-trained; held-out facts reach training only inside
    the description (and its paraphrase) and the video."""
    videos = corpus.videos.rows_by_key()
    chunks = stream_order(corpus.chunks.read(), videos)
    skipped: dict[str, str] = {}
    by_day: dict[int, list[SampleSpec]] = {}
    day_frames: dict[str, list[str]] = {}
    for c in chunks:
        day = int(c.get("day_index") or 0)
        if days and day not in days:
            continue
        if status_of(c, "describe") != DONE:
            continue  # not described yet: not a training sample (status shows these)
        cid = c["chunk_id"]
        audio_only = status_of(c, "frames") == SKIPPED  # no picture: text-only samples (a voice memo)
        if not audio_only and (status_of(c, "frames") != DONE or not c.get("frames_path")
                               or not corpus.abs(c["frames_path"]).exists()):
            skipped[cid] = "no cached frames; run `streamlearn frames`"
            continue
        try:
            doc = D.load(corpus.abs(c["description_path"]), checked=True)
        except StreamlearnError as exc:
            skipped[cid] = str(exc)
            continue
        specs = by_day.setdefault(day, [])
        frames = [] if audio_only else [c["frames_path"]]
        if frames:
            day_frames.setdefault(c["video_id"], []).append(c["frames_path"])
        if "description" in cfg.targets:
            specs.append(SampleSpec(f"{cid}/description", "description", day, frames, D.render_target(doc),
                                    INSTRUCTIONS["audio"] if audio_only else cfg.instruction, {"chunk_id": cid}))
        if "facts" in cfg.targets:  # augmented descriptions: each fact anchored, varied wording and order
            for v in range(cfg.fact_variants):
                specs.append(SampleSpec(f"{cid}/facts{v}", "facts", day, frames, D.render_facts(doc, v),
                                        INSTRUCTIONS["facts"], {"chunk_id": cid}))
        if "rewrites" in cfg.targets:  # the rest of the chunk trains without them
            texts, why = chunk_rewrites(corpus, c)
            if why:
                skipped[f"{cid}/rewrites"] = why
            for k, text in enumerate(texts[:cfg.rewrites_max or None]):
                specs.append(SampleSpec(f"{cid}/rewrite{k}", "rewrites", day, frames, text,
                                        INSTRUCTIONS["rewrites"], {"chunk_id": cid}))
        if "paraphrase" in cfg.targets:
            specs.append(SampleSpec(f"{cid}/paraphrase", "paraphrase", day, frames, paraphrase(doc),
                                    INSTRUCTIONS["paraphrase"], {"chunk_id": cid}))
        for k, q in enumerate(doc.get("qa") or []):
            if constraints is not None and not constraints.qa_trainable(cid, q["question"]):
                continue
            if "qa" in cfg.targets and frames:  # with the chunk's video: perception and recall together
                specs.append(SampleSpec(f"{cid}/qa{k}", "qa", day, [c["frames_path"]], D.render_qa(q),
                                        INSTRUCTIONS["qa"], {"chunk_id": cid}))
            if "qa_text" in cfg.targets:  # without it: the fact alone, as the `weights` system is asked
                specs.append(SampleSpec(f"{cid}/qa_text{k}", "qa_text", day, [], D.render_qa(q),
                                        INSTRUCTIONS["qa_text"], {"chunk_id": cid}))
    if "day_summary" in cfg.targets:
        for vid, frames in day_frames.items():
            path = corpus.folder("day_summaries") / f"{vid}.json"
            if path.exists():
                doc = json.loads(path.read_text(encoding="utf-8"))
                day = int(doc.get("day_index") or 0)
                by_day.setdefault(day, []).append(SampleSpec(f"{vid}/day_summary", "day_summary", day, frames,
                                                             D.render_day(doc), INSTRUCTIONS["day_summary"],
                                                             {"video_id": vid}))
    return dict(sorted(by_day.items())), skipped


def chunk_rewrites(corpus: Corpus, c: dict) -> tuple[list[str], str | None]:
    """A described chunk's rewrites, or ([], why not): none made yet, or made from an earlier description."""
    fix = "run `streamlearn rewrite CORPUS`"
    if status_of(c, "rewrite") != DONE or not c.get("rewrites_path"):
        return [], f"no rewrites; {fix}"
    try:
        doc = R.load(corpus.abs(c["rewrites_path"]))
        current = R.is_current(doc, corpus.abs(c["description_path"]))
    except StreamlearnError as exc:
        return [], str(exc)
    if not current:
        return [], f"no rewrites of the current description (it changed since); {fix}"
    return doc["rewrites"], None


def sealed_constraints(corpus: Corpus, required: bool, before: str, without: str) -> Constraints | None:
    """Every sealed bank's held-out split, or None where no bank is sealed and `required` is False.
    The refusal says what waits for a seal (`before`: "training") and how to go on without one."""
    c = load_constraints(corpus.folder("questions"))
    if c.banks:
        return c
    if required:
        raise StreamlearnError(f"no sealed question bank: seal one before {before} (`streamlearn questions CORPUS "
                               f"--seal`) so its held-out facts are never training targets, or {without}")
    return None


def refuse_protected(constraints: Constraints, specs: list[SampleSpec], doing: str, instead: str) -> None:
    """Refuse, before any work, when a target holds a protected bank question verbatim: `doing` is what
    would have happened ("train would train on"), `instead` what happens now ("then train; nothing was
    trained")."""
    bad = constraints.violations([(s.key, s.target) for s in specs])
    if bad:
        raise StreamlearnError(f"{doing} a held-out question: target {bad[0]}"
                               + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                               + f"; take it out of the description or the bank, {instead}")

