"""`streamlearn eval`: every checkpoint x system over the sealed bank, graded, with statistics.

Refuses a bank the run was not trained against (sealed after it started, or changed since). Writes
evals/<name>/: answers.jsonl (every answer, both MC scores, its grade), contamination.json (the
audit of every item against every target the run recorded), results.json and results.csv: per
Day-N checkpoint the memorised / transfer / placebo groups with the Day-N - Day-0 difference, its
paired cluster-bootstrap CI, the cluster sign-flip p-value (Holm-adjusted over checkpoints) and the
no-memory guesser on the same items; accuracy by category; the retention matrix; the general-set
forgetting check; judge agreement with human labels where they exist.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus import questionbank as QB
from streamlearn.corpus.framecache import read_frames
from streamlearn.corpus.verdict import verdict as verdict_lines
from streamlearn.evaluate.grading import extract_letter, grade_numeric, grade_short
from streamlearn.corpus.contamination import audit, contamination_summary
from streamlearn.evaluate.stats import (cluster_bootstrap, cluster_signflip_p, cohen_kappa, holm,
                                        paired_cluster_bootstrap)
from streamlearn.corpus import heldout as H
from streamlearn.corpus.heldout import GROUPS, group_of
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.files import atomic_write_text
from streamlearn.core.paths import contained
from streamlearn.corpus.runrecord import read_heldout, read_targets
from streamlearn.corpus.forecast import EXPENSIVE, expensive_days

FEW_CLUSTERS = 30  # below this a percentile cluster bootstrap under-covers (docs/eval.md)


def checkpoints(corpus: Corpus, run: str, wanted: list[str] | None = None) -> list[tuple[str, int, Path]]:
    """(label, day, folder) of the run's Hugging Face exports: day0 is the base model."""
    root = corpus.run_dir(run) / "export"
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


def checkpoints_by_system(ckpts: list[tuple[str, int, Path]], systems: list[str], chosen: bool) -> dict:
    """{system: checkpoint labels it runs at}: every checkpoint, unless the system is expensive and the
    checkpoints were not `chosen` (--checkpoints), then `expensive_days`."""
    labels = [c[0] for c in ckpts]
    sparse = set(expensive_days([c[1] for c in ckpts]))
    return {s: labels if chosen or s not in EXPENSIVE else [c[0] for c in ckpts if c[1] in sparse] for s in systems}


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


def evidence_chunk(corpus: Corpus, chunks: dict, item: dict) -> str | None:
    """The first evidence chunk with cached frames."""
    for cid in (item.get("evidence") or {}).get("chunk_ids") or []:
        c = chunks.get(cid)
        if c and status_of(c, "frames") == DONE and c.get("frames_path") and corpus.abs(c["frames_path"]).exists():
            return cid
    return None


def item_groups(corpus: Corpus, chunks: dict, items: list[dict], by_video: bool, size: int = 64):
    """(evidence chunk or None, items): by evidence chunk for the `video` system, else in slices."""
    if not by_video:
        return [(None, items[i:i + size]) for i in range(0, len(items), size)]
    groups: dict = {}
    for item in items:
        groups.setdefault(evidence_chunk(corpus, chunks, item), []).append(item)
    return sorted(groups.items(), key=lambda kv: kv[0] or "")


def evidence_frames(corpus: Corpus, chunks: dict, cid: str | None):
    """A chunk's cached frames and their fps, or (None, 1.0)."""
    if cid is None:
        return None, 1.0
    return read_frames(corpus.abs(chunks[cid]["frames_path"]), cid)


def known_by(described: list[dict], day: int) -> list[dict]:
    """The described chunks RAG may read at a Day-`day` checkpoint: days <= day, what could be known by
    then (reading later days would let its placebo beat its transfer)."""
    return [c for c in described if int(c.get("day_index") or 0) <= day]


def passages(corpus: Corpus, described: list[dict]) -> tuple[list[str], list[str]]:
    """The retrieval index: each line of each rendered description, prefixed with the chunk's day and
    place, so a retrieved line carries its own context (its clock times are in the line)."""
    texts, keys = [], []
    for c in described:
        doc = D.load(corpus.abs(c["description_path"]))
        _, *lines = D.render_target(doc).splitlines()
        head = ", ".join(x for x in (f"Day {doc['day_index']}" if doc.get("day_index") else None,
                                     (doc.get("setting") or {}).get("city")) if x) or doc["chunk_id"]
        for line in lines:
            line = line.lstrip("- ").strip()
            if len(line) > 8 and not line.endswith(":"):
                texts.append(f"{head}: {line}")
                keys.append(c["chunk_id"])
    return texts, keys


