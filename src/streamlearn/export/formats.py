"""The exported samples in each tool's shape. Every format carries every sample (text-only ones as
text conversations), each with its key, kind and day; media paths are relative to the media root.

- `llava`: qwen-vl-finetune's JSON list ({"id", "video", "conversations": [human, gpt]}).
- `sharegpt`: LLaMA-Factory / ms-swift JSON ({"messages", "videos"}) and its `dataset_info.json` entry.
- `hf`: a Hugging Face dataset as parquet (`data/train-00000-of-00001.parquet`), which
  `datasets.load_dataset(folder)` reads (its README carries no `configs` block: datasets 5.2 then keys
  its cache on the folder's name and the pattern, so two exports named `hf` would share a cache entry).
- `webdataset`: tar shards of `<key>.txt` (target), `<key>.json` (everything else) and, for samples with
  a video, `<key>.npy` (the cached frames, T x H x W x 3 uint8); text-only samples have no `.npy`.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from streamlearn.corpus.framecache import read_sample_frames
from streamlearn.core.files import atomic_write_text
from streamlearn.export.samples import Sample


def _conversation_start(s: Sample, videos: list[str], tag: str) -> str:
    return tag * len(videos) + s.instruction


def _meta(s: Sample, videos: list[str], frames: list[str]) -> dict:
    return {"key": s.key, "kind": s.kind, "day": s.day, "chunk_id": s.chunk_id, "trained_on": s.trained_on,
            "taken": s.taken, "videos": videos, "frames": frames, "sample_fps": s.sample_fps}


def write_llava(samples: list[Sample], videos: dict[str, list[str]], frames: dict[str, list[str]], out: Path) -> None:
    data = []
    for s in samples:
        v = videos[s.key]
        row = {"id": s.key, **({"video": v[0] if len(v) == 1 else v} if v else {}), "conversations": [
            {"from": "human", "value": _conversation_start(s, v, "<video>\n")},
            {"from": "gpt", "value": s.target}], "kind": s.kind, "day": s.day}
        if s.trained_on is not None:
            row["trained_on"] = s.trained_on
        data.append(row)
    atomic_write_text(out / "train.json", json.dumps(data, ensure_ascii=False, indent=1))


def write_sharegpt(samples: list[Sample], videos: dict[str, list[str]], frames: dict[str, list[str]],
                   out: Path) -> None:
    data = []
    for s in samples:
        v = videos[s.key]
        row = {"messages": [{"role": "user", "content": _conversation_start(s, v, "<video>")},
                            {"role": "assistant", "content": s.target}],
               **({"videos": v} if v else {}), "key": s.key, "kind": s.kind, "day": s.day}
        if s.trained_on is not None:
            row["trained_on"] = s.trained_on
        data.append(row)
    atomic_write_text(out / "train.json", json.dumps(data, ensure_ascii=False, indent=1))
    atomic_write_text(out / "dataset_info.json", json.dumps({"streamlearn": {
        "file_name": "train.json", "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}},
        indent=1))


def write_hf(samples: list[Sample], videos: dict[str, list[str]], frames: dict[str, list[str]], out: Path) -> None:
    from streamlearn.core.errors import StreamlearnError

    try:
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar
    except ImportError:
        raise StreamlearnError("the hf format needs the datasets package: pip install datasets") from None
    disable_progress_bar()  # our own progress is one line per export
    rows = [{**_meta(s, videos[s.key], frames[s.key]), "instruction": s.instruction, "target": s.target}
            for s in samples]
    (out / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))


def write_webdataset(samples: list[Sample], videos: dict[str, list[str]], frames: dict[str, list[str]], out: Path,
                     corpus_root: Path, per_shard: int = 500) -> None:
    for n in range(0, max(1, len(samples)), per_shard):
        shard = out / f"shard-{n // per_shard:05d}.tar"
        tmp = shard.with_suffix(".tar.tmp")
        with tarfile.open(tmp, "w") as tar:
            for s in samples[n:n + per_shard]:
                key = s.key.replace("/", "__").replace(".", "_")  # webdataset splits the key at the first dot
                parts = [("txt", s.target.encode()),
                         ("json", json.dumps({**_meta(s, videos[s.key], frames[s.key]),
                                              "instruction": s.instruction}).encode())]
                if s.frames:
                    buf = io.BytesIO()
                    np.save(buf, read_sample_frames(corpus_root, s.frames, s.key)[0])
                    parts.append(("npy", buf.getvalue()))
                for ext, data in parts:
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
        tmp.replace(shard)


HOW_TO_LOAD = {
    "llava": "qwen-vl-finetune (Qwen2.5-VL's own fine-tuning code): point its dataset config at `train.json` "
             "with `data_path` set to the media root.",
    "sharegpt": "LLaMA-Factory: `dataset_dir` = this folder, `dataset: streamlearn` (dataset_info.json), "
                "`media_dir` = the media root. ms-swift: `--dataset <this folder>/train.json` with `ROOT_IMAGE_DIR` = the "
                "media root (it resolves media against the working directory, then that variable).",
    "hf": "`datasets.load_dataset(\"<this folder>\", split=\"train\")` (parquet under data/).",
    "webdataset": "`webdataset.WebDataset(sorted(glob('<this folder>/shard-*.tar'))).decode()`: each sample has "
                  "`txt` (target) and `json` (meta); `npy` (frames) only when it has a video.",
}


def readme(fmt: str, manifest: dict) -> str:
    """The export's README: what it holds, whether it is protected, how to load it, its media."""
    counts = manifest["counts"]
    lines = [f"# streamlearn export ({fmt})", "", f"{manifest['samples']} training samples: {manifest['source']}.", ""]
    if manifest["protected"]:
        banks = ", ".join(f"{b['name']} (sha256 {b['sha256'][:12]})" for b in manifest["banks"])
        lines += [f"**Held-out protection: on.** The sealed bank(s) {banks} decide which QA pairs may be targets; no "
                  "held-out question or its answer in question form is among these samples (audit.json: "
                  f"{manifest['audit_heldout_flagged']} held-out items flagged).", ""]
    else:
        lines += ["**Held-out protection: OFF.** No question bank was sealed when this was exported "
                  "(--no-heldout-protection), so every QA pair of every description is a target here. A model "
                  "trained on this export cannot be evaluated on a bank generated later from the same descriptions.",
                  ""]
    lines += ["Samples by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts["kind"].items())) + ".",
              "Samples by stream day: " + ", ".join(f"day {d}: {v}" for d, v in sorted(counts["day"].items(),
                                                                                    key=lambda kv: int(kv[0]))) + ".",
              "", "## Loading", "", HOW_TO_LOAD[fmt], "", "## Media", "",
              f"Paths to videos and frame caches are relative to {manifest['media_root_note']}."]
    codec = manifest.get("codec") or {}
    if codec.get("video"):
        lines.append(f"The videos are {codec['video']}"
                     + (f" + {codec['audio']}" if codec.get("audio") else "") + f" in {codec['container']}: "
                     + codec["readers"] + ".")
    elif codec.get("note"):
        lines.append(codec["note"] + ".")
    lines += ["", "Day-N order, epochs and replay are the training tool's settings; streamlearn trains the days in "
              "stream order (docs/training.md).", ""]
    return "\n".join(lines)
