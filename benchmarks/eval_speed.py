"""Evaluation speed: `weights` and `video` items per second through the product's answerer, against
the previous algorithm measured in the same run on the same items (it re-encoded the whole prompt,
video included, for every item and continued each option from its own copy of the cache).

    PYTHONUNBUFFERED=1 python benchmarks/eval_speed.py --model qwen2.5-vl-7b          # on a GPU
    python benchmarks/eval_speed.py --model tiny --frames 1200 --baseline-items 12    # CPU figure

Same answers: every item the baseline answered must get the same choice from the product path.
Writes eval_speed.json under $OUT (or --out).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpu_corpus import make_corpus  # noqa: E402

from streamlearn.evaluate import bank as B  # noqa: E402
from streamlearn.corpus import questionbank as QB
from streamlearn.evaluate.run import evidence_chunk, evidence_frames, item_groups  # noqa: E402
from streamlearn.evaluate.systems import INSTRUCTION, INSTRUCTION_NO_VIDEO, LocalAnswerer  # noqa: E402
from streamlearn.models.inference import BLANK_FRAMES, _cache_kwarg  # noqa: E402


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def baseline_answer(vlm, item: dict, frames, fps: float, priors: dict) -> str:
    """The previous answerer: the whole prompt encoded per item, options one by one from deep copies
    of its cache, calibration priors from a null prompt encoded per new option set."""
    def option_logprobs(inp, options):
        model, key = vlm.model, _cache_kwarg(vlm.model)
        pos = vlm.positions(inp)
        fwd = {k: v for k, v in inp.items() if k != "attention_mask"}
        with torch.no_grad():
            out = model(**fwd, position_ids=pos, use_cache=True)
            first, cache, nxt = out.logits[0, -1].float(), getattr(out, key), int(pos.max()) + 1
            scores = []
            for option in options:
                ids = vlm.tok(" " + option, add_special_tokens=False)["input_ids"]
                t = torch.tensor([ids], device=pos.device)
                step = (torch.arange(len(ids), device=pos.device) + nxt).view(1, 1, -1).expand(3, 1, -1)
                o = model(input_ids=t, position_ids=step, use_cache=True, **{key: copy.deepcopy(cache)})
                logp = torch.log_softmax(torch.cat([first[None], o.logits[0, :-1].float()]), dim=-1)
                scores.append(float(logp[torch.arange(len(ids)), t[0]].mean()))
        return scores

    instruction = INSTRUCTION if frames is not None else INSTRUCTION_NO_VIDEO
    if frames is None:
        frames, fps = BLANK_FRAMES, 1.0
    inp = vlm.inputs(instruction, frames, fps, answer_prefix=f"Q: {item['question']}\nA:")
    raw = option_logprobs(inp, item["options"])
    missing = [o for o in item["options"] if o not in priors]
    if missing:
        null = vlm.inputs(INSTRUCTION_NO_VIDEO, BLANK_FRAMES, 1.0, answer_prefix="Q: \nA:")
        priors.update(zip(missing, option_logprobs(null, missing)))
    return [s - priors[o] for s, o in zip(raw, item["options"])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-vl-7b")
    ap.add_argument("--chunks", type=int, default=6, help="chunks (over 2 days)")
    ap.add_argument("--frames", type=int, default=1200, help="frames per chunk (84x168: 18 tokens per pair)")
    ap.add_argument("--signs", type=int, default=6)
    ap.add_argument("--baseline-items", type=int, default=16, help="items per system the baseline answers")
    ap.add_argument("--work", default="/tmp/eval_speed")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    import shutil

    shutil.rmtree(args.work, ignore_errors=True)
    corpus = make_corpus(Path(args.work), days=2, chunks_per_day=args.chunks // 2, frames=args.frames,
                         signs=args.signs, train={"require_sealed_bank": False})
    B.run_questions(corpus, "main", do_seal=True)
    items = [i for i in QB.load_bank(corpus, "main") if i["answer_type"] == "mc"]
    chunks = corpus.chunks.rows_by_key()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    answerer = LocalAnswerer(args.model, "bench", "calibrated", device=dev)
    load_s = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    out = {"device": name, "model": args.model, "items": len(items), "load_s": load_s,
           "vision_tokens_per_chunk": (args.frames // 2) * (84 // 14) * (168 // 14) // 4}
    print(f"device {name}, model {args.model} loaded in {load_s:.1f}s; {len(items)} MC items over "
          f"{len(chunks)} chunks of {args.frames} frames", flush=True)
    warm = items[:4]  # CUDA/cuBLAS start-up stays out of the timings
    answerer.answer_many(warm)
    answerer.answer_many(warm, *evidence_frames(corpus, chunks, evidence_chunk(corpus, chunks, warm[0])))
    baseline_answer(answerer.vlm, warm[0], None, 1.0, {})
    for system in ("weights", "video"):
        answerer._prefixes.clear()
        answerer._prior.clear()
        answers = {}
        sync()
        t0 = time.perf_counter()
        for cid, group in item_groups(corpus, chunks, items, system == "video"):  # what `streamlearn eval` does
            frames, fps = evidence_frames(corpus, chunks, cid)
            for item, r in zip(group, answerer.answer_many(group, frames, fps, video_key=cid)):
                answers[item["id"]] = r
        sync()
        sec = time.perf_counter() - t0
        sub = items[:: max(1, len(items) // args.baseline_items)][: args.baseline_items]
        priors: dict = {}
        sync()
        t0 = time.perf_counter()
        base = {}
        for item in sub:
            cid = evidence_chunk(corpus, chunks, item) if system == "video" else None
            frames, fps = evidence_frames(corpus, chunks, cid)
            base[item["id"]] = baseline_answer(answerer.vlm, item, frames, fps, priors)
        sync()
        base_sec = time.perf_counter() - t0
        same = sum(int(np.argmax(base[i])) == int(np.argmax(answers[i]["scores"])) for i in base)
        diff = max(abs(a - b) for i in base for a, b in zip(base[i], answers[i]["scores"]))
        row = {"items_per_s": len(items) / sec, "seconds": sec, "baseline_items_per_s": len(sub) / base_sec,
               "baseline_items": len(sub), "speedup": (len(items) / sec) / (len(sub) / base_sec),
               "same_answers": f"{same}/{len(base)}", "max_score_diff": diff}
        out[system] = row
        print(f"{system:>7}: {row['items_per_s']:.2f} items/s ({len(items)} items in {sec:.1f}s) vs previous "
              f"{row['baseline_items_per_s']:.3f} items/s ({len(sub)} items): {row['speedup']:.1f}x; same choice "
              f"{row['same_answers']}, calibrated scores within {diff:.2g} nats", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "eval_speed.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