def general_loss(answerer, items: list[dict]) -> float:
    """Mean per-token loss of the general answers given their questions (forgetting check)."""
    import torch

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


def run_checks(corpus: Corpus, run: str, bank: str) -> dict | None:
    """The run's record of the banks it honoured; refuses a bank the run did not train against
    (sealed after training started, or changed since)."""
    record = read_heldout(corpus.run_dir(run))
    info = QB.seal_info(corpus, bank)
    if record is None:
        console.warn(f"run {run!r} trained without a held-out split (train.require_sealed_bank = false): every "
                     "item is audited against its targets, but none was held out by construction")
        return None
    honoured = {b["name"]: b for b in record["banks"]}
    if bank not in honoured or info is None:
        when = f"sealed at {info['sealed_at']}" if info else "not sealed"
        raise StreamlearnError(f"question bank {bank!r} ({when}) was not sealed when run {run!r} started training "
                               f"({record['started_at']}), so its held-out split never constrained that run; "
                               "evaluate with a bank sealed before the run, or seal this one and train a new run "
                               "(train.run = NEW)")
    if (info["sha256"], info.get("split_sha256")) != (honoured[bank]["sha256"], honoured[bank].get("split_sha256")):
        raise StreamlearnError(f"question bank {bank!r} changed since run {run!r} started training on it; restore "
                               "the bank the run was trained against, or train a new run (train.run = NEW)")
    return record


