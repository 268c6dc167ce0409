"""Question bank generation (with its held-out split and seal), the contamination audit and training's
protected-question check at growing corpus sizes (issue 28): seconds and peak memory per size, and the
log-log growth exponent from one size to the next.

    python benchmarks/questions_scale.py [--sizes 36,230,2304,23040] [--code SRC] [--label NAME] [--repeat N]

Corpora of cheap synthetic descriptions (`streamlearn.testdata.described`: 30 s chunks, 64 a day, ~14
QA pairs each, no media) are built once under --work by this checkout's code. Each phase of each size
then runs in a fresh interpreter on the code under --code (default: this checkout's src), so the code
before a change is measured on the same corpora (`git archive <commit> src | tar -x -C /tmp/before`,
then `--code /tmp/before/src`). Phases, through the product's own functions:

- questions: `evaluate.bank.run_questions(corpus, "bench", do_seal=True, force=True)`, what
  `streamlearn questions --bank bench --seal --force` runs: every description read, the bank, its split
  (their sha256 are recorded: the code before and after issue 28 make the same bytes);
- audit: `load_bank`, `contamination.audit` and `contamination_summary` of the bank against the corpus's training
  targets (descriptions and QA-trained pairs, from `targets.build_specs` with the sealed split, built
  once per corpus and not timed), as `eval` and `export` call them;
- check: `Constraints.violations` over the same targets, as `train` refuses protected questions.

Peak memory is the phase's interpreter's ru_maxrss; base is its resident memory when the timed work
starts (the interpreter, its modules and, for audit and check, the targets read: ~30-70 MB). With
--repeat N each phase runs N times and the fastest is kept. Results go to
benchmarks/results/questions_scale_<label>.json; the tables and the before/after comparison are in
docs/benchmarks.md ("Questions and audit at scale").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("questions", "audit", "check")
# where each function lives: the package layout of issue 25 (corpus/, core/), else the flat one before it,
# so one copy of this script measures the code of either
WHERE = {"Corpus": ("streamlearn.corpus.layout", "streamlearn.corpus"),
         "load_train_config": ("streamlearn.core.config", "streamlearn.config"),
         "audit": ("streamlearn.corpus.contamination", "streamlearn.contamination"),
         "contamination_summary": ("streamlearn.corpus.contamination", "streamlearn.contamination"),
         "load_constraints": ("streamlearn.corpus.heldout", "streamlearn.heldout"),
         "load_bank": ("streamlearn.corpus.questionbank", "streamlearn.questionbank"),
         "build_specs": ("streamlearn.corpus.targets", "streamlearn.targets"),
         "run_questions": ("streamlearn.evaluate.bank",)}


def _get(name: str):
    import importlib

    for module in WHERE[name]:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    raise SystemExit(f"{name} is in none of {', '.join(WHERE[name])}; add where it lives now to WHERE")


def _targets_file(corpus_dir: Path) -> Path:
    return corpus_dir / "bench_targets.json"


def run_phase(phase: str, corpus_dir: Path) -> dict:
    """One phase, timed, in this interpreter (the parent starts one per phase and size)."""
    corpus = _get("Corpus").open(corpus_dir)
    if phase == "questions":
        run_questions = _get("run_questions")
        base = _rss_mb()
        t0 = time.perf_counter()
        out = run_questions(corpus, "bench", do_seal=True, force=True)
        seconds = time.perf_counter() - t0
        split = corpus.folder("questions") / "bench.split.json"  # its bytes name the bank by name and hash only
        extra = {"items": out["items"], "base_mb": base, "bank_sha256": out["sha256"],
                 "split_sha256": hashlib.sha256(split.read_bytes()).hexdigest()}
    else:
        audit, contamination_summary = _get("audit"), _get("contamination_summary")
        load_constraints, load_bank = _get("load_constraints"), _get("load_bank")
        targets = json.loads(_targets_file(corpus_dir).read_text(encoding="utf-8"))
        base = _rss_mb()
        t0 = time.perf_counter()
        if phase == "audit":  # as eval calls it: the bank loaded, audited against the run's targets
            items = load_bank(corpus, "bench")
            summary = contamination_summary(items, audit(items, targets))
            extra = {"flagged": summary["flagged"], "flagged_heldout": summary["flagged_heldout"]}
        else:  # as train calls it: every sealed bank's protected questions against the day's targets
            bad = load_constraints(corpus.folder("questions")).violations([(t["key"], t["target"]) for t in targets])
            extra = {"violations": len(bad)}
        seconds = time.perf_counter() - t0
        extra["targets"] = len(targets)
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "base_mb": base, **extra}


def _rss_mb() -> float:
    """The interpreter's resident memory now (before the timed work: imports and inputs)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(corpus_dir: Path, chunks: int) -> None:
    """The corpus (once; this checkout's code)."""
    from streamlearn.testdata.described import described_corpus

    if not (corpus_dir / "chunks.csv").exists():
        t0 = time.perf_counter()
        described_corpus(corpus_dir, chunks)
        print(f"built {chunks} chunks in {time.perf_counter() - t0:.1f} s: {corpus_dir}", flush=True)


