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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from streamlearn.core import console
from streamlearn.corpus import transcript
from streamlearn.corpus.layout import Corpus
from streamlearn.core.config import DiarizeSection
from streamlearn.core.errors import NotApplicable, StreamlearnError
from streamlearn.core.files import atomic_write_text
from streamlearn.media.probe import iter_audio_windows, probe
from streamlearn.runner import Stage, StageResult, run
from streamlearn.media.vad import speech_regions

RATE = 16000
FRAME = 0.01  # seconds per frame when turning window labels into turns


@dataclass
class Window:
    offset: float
    regions: list[tuple[float, float]]  # speech, seconds relative to the window
    centers: np.ndarray  # (n,) absolute seconds of each embedding window's centre
    region_of: np.ndarray  # (n,) index into regions
    embeddings: np.ndarray  # (n, 256), L2-normalised
    local_labels: np.ndarray | None = None  # from a backend that clusters itself (pyannote)
    pauses: np.ndarray | None = None  # absolute seconds of short pauses (>= 80 ms) inside speech


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
                  hop_s: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sliding resemblyzer embeddings over speech: 1.6 s partials every `hop_s` seconds inside
    each VAD region (a region shorter than a partial gives one, zero-padded). A phone call often
    has no pause long enough for VAD between turns, so speakers must be told apart inside a
    region, not only between regions; the labels are smoothed and the turn edges moved to pauses
    afterwards (`refine_turns`)."""
    enc = _encoder()
    from resemblyzer.audio import normalize_volume

    embs, centers, owner = [], [], []
    for k, (a, b) in enumerate(regions):
        wav = normalize_volume(audio[int(a * RATE):int(b * RATE)], -30, increase_only=True)
        if len(wav) < int(0.4 * RATE):
            continue
        with _LOCK:
            _, partials, slices = enc.embed_utterance(wav, return_partials=True, rate=1 / hop_s, min_coverage=0.5)
        for emb, sl in zip(partials, slices):
            c = a + (sl.start + min(sl.stop, len(wav))) / 2 / RATE
            embs.append(emb)
            centers.append(min(c, b))
            owner.append(k)
    if not embs:
        return np.zeros((0, 256), np.float32), np.zeros(0), np.zeros(0, int)
    e = np.asarray(embs, dtype=np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-9
    return e, np.asarray(centers), np.asarray(owner)


def embed_file(media: Path, s: DiarizeSection) -> Embedded:
    out = Embedded()
    for offset, audio in iter_audio_windows(media, window_s=s.window_s, rate=RATE):
        out.duration_s = offset + len(audio) / RATE
        if s.backend == "pyannote":
            regions, labels = _pyannote_window(audio, s)
            emb, centers, owner = embed_regions(audio, regions)
            local = labels[owner] if len(owner) else np.zeros(0, int)
        else:
            regions = speech_regions(audio, threshold=VAD_THRESHOLD)
            emb, centers, owner = embed_regions(audio, regions)
            local = None
        fine = speech_regions(audio, min_silence_ms=80, pad_ms=0, threshold=VAD_THRESHOLD) if len(audio) else []
        pauses = np.array([(b0 + a1) / 2 for (_, b0), (a1, _) in zip(fine, fine[1:])]) + offset
        out.windows.append(Window(offset, regions, offset + centers, owner, emb, local, pauses))
    return out


def _pyannote_window(audio: np.ndarray, s: DiarizeSection) -> tuple[list[tuple[float, float]], np.ndarray]:
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
VAD_THRESHOLD = 0.5  # Silero speech probability for diarization (chosen on the tuning voices)
CENTERED_SPLIT = 1.1  # average-linkage cut on session-centred embeddings (chosen on the tuning voices)


def cluster(emb: np.ndarray, threshold: float, split: float | None = None) -> np.ndarray:
    """Speaker labels for embeddings, without being told how many speakers there are.

    Real voices on one channel sit close together for resemblyzer (cosine distance 0.1-0.25
    between two people on a phone call, vs 0.2-0.5 between synthetic voices), so no fixed
    distance serves both. The embeddings are centred on the recording's mean first (the
    channel and the room are shared by everyone, the voice is not), which spreads the speakers
    apart; average-linkage clustering cuts there at `split`. A split of one voice is then undone:
    clusters whose mean raw embeddings are closer than `threshold / 3` are one speaker, and
    clusters of fewer than 3 pieces join their nearest."""
    n = len(emb)
    if n < 4:
        return np.zeros(n, int)
    from sklearn.cluster import AgglomerativeClustering

    x = emb - emb.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=split if split is not None else CENTERED_SPLIT).fit_predict(x)
    labels = _absorb_small(emb, labels, max(3, int(0.02 * n)))
    labels = _merge_close(emb, labels, threshold / 3)
    return np.unique(labels, return_inverse=True)[1]


def _centroids(emb: np.ndarray, labels: np.ndarray) -> tuple[list[int], np.ndarray]:
    ids = sorted(set(labels.tolist()))
    c = np.stack([emb[labels == i].mean(axis=0) for i in ids])
    return ids, c / (np.linalg.norm(c, axis=1, keepdims=True) + 1e-9)


def _absorb_small(emb: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    labels = labels.copy()
    while True:
        ids, c = _centroids(emb, labels)
        sizes = np.array([(labels == i).sum() for i in ids])
        if len(ids) < 2 or sizes.min() >= min_size:
            return labels
        small = int(np.argmin(sizes))
        d = 1.0 - c @ c[small]
        d[small] = np.inf
        labels[labels == ids[small]] = ids[int(np.argmin(d))]


def _merge_close(emb: np.ndarray, labels: np.ndarray, min_distance: float) -> np.ndarray:
    labels = labels.copy()
    while True:
        ids, c = _centroids(emb, labels)
        if len(ids) < 2:
            return labels
        d = 1.0 - c @ c.T
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] >= min_distance:
            return labels
        labels[labels == ids[j]] = ids[i]


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
            lab = refine_labels(t, labels[nearest], w.pauses)
            cuts = np.flatnonzero(np.diff(lab)) + 1
            for seg in np.split(np.arange(len(t)), cuts):
                turns.append((round(float(t[seg[0]] - FRAME / 2), 3), round(float(t[seg[-1]] + FRAME / 2), 3),
                              int(lab[seg[0]])))
    # name speakers by order of first appearance: SPEAKER_00, SPEAKER_01, ...
    order: dict[int, str] = {}
    for _, _, g in sorted(turns):
        order.setdefault(g, f"SPEAKER_{len(order):02d}")
    return [(a, b, order[g]) for a, b, g in sorted(turns)]


def refine_labels(t: np.ndarray, lab: np.ndarray, pauses: np.ndarray | None, smooth_s: float = 0.8,
                  snap_s: float = 0.6) -> np.ndarray:
    """Per-frame speaker labels inside one speech region, cleaned: a majority filter of `smooth_s`
    removes flicker shorter than a word or two, then each change of speaker moves to the nearest
    short pause (a breath between turns, found by a fine VAD pass) within `snap_s`, so turns end
    where speech stops, not on the embedding grid."""
    if len(lab) < 3:
        return lab
    half = max(1, int(smooth_s / FRAME / 2))
    ids = np.unique(lab)
    if len(ids) > 1:
        onehot = (lab[:, None] == ids[None, :]).astype(np.float32)
        csum = np.vstack([np.zeros((1, len(ids)), np.float32), np.cumsum(onehot, axis=0)])
        i = np.arange(len(lab))
        counts = csum[np.minimum(i + half + 1, len(lab))] - csum[np.maximum(i - half, 0)]
        lab = ids[counts.argmax(axis=1)]
    if pauses is None or not len(pauses):
        return lab
    out = lab.copy()
    for c in np.flatnonzero(np.diff(lab)) + 1:
        near = pauses[np.abs(pauses - t[c]) <= snap_s]
        if not len(near):
            continue
        target = int(np.clip(np.searchsorted(t, near[np.argmin(np.abs(near - t[c]))]), 1, len(t) - 1))
        if target < c:
            out[target:c] = lab[c]
        else:
            out[c:target] = lab[c - 1]
    return out


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


def diarize_row(corpus: Corpus, row: dict, s: DiarizeSection) -> dict:
    vid = row["video_id"]
    vdir = corpus.video_dir(vid)
    media = corpus.abs(row["media_path"])
    if not probe(media).has_audio:
        raise NotApplicable(f"{media.name} has no audio stream; nothing to diarize")
    turns = assign_speakers(embed_file(media, s), s.threshold, s.link_threshold or None)
    atomic_write_text(vdir / "diarization.rttm", to_rttm(turns, vid))
    doc = attribute(transcript.load(corpus.abs(row["transcript_path"])), turns)
    doc["diarization"] = {"backend": s.backend, "threshold": s.threshold}
    transcript.save(vdir / "transcript.speakers.json", doc)
    atomic_write_text(vdir / "transcript.speakers.srt", transcript.to_srt(doc))
    return {"diarize_backend": s.backend, "rttm_path": corpus.rel(vdir / "diarization.rttm"),
            "speaker_transcript_path": corpus.rel(vdir / "transcript.speakers.json"),
            "n_speakers": len({spk for *_, spk in turns})}


def resolved(s: DiarizeSection) -> DiarizeSection:
    """The section with `auto` turned into the backend this machine runs (pyannote with a token)."""
    return replace(s, backend=resolve_backend(s.backend, s.token_env))


def run_diarize(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
                settings: DiarizeSection | None = None, executor=None) -> StageResult:
    s = resolved(settings or corpus.config.diarize)
    stage = Stage("diarize", "videos", partial(diarize_row, s=s), requires=("transcribe",))
    if s.backend == "pyannote":
        console.info(f"diarize: pyannote backend ({s.pyannote_model}), token from ${s.token_env}")
    return run(stage, corpus, only=only, force=force, parallel=parallel, executor=executor)


def calibrate(corpus: Corpus, reference: Path, thresholds: list[float] | None = None) -> dict:
    """Pick the clustering threshold with the lowest DER on labelled videos; store it in the config."""
    refs = read_rttm(reference)
    rows = corpus.videos.rows_by_key()
    unknown = [k for k in refs if k not in rows or not rows[k].get("media_path")]
    if unknown:
        raise StreamlearnError(f"{reference.name} names {unknown[0]!r}, which is not a downloaded video in this corpus; "
                               "use the video_id as the RTTM file id")
    s = replace(corpus.config.diarize, backend="embedded")
    embedded = {k: embed_file(corpus.abs(rows[k]["media_path"]), s) for k in refs}
    grid = thresholds or [round(x, 3) for x in np.arange(0.15, 0.625, 0.025)]
    table = []
    for thr in grid:
        scores = [der(refs[k], assign_speakers(embedded[k], thr)) for k in refs]
        table.append((thr, float(np.mean(scores))))
        console.info(f"calibrate threshold {thr:.3f}: DER {table[-1][1]:.2%}")
    best = min(table, key=lambda t: (round(t[1], 4), abs(t[0] - 0.3)))
    from streamlearn.core.config import DiarizeSection

    d = corpus.config.diarize
    corpus.config.diarize = DiarizeSection(**{**d.__dict__, "threshold": best[0]})
    corpus.save_config()
    console.info(f"calibrate: diarize.threshold = {best[0]} (DER {best[1]:.2%}) saved to streamlearn.toml")
    return {"threshold": best[0], "der": best[1], "table": table}
