"""Sparse samples from a long chunk: seeking to each sample (what `framecache.extract` does when samples
are SEEK_GAP_S or more apart) vs one straight decode of the whole chunk, measured in one run, with the
frames compared (they must be identical).

    python benchmarks/frame_seek.py --video CHUNK.mkv --duration 1200 --samples 16,240 --size 448x252

Sparse samples are what `describe` asks for: 16 frames a 20-minute chunk for an OpenAI-compatible
endpoint, 240 at OCR width for the signals backend. Without --video it encodes MINUTES of 1080p60 VP9
with 2 s keyframes (the seed's archival shape).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from streamlearn.corpus import framecache


def encode(out: Path, seconds: int) -> None:
    src = (f"testsrc2=s=1920x1080:r=60:d={seconds},drawtext=fontfile=/usr/share/fonts/truetype/dejavu/"
           "DejaVuSans-Bold.ttf:text='%{pts\\:hms}':fontsize=108:fontcolor=white:x=20:y=20")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-c:v", "libvpx-vp9", "-deadline",
                    "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "3M", "-g", "120", "-keyint_min", "120",
                    str(out)], check=True)


def measure(video: Path, duration: float, n: int, width: int, height: int, fps: float) -> dict:
    t0 = time.perf_counter()
    seeking = framecache.extract(video, 0.0, duration, n, width, height, source_fps=fps)
    t_seek = time.perf_counter() - t0
    gap, framecache.SEEK_GAP_S = framecache.SEEK_GAP_S, float("inf")  # the straight decode, same code otherwise
    try:
        t0 = time.perf_counter()
        straight = framecache.extract(video, 0.0, duration, n, width, height, source_fps=fps)
        t_straight = time.perf_counter() - t0
    finally:
        framecache.SEEK_GAP_S = gap
    return {"samples": n, "seconds_seeking": round(t_seek, 2), "seconds_straight": round(t_straight, 2),
            "ratio": round(t_straight / t_seek, 1), "identical": bool(np.array_equal(seeking, straight))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, help="a chunk to read (default: encode MINUTES of 1080p60 VP9)")
    ap.add_argument("--duration", type=float, help="seconds of VIDEO to sample (default: all of it)")
    ap.add_argument("--minutes", type=int, default=2)
    ap.add_argument("--fps", type=float, default=60.0, help="the source's frame rate")
    ap.add_argument("--samples", default="16,240", help="sample counts to compare, comma-separated")
    ap.add_argument("--size", default="448x252", help="frame size WxH")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "seek.mkv"
            encode(video, args.minutes * 60)
        duration = args.duration or float(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video)],
            capture_output=True, text=True, check=True).stdout)
        rows = []
        for n in (int(v) for v in args.samples.split(",")):
            row = measure(video, duration, n, width, height, args.fps)
            rows.append(row)
            print(f"{n} samples of {duration:.0f} s at {width}x{height}: seeking {row['seconds_seeking']} s, "
                  f"straight decode {row['seconds_straight']} s, {row['ratio']}x, identical {row['identical']}",
                  flush=True)
    if args.out:
        args.out.write_text(json.dumps({"video": str(args.video or "encoded"), "duration": duration,
                                        "size": args.size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
