"""The signals backend's OCR gate (issue 26): OCR of every sampled frame (the baseline) against OCR
only where the picture changed (`describe.ocr_same_picture`), in one run, on one chunk of a corpus.

    python benchmarks/ocr_gate.py /tmp/budget/corpus_gop2 --limit 40   # e.g. the corpus budget.py leaves

Also OCR of every frame at a smaller width (`describe.ocr_width`), the other lever, with its recall.

Prints OCR calls and seconds each way, and how many of the distinct texts the baseline read the gate
also read (recall; the gate gives a held-still frame the text of the last frame read, so it can only
miss text that appears without moving the thumbnail by `same_picture` levels).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from streamlearn.core.config import DescribeSection
from streamlearn.core.store import store_for
from streamlearn.corpus.framecache import extract
from streamlearn.corpus.layout import Corpus
from streamlearn.describe import signals
from streamlearn.media.probe import probe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--same-picture", type=float, default=DescribeSection().ocr_same_picture)
    ap.add_argument("--limit", type=int, default=0, help="only the first LIMIT sample times (0: all)")
    ap.add_argument("--width", type=int, default=640, help="the smaller OCR width to compare")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    corpus = Corpus.open(args.corpus)
    s = corpus.config.describe
    chunk = corpus.chunks.read()[0]
    store = store_for(corpus)
    src = store.local_path(store.rel_of(chunk["media_uri"]))
    p = probe(src)
    dur = float(chunk["duration_s"])
    n = int(min(s.ocr_max_frames, max(2, math.ceil(dur / s.ocr_interval_s))))
    dw, dh = p.display_size()
    w = min(s.ocr_width, dw) // 2 * 2
    t0 = time.perf_counter()
    frames = extract(src, 0.0, dur, n, w, int(round(dh * w / dw / 2)) * 2, source_fps=p.fps or 30.0)
    decode = time.perf_counter() - t0
    if args.limit:
        frames = frames[: args.limit]
    small_w = min(args.width, w) // 2 * 2
    small = [np.asarray(Image.fromarray(f).resize((small_w, int(round(f.shape[0] * small_w / f.shape[1] / 2)) * 2),
                                                  Image.BICUBIC)) for f in frames]
    signals.read_text(frames[:1], 0)  # load the OCR engine outside the timings
    real_ocr, calls = signals.ocr, []
    signals.ocr = lambda f: calls.append(1) or real_ocr(f)
    res = {"chunk": chunk["chunk_id"], "frames": n, "width": w, "decode_s": round(decode, 1)}
    texts = {}
    gate = f"gate {args.same_picture:g}"
    for label, same, pics in (("every frame", 0.0, frames), (gate, args.same_picture, frames),
                              (f"width {small_w}", 0.0, small)):
        calls.clear()
        t0 = time.perf_counter()
        reads = signals.read_text(pics, same)
        secs = time.perf_counter() - t0
        texts[label] = {signals.key(t) for lines in reads for t, _ in lines if not signals.CLOCK.match(t)}
        res[label] = {"ocr_calls": len(calls), "seconds": round(secs, 1), "distinct_texts": len(texts[label])}
        print(f"{label:<12} {len(calls):4d} OCR calls  {secs:7.1f} s  {len(texts[label])} distinct texts", flush=True)
    base = texts["every frame"]
    for label in list(texts)[1:]:
        res[label]["recall"] = round(len(base & texts[label]) / max(1, len(base)), 3)
        res[label]["speedup"] = round(res["every frame"]["seconds"] / max(1e-9, res[label]["seconds"]), 2)
        print(f"{label}: {res[label]['speedup']}x on OCR, recall of the baseline's texts {res[label]['recall']:.3f}")
    print(f"decode {decode:.1f} s for {n} frames at {w} px ({len(frames)} OCR'd here)")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
