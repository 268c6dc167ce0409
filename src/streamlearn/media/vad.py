"""Voice activity detection (Silero VAD, ONNX, offline) shared by ASR and diarization."""

from __future__ import annotations

import threading

import numpy as np

RATE = 16000
# a window whose loudest sample is below -60 dBFS holds no speech: Opus "digital silence" decodes to +-1 LSB
# (about -90 dBFS), so the test needs a level, not zeros. Checking costs ~6 ms a 10-minute window; Silero
# makes one ONNX call per 32 ms frame (~19 s an hour of audio on two cores), whisper's own VAD a second pass
SILENCE_PEAK = 10 ** (-60 / 20)
_LOCK = threading.RLock()
_MODEL: list = []


def _model():
    with _LOCK:
        if not _MODEL:
            import warnings

            from silero_vad import load_silero_vad

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _MODEL.append(load_silero_vad(onnx=True))
        return _MODEL[0]


def is_silent(audio: np.ndarray) -> bool:
    """No sample reaches -60 dBFS: nothing to detect or transcribe."""
    return len(audio) == 0 or float(np.abs(audio).max()) < SILENCE_PEAK


def speech_regions(audio: np.ndarray, min_silence_ms: int = 300, pad_ms: int = 30,
                   threshold: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of speech in 16 kHz mono audio (`threshold`: Silero's speech probability)."""
    import torch
    from silero_vad import get_speech_timestamps

    if is_silent(audio):
        return []

    with _LOCK:  # the ONNX session keeps state between calls
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio)), _model(), sampling_rate=RATE,
                                       min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms,
                                       threshold=threshold, neg_threshold=max(0.01, threshold - 0.15))
    return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]


def snap_words(words: list[dict], regions: list[tuple[float, float]], offset: float = 0.0) -> list[dict]:
    """Move word edges that fall in silence onto the nearest speech edge inside the word.

    Whisper's word timings stretch the first word after a pause back into the silence (often by
    ~1 s, sometimes placing the whole word in the pause); VAD onsets are far more exact, so a word
    starting in silence starts at the next onset.
    """
    if not regions:
        return words
    starts = np.array([a for a, _ in regions]) + offset
    ends = np.array([b for _, b in regions]) + offset
    out = []
    for w in words:
        a, b = w["start"], w["end"]
        k = int(np.searchsorted(ends, a))  # first region ending after a
        if k < len(starts) and a < starts[k] < b:
            a = float(starts[k])
        elif k < len(starts) and b <= starts[k] < a + 2.0:  # the whole word sits in the pause before speech
            a, b = float(starts[k]), float(min(starts[k] + (b - a), ends[k]))
        elif k + 1 < len(starts) and ends[k] < b and starts[k + 1] < b and b - starts[k + 1] > ends[k] - a:
            a = float(starts[k + 1])  # straddles a pause and mostly lies after it
        j = int(np.searchsorted(starts, b)) - 1  # last region starting before b
        if j >= 0 and a < ends[j] < b:
            b = float(ends[j])
        out.append({**w, "start": round(a, 3), "end": round(b, 3)})
    return out
