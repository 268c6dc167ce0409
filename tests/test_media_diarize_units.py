"""Units under acquire: windowed audio streaming, the DER metric (against pyannote.metrics),
speaker attribution of words, and backend choice.

Run: python -m pytest tests/test_media_diarize_units.py -q
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamlearn.acquire.diarize import attribute, der, resolve_backend
from streamlearn.media.probe import decode_audio, iter_audio_windows


def test_audio_windows_cover_the_file_once(tour):
    day = json.loads((tour / "ground_truth.json").read_text())["days"][0]
    path = tour / "media" / f"{day['video_id']}.mp4"
    whole = decode_audio(path)
    pieces = list(iter_audio_windows(path, window_s=12.0, search_s=4.0))
    assert len(pieces) >= 3
    joined = np.concatenate([p for _, p in pieces])
    assert len(joined) == len(whole) and np.array_equal(joined, whole)
    offsets = [o for o, _ in pieces]
    assert offsets[0] == 0 and all(8.0 <= b - a <= 12.0 for a, b in zip(offsets, offsets[1:]))
    # cuts land on quiet audio, not inside an utterance
    for off in offsets[1:]:
        assert not any(u["start"] + 0.05 < off < u["end"] - 0.05 for u in day["utterances"]), off


def _pyannote_der(ref, hyp, collar):
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    r, h = Annotation(), Annotation()
    for a, b, s in ref:
        r[Segment(a, b)] = s
    for a, b, s in hyp:
        h[Segment(a, b)] = s
    return DiarizationErrorRate(collar=collar, skip_overlap=False)(r, h)


@pytest.mark.parametrize("collar", [0.0, 0.5])
def test_der_matches_pyannote_metrics(collar):
    rng = np.random.default_rng(0)
    for _ in range(5):
        ref, hyp, t = [], [], 0.0
        for _ in range(30):
            dur = float(rng.uniform(0.5, 3))
            spk = str(rng.integers(0, 3))
            ref.append((round(t, 2), round(t + dur, 2), f"r{spk}"))
            jitter = float(rng.uniform(-0.3, 0.3))
            hyp_spk = spk if rng.random() < 0.85 else str(rng.integers(0, 4))
            hyp.append((round(max(0, t + jitter), 2), round(t + dur + jitter, 2), f"h{hyp_spk}"))
            t += dur + float(rng.uniform(0.1, 1.0))
        assert abs(der(ref, hyp, collar=collar) - _pyannote_der(ref, hyp, collar)) < 0.01


def test_words_get_speakers_and_segments_split():
    doc = {"segments": [{"start": 0.0, "end": 4.0, "text": "a b c d", "words": [
        {"start": 0.0, "end": 0.5, "word": "a"}, {"start": 0.6, "end": 1.0, "word": "b"},
        {"start": 2.5, "end": 3.0, "word": "c"}, {"start": 3.1, "end": 3.9, "word": "d"}]}]}
    out = attribute(doc, [(0.0, 1.2, "SPEAKER_00"), (2.4, 3.5, "SPEAKER_01")])
    assert [(s["speaker"], s["text"]) for s in out["segments"]] == [("SPEAKER_00", "a b"), ("SPEAKER_01", "c d")]
    assert out["segments"][1]["words"][1]["speaker"] == "SPEAKER_01"  # 'd' overhangs the turn: nearest wins


def test_backend_choice_without_pyannote(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert resolve_backend("auto", "HF_TOKEN") == "embedded"
    assert resolve_backend("pyannote", "HF_TOKEN") == "pyannote"
