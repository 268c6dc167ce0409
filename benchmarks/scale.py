"""The seed's scale (issue 26): corpora of N cheap long recordings through every data stage, by the
product's own commands, with seconds and peak memory per stage and size, the log-log growth exponent,
and the extrapolation to the seed's corpus (67 videos, 752.8 h, 2,290 chunks of 20 minutes).

    python benchmarks/scale.py --sizes 36,144,576 --out benchmarks/results/scale_cpu2.json
    python benchmarks/scale.py --seed-shape            # 67 videos x 11 h (2,211 chunks; hours of CPU)

A recording is a 64x36 test pattern at 1 fps with a silent Opus track (VP9/Opus in Matroska, the seed's
codecs), HOURS long (3 by default): one is encoded, the others are stream copies with their own title
and a file time a day apart (so they fall on different stream days). Chunks are the seed's 20 minutes.
Each stage is one `python -m streamlearn ...` process; its wall time and peak resident memory come
from the operating system (wait4), so the numbers are the command a user runs, start-up included.
What this does not measure: real-resolution decoding, ASR on speech, OCR on real frames (per-hour
budgets: docs/benchmarks.md), and eval (a trained run is needed; see knowledge_study.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED_CHUNKS, SEED_HOURS = 2290, 752.8
STAGES = [  # (name, argv after `streamlearn`, with {c} the corpus)
    ("playlist", ["playlist", "{c}", "--from-dir", "{rec}"]),
    ("download", ["download", "{c}"]),
    ("transcribe", ["transcribe", "{c}"]),
    ("diarize", ["diarize", "{c}"]),
    ("chunk", ["chunk", "{c}"]),
    ("chunk --verify", ["chunk", "{c}", "--verify"]),
    ("frames", ["frames", "{c}"]),
    ("describe", ["describe", "{c}", "--backend", "signals"]),
    ("questions", ["questions", "{c}", "--seal"]),
    ("status", ["status", "{c}"]),
]


def encode(path: Path, hours: float) -> None:
    seconds = int(hours * 3600)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=64x36:rate=1:duration={seconds}",
                    "-f", "lavfi", "-i", f"anullsrc=r=16000:cl=mono:d={seconds}", "-c:v", "libvpx-vp9",
                    "-deadline", "realtime", "-cpu-used", "8", "-g", "60", "-c:a", "libopus", "-b:a", "6k",
                    "-shortest", str(path)], check=True)


def recordings(folder: Path, base: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000
    for i in range(n):
        out = folder / f"rec{i:04d}.mkv"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-c", "copy", "-metadata",
                        f"title=recording {i}", str(out)], check=True)
        os.utime(out, (t0 + i * 86400, t0 + i * 86400))


def timed(argv: list[str], log: Path) -> tuple[float, float, int]:
    """(seconds, peak resident MB, exit status) of one product command."""
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ streamlearn {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.Popen([sys.executable, "-m", "streamlearn", *argv], stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, proc.returncode


def run_size(work: Path, base: Path, videos: int, hours: float) -> dict:
    rec, corpus, log = work / "rec", work / "corpus", work / "log.txt"
    recordings(rec, base, videos)
    subprocess.run([sys.executable, "-m", "streamlearn", "init", str(corpus), "--subject", "scale"], check=True,
                   capture_output=True)
    out: dict = {"videos": videos, "hours": videos * hours, "stages": {}}
    for name, argv in STAGES:
        secs, mb, rc = timed([a.format(c=corpus, rec=rec) for a in argv], log)
        out["stages"][name] = {"seconds": round(secs, 2), "peak_mb": round(mb, 1), "rc": rc}
        print(f"  {name:<15} {secs:8.1f} s  {mb:7.0f} MB" + (f"  (exit {rc}; see {log})" if rc else ""), flush=True)
    from streamlearn.corpus.layout import Corpus

    out["chunks"] = len(Corpus.open(corpus).chunks.read())
    return out


def exponent(a: dict, b: dict, stage: str) -> float | None:
    ta, tb = a["stages"][stage]["seconds"], b["stages"][stage]["seconds"]
    if min(ta, tb) <= 0 or a["chunks"] == b["chunks"]:
        return None
    return math.log(tb / ta) / math.log(b["chunks"] / a["chunks"])


def report(rows: list[dict]) -> str:
    sizes = " | ".join(f"{r['chunks']:,} chunks ({r['hours']:,.0f} h)" for r in rows)
    lines = [f"| stage | {sizes} | exponent (last two) | seed, this machine |", "|" + "---|" * (len(rows) + 3)]
    for name, _ in STAGES:
        cells = [f"{r['stages'][name]['seconds']:.1f} s / {r['stages'][name]['peak_mb']:.0f} MB" for r in rows]
        b = exponent(rows[-2], rows[-1], name) if len(rows) > 1 else None
        last = rows[-1]
        # the seed's time: the largest size grown by the measured exponent (linear when it is not measured)
        seed = last["stages"][name]["seconds"] * (SEED_CHUNKS / last["chunks"]) ** (b if b and b > 0 else 1.0)
        lines.append(f"| {name} | {' | '.join(cells)} | {'-' if b is None else f'{b:.2f}'} | {seed / 3600:.2f} h |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="36,144,576", help="chunk counts (multiples of the chunks a recording makes)")
    ap.add_argument("--hours", type=float, default=3.0, help="length of each recording")
    ap.add_argument("--seed-shape", action="store_true", help="67 recordings of 11 h (the seed's shape)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("scale.json"))
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    hours = 11.0 if args.seed_shape else args.hours
    per_video = int(hours * 3600 // 1200)
    base = work / "base.mkv"
    t0 = time.perf_counter()
    encode(base, hours)
    print(f"base recording: {hours:g} h, {base.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.0f} s", flush=True)
    plan = [67] if args.seed_shape else [max(1, int(s) // per_video) for s in args.sizes.split(",")]
    rows = []
    for videos in plan:
        print(f"{videos} videos x {hours:g} h ({videos * per_video} chunks of 20 min):", flush=True)
        here = work / f"v{videos}"
        rows.append(run_size(here, base, videos, hours))
        shutil.rmtree(here / "corpus" / "store", ignore_errors=True)  # the chunk copies: the largest thing here
        args.out.write_text(json.dumps(rows, indent=1))
    print(report(rows))


if __name__ == "__main__":
    main()
