"""One training step at the seed's operating point, on one GPU: the plain transformers step vs
streamlearn's, on the same architecture, the same random weights and the same sample.

    PYTHONPATH=src python benchmarks/train_step.py --arch qwen2.5-vl-7b --pairs 600 --grid 8x12 --text 1024

Both steps: bf16 weights, gradient checkpointing, SDPA, forward + backward, no optimizer step
(issue 9's protocol). The naive step is `model(**inputs, labels=labels)` with transformers' own
vision attention (a Python loop over windows) and full-vocabulary logits. streamlearn's step is
what `streamlearn train` runs: `TargetLossModel` (LM head at target positions only) with the
batched vision attention of `train/fast_vision.py`. It prints time, useful TFLOP/s, MFU and peak
memory of each, their ratio, and the two losses (they must agree within bf16 tolerance). With
`--scale-arch`, it times a reduced-layer copy of a bigger architecture at two depths and
extrapolates per layer to the full depth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streamlearn.models.inference import rope_index  # noqa: E402
from streamlearn.models.presets import preset_config
from streamlearn.train import fast_vision  # noqa: E402
from streamlearn.train.loss import TargetLossModel, peak_tflops, sample_flops, targets_from_labels  # noqa: E402


DEV = "cuda" if torch.cuda.is_available() else "cpu"  # CPU only to check the script itself


def sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def build(arch: str, layers: int | None):
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = preset_config(arch, layers)
    config._attn_implementation = "sdpa"
    config.text_config._attn_implementation = "sdpa"
    config.vision_config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(DEV):
        model = Qwen2_5_VLForConditionalGeneration(config)
    torch.set_default_dtype(prev)
    model.train()
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, config


def sample(config, pairs: int, gh: int, gw: int, text: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n_vid = pairs * gh * gw // 4
    prefix = 20
    ids = torch.randint(1000, 150000, (1, prefix + n_vid + text), generator=g)
    ids[0, prefix - 1], ids[0, prefix + n_vid] = 151652, 151653
    ids[0, prefix:prefix + n_vid] = 151656
    labels = torch.full_like(ids, -100)
    labels[0, prefix + n_vid + 24:] = ids[0, prefix + n_vid + 24:]  # the text after a short instruction
    grid = torch.tensor([[pairs, gh, gw]])
    spg = torch.tensor([2.0])  # 1 fps
    pix = torch.randn(pairs * gh * gw, 3 * 2 * 14 * 14, generator=g)
    pos = rope_index(ids, grid, spg, 2, float(config.vision_config.tokens_per_second))
    return {"input_ids": ids.to(DEV), "labels": labels.to(DEV), "position_ids": pos.to(DEV),
            "pixel_values_videos": pix.to(DEV, torch.bfloat16), "video_grid_thw": grid.to(DEV),
            "second_per_grid_ts": spg.to(DEV)}


def timed(fn, reps: int) -> tuple[float, float, float]:
    """(mean seconds, last loss, peak GiB) after one warm-up."""
    loss = fn()
    sync()
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = fn()
        sync()
        times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated() / 2 ** 30 if DEV == "cuda" else 0.0
    return sum(times) / len(times), loss, mem


def naive_step(model, inp):
    def fn():
        model.zero_grad(set_to_none=True)
        out = model(**inp)
        out.loss.backward()
        return float(out.loss)
    return fn


def ours_step(model, inp):
    wrapped = TargetLossModel(model)
    pos, ids = targets_from_labels(inp["labels"])
    args = {**{k: v for k, v in inp.items() if k != "labels"}, "target_pos": pos, "target_ids": ids}

    def fn():
        model.zero_grad(set_to_none=True)
        loss = wrapped(**args) / len(pos)
        loss.backward()
        return float(loss.detach())
    return fn


def parts(model, inp, reps: int = 2) -> dict:
    """Where streamlearn's step spends its time: the vision tower alone, fwd and fwd+bwd."""
    visual = model.model.visual

    def vis_fwd():
        with torch.no_grad():
            visual(inp["pixel_values_videos"], grid_thw=inp["video_grid_thw"])
        return 0.0

    def vis_fwd_bwd():
        model.zero_grad(set_to_none=True)
        out = visual(inp["pixel_values_videos"], grid_thw=inp["video_grid_thw"])
        h = out.pooler_output if hasattr(out, "pooler_output") else out
        h = torch.cat(h) if isinstance(h, (list, tuple)) else h
        h.float().pow(2).mean().backward()
        return 0.0

    return {"vision_fwd_s": timed(vis_fwd, reps)[0], "vision_fwd_bwd_s": timed(vis_fwd_bwd, reps)[0]}


