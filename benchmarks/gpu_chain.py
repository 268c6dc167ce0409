"""The product commands in order on a lent GPU, on a small real-format corpus at the operating point:

    questions --seal -> train (2 days, compile on) -> kill -9 mid-day-2 -> train (resume) -> eval -> report

with an uninterrupted reference run, so the resumed per-step losses can be compared. Prints each
stage's time and checks; writes chain.json under $OUT (or --out).

    PYTHONUNBUFFERED=1 python benchmarks/gpu_chain.py --arch qwen2.5-vl-3b --layers 8
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpu_corpus import make_corpus  # noqa: E402


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamlearn", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def losses(run_dir: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="qwen2.5-vl-3b")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--chunks", type=int, default=3, help="chunks per day (2 days)")
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--work", default="/tmp/gpu_chain")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    train = {"model": args.arch, "preset_layers": args.layers, "lr": 1e-5, "warmup_steps": 1, "epochs_per_day": 2,
             "targets": ["description", "qa_text"], "export_dtype": "bfloat16", "keep_days": 1}
    report: dict = {"arch": args.arch, "layers": args.layers, "stages": {}, "checks": {}}

    def stage(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        report["stages"][name] = round(time.perf_counter() - t0, 1)
        print(f"[chain] {name}: {report['stages'][name]:.1f}s", flush=True)
        return out

    def checked(res: subprocess.CompletedProcess, what: str) -> str:
        if res.returncode != 0:
            print(res.stdout[-4000:], res.stderr[-4000:], flush=True)
            raise SystemExit(f"[chain] {what} failed with exit code {res.returncode}")
        return res.stdout

    corpora = {}
    for name in ("ref", "chain"):
        corpora[name] = make_corpus(work / name, days=2, chunks_per_day=args.chunks, frames=args.frames, train=train)
        checked(cli("questions", corpora[name].root, "--seal"), f"questions ({name})")
    ref = corpora["ref"].root
    stage("train_reference", lambda: checked(cli("train", ref), "reference train"))
    reference = json.loads((ref / "runs/main/checkpoints/day-02/progress.json").read_text())
    shutil.rmtree(ref / "runs/main/checkpoints")  # only its losses are compared (disk: 12 B/parameter a day)
    corpus = corpora["chain"].root
    ckpt = corpus / "runs" / "main" / "checkpoints"

    def killed_train():
        proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "train", str(corpus)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        metrics = corpus / "runs" / "main" / "metrics.jsonl"
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:  # kill two steps into day 2
            if (ckpt / "day-01" / "progress.json").exists() and metrics.exists() and \
                    sum(1 for x in metrics.read_text().splitlines() if json.loads(x)["day"] == 2) >= 2:
                break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return proc.stdout.read()

    stage("train_until_kill", killed_train)
    report["checks"]["killed_after_day2_steps"] = sum(1 for x in (corpus / "runs/main/metrics.jsonl").read_text()
                                                     .splitlines() if json.loads(x)["day"] == 2)
    out = stage("train_resume", lambda: checked(cli("train", corpus), "resumed train"))
    report["checks"]["resumed"] = "train: resuming from" in out
    progress = json.loads((ckpt / "day-02" / "progress.json").read_text())
    diffs = [abs(a - b) / max(abs(b), 1e-9) for a, b in zip(progress["losses"], reference["losses"])]
    report["checks"].update(resumed_losses=progress["losses"], reference_losses=reference["losses"],
                            loss_max_rel_diff=max(diffs), same_step_count=len(diffs) == len(reference["losses"]))
    metrics = [json.loads(x) for x in (ref / "runs/main/metrics.jsonl").read_text().splitlines()]
    steady = metrics[2:] or metrics
    report["train"] = {k: sum(m[k] for m in steady) / len(steady) for k in ("seconds", "tokens", "tokens_per_s",
                                                                             "mfu", "peak_mem_gib")}
    print(f"[chain] resumed losses vs uninterrupted: max rel diff {max(diffs):.2e}; steady step "
          f"{report['train']['seconds']:.2f}s, {report['train']['tokens_per_s']:.0f} tok/s, MFU "
          f"{report['train']['mfu']:.1%}, {report['train']['peak_mem_gib']:.1f} GiB", flush=True)
    out = stage("eval", lambda: checked(cli("eval", corpus, "--systems", "weights,video"), "eval"))
    results = json.loads((corpus / "evals/main-main/results.json").read_text())
    answers = (corpus / "evals/main-main/answers.jsonl").read_text().splitlines()
    report["eval"] = {"answers": len(answers), "items_per_s": len(answers) / report["stages"]["eval"],
                      "contamination_flagged_heldout": results["contamination"]["flagged_heldout"]}
    stage("report", lambda: checked(cli("report", corpus), "report"))
    report["checks"]["report_html"] = (corpus / "evals/main-main/report/index.html").exists()
    print(json.dumps(report["checks"], indent=1)[:2000], flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "chain.json").write_text(json.dumps(report, indent=1))
    for line in out.splitlines()[-12:]:
        print(line, flush=True)


if __name__ == "__main__":
    main()
