"""ASR benchmark: WER, utterance-start error and real-time factor of the offline default
(faster-whisper tiny.en, int8 CPU) on the synthetic tour's narration, batched vs sequential,
measured in one run.

    python benchmarks/asr.py --days 3 --minutes 3

Targets (issue 3): WER <= 8 %, utterance starts within 1 s of the truth.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import jiwer

from streamlearn.acquire.transcribe import asr_words, load_model
from streamlearn.core.config import ModelsSection
from streamlearn.testdata.synth import synthesize

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    return str(n)


def norm(text: str) -> str:
    """Lower case, no punctuation, numbers spelled out (the reference says "9", Whisper "nine" or "9")."""
    text = re.sub(r"\d+", lambda m: f" {spell(int(m.group()))} ", text.lower())
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split())


def start_errors(words: list[dict], utterances: list[dict]) -> list[float]:
    """|first recognised word's start - true utterance start|, words belonging to the utterance
    whose span (padded by 0.5 s) holds their midpoint; inf when no word was recognised."""
    errs = []
    for u in utterances:
        mine = [w["start"] for w in words if u["start"] - 0.5 <= (w["start"] + w["end"]) / 2 <= u["end"] + 0.5]
        errs.append(abs(mine[0] - u["start"]) if mine else float("inf"))
    return errs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--tour", type=Path, default=None, help="reuse a rendered tour")
    args = ap.parse_args()
    tour = args.tour or Path(tempfile.mkdtemp()) / "tour"
    if not (tour / "ground_truth.json").exists():
        synthesize(tour, days=args.days, minutes=args.minutes, speakers=args.speakers, seed=11, variants=("mp4",),
                   caption_days="none")
    truth = json.loads((tour / "ground_truth.json").read_text())
    audio_s = sum(d["duration_s"] for d in truth["days"])
    results = {}
    for mode, batch in (("sequential", 0), ("batched", 8)):
        s = ModelsSection(asr_batch_size=batch)
        load_model(s)  # load outside the timing
        refs, hyps, errs, elapsed = [], [], [], 0.0
        for d in truth["days"]:
            t0 = time.monotonic()
            words, _ = asr_words(tour / "media" / f"{d['video_id']}.mp4", s)
            elapsed += time.monotonic() - t0
            refs.append(norm(" ".join(u["text"] for u in d["utterances"])))
            hyps.append(norm(" ".join(w["word"] for w in words)))
            errs += start_errors(words, d["utterances"])
        wer = jiwer.wer(refs, hyps)
        results[mode] = {"wer": wer, "rtf": elapsed / audio_s, "seconds": elapsed,
                         "start_err_mean": sum(errs) / len(errs), "start_err_max": max(errs),
                         "within_1s": sum(e <= 1.0 for e in errs) / len(errs)}
        r = results[mode]
        found = [e for e in errs if e != float("inf")]
        print(f"{mode:>10}: WER {wer:.1%}  RTF {r['rtf']:.3f} ({elapsed:.1f} s for {audio_s:.0f} s audio)  "
              f"utterance starts: {len(found)}/{len(errs)} recognised, error mean {sum(found) / len(found):.2f} s "
              f"max {max(found):.2f} s, {r['within_1s']:.0%} of all utterances within 1 s")
    speed = results["sequential"]["seconds"] / results["batched"]["seconds"]
    print(f"batched vs sequential: {speed:.2f}x faster, WER {results['batched']['wer']:.1%} vs "
          f"{results['sequential']['wer']:.1%}")


if __name__ == "__main__":
    main()
