"""A real-format corpus at the operating point, written directly (the earlier stages are measured on
their own): manifests, frame caches of `frames` frames per chunk, descriptions with ~`target_words`
words of speech and on-screen signs with QA pairs. Used by the GPU benchmarks (train_step.py
--product, eval_speed.py, gpu_chain.py), where no media pipeline runs.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from streamlearn.corpus import description as D
from streamlearn.core.config import Config, EvalSection, OperatingPoint
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE

CITIES = ["Miami", "Denver", "Boston", "Seattle", "Austin", "Chicago"]
WORDS = ("we are walking down the street and the food here is great look at that sign over there "
         "my friend just bought tickets for the game tonight it is hot today and everybody is out").split()


def make_corpus(root: Path, days: int = 2, chunks_per_day: int = 3, frames: int = 1200, size=(84, 168),
                chunk_seconds: float = 1200.0, target_words: int = 600, signs: int = 6, train: dict | None = None,
                seed: int = 0) -> Corpus:
    fps = frames / chunk_seconds
    h, w = size
    op = OperatingPoint(chunk_seconds=chunk_seconds, fps=fps, max_frames=frames, total_pixels=frames * h * w,
                        frame_min_pixels=h * w, frame_max_pixels=h * w)
    corpus, _ = Corpus.init(root, Config(operating_point=op, train=train or {}, eval=EvalSection(bootstrap=200)))
    rng = np.random.default_rng(seed)
    words = random.Random(seed)
    (corpus.root / "frames").mkdir(exist_ok=True)
    videos, rows = [], []
    for day in range(1, days + 1):
        vid = f"vid{day:02d}"
        city = CITIES[(day - 1) % len(CITIES)]
        videos.append({"video_id": vid, "title": f"Day {day} in {city}", "day_index": day, "timezone": "UTC",
                       "source": "jsonl"})
        for k in range(chunks_per_day):
            cid = f"{vid}_c{k:03d}"
            base = rng.integers(40, 215, size=3)
            arr = np.clip(base + rng.integers(-40, 40, size=(frames, h, w, 3)), 0, 255).astype(np.uint8)
            np.save(corpus.root / "frames" / f"{cid}.npy", arr)
            (corpus.root / "frames" / f"{cid}.json").write_text(json.dumps({"sample_fps": fps}))
            t0 = datetime(2025, 8, day, 10, tzinfo=timezone.utc) + timedelta(seconds=chunk_seconds * k)
            hour, minute = t0.hour, t0.minute
            start = t0.isoformat()
            end = (t0 + timedelta(seconds=chunk_seconds)).isoformat()
            doc = D.empty({"chunk_id": cid, "video_id": vid, "day_index": day, "start_local": start,
                           "end_local": end, "timezone": "UTC",
                           "duration_s": chunk_seconds}, days)
            doc["setting"]["city"] = city
            doc["summary"] = f"The streamer walks through {city}."
            t, said = 5.0, 0
            while said < target_words:
                n = words.randint(6, 14)
                doc["speech"].append({"start_s": t, "speaker": f"SPEAKER_0{said % 2}",
                                      "text": " ".join(words.choice(WORDS) for _ in range(n)).capitalize() + "."})
                said, t = said + n, t + 7.0
            doc["qa"] = [{"question": f"Which city was the streamer in at {hour}:{minute:02d} on day {day}?", "answer": city,
                          "type": "place", "evidence_s": [0.0, chunk_seconds]}]
            for j in range(signs):
                ts = 60.0 * (j + 1)
                text = f"{words.choice(['GATE', 'EXIT', 'LANE', 'ROOM', 'PLATFORM'])} {words.randint(20, 99)}"
                doc["on_screen_text"].append({"start_s": ts, "text": text})
                doc["qa"].append({"question": f"What did the sign read at {hour}:{int(ts // 60):02d} on day {day}?",
                                  "answer": text, "type": "ocr", "evidence_s": [ts, ts + 5.0]})
            (corpus.root / "descriptions" / f"{cid}.json").write_text(json.dumps(doc))
            rows.append({"chunk_id": cid, "video_id": vid, "chunk_index": k, "n_chunks": chunks_per_day,
                         "start_s": chunk_seconds * k, "end_s": chunk_seconds * (k + 1), "duration_s": chunk_seconds,
                         "day_index": day, "start_utc": start, "start_local": start, "timezone": "UTC",
                         "frames_status": DONE, "frames_path": f"frames/{cid}.npy", "n_frames": frames,
                         "sample_fps": fps, "frame_width": w, "frame_height": h,
                         "describe_status": DONE, "description_path": f"descriptions/{cid}.json"})
    corpus.videos.upsert(videos)
    corpus.chunks.write([{**{c.name: None for c in corpus.chunks.table.columns()}, **r} for r in rows])
    return corpus