def run_eval(corpus: Corpus, bank: str | None = None, systems: list[str] | None = None,
             wanted: list[str] | None = None, run: str | None = None, name: str | None = None) -> dict:
    cfg = corpus.config.eval
    bank = bank or cfg.bank
    run = run or cfg.run
    systems = systems or list(cfg.systems)
    check_systems(systems, cfg)  # before any pass: a typo must not cost a finished evaluation or hours
    items = QB.load_bank(corpus, bank)
    if not QB.seal_path(corpus, bank).exists():
        console.warn(f"question bank {bank!r} is not sealed; seal it (`streamlearn questions --seal`) before "
                     "comparing checkpoints over time")
    ckpts = checkpoints(corpus, run, wanted)
    per_ckpt = [s for s in systems if s != "openai"]  # openai answers once, not per checkpoint
    # which checkpoints each system runs at: all that were asked for, or for an expensive system in a long run
    # without --checkpoints, a log-spaced few (expensive_days)
    at = checkpoints_by_system(ckpts, per_ckpt, bool(wanted))
    all_labels = [c[0] for c in ckpts]
    n_answers = len(items) * (sum(len(v) for v in at.values()) + ("openai" in systems))
    console.info(f"eval: {len(items)} items x ({len(per_ckpt)} systems x {len(ckpts)} checkpoints"
                 + (" + openai" if "openai" in systems else "") + f") = {n_answers} answers; passes already "
                 "answered are reused")
    for s in per_ckpt:
        if len(at[s]) < len(all_labels):
            console.info(f"eval: {s} is expensive: it runs at {', '.join(at[s])} ({len(at[s])} of {len(all_labels)} "
                         "checkpoints; --checkpoints chooses others), the other systems at every one")
    record = run_checks(corpus, run, bank)
    out_dir = contained(corpus.folder("evals", create=True), name or f"{run}-{bank}")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = read_targets(corpus.run_dir(run))
    if not targets:
        raise StreamlearnError(f"run {run!r} has no record of its training targets (runs/{run}/targets/); it was "
                               "trained by an older streamlearn: train it again to evaluate it")
    flags = audit(items, targets)
    split = QB.load_split(corpus, bank)
    atomic_write_text(out_dir / "contamination.json", json.dumps(
        {"bank": bank, "run": run, "targets": len(targets), "items": flags}, indent=1))
    chunks = corpus.chunks.rows_by_key()
    panel = None
    if cfg.judges:
        from streamlearn.evaluate.judges import JudgePanel, parse_judge_spec

        panel = JudgePanel([parse_judge_spec(j, cfg.judge_api_key_env) for j in cfg.judges])
    answers: list[dict] = []

    def graded(system: str, label: str, item: dict, r: dict) -> dict:
        correct, status, extra = grade(item, r, panel, cfg.numeric_tolerance)
        both = {}
        if r.get("choice_logprob") is not None:
            both = {"correct_logprob": r["choice_logprob"] == item["answer"],
                    "correct_calibrated": r["choice_calibrated"] == item["answer"]}
        return {"system": system, "checkpoint": label, "id": item["id"], "category": item["category"],
                "evidence_day": item.get("evidence_day"), "cluster": cluster_of(item),
                "answer": item["answer"], "response": r["response"], "correct": correct, "status": status,
                **both, **{k: r[k] for k in ("scores", "logprobs") if k in r}, **extra}

    from streamlearn.evaluate.systems import EndpointAnswerer, LocalAnswerer, Retriever

    general = general_items()
    forgetting: dict[str, float] = {}
    local_systems = [s for s in systems if s in ("weights", "video")]
    parts = Parts(out_dir / "parts", QB.bank_path(corpus, bank), cfg)
    reused = 0
    base_path = ckpts[0][2]
    embedder = questions = None  # rag's sentence encoder and the items' question embeddings, made once
    for label, day, path in ckpts:
        passes = [s for s in local_systems if label in at[s]] + (["rag"] if "rag" in systems else [])
        if not passes:
            continue
        answerer = None
        for system in passes + ["forgetting"]:
            # rag is the Day-0 reader with retrieval over what was described by Day-N (days <= N): the fair
            # "what could be known by then" control, one pass per checkpoint
            source = base_path if system == "rag" else path
            done = parts.load(system, label, source)
            if done is not None:
                reused += 1
                if system == "forgetting":
                    forgetting[label] = done[0]["loss"]
                else:
                    answers.extend(done)
                continue
            if system == "rag":
                reader = LocalAnswerer(str(base_path), ckpts[0][0], cfg.mc_scoring, device=cfg.device)
            else:
                answerer = answerer or LocalAnswerer(str(path), label, cfg.mc_scoring, device=cfg.device)
            if system == "forgetting":
                forgetting[label] = general_loss(answerer, general)
                parts.save(system, label, path, [{"loss": forgetting[label]}])
                continue
            rows = []
            if system == "rag":
                described = [c for c in chunks.values() if status_of(c, "describe") == DONE]
                if not described:
                    raise StreamlearnError("the rag system needs descriptions; run `streamlearn describe` first")
                known = known_by(described, day)
                retriever = Retriever(*passages(corpus, known), model=embedder) if known else None
                if retriever is not None:
                    embedder = retriever.model
                    if questions is None:
                        questions = retriever.embed([item["question"] for item in items])
            with console.stage_progress(f"eval {system} {label}", len(items), item_lines=False) as prog:
                if system == "rag":
                    for n, item in enumerate(items):
                        hits = retriever.top(questions[n], cfg.rag_top_k) if retriever else []
                        context = "\n".join(f"- {t}" for _, t in hits)
                        rows.append(graded(system, label, item, reader.answer(item, None, 1.0, context)))
                        prog.advance(item["id"])
                else:
                    # items grouped by evidence chunk: each chunk's video is encoded once per checkpoint,
                    # and the items sharing it are scored in batches
                    for cid, group in item_groups(corpus, chunks, items, system == "video"):
                        frames, fps = evidence_frames(corpus, chunks, cid)
                        for item, r in zip(group, answerer.answer_many(group, frames, fps, video_key=cid)):
                            rows.append(graded(system, label, item, r))
                            prog.advance(item["id"])
            parts.save(system, label, source, rows)
            answers.extend(rows)
            if system == "rag":
                del reader
        del answerer
    if reused:
        console.info(f"eval: reusing {reused} answer sets recorded for the same bank, checkpoints and settings")
    if "openai" in systems:
        from streamlearn.models.llm_client import ChatClient

        ep = EndpointAnswerer(ChatClient(cfg.openai_endpoint, cfg.openai_model, cfg.openai_api_key_env,
                                         max_tokens=128, json_mode=False), cfg.openai_model)
        with console.stage_progress("eval openai", len(items), item_lines=False) as prog:
            for n, item in enumerate(items):
                try:
                    r = ep.answer(item, rotation=n)
                except StreamlearnError as exc:
                    answers.append({"system": "openai", "checkpoint": cfg.openai_model, "id": item["id"],
                                    "category": item["category"], "evidence_day": item.get("evidence_day"),
                                    "cluster": cluster_of(item), "answer": item["answer"], "response": "",
                                    "correct": None, "status": f"system_failed: {exc}"})
                else:
                    answers.append(graded("openai", cfg.openai_model, item, r))
                prog.advance(item["id"])
    results = aggregate(answers, [c[0] for c in ckpts], cfg.bootstrap)
    days = {label: day for label, day, _ in ckpts}
    frequencies = (split or {}).get("answer_frequencies", {})
    results["verdict"] = verdict_table(answers, items, flags, days, cfg.mc_scoring, cfg.bootstrap, frequencies)
    results["guesser"] = guesser_table(items, flags, frequencies)
    results["contamination"] = contamination_summary(items, flags)
    results["split"] = split_summary(items, split)
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
    run_cfg = corpus.run_dir(run) / "config.json"
    model = json.loads(run_cfg.read_text()).get("train", {}).get("model") if run_cfg.exists() else None
    results.update({"bank": bank, "bank_sealed": QB.seal_path(corpus, bank).exists(), "run": run, "model": model,
                    "run_started_at": (record or {}).get("started_at"), "mc_scoring": cfg.mc_scoring,
                    "items": len(items), "systems": systems, "checkpoints": [c[0] for c in ckpts],
                    "checkpoints_by_system": at, "checkpoint_days": days})
    for a in answers:
        a["contaminated"] = bool(flags.get(a["id"], {}).get("flags"))
    keep_wider(corpus, out_dir, systems, [c[0] for c in ckpts])
    atomic_write_text(out_dir / "answers.jsonl", "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers))
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out_dir / "results.csv", to_csv(results))
    for line in summary_lines(results):
        console.info(line)
    for line in verdict_lines(results):  # last, and also under --quiet: what a reader looks for
        console.result(line)
    console.result(f"eval: results in {corpus.rel(out_dir)}")
    return results


