"""A small, real-format corpus for training tests: manifests, frame caches and descriptions written
directly (the earlier stages are tested on their own), with facts a model can learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streamlearn.corpus import description as D
from streamlearn.core.config import Config, OperatingPoint
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE

CITIES = ["Miami", "Denver", "Boston", "Seattle"]
COLOURS = [(200, 40, 40), (40, 80, 200), (40, 160, 60), (150, 60, 160)]


def make_train_corpus(root: Path, days: int = 2, chunks_per_day: int = 3, frames: int = 4, size=(56, 112),
                      train: dict | None = None, seed: int = 0, signs: int = 0) -> Corpus:
    """`signs` > 0 adds that many on-screen signs per chunk, each with its own QA pair (facts to split)."""
    # these tests are about training mechanics; the held-out split has its own tests (test_heldout.py)
    cfg = Config(operating_point=OperatingPoint(chunk_seconds=60, fps=frames / 60),
                 train={"require_sealed_bank": False, **(train or {})})
    corpus, _ = Corpus.init(root, cfg)
    rng = np.random.default_rng(seed)
    (corpus.root / "frames").mkdir(exist_ok=True)
    videos, rows = [], []
    for day in range(1, days + 1):
        vid = f"vid{day:02d}"
        videos.append({"video_id": vid, "title": f"Day {day} in {CITIES[(day - 1) % 4]}", "day_index": day,
                       "timezone": "UTC", "source": "jsonl"})
        for k in range(chunks_per_day):
            cid = f"{vid}_c{k:03d}"
            h, w = size
            base = np.array(COLOURS[(day - 1) % 4], dtype=np.int16)
            arr = np.clip(base + rng.integers(-30, 30, size=(frames, h, w, 3)), 0, 255).astype(np.uint8)
            np.save(corpus.root / "frames" / f"{cid}.npy", arr)
            (corpus.root / "frames" / f"{cid}.json").write_text(json.dumps({"sample_fps": frames / 60}))
            start = f"2025-08-{day:02d}T{12 + k:02d}:00:00+00:00"
            doc = D.empty({"chunk_id": cid, "video_id": vid, "day_index": day, "start_local": start,
                           "end_local": f"2025-08-{day:02d}T{12 + k:02d}:01:00+00:00", "timezone": "UTC",
                           "duration_s": 60.0}, days)
            city = CITIES[(day - 1) % 4]
            doc["setting"]["city"] = city
            doc["summary"] = f"The streamer walks through {city} and buys {k + 2} tacos."
            doc["speech"] = [{"start_s": 1.0, "speaker": "SPEAKER_00", "text": f"We are in {city} now."}]
            doc["qa"] = [{"question": f"Which city was the streamer in on day {day}?", "answer": city,
                          "type": "place", "evidence_s": [0.0, 60.0]}]
            for j in range(signs):
                text, t = f"GATE {10 * day + 3 * k + j}", 5.0 * (j + 1)
                doc["on_screen_text"].append({"start_s": t, "text": text})
                clock = f"{12 + k:02d}:00:{int(t):02d}"
                doc["qa"].append({"question": f"What did the sign read at {clock} on day {day}?", "answer": text,
                                  "type": "ocr", "evidence_s": [t, t + 2.0],
                                  "variants": [{"kind": "paraphrase", "question": f"On day {day} at {clock}, "
                                                "which words were on the sign?"},
                                               {"kind": "reverse", "question": f"On day {day}, when did \"{text}\" "
                                                "appear?", "answer": clock}]})
            (corpus.root / "descriptions" / f"{cid}.json").write_text(json.dumps(doc))
            rows.append({"chunk_id": cid, "video_id": vid, "chunk_index": k, "n_chunks": chunks_per_day,
                         "start_s": 60.0 * k, "end_s": 60.0 * (k + 1), "duration_s": 60.0, "day_index": day,
                         "start_utc": start, "start_local": start, "timezone": "UTC",
                         "frames_status": DONE, "frames_path": f"frames/{cid}.npy", "n_frames": frames,
                         "sample_fps": frames / 60, "frame_width": w, "frame_height": h,
                         "describe_status": DONE, "description_path": f"descriptions/{cid}.json"})
    corpus.videos.upsert(videos)
    corpus.chunks.write([{**{c.name: None for c in corpus.chunks.table.columns()}, **r} for r in rows])
    return corpus
