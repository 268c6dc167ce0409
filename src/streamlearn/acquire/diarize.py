"""`streamlearn diarize`: who speaks when, and a speaker-attributed transcript.

Embedded offline backend: Silero VAD → resemblyzer embeddings of speech pieces (≤ 3 s, each
the mean of 1.6 s partials) → average-linkage cosine clustering with a distance threshold (the number of
speakers is not given) → per-window clusters linked to stream-wide speakers by centroid, so
labels stay consistent over an 11-hour video while memory holds one window. The `pyannote`
backend (extra, needs a Hugging Face token in the environment, never written anywhere) replaces
VAD+clustering inside each window and is linked across windows the same way.

Writes videos/<id>/diarization.rttm and transcript.speakers.{json,srt}.
"""

from __future__ import annotations

import os
import threading
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamlearn import console, transcript
from streamlearn.corpus import Corpus
from streamlearn.errors import NotApplicable, StreamlearnError
from streamlearn.manifest import atomic_write_text
from streamlearn.media import iter_audio_windows, probe
from streamlearn.runner import StageResult, run_stage, select
from streamlearn.vad import speech_regions

RATE = 16000
FRAME = 0.01  # seconds per frame when turning window labels into turns


@dataclass
class DiarizeSettings:
    backend: str = "embedded"  # embedded | pyannote
    threshold: float = 0.3
    window_s: float = 600.0
    link_threshold: float | None = None  # centroid distance to join a known speaker; None = threshold + 0.1
    pyannote_model: str = "pyannote/speaker-diarization-community-1"
    token_env: str = "HF_TOKEN"


@dataclass
class Window:
    offset: float
    regions: list[tuple[float, float]]  # speech, seconds relative to the window
    centers: np.ndarray  # (n,) absolute seconds of each embedding window's centre
    region_of: np.ndarray  # (n,) index into regions
    embeddings: np.ndarray  # (n, 256), L2-normalised
    local_labels: np.ndarray | None = None  # from a backend that clusters itself (pyannote)


@dataclass
class Embedded:
    windows: list[Window] = field(default_factory=list)
    duration_s: float = 0.0


# ------------------------------------------------------------------------- models (shared)
_LOCK = threading.RLock()
_CACHE: dict[str, object] = {}


def _encoder():
    with _LOCK:
        if "enc" not in _CACHE:
            import warnings

            with warnings.catch_warnings():  # webrtcvad (via resemblyzer) imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder

            _CACHE["enc"] = VoiceEncoder("cpu", verbose=False)
        return _CACHE["enc"]