SYSTEMS = ("weights", "video", "rag", "openai")
RESULT_FILES = ("answers.jsonl", "results.json", "results.csv")


def check_systems(systems: list[str], cfg) -> None:
    """Unknown systems and an openai system without its settings are refused before anything runs."""
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        raise StreamlearnError(f"unknown system {bad[0]!r} in --systems; choose from {', '.join(SYSTEMS)} "
                               "(e.g. --systems weights,rag)")
    if "openai" in systems and not (cfg.openai_model and cfg.openai_endpoint):
        raise StreamlearnError("the openai system needs eval.openai_model and eval.openai_endpoint in "
                               "streamlearn.toml [eval]; set both, or leave openai out of --systems")


def keep_wider(corpus: Corpus, out_dir: Path, systems: list[str], labels: list[str]) -> None:
    """A finished evaluation that covered systems or checkpoints this one does not is moved aside
    (`superseded/<when>/`), never overwritten: replacing it with a narrower one would lose results."""
    path = out_dir / "results.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not a finished evaluation: nothing to keep
    lost = sorted(set(old.get("systems") or []) - set(systems)) + sorted(set(old.get("checkpoints") or []) - set(labels))
    if not lost:
        return
    when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%S")
    dest = out_dir / "superseded" / when
    dest.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        if (out_dir / name).exists():
            os.replace(out_dir / name, dest / name)
    console.warn(f"eval: the finished evaluation in {corpus.rel(out_dir)} also covered {', '.join(lost)}; it is kept "
                 f"in {corpus.rel(dest)} (use --name to keep evaluations side by side)")


