"""Chunking throughput: `streamlearn chunk` (segment muxer stream copy + sha256 + store upload with
read-back verification) vs `cp` of the same file, measured in one run.

    python benchmarks/chunk.py --minutes 30
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from streamlearn.acquire.download import run_download
from streamlearn.acquire.playlist import run_playlist
from streamlearn.chunk import run_chunk, segment
from streamlearn.core.config import Config
from streamlearn.corpus.layout import Corpus
from streamlearn.testdata.synth import synthesize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the source video")
    ap.add_argument("--chunk-seconds", type=float, default=120.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    tour = work / "tour"
    synthesize(tour, days=1, minutes=2, seed=5, variants=("mkv",), caption_days="none")
    piece = next((tour / "media").glob("*.mkv"))
    reps = max(1, int(args.minutes / 2))
    lst = work / "list.txt"
    lst.write_text("".join(f"file '{piece}'\n" for _ in range(reps)))
    rec = work / "rec"
    rec.mkdir()
    src = rec / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy", str(src)],
                   check=True)
    size = src.stat().st_size
    t0 = time.perf_counter()
    shutil.copyfile(src, work / "copy.mkv")
    cp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    segment(src, work / "seg", "long", args.chunk_seconds)
    seg_s = time.perf_counter() - t0
    corpus, _ = Corpus.init(work / "corpus", Config())
    run_playlist(corpus, from_dir=rec)
    run_download(corpus)
    t0 = time.perf_counter()
    assert run_chunk(corpus, chunk_seconds=args.chunk_seconds).ok
    stage_s = time.perf_counter() - t0
    n = len(corpus.chunks.read())
    print(f"source: {args.minutes:.0f} min, {size / 1e6:.0f} MB; {n} chunks of {args.chunk_seconds:g} s")
    print(f"cp: {cp_s:.2f} s ({size / cp_s / 1e6:.0f} MB/s)")
    print(f"segment muxer alone: {seg_s:.2f} s ({size / seg_s / 1e6:.0f} MB/s) = {seg_s / cp_s:.1f}x cp")
    print(f"chunk stage (segment + sha256 + store + read-back check + slices): {stage_s:.2f} s "
          f"({size / stage_s / 1e6:.0f} MB/s) = {stage_s / cp_s:.1f}x cp, "
          f"{args.minutes * 60 / stage_s:.0f}x real time")


if __name__ == "__main__":
    main()
