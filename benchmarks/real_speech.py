"""Real speech (issue 16): ASR WER on real read speech with reference text, and diarization DER
on real voices, with the defaults (no calibration).

    python benchmarks/real_speech.py            # both
    python benchmarks/real_speech.py --only der --split tune   # the tuning voices (how defaults were chosen)

Data (Debian packages, scripts/system_deps.sh installs the first three; the benchmark needs the
others too: apt-get install -y asterisk-core-sounds-fr-wav asterisk-core-sounds-ru-wav
asterisk-prompt-it-menardi-wav):
- WER: Allison's English telephone prompts (asterisk-core-sounds-en-wav) read as voice memos of
  ~60 s, reference text from core-sounds-en.txt (asterisk-core-sounds-en).
- DER: the pyannote.audio wheel's sample.wav (a real two-speaker conversation, its RTTM), and
  phone-call-like conversations with known turns built from prompts of different people
  (`realdata.conversation`). `--split measure` (reported) uses realdata.MEASURED_VOICES;
  `--split tune` uses realdata.TUNING_VOICES, the only voices the defaults were chosen on.
DER is scored with pyannote.metrics (collar 0.25 s total, overlap scored) beside the project's own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from streamlearn.testdata import realdata as R


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split())


def wer_bench(n_memos: int) -> list[dict]:
    import jiwer

    from streamlearn.acquire.transcribe import asr_words, uncovered
    from streamlearn.core.config import ModelsSection
    from streamlearn.media.probe import decode_audio
    from streamlearn.media.vad import speech_regions

    prompts = R.read_prompts(min_words=10)
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    memos, i = [], 0
    while i < len(prompts) and len(memos) < n_memos:
        parts, text, dur = [np.zeros(4000, np.float32)], [], 0.0
        while dur < 55 and i < len(prompts):
            x = R.load(prompts[i][0], 16000)
            pause = rng.uniform(0.5, 1.2)
            parts += [x, np.zeros(int(pause * 16000), np.float32)]
            text.append(prompts[i][1])
            dur += len(x) / 16000 + pause
            i += 1
        memos.append((R.write_wav(tmp / f"memo{len(memos)}.wav", np.concatenate(parts), 16000), " ".join(text)))
    out = []
    for mode, s in (("batched + repair (default)", ModelsSection()), ("batched, no repair", ModelsSection(asr_repair=False)),
                    ("sequential", ModelsSection(asr_batch_size=0))):
        refs, hyps, gaps, seconds = [], [], 0, 0.0
        t0 = time.monotonic()
        for path, text in memos:
            words, _ = asr_words(path, s)
            audio = decode_audio(path)
            seconds += len(audio) / 16000
            gaps += len(uncovered(speech_regions(audio), words))
            refs.append(norm(text))
            hyps.append(norm(" ".join(w["word"] for w in words)))
        row = {"mode": mode, "wer": round(jiwer.wer(refs, hyps), 4), "speech_without_words": gaps,
               "audio_s": round(seconds, 1), "rtf": round((time.monotonic() - t0) / seconds, 4),
               "words": sum(len(r.split()) for r in refs), "memos": len(memos)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def pyannote_der(ref, hyp, collar: float) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def ann(turns):
        a = Annotation()
        for s, e, spk in turns:
            a[Segment(s, e)] = spk
        return a

    return float(DiarizationErrorRate(collar=collar)(ann(ref), ann(hyp)))


def der_bench(split: str, seconds: float) -> list[dict]:
    from streamlearn.acquire.diarize import assign_speakers, der, embed_file, read_rttm
    from streamlearn.core.config import DiarizeSection

    voices = R.MEASURED_VOICES if split == "measure" else R.TUNING_VOICES
    tmp = Path(tempfile.mkdtemp())
    items = []
    pairs = [(a, b) for i, a in enumerate(voices) for b in voices[i + 1:]]
    for k, pair in enumerate(pairs):
        conv = R.conversation(pair, seconds=seconds, seed=k)
        items.append((" x ".join(pair), R.write_wav(tmp / f"{k}.wav", conv.audio), conv.turns, 2))
    conv = R.conversation(voices[:1], seconds=seconds, seed=99)
    items.append((f"{voices[0]} alone", R.write_wav(tmp / "solo.wav", conv.audio), conv.turns, 1))
    if split == "measure":
        wav, rttm = R.pyannote_sample()
        items.append(("pyannote sample.wav (real call)", wav, read_rttm(rttm)["sample"], 2))
    out = []
    s = DiarizeSection(backend="embedded")
    for name, wav, ref, n in items:
        t0 = time.monotonic()
        hyp = assign_speakers(embed_file(wav, s), s.threshold)
        dt = time.monotonic() - t0
        dur = max(b for _, b, _ in ref)
        row = {"audio": name, "true_speakers": n, "found": len({x for *_, x in hyp}),
               "der_collar0.25": round(pyannote_der(ref, hyp, 0.25), 4), "der_collar0": round(pyannote_der(ref, hyp, 0.0), 4),
               "der_own_0.25": round(der(ref, hyp, collar=0.25), 4), "seconds": round(dur, 1), "rtf": round(dt / dur, 3)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["wer", "der"], default=None)
    ap.add_argument("--split", choices=["measure", "tune"], default="measure")
    ap.add_argument("--memos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=90.0)
    a = ap.parse_args()
    if a.only in (None, "wer"):
        wer_bench(a.memos)
    if a.only in (None, "der"):
        der_bench(a.split, a.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