class Parts:
    """Each checkpoint x system pass of an evaluation, kept as it finishes (`parts/<system>-<ckpt>.jsonl`,
    its first line the stamp it was made under): a re-run reuses a pass whose bank, checkpoint files
    and scoring settings are unchanged, so a killed evaluation resumes and a finished one is free."""

    def __init__(self, folder: Path, bank_file: Path, cfg):
        self.folder = folder
        self.base = {"bank_sha256": hashlib.sha256(bank_file.read_bytes()).hexdigest(), "mc_scoring": cfg.mc_scoring,
                     "rag_top_k": cfg.rag_top_k, "numeric_tolerance": cfg.numeric_tolerance,
                     "judges": list(cfg.judges)}

    def stamp(self, path: Path) -> dict:
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(path).iterdir() if p.is_file())
        # the resolved path: `eval corpus` and `eval /abs/corpus` are the same checkpoint
        return {**self.base, "checkpoint": str(Path(path).resolve()), "files": files}

    def _file(self, system: str, label: str) -> Path:
        return self.folder / f"{system}-{label}.jsonl"

    def load(self, system: str, label: str, path: Path) -> list[dict] | None:
        f = self._file(system, label)
        if not f.exists():
            return None
        head, *rows = f.read_text(encoding="utf-8").splitlines()
        if json.loads(head) != json.loads(json.dumps(self.stamp(path))):
            return None
        return [json.loads(x) for x in rows]

    def save(self, system: str, label: str, path: Path, rows: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self._file(system, label), "".join(json.dumps(x, ensure_ascii=False) + "\n"
                                                             for x in [self.stamp(path), *rows]))


def verdict_table(answers: list[dict], items: list[dict], flags: dict, days: dict[str, int], scoring: str,
                  n_boot: int, frequencies: dict) -> list[dict]:
    """Per system, Day-N checkpoint, group and MC scoring rule: accuracy of Day-N and of Day-0 on the
    same items, the paired difference with a cluster bootstrap CI, the cluster sign-flip p-value and
    its Holm adjustment over the Day-N checkpoints, and the no-memory guesser on the same items.
    `rag` is the Day-0 reader retrieving from the descriptions of days <= N at each Day-N (at Day-0:
    nothing to retrieve), so its groups compare like the weights' do."""
    from streamlearn.evaluate.guesser import guess

    by_id = {i["id"]: i for i in items}
    base = min(days, key=days.get)
    later = sorted((d, label) for label, d in days.items() if label != base)
    rules = [scoring] + [r for r in ("logprob", "calibrated") if r != scoring]
    rows: list[dict] = []
    for system in sorted({a["system"] for a in answers if a["checkpoint"] in days}):
        mine = [a for a in answers if a["system"] == system and a["correct"] is not None and a["checkpoint"] in days]
        for rule in rules:
            if rule != scoring and not any(f"correct_{rule}" in a for a in mine):
                continue  # one scoring rule only (generation, endpoints)
            got: dict[str, dict[str, bool]] = {}
            for a in mine:
                # items that are not multiple choice are graded the same under either rule
                got.setdefault(a["checkpoint"], {})[a["id"]] = bool(a.get(f"correct_{rule}", a["correct"]))
            for day, label in later:
                for group in GROUPS:
                    ids = [i for i in got.get(base, {}) if group_of(by_id[i], bool(flags[i]["flags"]), day) == group]
                    ids = [i for i in ids if i in got.get(label, {})]
                    if not ids:
                        continue
                    clusters = [cluster_of(by_id[i]) for i in ids]
                    old = [got[base][i] for i in ids]
                    row = {"system": system, "scoring": rule, "checkpoint": label, "day": day, "group": group,
                           "n": len(ids), "n_clusters": len(set(clusters)),
                           "few_clusters": len(set(clusters)) < FEW_CLUSTERS,
                           "guesser": float(np.mean([guess(by_id[i], frequencies) for i in ids]))}
                    new = [got[label][i] for i in ids]
                    acc, lo, hi = cluster_bootstrap(new, clusters, n_boot)
                    acc0, lo0, hi0 = cluster_bootstrap(old, clusters, n_boot)
                    diff, dlo, dhi = paired_cluster_bootstrap(old, new, clusters, n_boot)
                    row.update(accuracy=acc, ci_low=lo, ci_high=hi, base_accuracy=acc0, base_ci_low=lo0,
                               base_ci_high=hi0, diff=diff, diff_low=dlo, diff_high=dhi,
                               p=cluster_signflip_p(old, new, clusters))
                    rows.append(row)
    for key in {(r["system"], r["scoring"], r["group"]) for r in rows if "p" in r}:
        family = [r for r in rows if (r["system"], r["scoring"], r["group"]) == key]
        for r, adjusted in zip(family, holm([r["p"] for r in family])):
            r["p_holm"] = adjusted
    return rows


