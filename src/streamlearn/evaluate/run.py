"""`streamlearn eval`: every checkpoint x system over the sealed bank, graded, with statistics.

Writes evals/<name>/answers.jsonl (every answer and its grade), results.json and results.csv
(accuracy per checkpoint, system and category with 95% cluster-bootstrap CIs; McNemar Day-0 vs
Day-N; the retention matrix evidence day x checkpoint; the general-set forgetting check; judge
agreement with human labels where they exist).
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np

from streamlearn import console
from streamlearn import description as D
from streamlearn.corpus import Corpus
from streamlearn.errors import StreamlearnError
from streamlearn.evaluate import bank as B
from streamlearn.evaluate.grading import extract_letter, grade_numeric, grade_short
from streamlearn.evaluate.stats import cluster_bootstrap, cohen_kappa, mcnemar_exact
from streamlearn.manifest import DONE, atomic_write_text, status_of
from streamlearn.paths import contained


def checkpoints(corpus: Corpus, run: str, wanted: list[str] | None = None) -> list[tuple[str, int, Path]]:
    """(label, day, folder) of the run's Hugging Face exports: day0 is the base model."""
    root = corpus.root / "runs" / run / "export"
    found = []
    for p in sorted(root.glob("day-*")):
        if (p / "config.json").exists() and not p.name.endswith(".tmp"):
            day = int(p.name.split("-")[1])
            found.append((f"day{day}", day, p))
    if not found:
        raise StreamlearnError(f"run {run!r} has no exported checkpoints in {corpus.rel(root) if root.exists() else root}; "
                               "run `streamlearn train` first")
    if wanted:
        have = {f[0] for f in found}
        missing = [w for w in wanted if w not in have]
        if missing:
            raise StreamlearnError(f"checkpoint {missing[0]!r} not found; available: {', '.join(sorted(have))}")
        found = [f for f in found if f[0] in wanted]
    return found


def cluster_of(item: dict) -> str:
    ids = (item.get("evidence") or {}).get("chunk_ids") or []
    if ids:
        return ids[0]
    return f"day{item.get('evidence_day')}" if item.get("evidence_day") is not None else item["id"]


def grade(item: dict, r: dict, panel, tolerance: float) -> tuple[bool | None, str, dict]:
    at = item["answer_type"]
    if at == "mc":
        if r.get("choice") is not None:
            return r["choice"] == item["answer"], "graded", {}
        shown = r.get("options_shown") or item["options"]
        letter = extract_letter(r["response"], shown)
        if letter is None:
            return False, "unparsed", {}
        return shown[ord(letter) - 65] == item["answer"], "graded", {"letter": letter}
    if at == "short":
        return grade_short(r["response"], item["answer"], item.get("aliases")), "graded", {}
    if at == "numeric":
        return grade_numeric(r["response"], item["answer"], tolerance), "graded", {}
    if panel is None:
        return None, "no_judges", {}
    v = panel.grade(item["question"], item["answer"], item.get("key_facts") or [item["answer"]], r["response"])
    return v["correct"], v["status"], {"votes": v["votes"], "judge_errors": v["judge_errors"]}


def evidence_frames(corpus: Corpus, chunks: dict, item: dict):
    """The first evidence chunk's cached frames and their fps, or (None, 1.0)."""
    for cid in (item.get("evidence") or {}).get("chunk_ids") or []:
        c = chunks.get(cid)
        if c and status_of(c, "frames") == DONE and c.get("frames_path") and corpus.abs(c["frames_path"]).exists():
            arr = np.load(corpus.abs(c["frames_path"]))
            meta = json.loads(corpus.abs(c["frames_path"]).with_suffix(".json").read_text())
            return arr, float(meta["sample_fps"])
    return None, 1.0


def passages(corpus: Corpus, described: list[dict]) -> tuple[list[str], list[str]]:
    """The retrieval index: each line of each rendered description, prefixed with the chunk's header
    (day, place, time), so a retrieved line carries its own context."""
    texts, keys = [], []
    for c in described:
        doc = D.load(corpus.abs(c["description_path"]))
        head, *lines = D.render_target(doc).splitlines()
        for line in lines:
            line = line.lstrip("- ").strip()
            if len(line) > 8 and not line.endswith(":"):
                texts.append(f"{head}: {line}")
                keys.append(c["chunk_id"])
    return texts, keys


def general_loss(answerer, items: list[dict]) -> float:
    """Mean per-token loss of the general answers given their questions (forgetting check)."""
    torch = answerer.torch
    vlm = answerer.vlm
    losses = []
    for it in items:
        inp = vlm.inputs(it["question"], None)
        ans = vlm.tok(it["answer"], add_special_tokens=False)["input_ids"]
        ids = torch.cat([inp["input_ids"], torch.tensor([ans], device=inp["input_ids"].device)], dim=1)
        pos = vlm.positions({"input_ids": ids})
        with torch.no_grad():
            logits = vlm.model(input_ids=ids, position_ids=pos, use_cache=False).logits[0].float()
        n = len(ans)
        logp = torch.log_softmax(logits[-n - 1:-1], dim=-1)
        losses.append(float(-logp[torch.arange(n), torch.tensor(ans, device=logp.device)].mean()))
    return float(np.mean(losses))