def embed_regions(audio: np.ndarray, regions: list[tuple[float, float]],
                  piece_s: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One resemblyzer embedding per piece of speech: each region is cut into pieces of at most
    `piece_s` seconds and a piece's embedding is the mean of its 1.6 s partials. Whole-utterance
    embeddings are far steadier than single 1.6 s windows, and pieces still catch a change of
    speaker inside a long region."""
    enc = _encoder()
    from resemblyzer.audio import normalize_volume

    embs, centers, owner = [], [], []
    for k, (a, b) in enumerate(regions):
        n = max(1, int(np.ceil((b - a) / piece_s)))
        edges = np.linspace(a, b, n + 1)
        for p0, p1 in zip(edges[:-1], edges[1:]):
            wav = normalize_volume(audio[int(p0 * RATE):int(p1 * RATE)], -30, increase_only=True)
            if len(wav) < int(0.3 * RATE):
                continue
            with _LOCK:
                emb = enc.embed_utterance(wav, rate=1 / 0.75, min_coverage=0.5)
            embs.append(emb)
            centers.append((p0 + p1) / 2)
            owner.append(k)
    if not embs:
        return np.zeros((0, 256), np.float32), np.zeros(0), np.zeros(0, int)
    e = np.asarray(embs, dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-9
    return e, np.asarray(centers), np.asarray(owner)


def embed_file(media: Path, s: DiarizeSettings) -> Embedded:
    out = Embedded()
    for offset, audio in iter_audio_windows(media, window_s=s.window_s, rate=RATE):
        out.duration_s = offset + len(audio) / RATE
        if s.backend == "pyannote":
            regions, labels = _pyannote_window(audio, s)
            emb, centers, owner = embed_regions(audio, regions)
            local = labels[owner] if len(owner) else np.zeros(0, int)
        else:
            regions = speech_regions(audio)
            emb, centers, owner = embed_regions(audio, regions)
            local = None
        out.windows.append(Window(offset, regions, offset + centers, owner, emb, local))
    return out


def _pyannote_window(audio: np.ndarray, s: DiarizeSettings) -> tuple[list[tuple[float, float]], np.ndarray]:
    """pyannote turns inside one window → (regions, local label per region)."""
    import torch

    with _LOCK:
        if "pyannote" not in _CACHE:
            from pyannote.audio import Pipeline

            token = os.environ.get(s.token_env)
            if not token:
                raise StreamlearnError(f"the pyannote backend needs a Hugging Face token in ${s.token_env}; "
                                       "export it (it is never written to disk) or use diarize.backend = 'embedded'")
            pipe = Pipeline.from_pretrained(s.pyannote_model, token=token)
            if torch.cuda.is_available():
                pipe.to(torch.device("cuda"))
            _CACHE["pyannote"] = pipe
        pipe = _CACHE["pyannote"]
    result = pipe({"waveform": torch.from_numpy(audio)[None], "sample_rate": RATE})
    annotation = getattr(result, "speaker_diarization", result)
    names: dict[str, int] = {}
    regions, labels = [], []
    for turn, _, spk in annotation.itertracks(yield_label=True):
        regions.append((float(turn.start), float(turn.end)))
        labels.append(names.setdefault(spk, len(names)))
    return regions, np.asarray(labels, dtype=int)


# ---------------------------------------------------------------------------- clustering
def cluster(emb: np.ndarray, threshold: float) -> np.ndarray:
    if len(emb) == 0:
        return np.zeros(0, int)
    if len(emb) == 1:
        return np.zeros(1, int)
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                   distance_threshold=threshold).fit_predict(emb)


def assign_speakers(embedded: Embedded, threshold: float, link_threshold: float | None = None) -> list[tuple]:
    """Turns (start, end, speaker) over the whole file, with stream-wide speaker ids."""
    from scipy.optimize import linear_sum_assignment

    link = link_threshold if link_threshold is not None else threshold + 0.1
    centroids: list[np.ndarray] = []
    weights: list[int] = []
    turns: list[tuple[float, float, int]] = []
    for w in embedded.windows:
        if not len(w.embeddings):
            continue
        local = w.local_labels if w.local_labels is not None else cluster(w.embeddings, threshold)
        ids = sorted(set(local.tolist()))
        local_c = np.stack([w.embeddings[local == i].mean(axis=0) for i in ids])
        local_c /= np.linalg.norm(local_c, axis=1, keepdims=True) + 1e-9
        mapping: dict[int, int] = {}
        if centroids:
            glob = np.stack(centroids)
            cost = 1.0 - local_c @ glob.T
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < link:
                    mapping[ids[r]] = c
        for r, i in enumerate(ids):
            n = int((local == i).sum())
            if i in mapping:
                g = mapping[i]
                merged = centroids[g] * weights[g] + local_c[r] * n
                centroids[g] = merged / (np.linalg.norm(merged) + 1e-9)
                weights[g] += n
            else:
                mapping[i] = len(centroids)
                centroids.append(local_c[r])
                weights.append(n)
        labels = np.array([mapping[i] for i in local.tolist()])
        # every 10 ms frame of a speech region takes the label of the nearest embedding centre
        for k, (a, b) in enumerate(w.regions):
            mine = np.flatnonzero(w.region_of == k)
            if not len(mine):
                continue
            t = w.offset + np.arange(a, b, FRAME) + FRAME / 2
            nearest = mine[np.abs(t[:, None] - w.centers[mine][None, :]).argmin(axis=1)]
            lab = labels[nearest]
            cuts = np.flatnonzero(np.diff(lab)) + 1
            for seg in np.split(np.arange(len(t)), cuts):
                turns.append((round(float(t[seg[0]] - FRAME / 2), 3), round(float(t[seg[-1]] + FRAME / 2), 3),
                              int(lab[seg[0]])))
    # name speakers by order of first appearance: SPEAKER_00, SPEAKER_01, ...
    order: dict[int, str] = {}
    for _, _, g in sorted(turns):
        order.setdefault(g, f"SPEAKER_{len(order):02d}")
    return [(a, b, order[g]) for a, b, g in sorted(turns)]


# ---------------------------------------------------------------------------- outputs
def to_rttm(turns: list[tuple], file_id: str) -> str:
    return "".join(f"SPEAKER {file_id} 1 {a:.3f} {b - a:.3f} <NA> <NA> {spk} <NA> <NA>\n" for a, b, spk in turns)


def read_rttm(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] != "SPEAKER":
            continue
        if len(parts) < 8:
            raise StreamlearnError(f"{Path(path).name} line {n}: an RTTM SPEAKER line has 10 fields; fix the line")
        start, dur = float(parts[3]), float(parts[4])
        out.setdefault(parts[1], []).append((start, start + dur, parts[7]))
    if not out:
        raise StreamlearnError(f"{Path(path).name} has no SPEAKER lines; pass a reference RTTM file")
    return out


def attribute(doc: dict, turns: list[tuple]) -> dict:
    """Give each word the speaker it overlaps most (nearest turn within 1 s otherwise), then split
    segments where the speaker changes."""
    starts = np.array([a for a, _, _ in turns]) if turns else np.zeros(0)
    ends = np.array([b for _, b, _ in turns]) if turns else np.zeros(0)
    names = [spk for _, _, spk in turns]

    def who(a: float, b: float) -> str | None:
        if not turns:
            return None
        overlap = np.minimum(ends, b) - np.maximum(starts, a)
        best = int(overlap.argmax())
        if overlap[best] > 0:
            return names[best]
        gap = np.maximum(starts - b, a - ends)
        best = int(gap.argmin())
        return names[best] if gap[best] < 1.0 else None

    segments = []
    for seg in doc["segments"]:
        words = [{**w, "speaker": who(w["start"], w["end"])} for w in seg.get("words", [])]
        if not words:
            segments.append({**seg, "speaker": who(seg["start"], seg["end"])})
            continue
        run = [words[0]]
        for w in words[1:]:
            if w["speaker"] != run[-1]["speaker"]:
                segments.append({**transcript._segment(run), "speaker": run[0]["speaker"]})
                run = []
            run.append(w)
        segments.append({**transcript._segment(run), "speaker": run[0]["speaker"]})
    return {**doc, "segments": segments}


# ------------------------------------------------------------------------------- metric
def der(reference: list[tuple], hypothesis: list[tuple], collar: float = 0.0, step: float = 0.01) -> float:
    """Diarization error rate: (missed + false alarm + confusion) / reference speech, with the
    best one-to-one speaker mapping. As in pyannote.metrics, `collar` is the total width not
    scored around each reference boundary (half before, half after)."""
    from scipy.optimize import linear_sum_assignment

    end = max([b for _, b, _ in reference + hypothesis] + [0.0])
    n = int(np.ceil(end / step)) + 1
    rnames = sorted({s for *_, s in reference})
    hnames = sorted({s for *_, s in hypothesis})
    R = np.zeros((len(rnames), n), bool)
    H = np.zeros((len(hnames), n), bool)
    for a, b, s in reference:
        R[rnames.index(s), int(round(a / step)):int(round(b / step))] = True
    for a, b, s in hypothesis:
        H[hnames.index(s), int(round(a / step)):int(round(b / step))] = True
    scored = np.ones(n, bool)
    if collar > 0:
        c = int(round(collar / 2 / step))
        for a, b, _ in reference:
            for edge in (int(round(a / step)), int(round(b / step))):
                scored[max(0, edge - c):edge + c] = False
    R, H = R[:, scored], H[:, scored]
    total = R.sum()
    if total == 0:
        return 0.0
    nr, nh = R.sum(axis=0), H.sum(axis=0)
    co = R.astype(np.int64) @ H.T.astype(np.int64) if len(rnames) and len(hnames) else np.zeros((0, 0))
    correct = 0
    if co.size:
        rows, cols = linear_sum_assignment(-co)
        correct = co[rows, cols].sum()
    error = np.maximum(nr, nh).sum() - correct  # = missed + false alarm + confusion
    return float(error / total)


# ---------------------------------------------------------------------------------- stage
def resolve_backend(backend: str, token_env: str) -> str:
    if backend != "auto":
        return backend
    try:
        import pyannote.audio  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or broken beside this torch
        return "embedded"
    return "pyannote" if os.environ.get(token_env) else "embedded"


def diarize_row(corpus: Corpus, row: dict, s: DiarizeSettings) -> dict:
    vid = row["video_id"]
    vdir = corpus.video_dir(vid)
    media = corpus.abs(row["media_path"])
    if not probe(media).has_audio:
        raise NotApplicable(f"{media.name} has no audio stream; nothing to diarize")
    turns = assign_speakers(embed_file(media, s), s.threshold, s.link_threshold)
    atomic_write_text(vdir / "diarization.rttm", to_rttm(turns, vid))
    doc = attribute(transcript.load(corpus.abs(row["transcript_path"])), turns)
    doc["diarization"] = {"backend": s.backend, "threshold": s.threshold}
    transcript.save(vdir / "transcript.speakers.json", doc)
    atomic_write_text(vdir / "transcript.speakers.srt", transcript.to_srt(doc))
    return {"diarize_backend": s.backend, "rttm_path": corpus.rel(vdir / "diarization.rttm"),
            "speaker_transcript_path": corpus.rel(vdir / "transcript.speakers.json"),
            "n_speakers": len({spk for *_, spk in turns})}


def settings_from_config(corpus: Corpus) -> DiarizeSettings:
    d = corpus.config.diarize
    return DiarizeSettings(backend=resolve_backend(d.backend, d.token_env), threshold=d.threshold,
                           window_s=d.window_s, token_env=d.token_env, pyannote_model=d.pyannote_model)


def run_diarize(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
                settings: DiarizeSettings | None = None, executor=None) -> StageResult:
    s = settings or settings_from_config(corpus)
    rows, _ = select(corpus.videos, "diarize", requires=["transcribe"], only=only, force=force)
    if s.backend == "pyannote":
        console.info(f"diarize: pyannote backend ({s.pyannote_model}), token from ${s.token_env}")
    return run_stage(corpus.videos, "diarize", rows, partial(diarize_row, s=s), corpus, parallel=parallel,
                     force=force, executor=executor)


def calibrate(corpus: Corpus, reference: Path, thresholds: list[float] | None = None) -> dict:
    """Pick the clustering threshold with the lowest DER on labelled videos; store it in the config."""
    refs = read_rttm(reference)
    rows = corpus.videos.rows_by_key()
    unknown = [k for k in refs if k not in rows or not rows[k].get("media_path")]
    if unknown:
        raise StreamlearnError(f"{reference.name} names {unknown[0]!r}, which is not a downloaded video in this corpus; "
                               "use the video_id as the RTTM file id")
    s = settings_from_config(corpus)
    s.backend = "embedded"
    embedded = {k: embed_file(corpus.abs(rows[k]["media_path"]), s) for k in refs}
    grid = thresholds or [round(x, 3) for x in np.arange(0.15, 0.625, 0.025)]
    table = []
    for thr in grid:
        scores = [der(refs[k], assign_speakers(embedded[k], thr)) for k in refs]
        table.append((thr, float(np.mean(scores))))
        console.info(f"calibrate threshold {thr:.3f}: DER {table[-1][1]:.2%}")
    best = min(table, key=lambda t: (round(t[1], 4), abs(t[0] - 0.3)))
    from streamlearn.config import DiarizeSection

    d = corpus.config.diarize
    corpus.config.diarize = DiarizeSection(**{**d.__dict__, "threshold": best[0]})
    corpus.save_config()
    console.info(f"calibrate: diarize.threshold = {best[0]} (DER {best[1]:.2%}) saved to streamlearn.toml")
    return {"threshold": best[0], "der": best[1], "table": table}
