"""`streamlearn export`: the training pairs and the question bank in other tools' shapes.

- `llava`: qwen-vl-finetune's JSON list ({"video", "conversations": [human <video>..., gpt target]}).
- `sharegpt`: LLaMA-Factory / ms-swift JSON ({"messages", "videos"}) plus a `dataset_info.json` entry.
- `hf`: a Hugging Face `datasets` folder (save_to_disk): chunk id, day, video path, frame-cache path,
  sampling fps, instruction, target.
- `webdataset`: tar shards of `<key>.npy` (cached frames), `<key>.txt` (target), `<key>.json` (meta).
- `lmms-eval` (with --bank): an lmms-eval task folder (YAML config, utils.py, docs JSONL).
Every export records the operating point it was made at in `operating_point.json`.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from streamlearn import console
from streamlearn.corpus import Corpus
from streamlearn.errors import StreamlearnError
from streamlearn.framecache import read_frame_cache, read_frames
from streamlearn.manifest import atomic_write_text
from streamlearn.questionbank import load_bank
from streamlearn.targets import build_specs

FORMATS = ("llava", "sharegpt", "hf", "webdataset", "lmms-eval")


def training_pairs(corpus: Corpus) -> list[dict]:
    cfg = corpus.config.train
    by_day, skipped = build_specs(corpus, cfg)
    chunks = corpus.chunks.rows_by_key()
    pairs = []
    for day, specs in by_day.items():
        for s in specs:
            cid = s.meta.get("chunk_id")
            c = chunks.get(cid) if cid else None
            uri = (c or {}).get("media_uri")
            video = str(corpus.abs(uri)) if uri and "://" not in uri else uri
            frames_meta = read_frame_cache(corpus.abs(s.frames[0]), s.key)[1] if s.frames else {}
            pairs.append({"key": s.key.replace("/", "__"), "kind": s.kind, "day": day, "chunk_id": cid,
                          "video": video if s.frames else None,
                          "frames": str(corpus.abs(s.frames[0])) if len(s.frames) == 1 else None,
                          "sample_fps": frames_meta.get("sample_fps"), "instruction": s.instruction,
                          "target": s.target})
    pairs += audio_only_pairs(corpus, cfg)
    if skipped:
        console.warn(f"export: {len(skipped)} items skipped (see `streamlearn train` for why)")
    return pairs


def audio_only_pairs(corpus: Corpus, cfg) -> list[dict]:
    """Described chunks of audio-only recordings (frames `skipped`: no picture) as text samples:
    the description is the target, with no video."""
    from streamlearn import description as D
    from streamlearn.corpus import stream_order
    from streamlearn.manifest import DONE, SKIPPED, status_of

    out = []
    for c in stream_order(corpus.chunks.read(), corpus.videos.rows_by_key()):
        if status_of(c, "describe") != DONE or status_of(c, "frames") != SKIPPED:
            continue
        doc = D.load(corpus.abs(c["description_path"]))
        out.append({"key": f"{c['chunk_id']}__description_text", "kind": "description_text",
                    "day": int(c.get("day_index") or 0), "chunk_id": c["chunk_id"], "video": None, "frames": None,
                    "sample_fps": None, "instruction": "Tell what was said in this audio recording.",
                    "target": D.render_target(doc)})
    return out


def _operating_point(corpus: Corpus) -> dict:
    """The operating point as run: the configured one, with the chunk length(s) the videos were
    actually cut at and the frame sizes actually cached."""
    op = dict(corpus.config.operating_point.__dict__)
    lengths = sorted({float(v["chunk_seconds"]) for v in corpus.videos.read() if v.get("chunk_seconds")})
    if lengths:
        op["chunk_seconds"] = lengths[0] if len(lengths) == 1 else lengths
    chunks = [c for c in corpus.chunks.read() if c.get("frame_width")]
    op["frame_sizes"] = sorted({f"{c['frame_width']}x{c['frame_height']}" for c in chunks})
    op["sample_fps"] = sorted({round(float(c["sample_fps"]), 4) for c in chunks if c.get("sample_fps")})
    op["configured"] = dict(corpus.config.operating_point.__dict__)
    return op


def run_export(corpus: Corpus, fmt: str, out: Path | None = None, bank: str | None = None) -> Path:
    if fmt not in FORMATS:
        raise StreamlearnError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out or corpus.folder("exports") / fmt)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "operating_point.json", json.dumps(_operating_point(corpus), indent=1))
    if fmt == "lmms-eval":
        return _lmms_eval(corpus, bank or corpus.config.eval.bank, out)
    pairs = [p for p in training_pairs(corpus) if p["video"] or p["kind"] == "description_text"
             or fmt in ("hf", "webdataset")]
    if fmt == "llava":
        data = [{"id": p["key"], **({"video": p["video"]} if p["video"] else {}), "conversations": [
            {"from": "human", "value": ("<video>\n" if p["video"] else "") + p["instruction"]},
            {"from": "gpt", "value": p["target"]}]} for p in pairs]
        atomic_write_text(out / "train.json", json.dumps(data, ensure_ascii=False, indent=1))
    elif fmt == "sharegpt":
        data = [{"messages": [{"role": "user", "content": ("<video>" if p["video"] else "") + p["instruction"]},
                              {"role": "assistant", "content": p["target"]}],
                 **({"videos": [p["video"]]} if p["video"] else {})} for p in pairs]
        atomic_write_text(out / "train.json", json.dumps(data, ensure_ascii=False, indent=1))
        atomic_write_text(out / "dataset_info.json", json.dumps({"streamlearn": {
            "file_name": "train.json", "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}},
            indent=1))
    elif fmt == "hf":
        try:
            from datasets import Dataset
        except ImportError:
            raise StreamlearnError("the hf format needs the datasets package: pip install datasets") from None
        Dataset.from_list([{k: v for k, v in p.items()} for p in pairs]).save_to_disk(str(out / "dataset"))
    else:
        _webdataset(pairs, out)
    console.info(f"export: {len(pairs)} samples as {fmt} -> {out}")
    return out


def _webdataset(pairs: list[dict], out: Path, per_shard: int = 500) -> None:
    import numpy as np

    for n in range(0, max(1, len(pairs)), per_shard):
        shard = out / f"shard-{n // per_shard:05d}.tar"
        tmp = shard.with_suffix(".tar.tmp")
        with tarfile.open(tmp, "w") as tar:
            for p in pairs[n:n + per_shard]:
                frames = read_frames(p["frames"])[0] if p["frames"] else np.zeros((2, 28, 28, 3), np.uint8)
                buf = io.BytesIO()
                np.save(buf, frames)
                meta = {k: v for k, v in p.items() if k not in ("target",)}
                for ext, data in (("npy", buf.getvalue()), ("txt", p["target"].encode()),
                                  ("json", json.dumps(meta).encode())):
                    info = tarfile.TarInfo(f"{p['key']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tmp.replace(shard)


LMMS_UTILS = r'''"""lmms-eval task utilities for a streamlearn question bank (generated by `streamlearn export`)."""
import re
import unicodedata


def _norm(t):
    t = unicodedata.normalize("NFKD", str(t)).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", "".join(c for c in t if not unicodedata.combining(c))).split())


def doc_to_visual(doc):
    return [doc["video"]] if doc.get("video") else []


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    text = doc["question"]
    if doc["answer_type"] == "mc":
        text += "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(doc["options"]))
        text += "\nAnswer with the option's letter."
    return text


def doc_to_target(doc):
    return doc["answer"]


def process_results(doc, results):
    pred = results[0] if results else ""
    if doc["answer_type"] == "mc":
        m = re.search(r"\b([A-J])\b", pred)
        ok = bool(m) and ord(m.group(1)) - 65 < len(doc["options"]) and doc["options"][ord(m.group(1)) - 65] == doc["answer"]
    else:
        ok = any(f" {_norm(a)} " in f" {_norm(pred)} " for a in [doc["answer"]] + list(doc.get("aliases") or []))
    return {"accuracy": float(ok)}
'''


def _lmms_eval(corpus: Corpus, bank: str, out: Path) -> Path:
    items = load_bank(corpus, bank)
    chunks = corpus.chunks.rows_by_key()
    task = f"streamlearn_{bank}"
    folder = out / task
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for it in items:
        ids = (it.get("evidence") or {}).get("chunk_ids") or []
        uri = chunks.get(ids[0], {}).get("media_uri") if ids else None
        docs.append({**it, "video": (str(corpus.abs(uri)) if uri and "://" not in uri else uri)})
    atomic_write_text(folder / "docs.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    atomic_write_text(folder / "utils.py", LMMS_UTILS)
    yaml = (f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'docs.jsonl'}\n"
            "test_split: test\noutput_type: generate_until\ndoc_to_visual: !function utils.doc_to_visual\n"
            "doc_to_text: !function utils.doc_to_text\ndoc_to_target: !function utils.doc_to_target\n"
            "process_results: !function utils.process_results\ngeneration_kwargs:\n  max_new_tokens: 64\n"
            "  temperature: 0\n  do_sample: false\nmetric_list:\n  - metric: accuracy\n    aggregation: mean\n"
            "    higher_is_better: true\nmetadata:\n  version: 1.0\n")
    atomic_write_text(folder / f"{task}.yaml", yaml)
    console.info(f"export: bank {bank!r} ({len(docs)} items) as an lmms-eval task -> {folder}")
    return folder