def general_items() -> list[dict]:
    text = resources.files("streamlearn").joinpath("data/general_qa.jsonl").read_text(encoding="utf-8")
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def run_eval(corpus: Corpus, bank: str | None = None, systems: list[str] | None = None,
             wanted: list[str] | None = None, run: str | None = None, name: str | None = None) -> dict:
    cfg = corpus.config.eval
    bank = bank or cfg.bank
    run = run or cfg.run
    systems = systems or list(cfg.systems)
    items = B.load_bank(corpus, bank)
    if not B.seal_path(corpus, bank).exists():
        console.warn(f"question bank {bank!r} is not sealed; seal it (`streamlearn questions --seal`) before "
                     "comparing checkpoints over time")
    ckpts = checkpoints(corpus, run, wanted)
    out_dir = contained(corpus.subdir("evals"), name or f"{run}-{bank}")
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks = corpus.chunks.rows_by_key()
    panel = None
    if cfg.judges:
        from streamlearn.evaluate.judges import JudgePanel, parse_judge_spec

        panel = JudgePanel([parse_judge_spec(j, cfg.judge_api_key_env) for j in cfg.judges])
    answers: list[dict] = []

    def record(system: str, label: str, item: dict, r: dict) -> None:
        correct, status, extra = grade(item, r, panel, cfg.numeric_tolerance)
        answers.append({"system": system, "checkpoint": label, "id": item["id"], "category": item["category"],
                        "evidence_day": item.get("evidence_day"), "cluster": cluster_of(item),
                        "answer": item["answer"], "response": r["response"], "correct": correct, "status": status,
                        **{k: r[k] for k in ("scores", "logprobs") if k in r}, **extra})

    from streamlearn.evaluate.systems import EndpointAnswerer, LocalAnswerer, Retriever

    general = general_items()
    forgetting: dict[str, float] = {}
    local_systems = [s for s in systems if s in ("weights", "video")]
    for label, _, path in ckpts:
        if not local_systems and not (label == ckpts[0][0] and "rag" in systems):
            continue
        answerer = LocalAnswerer(str(path), label, cfg.mc_scoring)
        for system in local_systems:
            with console.stage_progress(f"eval {system} {label}", len(items)) as prog:
                for item in items:
                    frames, fps = evidence_frames(corpus, chunks, item) if system == "video" else (None, 1.0)
                    record(system, label, item, answerer.answer(item, frames, fps))
                    prog.advance(item["id"])
        forgetting[label] = general_loss(answerer, general)
        if "rag" in systems and label == ckpts[0][0]:
            described = [c for c in chunks.values() if status_of(c, "describe") == DONE]
            if not described:
                raise StreamlearnError("the rag system needs descriptions; run `streamlearn describe` first")
            texts, keys = passages(corpus, described)
            retriever = Retriever(texts, keys)
            with console.stage_progress(f"eval rag {label}", len(items)) as prog:
                for item in items:
                    context = "\n".join(f"- {t}" for _, t in retriever.top(item["question"], cfg.rag_top_k))
                    record("rag", label, item, answerer.answer(item, None, 1.0, context))
                    prog.advance(item["id"])
        del answerer
    if "openai" in systems:
        if not (cfg.openai_model and cfg.openai_endpoint):
            raise StreamlearnError("the openai system needs eval.openai_model and eval.openai_endpoint")
        from streamlearn.llm_client import ChatClient

        ep = EndpointAnswerer(ChatClient(cfg.openai_endpoint, cfg.openai_model, cfg.openai_api_key_env,
                                         max_tokens=128, json_mode=False), cfg.openai_model)
        with console.stage_progress("eval openai", len(items)) as prog:
            for n, item in enumerate(items):
                try:
                    r = ep.answer(item, rotation=n)
                except StreamlearnError as exc:
                    answers.append({"system": "openai", "checkpoint": cfg.openai_model, "id": item["id"],
                                    "category": item["category"], "evidence_day": item.get("evidence_day"),
                                    "cluster": cluster_of(item), "answer": item["answer"], "response": "",
                                    "correct": None, "status": f"system_failed: {exc}"})
                else:
                    record("openai", cfg.openai_model, item, r)
                prog.advance(item["id"])
    results = aggregate(answers, [c[0] for c in ckpts], cfg.bootstrap)
    results["forgetting"] = {"general_loss": forgetting, "margin": cfg.forgetting_margin}
    if forgetting and ckpts[0][0] in forgetting:
        base = forgetting[ckpts[0][0]]
        results["forgetting"]["relative_change"] = {k: (v - base) / base for k, v in forgetting.items()}
        results["forgetting"]["within_margin"] = all((v - base) / base <= cfg.forgetting_margin
                                                     for v in forgetting.values())
    humans = {i["id"]: i["human_label"] for i in items if i.get("human_label") is not None}
    judged = [a for a in answers if a["id"] in humans and a["status"] == "graded"]
    if judged:
        results["judge_human_kappa"] = cohen_kappa([str(a["correct"]).lower() for a in judged],
                                                   [humans[a["id"]].lower() for a in judged])
    run_cfg = corpus.root / "runs" / run / "config.json"
    model = json.loads(run_cfg.read_text()).get("train", {}).get("model") if run_cfg.exists() else None
    results.update({"bank": bank, "bank_sealed": B.seal_path(corpus, bank).exists(), "run": run, "model": model,
                    "items": len(items), "systems": systems, "checkpoints": [c[0] for c in ckpts]})
    atomic_write_text(out_dir / "answers.jsonl", "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers))
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out_dir / "results.csv", to_csv(results))
    for line in summary_lines(results):
        console.info(line)
    console.info(f"eval: results in {corpus.rel(out_dir)}")
    return results


