"""Diarization benchmark: DER (pyannote.metrics) of the embedded offline backend on synthetic
tours with 2, 3 and 4 voices and an unknown speaker count, and peak RSS while diarizing a
long file (default 2 h, built by concatenating a 10-minute 4-voice recording).

    python benchmarks/diarize.py --hours 2

Targets (issue 3): DER <= 10 %, peak RSS <= 3 GiB on >= 2 hours of audio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from streamlearn.media.probe import decode_audio
from streamlearn.testdata.synth import synthesize


def pyannote_der(ref, hyp, collar: float) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    r, h = Annotation(), Annotation()
    for a, b, s in ref:
        r[Segment(a, b)] = s
    for a, b, s in hyp:
        h[Segment(a, b)] = s
    return DiarizationErrorRate(collar=collar, skip_overlap=False)(r, h)


CHILD = """
import json, sys, time, resource
from streamlearn.acquire.diarize import assign_speakers, embed_file
from streamlearn.core.config import DiarizeSection
t0 = time.monotonic()
turns = assign_speakers(embed_file(sys.argv[1], DiarizeSection(backend="embedded")), 0.3)
print(json.dumps({"turns": turns, "seconds": time.monotonic() - t0,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def diarize_in_child(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0, help="length of each DER tour")
    ap.add_argument("--hours", type=float, default=2.0, help="length of the long file for peak RSS")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    print(f"{'voices':>6} {'found':>6} {'DER':>7} {'DER c0.5':>9} {'RTF':>6}")
    long_src = None
    for voices in (2, 3, 4):
        tour = work / f"tour{voices}"
        synthesize(tour, days=1, minutes=args.minutes if voices < 4 else 10.0, speakers=voices, seed=20 + voices,
                   variants=("mp4",), caption_days="none")
        day = json.loads((tour / "ground_truth.json").read_text())["days"][0]
        media = tour / "media" / f"{day['video_id']}.mp4"
        ref = [(u["start"], u["end"], u["speaker"]) for u in day["utterances"]]
        res = diarize_in_child(media)
        hyp = [tuple(t) for t in res["turns"]]
        found = len({t[2] for t in hyp})
        print(f"{voices:>6} {found:>6} {pyannote_der(ref, hyp, 0.0):>7.2%} {pyannote_der(ref, hyp, 0.5):>9.2%} "
              f"{res['seconds'] / day['duration_s']:>6.3f}")
        if voices == 4:
            long_src = (media, day)
    media, day = long_src
    reps = max(1, round(args.hours * 3600 / day["duration_s"]))
    # repeat the decoded samples (sample-exact, unlike joining AAC files, which drifts by the
    # encoder priming at every join), then encode once to Opus
    pcm = decode_audio(media)[: int(day["duration_s"] * 16000)]
    wav = work / "long.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        for _ in range(reps):
            w.writeframes((pcm * 32767).astype(np.int16).tobytes())
    audio = work / "long.opus"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "libopus", "-b:a", "48k", str(audio)], check=True)
    wav.unlink()
    t0 = time.monotonic()
    res = diarize_in_child(audio)
    hyp = [tuple(t) for t in res["turns"]]
    ref = [(u["start"] + k * day["duration_s"], u["end"] + k * day["duration_s"], u["speaker"])
           for k in range(reps) for u in day["utterances"]]
    hours = reps * day["duration_s"] / 3600
    print(f"long file: {hours:.2f} h, 4 voices: {len({t[2] for t in hyp})} speakers found, "
          f"DER {pyannote_der(ref, hyp, 0.0):.2%} (collar 0.5: {pyannote_der(ref, hyp, 0.5):.2%}), "
          f"peak RSS {res['maxrss_kb'] / 2**20:.2f} GiB, {res['seconds']:.0f} s (RTF {res['seconds'] / (hours * 3600):.3f}); "
          f"wall {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
