"""The seed's scale (issue 26): corpora of N cheap long recordings through every data stage, by the
product's own commands, with seconds and peak memory per stage and size, the log-log growth exponent,
and the extrapolation to the seed's corpus (67 videos, 752.8 h, 2,290 chunks of 20 minutes).

    python benchmarks/scale.py --sizes 36,144,576 --out benchmarks/results/scale_cpu2.json
    python benchmarks/scale.py --seed-shape --skip transcribe,diarize --out benchmarks/results/scale_seed_cpu2.json
        # the seed's shape: 67 videos, 752.8 h, 2,290 chunks (55 of 11.18 h and 12 of 11.49 h)

A recording is a 64x36 test pattern at 1 fps with a silent Opus track (VP9/Opus in Matroska, the seed's
codecs), HOURS long (3 by default): one is encoded, the others are stream copies with their own title
and a file time a day apart (so they fall on different stream days). Chunks are the seed's 20 minutes.
After `chunk --verify` passes, one byte of one chunk in the middle of the store is flipped and
`chunk --verify` must name that chunk (and only it); the byte is then put back.
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
import re
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
    ("verify, planted fault", ["chunk", "{c}", "--verify"]),
    ("frames", ["frames", "{c}"]),
    ("describe", ["describe", "{c}", "--backend", "signals"]),
    ("questions", ["questions", "{c}", "--seal"]),
    ("status", ["status", "{c}"]),
]


def encode(path: Path, hours: float) -> None:
    """HOURS of the cheap recording: one hour encoded, then stream-copied end to end and cut."""
    hour = path.parent / "hour.mkv"
    if not hour.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=1:duration=3600",
                        "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=3600", "-c:v", "libvpx-vp9",
                        "-deadline", "realtime", "-cpu-used", "8", "-g", "60", "-c:a", "libopus", "-b:a", "6k",
                        "-shortest", str(hour)], check=True)
    listing = path.parent / "hours.txt"
    listing.write_text(f"file '{hour.name}'\n" * math.ceil(hours))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-t",
                    f"{hours * 3600:.0f}", "-c", "copy", str(path)], check=True)


def recording(folder: Path, base: Path, i: int, t0: int) -> None:
    """Recording i: a stream copy of base with its own title, a day after recording i - 1."""
    folder.mkdir(parents=True, exist_ok=True)
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


def plant_fault(corpus: Path) -> tuple[str, Path, int]:
    """Flip one byte in the middle of the middle chunk's object; (chunk id, file, offset)."""
    from streamlearn.corpus.layout import Corpus
    from streamlearn.core.store import store_for

    c = Corpus.open(corpus)
    rows = c.chunks.read()
    row = rows[len(rows) // 2]
    store = store_for(c, None)
    path = store.local_path(store.rel_of(row["media_uri"]))
    offset = path.stat().st_size // 2
    flip_byte(path, offset)
    return row["chunk_id"], path, offset


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def run_size(work: Path, bases: list[tuple[Path, int]], skip: set[str]) -> dict:
    """One corpus of sum(n) recordings, n copies of each base; every stage not in skip, timed."""
    rec, corpus, log = work / "rec", work / "corpus", work / "log.txt"
    t0 = 1_700_000_000
    i = 0
    for base, n in bases:
        for _ in range(n):
            recording(rec, base, i, t0)
            i += 1
    subprocess.run([sys.executable, "-m", "streamlearn", "init", str(corpus), "--subject", "scale"], check=True,
                   capture_output=True)
    from streamlearn.media.probe import probe

    hours = sum(probe(base).duration_s * n for base, n in bases) / 3600
    out: dict = {"videos": i, "hours": round(hours, 2), "stages": {}, "skipped": sorted(skip)}
    planted = None
    for name, argv in STAGES:
        if name in skip:
            continue
        if name == "verify, planted fault":
            planted = plant_fault(corpus)
        at = log.stat().st_size if log.exists() else 0
        secs, mb, rc = timed([a.format(c=corpus, rec=rec) for a in argv], log)
        out["stages"][name] = {"seconds": round(secs, 2), "peak_mb": round(mb, 1), "rc": rc}
        note = f"  (exit {rc}; see {log})" if rc else ""
        if planted:
            chunk_id, path, offset = planted
            # the problem lines: "verify: <id>: ..." (not the progress summary or the "N chunks, M problems" line)
            named = [ln for ln in log.read_text()[at:].splitlines() if re.match(r"verify: [^ ]+: ", ln)]
            found = rc == 1 and len(named) == 1 and named[0].startswith(f"verify: {chunk_id}: ")
            out["stages"][name]["found_planted"] = found
            note = f"  planted fault in {chunk_id}: {'found, alone' if found else 'NOT FOUND'}"
            flip_byte(path, offset)  # put it back
            planted = None
        print(f"  {name:<22} {secs:8.1f} s  {mb:7.0f} MB" + note, flush=True)
    from streamlearn.corpus.layout import Corpus

    out["chunks"] = len(Corpus.open(corpus).chunks.read())
    return out


def exponent(a: dict, b: dict, stage: str) -> float | None:
    if stage not in a["stages"] or stage not in b["stages"]:
        return None
    ta, tb = a["stages"][stage]["seconds"], b["stages"][stage]["seconds"]
    if min(ta, tb) <= 0 or a["chunks"] == b["chunks"]:
        return None
    return math.log(tb / ta) / math.log(b["chunks"] / a["chunks"])


def report(rows: list[dict]) -> str:
    """Seconds and peak MB per stage and size; the exponent between the two largest sizes that ran the
    stage; the seed's time on this machine (measured where a size is the seed's, else the largest size
    grown by that exponent, linearly where none is measured)."""
    rows = sorted(rows, key=lambda r: r["chunks"])
    sizes = " | ".join(f"{r['chunks']:,} chunks ({r['hours']:,.0f} h)" for r in rows)
    lines = [f"| stage | {sizes} | exponent | seed, this machine |", "|" + "---|" * (len(rows) + 3)]
    for name, _ in STAGES:
        ran = [r for r in rows if name in r["stages"]]
        if not ran:
            continue
        cells = [f"{r['stages'][name]['seconds']:.1f} s / {r['stages'][name]['peak_mb']:.0f} MB"
                 if name in r["stages"] else "not run" for r in rows]
        b = exponent(ran[-2], ran[-1], name) if len(ran) > 1 else None
        last = ran[-1]
        seed = last["stages"][name]["seconds"] * (SEED_CHUNKS / last["chunks"]) ** (b if b and b > 0 else 1.0)
        lines.append(f"| {name} | {' | '.join(cells)} | {'-' if b is None else f'{b:.2f}'} | {seed / 3600:.2f} h |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="36,144,576", help="chunk counts (multiples of the chunks a recording makes)")
    ap.add_argument("--hours", type=float, default=3.0, help="length of each recording")
    ap.add_argument("--seed-shape", action="store_true",
                    help="the seed's shape: 67 recordings, 752.8 h, 2,290 chunks (55 x 11.18 h + 12 x 11.49 h)")
    ap.add_argument("--skip", default="", help="stages not to run, comma-separated (e.g. transcribe,diarize)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("scale.json"))
    ap.add_argument("--report", type=Path, nargs="+", help="only print the table of these result files, together")
    args = ap.parse_args()
    if args.report:
        print(report([row for f in args.report for row in json.loads(f.read_text())]))
        return
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    unknown = skip - {name for name, _ in STAGES}
    if unknown:
        sys.exit(f"--skip: unknown stage {sorted(unknown)[0]!r}; the stages are {', '.join(n for n, _ in STAGES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    # (hours of a recording, recordings of that length) per corpus
    if args.seed_shape:
        plans = [[(11.18, 55), (11.49, 12)]]  # 34 and 35 chunks: 2,290 chunks, 752.8 h
    else:
        per_video = math.ceil(args.hours * 3600 / 1200)
        plans = [[(args.hours, max(1, int(s) // per_video))] for s in args.sizes.split(",")]
    bases: dict[float, Path] = {}
    for hours in sorted({h for plan in plans for h, _ in plan}):
        bases[hours] = work / f"base_{hours:g}h.mkv"
        if not bases[hours].exists():
            t0 = time.perf_counter()
            encode(bases[hours], hours)
            print(f"base recording: {hours:g} h, {bases[hours].stat().st_size / 1e6:.1f} MB, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for plan in plans:
        n = sum(k for _, k in plan)
        print(f"{n} videos ({' + '.join(f'{k} x {h:g} h' for h, k in plan)}):", flush=True)
        here = work / f"v{n}"
        rows.append(run_size(here, [(bases[h], k) for h, k in plan], skip))
        shutil.rmtree(here / "corpus" / "store", ignore_errors=True)  # the chunk copies: the largest thing here
        args.out.write_text(json.dumps(rows, indent=1))
    print(report(rows))


if __name__ == "__main__":
    main()
