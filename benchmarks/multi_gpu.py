"""Sharded training across the GPUs of one machine, through `streamlearn train --nproc N`.

    PYTHONPATH=src:tests python benchmarks/multi_gpu.py --gpus 2 --layers 4

On a small real-format corpus (tests/trainkit.py) and the Qwen2.5-VL-7B architecture with random
weights (decoder depth reduced with --layers to fit one GPU for the 1-GPU baseline), it measures:
per-GPU peak memory and tokens/s per GPU at 1..N GPUs; a run killed with SIGKILL and resumed vs
an uninterrupted one (per-step losses); a checkpoint saved on N GPUs continued on 1 GPU; the HF
export loaded with from_pretrained; optionally (--full) the full 28-layer 7B on N GPUs.
Writes $OUT/multi_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainkit import make_train_corpus

ENV = {**os.environ, "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1",
       "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "PYTHONUNBUFFERED": "1"}


def corpus(root: Path, train: dict) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    return make_train_corpus(root, days=2, chunks_per_day=8, frames=120, size=(84, 168), train=train).root


def train(root: Path, nproc: int, *extra: str, timeout: int = 500) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamlearn", "train", str(root), "--nproc", str(nproc), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    print(out.stdout[-3000:], out.stderr[-3000:] if out.returncode else "", flush=True)
    return out


def kill_all(root: Path) -> list[int]:
    """SIGKILL every process training this corpus: torchrun starts its workers in sessions of their
    own, so killing the launcher's process group alone would leave them running."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmd:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                pass
    return killed


def metrics(root: Path) -> list[dict]:
    path = root / "runs" / "main" / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def summary(ms: list[dict], world: int) -> dict:
    steady = ms[2:] or ms
    return {"steps": len(ms), "peak_mem_gib": max(m["peak_mem_gib"] for m in ms),
            "tokens_per_s": sum(m["tokens_per_s"] for m in steady) / len(steady),
            "tokens_per_s_per_gpu": sum(m["tokens_per_s"] for m in steady) / len(steady) / world,
            "tflops_per_gpu": sum(m["tflops"] for m in steady) / len(steady) / world,
            "step_s": sum(m["seconds"] for m in steady) / len(steady), "losses": [m["loss"] for m in ms]}


def save(res: dict) -> None:
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "multi_gpu.json").write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--full", action="store_true", help="also the full-depth 7B on all GPUs")
    ap.add_argument("--work", default="/tmp/mg")
    ap.add_argument("--model", default="qwen2.5-vl-7b", help="tiny: check this script on a CPU")
    ap.add_argument("--resume-model", default="tiny", help="model for the kill/resume comparison")
    ap.add_argument("--phases", default="scale,full,resume,n_to_m")
    args = ap.parse_args()
    work = Path(args.work)
    phases = args.phases.split(",")
    base = {"model": args.model, "preset_layers": args.layers if args.model != "tiny" else 0, "lr": 1e-5,
            "warmup_steps": 2, "export_dtype": "bfloat16", "peak_tflops": 989.0, "compile": "off"}
    res: dict = {"layers": args.layers, "scaling": {}}
    if "scale" in phases:  # per-GPU memory and throughput; --max-steps stops before any checkpoint
        for n in sorted({1, args.gpus}):
            root = corpus(work / f"scale{n}", base)
            t0 = time.time()
            out = train(root, n, "--days", "1", "--max-steps", "6")
            res["scaling"][n] = {**summary(metrics(root), n), "rc": out.returncode, "wall_s": time.time() - t0}
            shutil.rmtree(root, ignore_errors=True)
        one, many = res["scaling"][1], res["scaling"][args.gpus]
        res["efficiency"] = many["tokens_per_s_per_gpu"] / one["tokens_per_s_per_gpu"]
        # the same work per rank and step on 1 and N GPUs: the extra step time is communication
        res["comm_share_est"] = max(0.0, 1 - one["step_s"] / many["step_s"])
        save(res)
    if "full" in phases and args.model != "tiny":
        full = corpus(work / "full", {**base, "preset_layers": 0})
        out = train(full, args.gpus, "--days", "1", "--max-steps", "3", timeout=560)
        res["full_7b"] = {**(summary(metrics(full), args.gpus) if metrics(full) else {}), "rc": out.returncode,
                          "stderr_tail": out.stderr[-600:] if out.returncode else ""}
        shutil.rmtree(full, ignore_errors=True)
        save(res)
    if "resume" in phases:  # killed with SIGKILL and resumed vs uninterrupted, on N GPUs
        big = args.resume_model != "tiny"  # a 7B-architecture save is ~12 B/parameter: day checkpoints only
        rbase = {**base, "model": args.resume_model, "preset_layers": min(args.layers, 2) if big else 0,
                 "checkpoint_every": 0 if big else 2, "lr": 1e-4 if big else 1e-3}
        ref = corpus(work / "ref", rbase)
        train(ref, args.gpus)
        a = json.loads((ref / "runs/main/checkpoints/day-02/progress.json").read_text())["losses"]
        shutil.rmtree(ref, ignore_errors=True)
        kill = corpus(work / "kill", rbase)
        proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "train", str(kill), "--nproc", str(args.gpus)],
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        ck = kill / "runs" / "main" / "checkpoints"
        deadline = time.time() + 300
        while time.time() < deadline and not (ck / "day-01" / "progress.json").exists():
            time.sleep(0.1)
        while time.time() < deadline and len(metrics(kill)) < 5:  # killed in the middle of day 2
            time.sleep(0.05)
        killed = kill_all(kill)
        proc.wait()
        time.sleep(2.0)
        killed_at = len(metrics(kill))
        survivors = kill_all(kill)
        out = train(kill, args.gpus)
        b = json.loads((ck / "day-02" / "progress.json").read_text())["losses"]
        resumed_from = [x for x in out.stdout.splitlines() if x.startswith("train: resuming from")]
        res["resume"] = {"model": args.resume_model, "layers": rbase["preset_layers"], "killed_after_steps": killed_at,
                         "processes_killed": len(killed), "survivors": len(survivors), "resumed_from": resumed_from,
                         "rc": out.returncode,
                         "uninterrupted": a, "resumed": b,
                         "max_rel_diff": max(abs(x - y) / abs(x) for x, y in zip(a, b)) if len(a) == len(b) else None}
        shutil.rmtree(kill, ignore_errors=True)
        save(res)
    if "n_to_m" in phases:  # a sharded checkpoint saved on N GPUs, continued on 1; the HF export loads
        nbase = {**base, "preset_layers": min(args.layers, 2) if args.model != "tiny" else 0}
        cont = corpus(work / "cont", {**nbase, "checkpoint_every": 0})
        out1 = train(cont, args.gpus, "--days", "1", "--max-steps", "100")
        out2 = train(cont, 1)
        p = json.loads((cont / "runs/main/checkpoints/day-02/progress.json").read_text())
        shards = len(list((cont / "runs/main/checkpoints/day-01").glob("*.distcp")))
        from transformers import Qwen2_5_VLForConditionalGeneration

        m = Qwen2_5_VLForConditionalGeneration.from_pretrained(cont / "runs/main/export/day-02")
        res["n_to_m"] = {"saved_on": args.gpus, "day01_shard_files": shards, "continued_on": 1,
                         "rc": [out1.returncode, out2.returncode], "completed_days": p["completed_days"],
                         "world_size_at_end": p["world_size"], "export_params_b": sum(x.numel() for x in m.parameters()) / 1e9,
                         "layers": m.config.text_config.num_hidden_layers}
        del m
        shutil.rmtree(cont, ignore_errors=True)
        save(res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