def run(arch: str, layers: int | None, pairs: int, gh: int, gw: int, text: int, modes: list[str], reps: int,
        peak: float, profile_to: Path | None = None) -> dict:
    model, config = build(arch, layers)
    inp = sample(config, pairs, gh, gw, text)
    S = inp["input_ids"].shape[1]
    n_target = int((inp["labels"][0, 1:] != -100).sum())
    flops = sample_flops(config, S, n_target, [pairs, gh, gw])
    res = {"arch": arch, "layers": config.text_config.num_hidden_layers, "seq_len": S,
           "vision_tokens": pairs * gh * gw // 4, "target_tokens": n_target, "useful_flops": flops,
           "params_b": sum(p.numel() for p in model.parameters()) / 1e9}
    fast_vision.mark_vision(model)
    for mode in modes:
        if mode == "naive":
            fast_vision.disable(model)
            sec, loss, mem = timed(naive_step(model, inp), reps)
        else:
            fast_vision.enable(model)
            if "compile" in mode:
                fast_vision.compile_pointwise(model, vision=True, text="text" in mode)
            sec, loss, mem = timed(ours_step(model, inp), reps)
            if "parts" in mode:
                res.update({f"{k}[{mode}]": v for k, v in parts(model, inp).items()})
            if profile_to is not None:
                profile_step(ours_step(model, inp), profile_to)
        tf = flops / sec / 1e12
        res[mode] = {"seconds": sec, "loss": loss, "peak_gib": mem, "tflops": tf, "mfu": tf / peak}
        print(f"{arch} L={res['layers']} {mode:>10}: {sec:6.2f} s  {tf:6.1f} TFLOP/s  MFU {tf / peak:5.1%}  "
              f"peak {mem:5.1f} GiB  loss {loss:.4f}", flush=True)
    del model
    if DEV == "cuda":
        torch.cuda.empty_cache()
    return res


def profile_step(fn, out: Path) -> None:
    """torch.profiler (CPU + CUDA) over two warm steps of the benchmark's own step."""
    from torch.profiler import ProfilerActivity, profile

    from streamlearn.train.profile import write_profile

    fn()
    sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(2):
            with torch.profiler.record_function("sl.bench_step"):
                fn()
        sync()
    write_profile(prof, out, torch.device(DEV))


