"""Which samples an export writes: exactly what training takes, under the same protection.

- With no `--run`: the plan `streamlearn train` would make now (`targets.build_specs` under every
  sealed bank's held-out split, and train's own refusal of a target that holds a protected question).
- With `--run RUN`: the targets that run recorded (`runrecord.read_targets`), day by day as trained.

Each exported sample says where its video is (frame caches, chunk media) and, for a run, which
training day took it and how often. Every export is audited against the banks
(`contamination.audit`) and the result is written beside it (`audit.json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus.contamination import audit, contamination_summary
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus.framecache import read_frame_cache
from streamlearn.corpus.heldout import Constraints
from streamlearn.corpus.questionbank import load_bank
from streamlearn.corpus.runrecord import read_targets
from streamlearn.corpus.targets import SampleSpec, build_specs, refuse_protected, sealed_constraints

NO_PROTECTION_FLAG = "--no-heldout-protection"


@dataclass
class Sample:
    """One exported training sample (every format writes these fields in its own shape)."""

    key: str
    kind: str
    day: int  # the stream day the sample is about
    instruction: str
    target: str
    chunk_id: str | None = None
    frames: list[str] = field(default_factory=list)  # frame caches, relative to the corpus (or absolute)
    media: list[str] = field(default_factory=list)  # the chunks' media files (corpus-relative) or store URIs
    sample_fps: float | None = None
    trained_on: int | None = None  # with --run: the training day that took it
    taken: int | None = None  # with --run: how many times that day took it

    def row(self) -> dict:
        return asdict(self)


@dataclass
class Selection:
    samples: list[Sample]
    source: str  # what the samples are, in words
    constraints: Constraints | None  # the sealed banks honoured (None: unprotected)
    skipped: dict


def select(corpus: Corpus, run: str | None = None, protection: bool = True) -> Selection:
    """The samples to export; refuses before writing anything (no sealed bank without
    `protection=False`, a target holding a protected question, a run with no record)."""
    constraints = sealed_constraints(corpus, protection, "exporting",
                                     f"pass {NO_PROTECTION_FLAG} to export without one (the export then says so)")
    if run:
        specs, source = _recorded(corpus, run), f"the targets run {run!r} recorded (runs/{run}/targets)"
        skipped: dict = {}
    else:
        by_day, skipped = build_specs(corpus, corpus.config.train, None, constraints)
        specs = [s for day_specs in by_day.values() for s in day_specs]
        source = "the samples `streamlearn train` would train on now ([train] targets, each once)"
    if not specs:
        raise StreamlearnError("nothing to export: no described chunks with cached frames"
                               + (f" in run {run!r}" if run else "") + "; run describe and frames first")
    if constraints is not None:
        refuse_protected(constraints, specs, "export would write", "then export again; nothing was written")
    chunks = corpus.chunks.rows_by_key()
    by_frames = {c["frames_path"]: c for c in chunks.values() if c.get("frames_path")}
    return Selection([_sample(corpus, s, chunks, by_frames) for s in specs], source, constraints, skipped)


def _recorded(corpus: Corpus, run: str) -> list[SampleSpec]:
    run_dir = corpus.run_dir(run)
    rows = read_targets(run_dir)
    if not rows:
        have = sorted(p.name for p in corpus.folder("runs").glob("*") if (p / "targets").is_dir())
        raise StreamlearnError(f"run {run!r} recorded no training targets ({corpus.rel(run_dir)}/targets); "
                               + (f"runs with targets: {', '.join(have)}" if have else "train first")
                               + ", or leave out --run to export what training would take now")
    chunks = corpus.chunks.rows_by_key()
    out = []
    for r in rows:
        frames = r.get("frames")
        if frames is None:  # recorded before targets carried their frames: the chunk's, as training took them
            c = chunks.get(r.get("chunk_id") or "")
            frames = [c["frames_path"]] if c and r["kind"] not in ("qa_text",) and c.get("frames_path") else []
        spec = SampleSpec(r["key"], r["kind"], int(r["day"]), frames, r["target"], r["instruction"],
                          {"chunk_id": r.get("chunk_id"), "trained_on": r["trained_on"], "taken": r.get("taken")})
        out.append(spec)
    return out


def _sample(corpus: Corpus, s: SampleSpec, chunks: dict, by_frames: dict) -> Sample:
    cid = (s.meta or {}).get("chunk_id")
    media = []
    for f in s.frames:
        c = by_frames.get(f) or chunks.get(cid or "")
        if c and c.get("media_uri"):
            media.append(c["media_uri"])
    fps = None
    if s.frames:
        path = Path(s.frames[0]) if Path(s.frames[0]).is_absolute() else corpus.abs(s.frames[0])
        fps = read_frame_cache(path, s.key)[1].get("sample_fps")
    return Sample(key=s.key, kind=s.kind, day=s.day, instruction=s.instruction, target=s.target, chunk_id=cid,
                  frames=list(s.frames), media=media, sample_fps=fps, trained_on=(s.meta or {}).get("trained_on"),
                  taken=(s.meta or {}).get("taken"))


def audit_samples(corpus: Corpus, sel: Selection) -> dict:
    """The contamination audit of the exported targets against every sealed bank (or, unprotected, any
    bank on disk): QA-trained items are expected among them, a held-out one is contamination."""
    names = [b["name"] for b in sel.constraints.banks] if sel.constraints else \
        sorted(p.stem for p in corpus.folder("questions").glob("*.jsonl"))
    targets = [{"key": s.key, "target": s.target} for s in sel.samples]
    out = {"protected": sel.constraints is not None, "samples": len(targets), "banks": {}}
    for name in names:
        try:
            items = load_bank(corpus, name)
        except StreamlearnError as exc:
            out["banks"][name] = {"error": str(exc)}
            continue
        flags = audit(items, targets)
        summary = contamination_summary(items, flags)
        summary["items"] = len(items)
        summary["heldout_flags"] = {i: flags[i] for i in summary["heldout_ids"]}
        out["banks"][name] = summary
        if summary["flagged_heldout"]:
            console.warn(f"export: {summary['flagged_heldout']} held-out item(s) of bank {name!r} share wording with "
                         f"the exported targets ({', '.join(summary['heldout_ids'][:5])}); `eval` would count them "
                         "as contaminated (audit.json says which)")
    return out