def guesser_table(items: list[dict], flags: dict, frequencies: dict) -> list[dict]:
    """The no-memory guesser per category and split (expected accuracy)."""
    from streamlearn.evaluate.guesser import guess

    rows: dict[tuple, list[float]] = {}
    for i in items:
        g = guess(i, frequencies)
        for key in (("all", i.get("split") or "heldout"), (i["category"], i.get("split") or "heldout")):
            rows.setdefault(key, []).append(g)
    return [{"category": c, "split": s, "n": len(v), "accuracy": float(np.mean(v))} for (c, s), v in sorted(rows.items())]


def split_summary(items: list[dict], split: dict | None) -> dict:
    out = {"items_trained": sum(1 for i in items if i.get("split") == H.TRAINED),
           "items_heldout": sum(1 for i in items if i.get("split") != H.TRAINED)}
    if split:
        out.update(facts=len(split["facts"]), facts_heldout=sum(1 for f in split["facts"] if f["split"] == H.HELDOUT),
                   heldout_chunks=split["heldout_chunks"], seed=split["seed"],
                   heldout_fraction=split["heldout_fraction"], heldout_chunk_fraction=split["heldout_chunk_fraction"],
                   dropped=len(split.get("dropped", [])))
    return out


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
    retention: dict[str, dict[str, dict[str, float]]] = {}
    for a in answers:
        if a["correct"] is None or a.get("evidence_day") is None:
            continue
        cell = retention.setdefault(a["system"], {}).setdefault(str(a["evidence_day"]), {})
        cell.setdefault(a["checkpoint"], []).append(bool(a["correct"]))
    retention = {s: {d: {c: float(np.mean(v)) for c, v in cols.items()} for d, cols in days.items()}
                 for s, days in retention.items()}
    return {"accuracy": table, "retention": retention, "ungraded": ungraded}


def to_csv(results: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["system", "scoring", "checkpoint", "group", "n", "clusters", "accuracy", "ci_low", "ci_high",
                "base_accuracy", "diff", "diff_low", "diff_high", "p", "p_holm", "guesser"])
    for r in results.get("verdict", []):
        w.writerow([r["system"], r["scoring"], r["checkpoint"], r["group"], r["n"], r["n_clusters"]]
                   + [f"{r[k]:.4f}" if isinstance(r.get(k), float) else "" for k in
                      ("accuracy", "ci_low", "ci_high", "base_accuracy", "diff", "diff_low", "diff_high", "p",
                       "p_holm", "guesser")])
    return buf.getvalue()


def summary_lines(results: dict) -> list[str]:
    lines = []
    scoring = results.get("mc_scoring")
    for r in results.get("verdict", []):
        if r["scoring"] != scoring:
            continue
        if "diff" in r:
            lines.append(f"eval {r['system']:>7} {r['checkpoint']:>6} {r['group']:>9}: {r['accuracy']:.1%} vs "
                         f"day0 {r['base_accuracy']:.1%}, diff {r['diff']:+.1%} [{r['diff_low']:+.1%}, "
                         f"{r['diff_high']:+.1%}], p={r['p']:.3g} (Holm {r['p_holm']:.3g}), n={r['n']} in "
                         f"{r['n_clusters']} clusters{' (under 30: the CI is indicative only)' if r['few_clusters'] else ''}; "
                         f"guesser {r['guesser']:.1%}")
        else:
            lines.append(f"eval {r['system']:>7} {r['checkpoint']:>6} {r['group']:>9}: {r['accuracy']:.1%} "
                         f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}], n={r['n']}")
    c = results.get("contamination") or {}
    if c:
        held = c.get("heldout_ids") or []
        lines.append(f"eval contamination audit: {c['flagged']} items found in training targets "
                     f"({c['flagged_trained']} QA-trained, {c['flagged_heldout']} held out: out of the verdict"
                     + (f": {', '.join(held[:12])}{' ...' if len(held) > 12 else ''}" if held else "") + ")")
    return lines