def product_step(args, gh: int, gw: int, peak: float) -> dict:
    """`streamlearn train` itself on a corpus of the same architecture, depth and tokens: each chunk
    `pairs` frame pairs of (gh*14)x(gw*14) and a description of about `text` tokens."""
    import shutil
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_corpus import make_corpus

    work = Path("/tmp/train_step_product")
    shutil.rmtree(work, ignore_errors=True)
    train = {"model": args.arch, "preset_layers": args.layers, "lr": 1e-5, "warmup_steps": 1,
             "targets": ["description"], "require_sealed_bank": False, "peak_tflops": peak,
             "max_seq_len": 65536}
    if args.profile and os.environ.get("OUT"):
        train["profile_dir"] = str(Path(os.environ["OUT"]) / f"{args.tag}product")
    if args.product_accum > 1:  # short samples: many a step, packed
        train.update(grad_accum=args.product_accum, pack_tokens=args.pack_tokens)
    corpus = make_corpus(work, days=1, chunks_per_day=(args.product_steps + 2) * args.product_accum,
                         frames=2 * args.pairs, size=(gh * 14, gw * 14), target_words=int(args.text * 0.55), signs=0,
                         train=train)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(x for x in (src, os.environ.get("PYTHONPATH")) if x)}
    # --max-steps: the day never completes, so no checkpoint of the whole fp32 state is written
    res = subprocess.run([sys.executable, "-m", "streamlearn", "train", str(corpus.root), "--max-steps",
                          str(args.product_steps)], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        print(res.stdout[-3000:], res.stderr[-3000:], flush=True)
        raise SystemExit("streamlearn train failed")
    metrics = [json.loads(x) for x in (work / "runs/main/metrics.jsonl").read_text().splitlines()]
    steady = metrics[2:]  # the first steps compile
    out = {k: sum(m[k] for m in steady) / len(steady) for k in ("seconds", "tokens", "target_tokens",
                                                                 "tokens_per_s", "tflops", "mfu", "peak_mem_gib",
                                                                 "samples", "forwards")}
    out["steps"] = len(metrics)
    out["seconds_per_sample"] = out["seconds"] / out["samples"]
    print(f"streamlearn train ({args.arch}, {args.layers or 'full'} layers): {out['seconds']:.2f} s/step, "
          f"{out['tokens']:.0f} tokens ({out['target_tokens']:.0f} target), {out['tokens_per_s']:.0f} tokens/s, "
          f"MFU {out['mfu']:.1%}, peak {out['peak_mem_gib']:.1f} GiB; {out['samples']:.0f} samples in "
          f"{out['forwards']:.0f} forward(s): {out['seconds_per_sample'] * 1000:.1f} ms a sample", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="qwen2.5-vl-7b")
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--grid", default="8x12")
    ap.add_argument("--text", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--modes", default="naive,ours+compile+text+parts")
    ap.add_argument("--scale-mode", default="ours+compile+text")
    ap.add_argument("--scale-arch", default="", help="e.g. qwen2.5-vl-32b: time 4 and 8 layers, extrapolate")
    ap.add_argument("--layers", type=int, default=0, help="decoder layers (0: the architecture's full depth)")
    ap.add_argument("--product", action="store_true",
                    help="also time the real `streamlearn train` step (FSDP, fp32 AdamW, data loading) on the same "
                         "model and tokens, from its own metrics.jsonl")
    ap.add_argument("--product-steps", type=int, default=8)
    ap.add_argument("--product-accum", type=int, default=1,
                    help="samples a step in the product run (> 1: packed into forwards of --pack-tokens)")
    ap.add_argument("--pack-tokens", type=int, default=32768)
    ap.add_argument("--profile", action="store_true",
                    help="torch.profiler traces of the benchmark step and of the product's steps 3-5 under $OUT")
    ap.add_argument("--tag", default="", help="prefix of the profile folders under $OUT")
    ap.add_argument("--json", default=os.environ.get("OUT", "") and os.environ["OUT"] + "/train_step.json")
    args = ap.parse_args()
    gh, gw = (int(x) for x in args.grid.split("x"))
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    peak = peak_tflops(torch.device(DEV))  # the same figure `streamlearn train` computes its MFU against
    name = torch.cuda.get_device_name() if DEV == "cuda" else "cpu"
    print(f"device {name} | torch {torch.__version__} | bf16 matmul {peak:.0f} TFLOP/s (the MFU peak)",
          flush=True)
    results = {"device": name, "torch": torch.__version__, "matmul_tflops": peak}
    import transformers

    results["transformers"] = transformers.__version__
    prof = Path(os.environ["OUT"]) / f"{args.tag}bench" if args.profile and os.environ.get("OUT") else None
    r = run(args.arch, args.layers or None, args.pairs, gh, gw, args.text, args.modes.split(","), args.reps, peak, prof)
    results["main"] = r
    ours = [m for m in r if m.startswith("ours")]
    if "naive" in r and ours:
        best = min(ours, key=lambda m: r[m]["seconds"])
        speed = r["naive"]["seconds"] / r[best]["seconds"]
        diff = abs(r["naive"]["loss"] - r[best]["loss"]) / abs(r["naive"]["loss"])
        print(f"streamlearn ({best}) vs naive: {speed:.1f}x faster, peak memory {r[best]['peak_gib']:.1f} vs "
              f"{r['naive']['peak_gib']:.1f} GiB, loss {r[best]['loss']:.4f} vs {r['naive']['loss']:.4f} "
              f"(rel. diff {diff:.2e})", flush=True)
        results["speedup"] = speed
        results["loss_rel_diff"] = diff
    if args.product:
        results["product"] = product_step(args, gh, gw, peak)
        bench = [m for m in r if m.startswith("ours")]
        if bench:
            best = min(bench, key=lambda m: r[m]["seconds"])
            tok_s = r["seq_len"] / r[best]["seconds"]
            ratio = results["product"]["tokens_per_s"] / tok_s
            results["product"].update(benchmark_mode=best, benchmark_tokens_per_s=tok_s, ratio=ratio)
            print(f"product step vs benchmark ({best}) fwd+bwd: {results['product']['tokens_per_s']:.0f} vs "
                  f"{tok_s:.0f} tokens/s = {ratio:.0%}; MFU {results['product']['mfu']:.1%} vs {r[best]['mfu']:.1%}",
                  flush=True)
    if args.scale_arch:
        a = run(args.scale_arch, 4, args.pairs, gh, gw, args.text, [args.scale_mode], args.reps, peak)
        b = run(args.scale_arch, 8, args.pairs, gh, gw, args.text, [args.scale_mode], args.reps, peak)
        a["ours"], b["ours"] = a[args.scale_mode], b[args.scale_mode]
        full = preset_config(args.scale_arch).text_config.num_hidden_layers
        per_layer_s = (b["ours"]["seconds"] - a["ours"]["seconds"]) / 4
        per_layer_gib = (b["ours"]["peak_gib"] - a["ours"]["peak_gib"]) / 4
        est_s = a["ours"]["seconds"] + per_layer_s * (full - 4)
        est_gib = a["ours"]["peak_gib"] + per_layer_gib * (full - 4)
        flops_full = sample_flops(preset_config(args.scale_arch), a["seq_len"], a["target_tokens"],
                                  [args.pairs, gh, gw])
        print(f"{args.scale_arch} extrapolated to {full} layers (bf16 weights+grads on one GPU, fwd+bwd): "
              f"{est_s:.2f} s/step, {flops_full / est_s / 1e12:.0f} TFLOP/s (MFU {flops_full / est_s / 1e12 / peak:.1%}), "
              f"{est_gib:.0f} GiB; per layer {per_layer_s * 1000:.0f} ms, {per_layer_gib:.2f} GiB", flush=True)
        results["scale"] = {"arch": args.scale_arch, "l4": a, "l8": b, "full_layers": full, "est_seconds": est_s,
                            "est_peak_gib": est_gib, "per_layer_s": per_layer_s, "per_layer_gib": per_layer_gib,
                            "est_tflops": flops_full / est_s / 1e12}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