def write_targets(corpus_dir: Path) -> None:
    """The training targets `train` would record for this corpus with its sealed bank (not timed)."""
    path = _targets_file(corpus_dir)
    if path.exists():
        return
    corpus = _get("Corpus").open(corpus_dir)
    cfg = _get("load_train_config")(corpus.config.train, targets=["description", "qa_text"])
    by_day, _ = _get("build_specs")(corpus, cfg, None, _get("load_constraints")(corpus.folder("questions")))
    path.write_text(json.dumps([{"key": s.key, "target": s.target} for d in by_day.values() for s in d]),
                    encoding="utf-8")


def measure(phase: str, corpus_dir: Path, code: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, __file__, "--phase", phase, "--corpus", str(corpus_dir)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout_s": timeout}
    if proc.returncode != 0:
        raise SystemExit(f"{phase} failed on {corpus_dir}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(a: float, b: float, n_a: int, n_b: int) -> float | None:
    return math.log(b / a) / math.log(n_b / n_a) if a > 0 and b > 0 else None


def table(results: dict) -> str:
    lines = ["| chunks | phase | seconds | peak MB | exponent (s) | exponent (MB) |", "|---|---|---|---|---|---|"]
    sizes = sorted(int(n) for n in results["sizes"])
    for phase in PHASES:
        prev = None
        for n in sizes:
            r = results["sizes"][str(n)].get(phase)
            if not r or "seconds" not in r:
                lines.append(f"| {n:,} | {phase} | {'timed out' if r else 'not run'} | | | |")
                prev = None
                continue
            es = em = ""
            if prev:
                x = exponent(prev[1]["seconds"], r["seconds"], prev[0], n)
                y = exponent(prev[1]["peak_mb"], r["peak_mb"], prev[0], n)
                es, em = (f"{x:.2f}" if x is not None else ""), (f"{y:.2f}" if y is not None else "")
            lines.append(f"| {n:,} | {phase} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {es} | {em} |")
            prev = (n, r)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="36,230,2304,23040", help="chunk counts, comma-separated")
    ap.add_argument("--code", type=Path, default=HERE.parent / "src", help="the src folder whose code is measured")
    ap.add_argument("--label", default="after", help="results/questions_scale_<label>.json")
    ap.add_argument("--work", type=Path, default=Path("/tmp/questions_scale"), help="where the corpora are built")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds a phase may take")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each phase; the fastest is reported (a shared "
                    "host's other work only ever adds time)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:  # a child: one phase on one corpus
        print(json.dumps(run_phase(args.phase, args.corpus)))
        return
    results = {"label": args.label, "code": str(args.code.resolve()), "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "sizes": {}}
    for n in (int(x) for x in args.sizes.split(",")):
        corpus_dir = args.work / f"c{n}"
        build(corpus_dir, n)
        row = results["sizes"][str(n)] = {}
        for phase in args.phases.split(","):
            if phase != "questions" and not (corpus_dir / "questions" / "bench.jsonl").exists():
                continue
            if phase != "questions":
                write_targets(corpus_dir)
            runs = []
            for _ in range(args.repeat):
                if phase == "questions":  # `questions --seal` on a bank that exists only seals it: make it anew
                    for old in (corpus_dir / "questions").glob("bench.*"):
                        old.unlink()
                runs.append(measure(phase, corpus_dir, args.code, args.timeout))
                print(f"{n} chunks, {phase}: {json.dumps(runs[-1])}", flush=True)
                if "seconds" not in runs[-1]:
                    break
            row[phase] = min(runs, key=lambda r: r.get("seconds", math.inf))  # the least disturbed run
            row[phase]["runs"] = [r.get("seconds") for r in runs]
    out = HERE / "results" / f"questions_scale_{args.label}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