def aggregate(answers: list[dict], order: list[str], n_boot: int) -> dict:
    table = []
    groups: dict[tuple, list[dict]] = {}
    for a in answers:
        if a["correct"] is None:
            continue
        for cat in ("all", a["category"]):
            groups.setdefault((a["system"], a["checkpoint"], cat), []).append(a)
    for (system, ckpt, cat), rows in sorted(groups.items()):
        acc, lo, hi = cluster_bootstrap([bool(r["correct"]) for r in rows], [r["cluster"] for r in rows], n_boot)
        table.append({"system": system, "checkpoint": ckpt, "category": cat, "n": len(rows), "accuracy": acc,
                      "ci_low": lo, "ci_high": hi})
    ungraded: dict[str, int] = {}
    for a in answers:
        if a["correct"] is None:
            ungraded[a["status"]] = ungraded.get(a["status"], 0) + 1
    tests = []
    for system in sorted({a["system"] for a in answers}):
        by_ckpt: dict[str, dict[str, bool]] = {}
        for a in answers:
            if a["system"] == system and a["correct"] is not None:
                by_ckpt.setdefault(a["checkpoint"], {})[a["id"]] = bool(a["correct"])
        base = order[0] if order and order[0] in by_ckpt else None
        for ckpt in order[1:]:
            if base is None or ckpt not in by_ckpt:
                continue
            common = set(by_ckpt[base]) & set(by_ckpt[ckpt])
            b = sum(1 for i in common if not by_ckpt[base][i] and by_ckpt[ckpt][i])
            c = sum(1 for i in common if by_ckpt[base][i] and not by_ckpt[ckpt][i])
            tests.append({"system": system, "base": base, "checkpoint": ckpt, "n_paired": len(common),
                          "only_checkpoint_right": b, "only_base_right": c, "mcnemar_p": mcnemar_exact(b, c)})
    retention: dict[str, dict[str, dict[str, float]]] = {}
    for a in answers:
        if a["correct"] is None or a.get("evidence_day") is None:
            continue
        cell = retention.setdefault(a["system"], {}).setdefault(str(a["evidence_day"]), {})
        cell.setdefault(a["checkpoint"], []).append(bool(a["correct"]))
    retention = {s: {d: {c: float(np.mean(v)) for c, v in cols.items()} for d, cols in days.items()}
                 for s, days in retention.items()}
    return {"accuracy": table, "mcnemar": tests, "retention": retention, "ungraded": ungraded}


def to_csv(results: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["system", "checkpoint", "category", "n", "accuracy", "ci_low", "ci_high"])
    for r in results["accuracy"]:
        w.writerow([r["system"], r["checkpoint"], r["category"], r["n"], f"{r['accuracy']:.4f}", f"{r['ci_low']:.4f}",
                    f"{r['ci_high']:.4f}"])
    return buf.getvalue()


def summary_lines(results: dict) -> list[str]:
    lines = []
    for r in results["accuracy"]:
        if r["category"] == "all":
            lines.append(f"eval {r['system']:>7} {r['checkpoint']:>6}: {r['accuracy']:.1%} "
                         f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}] (n={r['n']})")
    for t in results["mcnemar"]:
        lines.append(f"eval {t['system']:>7} {t['checkpoint']} vs {t['base']}: +{t['only_checkpoint_right']} / "
                     f"-{t['only_base_right']} items, McNemar p={t['mcnemar_p']:.3g}")
    return lines
