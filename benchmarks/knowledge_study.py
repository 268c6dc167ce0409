"""Which recipe makes Day-N know held-out facts (issue 22): a grid of [train] recipes, each run through
the product's own commands (`streamlearn train`, then `streamlearn eval`) on a sealed, described
synthetic tour, and one table of what each did.

    python benchmarks/knowledge_study.py --build /data/study --seed 1 --days 6 --minutes 6   # a tour (CPU)
    python benchmarks/knowledge_study.py --corpus /data/study/tour1/corpus --train-days 1-3 \\
        --recipes demo,diverse,qa_first,anchor --systems weights --out study_tune.json
    python benchmarks/knowledge_study.py --corpus /data/study/tour2/corpus --train-days 1-3 \\
        --recipes demo,diverse --systems weights,rag --out study_report.json

Recipes are chosen on one tour (seed 1) and reported on another (seed 2). Training days 1..K leave
the later days' held-out facts as the placebo: at Day-K, transfer (held out, evidence on a trained
day) against placebo (held out, evidence on an untrained day) is the hypothesis test, each as the
paired Day-K minus Day-0 difference, clustered by evidence chunk; transfer minus placebo is the
difference of the two, with a cluster bootstrap interval and a two-sided bootstrap p. Retention:
day-1 held-out facts at every later checkpoint. Forgetting: eval's general-set loss against Day-0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

BASE = {"model": "smol", "targets": ["description", "facts", "qa_text"], "activation_checkpointing": False,
        "export_dtype": "bfloat16", "keep_days": 1, "seed": 0, "warmup_steps": 2, "stream_replay": 0.25,
        "pack_tokens": 32768, "require_sealed_bank": True}
RECIPES = {
    # make demo's recipe before issue 22: 2 epochs, one facts rendering, 2 samples a step
    "demo": {"lr": 1.5e-4, "epochs_per_day": 2, "grad_accum": 2, "fact_variants": 1},
    # many diverse renderings, many exposures, shuffled within the day
    "diverse": {"lr": 1.5e-4, "epochs_per_day": 6, "grad_accum": 32, "fact_variants": 12, "order": "shuffled"},
    # the same, the day's QA-trained pairs before its documents (Jiang et al. 2024)
    "qa_first": {"lr": 1.5e-4, "epochs_per_day": 6, "grad_accum": 32, "fact_variants": 12, "order": "qa_first"},
    # the same as diverse, held near the start (anchor) and gentler on later days. The pull is a fraction
    # of the lr a step (decoupled L2 toward the start): over ~500 steps at 1.5e-4 it needs ~10 to matter
    "anchor": {"lr": 1.5e-4, "epochs_per_day": 6, "grad_accum": 32, "fact_variants": 12, "order": "shuffled",
               "anchor_decay": 10.0, "lr_day_decay": 0.7},
    # more exposures still
    "long": {"lr": 1.5e-4, "epochs_per_day": 12, "grad_accum": 32, "fact_variants": 12, "order": "shuffled"},
    # 4x the optimizer steps for the same exposures (32 samples a step gave ~35 steps a day on a tour)
    "ga8": {"lr": 1.5e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12, "order": "shuffled"},
    # ... with a higher peak
    "ga8_lr4": {"lr": 4e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12, "order": "shuffled"},
    # ... held near the start (~0.5 of the way back over a run's ~400 steps) and gentler on later days
    "ga8_lr4_anchor": {"lr": 4e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12, "order": "shuffled",
                       "anchor_decay": 3.0, "lr_day_decay": 0.7},
    # ... QA-trained pairs first, half of each day's samples replayed from earlier days (renderings included)
    "ga8_lr4_qa_first": {"lr": 4e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12,
                         "order": "qa_first", "stream_replay": 0.5},
    # ... with general rehearsal: a fifth of each day's samples from the packaged general QA set (the lever
    # against forgetting general skills; it shares no question template with eval's forgetting check)
    "ga8_lr4_anchor_general": {"lr": 4e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12,
                               "order": "shuffled", "anchor_decay": 3.0, "lr_day_decay": 0.7, "general_replay": 0.2},
    # ... the same without the anchor (what the anchor does beside rehearsal)
    "ga8_lr4_general": {"lr": 4e-4, "epochs_per_day": 6, "grad_accum": 8, "fact_variants": 12,
                        "order": "shuffled", "lr_day_decay": 0.7, "general_replay": 0.2},
    # ... twice the exposures
    "ga8_long": {"lr": 1.5e-4, "epochs_per_day": 12, "grad_accum": 8, "fact_variants": 12, "order": "shuffled"},
}


def build(root: Path, seed: int, days: int, minutes: float) -> None:
    from streamlearn.demo import prepare_corpus

    corpus, timings = prepare_corpus(root / f"tour{seed}", days, minutes, 30.0, seed=seed)
    print(f"built tour{seed}: {len(corpus.chunks.read())} chunks, {timings}", flush=True)


def run(cmd: list[str]) -> float:
    t0 = time.time()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(x for x in (str(SRC), os.environ.get("PYTHONPATH")) if x)}
    res = subprocess.run([sys.executable, "-m", "streamlearn", *cmd], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        print(res.stdout[-2000:], res.stderr[-2000:], flush=True)
        raise SystemExit(f"streamlearn {cmd[0]} failed")
    return time.time() - t0


def cluster_diff(old: dict, new: dict, clusters: dict, ids: list[str], rng, n_boot: int = 2000) -> np.ndarray:
    """Bootstrap draws of the mean (new - old) over `ids`, resampling clusters."""
    by: dict[str, list[float]] = {}
    for i in ids:
        by.setdefault(clusters[i], []).append(float(new[i]) - float(old[i]))
    keys = list(by)
    sums = np.array([sum(by[k]) for k in keys])
    counts = np.array([len(by[k]) for k in keys])
    draws = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    return sums[draws].sum(1) / counts[draws].sum(1)


def summarise(corpus: Path, name: str, train_days: list[int], seconds: dict, rng, eval_name: str = "") -> dict:
    from streamlearn.corpus import questionbank as QB
    from streamlearn.corpus.layout import Corpus
    from streamlearn.corpus.heldout import group_of

    c = Corpus.open(corpus)
    ev = corpus / "evals" / (eval_name or name)
    results = json.loads((ev / "results.json").read_text())
    answers = [json.loads(x) for x in (ev / "answers.jsonl").read_text().splitlines()]
    items = {i["id"]: i for i in QB.load_bank(c, results["bank"])}
    scoring = results["mc_scoring"]
    out = {"recipe": name, "seconds": seconds, "rows": {}, "retention": {}, "forgetting":
           results["forgetting"].get("relative_change", {}), "contamination": results["contamination"]}
    metrics = [json.loads(x) for x in (corpus / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    out["tokens_trained"] = sum(m["tokens"] for m in metrics)
    out["tokens_per_s"] = float(np.median([m["tokens_per_s"] for m in metrics[2:]] or [0]))
    for r in results["verdict"]:
        if r["scoring"] == scoring:
            out["rows"][f"{r['system']}:{r['checkpoint']}:{r['group']}"] = {
                k: r.get(k) for k in ("n", "n_clusters", "accuracy", "base_accuracy", "diff", "diff_low", "diff_high",
                                      "p", "p_holm")}
    last = max(train_days)
    for system in sorted({a["system"] for a in answers}):
        got: dict[str, dict[str, bool]] = {}
        for a in answers:
            if a["system"] == system and a["correct"] is not None:
                got.setdefault(a["checkpoint"], {})[a["id"]] = bool(a.get(f"correct_{scoring}", a["correct"]))
        base = got.get("day0", {})
        clusters = {a["id"]: a["cluster"] for a in answers}
        flagged = {a["id"] for a in answers if a.get("contaminated")}
        label = f"day{last}"
        if label not in got:
            continue
        groups = {g: [i for i in base if i in got[label] and group_of(items[i], i in flagged, last) == g]
                  for g in ("transfer", "placebo")}
        if groups["transfer"] and groups["placebo"]:
            t = cluster_diff(base, got[label], clusters, groups["transfer"], rng)
            p = cluster_diff(base, got[label], clusters, groups["placebo"], rng)
            d = t - p
            point = (np.mean([got[label][i] - base[i] for i in groups["transfer"]])
                     - np.mean([got[label][i] - base[i] for i in groups["placebo"]]))
            out[f"{system}_transfer_minus_placebo"] = {
                "diff": float(point), "low": float(np.quantile(d, 0.025)), "high": float(np.quantile(d, 0.975)),
                "p": float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))),
                "clusters_transfer": len({clusters[i] for i in groups["transfer"]}),
                "clusters_placebo": len({clusters[i] for i in groups["placebo"]})}
        day1 = [i for i in base if items[i].get("evidence_day") == 1 and group_of(items[i], i in flagged, 1) ==
                "transfer"]
        out["retention"][system] = {lab: {"accuracy": float(np.mean([got[lab][i] for i in day1 if i in got[lab]])),
                                          "diff": float(np.mean([got[lab][i] - base[i] for i in day1 if i in got[lab]]))}
                                    for lab in sorted(got, key=lambda x: int(x[3:])) if day1}
    return out


def table(rows: list[dict], train_days: list[int]) -> str:
    """One markdown row per recipe, system and Day-N (day 1 and the last trained day)."""
    last = max(train_days)
    lines = ["| recipe | system | Day-N | memorised | transfer | placebo | transfer - placebo | day-1 held-out "
             "retention | general loss | tokens | train s | eval s |", "|" + "---|" * 12]

    def cell(r: dict, key: str) -> str:
        x = r["rows"].get(key)
        if not x or x.get("diff") is None:
            return "-"
        return (f"{x['base_accuracy']:.0%} -> {x['accuracy']:.0%}: {x['diff'] * 100:+.1f} [{x['diff_low'] * 100:+.1f}, "
                f"{x['diff_high'] * 100:+.1f}] p {x['p']:.2g}, {x['n_clusters']} cl")

    for r in rows:
        for system in sorted({k.split(":")[0] for k in r["rows"]}):
            for d in sorted({1, last}):
                tp = r.get(f"{system}_transfer_minus_placebo") if d == last else None
                ret = r["retention"].get(system, {}).get(f"day{d}")
                lines.append(" | ".join([
                    f"| {r['recipe']}", system, str(d), cell(r, f"{system}:day{d}:memorised"),
                    cell(r, f"{system}:day{d}:transfer"), cell(r, f"{system}:day{d}:placebo"),
                    f"{tp['diff'] * 100:+.1f} [{tp['low'] * 100:+.1f}, {tp['high'] * 100:+.1f}] p {tp['p']:.2g}, "
                    f"{tp['clusters_transfer']}/{tp['clusters_placebo']} cl" if tp else "-",
                    f"{ret['diff'] * 100:+.1f}" if ret else "-",
                    f"{r['forgetting'].get(f'day{d}', 0) * 100:+.1f}%", f"{r['tokens_trained']:,}",
                    f"{r['seconds']['train']:.0f}", f"{r['seconds']['eval']:.0f} |"]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", type=Path, help="make a sealed, described tour under this folder (CPU)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--train-days", default="1-3")
    ap.add_argument("--recipes", default="demo,diverse")
    ap.add_argument("--systems", default="weights")
    ap.add_argument("--eval-only", action="store_true",
                    help="evaluate runs trained before (e.g. --systems rag in a call of its own), as evals/RECIPE-SYSTEMS")
    ap.add_argument("--set", action="append", default=[], help="KEY=JSON override for every recipe (e.g. model)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "knowledge_study.json")
    args = ap.parse_args()
    if args.build:
        build(args.build, args.seed, args.days, args.minutes)
        return
    from streamlearn.train.worker import parse_days

    train_days = parse_days(args.train_days)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    rng = np.random.default_rng(0)
    rows = []
    for name in args.recipes.split(","):
        cfg = {**BASE, **RECIPES[name], **extra, "run": name}
        toml = args.corpus / f"recipe-{name}.toml"
        toml.write_text("[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()))
        t_train = 0.0
        if not args.eval_only:
            t_train = run(["train", str(args.corpus), "--config", str(toml), "--days", args.train_days])
        checkpoints = ",".join(["day0"] + [f"day{d}" for d in train_days])
        eval_name = f"{name}-{args.systems.replace(',', '-')}" if args.eval_only else name
        t_eval = run(["eval", str(args.corpus), "--run", name, "--name", eval_name, "--systems", args.systems,
                      "--checkpoints", checkpoints])
        rows.append(summarise(args.corpus, name, train_days, {"train": t_train, "eval": t_eval}, rng, eval_name))
        print(f"{name}: train {t_train:.0f} s, eval {t_eval:.0f} s", flush=True)
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows, train_days), flush=True)


if __name__ == "__main__":
    main()
