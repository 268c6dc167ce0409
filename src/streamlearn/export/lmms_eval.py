"""The question bank as lmms-eval tasks that score like `streamlearn eval`'s `weights` system.

One task per Day-N (`streamlearn_<bank>_day<N>`): an item's group (memorised / transfer / placebo /
contaminated) depends on the checkpoint's day, so each task holds the bank with the groups of its
Day-N, and is run against that checkpoint (and against Day-0, the baseline on the same items).
Multiple-choice items are scored by log-likelihood over their options, calibrated as `eval` does
(the option's mean log-probability after the question minus after the prompt with no question,
`eval.mc_scoring`); other items are decoded greedily and graded by streamlearn's graders. Metrics
come per group and per evidence day; logged samples carry the item id, group and evidence day (in
`target`). The model is streamlearn's own (`--model streamlearn`, `evaluate/lmms_model.py`), which
asks in the layout training used.

lmms-eval 0.7.3 hands scores to `process_results` as strings and builds no working unconditional
requests for multiple choice, so the task class builds its requests itself (`utils.py`).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus.contamination import audit
from streamlearn.corpus.layout import Corpus
from streamlearn.corpus.heldout import TRAINED, group_of
from streamlearn.core.files import atomic_write_text
from streamlearn.corpus.questionbank import load_bank
from streamlearn.corpus.runrecord import read_targets

PRIOR_CONTEXT = "Q: \nA:"  # the prompt with no question: each option's prior (evaluate/lmms_model.py)

UTILS = r'''"""lmms-eval task code for a streamlearn question bank (written by `streamlearn export --format lmms-eval`).
Run with streamlearn's model, which asks in the layout training used:
    lmms-eval --model streamlearn --model_args pretrained=RUN/export/day-NN --tasks TASK --include_path THIS_FOLDER
"""
import ast
import copy
import json

from lmms_eval.api.instance import Instance
from lmms_eval.api.task import ConfigurableTask


def doc_to_visual(doc):
    return []  # the weights system: the question alone (the model adds the blank video training used)


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return f"Q: {doc['question']}\nA:"


def doc_to_choice(doc):
    return list(doc["options"] or [])


def doc_to_target(doc):
    """What logged samples show as `target`: the item, its group and evidence day, and its answer."""
    return json.dumps({"id": doc["id"], "group": doc["group"], "evidence_day": doc["evidence_day"],
                       "answer": doc["answer"]})


class StreamlearnTask(ConfigurableTask):
    """Multiple choice: each option after the question and after the prompt with no question (its
    prior); other items: one greedy generation."""

    def __init__(self, config=None, **kwargs):
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def construct_requests(self, doc_id, ctx, **kwargs):
        split = kwargs["metadata"]["split"]
        task = self.config.task
        doc = self.dataset[split][doc_id]
        meta = self.config.metadata or {}
        if doc["answer_type"] == "mc":
            conts = [f"{self.config.target_delimiter}{o}" for o in doc["options"]]
            args = [(ctx, c, self.doc_to_visual, doc_id, task, split) for c in conts]
            args += [(meta["prior_context"], c, self.doc_to_visual, doc_id, task, split) for c in conts]
            return [Instance(request_type="loglikelihood", arguments=a, idx=i, task_name=task, doc_id=doc_id, **kwargs)
                    for i, a in enumerate(args)]
        gen = {"max_new_tokens": int(meta.get("max_new_tokens", 24)), "do_sample": False, "until": ["\n"]}
        return Instance(request_type="generate_until", arguments=(ctx, copy.deepcopy(gen), self.doc_to_visual, doc_id,
                                                                   task, split), idx=0, task_name=task, doc_id=doc_id,
                        **kwargs)


def _score(r):
    return float((ast.literal_eval(r) if isinstance(r, str) else r)[0])  # lmms-eval 0.7.3 passes "(ll, greedy)"


def _first_max(xs):
    return max(range(len(xs)), key=lambda i: (xs[i], -i))


def process_results(doc, results):
    if doc["answer_type"] == "mc":
        n = len(doc["options"])
        raw = [_score(r) for r in results[:n]]
        prior = [_score(r) for r in results[n:2 * n]]
        calibrated = [a - b for a, b in zip(raw, prior)]
        ok = {"calibrated": doc["options"][_first_max(calibrated)] == doc["answer"],
              "logprob": doc["options"][_first_max(raw)] == doc["answer"]}
        main, other = doc["mc_scoring"], "logprob" if doc["mc_scoring"] == "calibrated" else "calibrated"
        correct, correct_other = ok[main], ok[other]
    else:
        from streamlearn.evaluate.grading import grade_numeric, grade_short

        response = results[0] if results else ""
        if doc["answer_type"] == "short":
            correct = grade_short(response, doc["answer"], doc.get("aliases"))
        elif doc["answer_type"] == "numeric":
            correct = grade_numeric(response, doc["answer"], doc["numeric_tolerance"])
        else:
            return {}  # open answers need streamlearn's judge panel: not graded here, as eval without judges
        correct_other = correct
    out = {"acc": float(correct)}
    if doc["group"] != "none":
        out[f"acc_{doc['group']}"] = float(correct)
        out[f"acc_{doc['group']}_{'logprob' if doc['mc_scoring'] == 'calibrated' else 'calibrated'}"] = \
            float(correct_other)
        out[f"acc_{doc['group']}_ev{doc['evidence_day']}"] = float(correct)
    return out
'''


def task_docs(items: list[dict], flags: dict, day: int, mc_scoring: str, tolerance: float) -> list[dict]:
    out = []
    for it in items:
        group = group_of(it, bool(flags.get(it["id"], {}).get("flags")), day) or "none"
        out.append({"id": it["id"], "question": it["question"], "answer": it["answer"],
                    "aliases": list(it.get("aliases") or []), "answer_type": it["answer_type"],
                    "options": list(it.get("options") or []), "category": it["category"],
                    "split": it.get("split") or "heldout", "evidence_day": it.get("evidence_day"), "group": group,
                    "mc_scoring": mc_scoring, "numeric_tolerance": tolerance})
    return out


def task_yaml(task: str, docs_file: str, metrics: list[str], day: int) -> str:
    """The task's YAML; the data path is relative to the YAML's folder (lmms-eval resolves it there) and
    every string is JSON-quoted, so no path or name can break the YAML."""
    q = json.dumps
    lines = [f"task: {q(task)}", "class: !function utils.StreamlearnTask", "dataset_path: json", "dataset_kwargs:",
             "  data_files:", f"    train: {q(docs_file)}", "test_split: train", "output_type: multiple_choice",
             "doc_to_visual: !function utils.doc_to_visual", "doc_to_text: !function utils.doc_to_text",
             "doc_to_choice: !function utils.doc_to_choice", "doc_to_target: !function utils.doc_to_target",
             f"target_delimiter: {q(' ')}", "process_results: !function utils.process_results", "metric_list:"]
    lines += [f"  - metric: {q(m)}\n    aggregation: mean\n    higher_is_better: true" for m in metrics]
    lines += ["metadata:", "  version: 1.0", f"  checkpoint_day: {day}", f"  prior_context: {q(PRIOR_CONTEXT)}",
              "  max_new_tokens: 24"]
    return "\n".join(lines) + "\n"


def metric_names(docs: list[dict], mc_scoring: str) -> list[str]:
    other = "logprob" if mc_scoring == "calibrated" else "calibrated"
    names = ["acc"]
    for g in sorted({d["group"] for d in docs} - {"none"}):
        names += [f"acc_{g}", f"acc_{g}_{other}"]
        names += [f"acc_{g}_ev{e}" for e in sorted({d["evidence_day"] for d in docs if d["group"] == g})]
    return names


def write_task(corpus: Corpus, bank: str, out: Path, run: str) -> Path:
    """The task folder (every check first, then written whole and swapped in for an earlier one)."""
    from streamlearn.export.folder import MARKER, publish

    items = load_bank(corpus, bank)
    targets = read_targets(corpus.run_dir(run))
    flags = audit(items, targets) if targets else {}
    cfg = corpus.config.eval
    days = sorted({int(i["evidence_day"]) for i in items if i.get("evidence_day") is not None} |
                  {int(t["trained_on"]) for t in targets})
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tasks = {}
        for day in days:
            task = f"streamlearn_{bank}_day{day}"
            docs = task_docs(items, flags, day, cfg.mc_scoring, cfg.numeric_tolerance)
            atomic_write_text(tmp / f"{task}.jsonl", "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
            atomic_write_text(tmp / f"{task}.yaml", task_yaml(task, f"{task}.jsonl",
                                                             metric_names(docs, cfg.mc_scoring), day))
            tasks[task] = {"day": day, "items": len(docs), "groups": dict(Counter(d["group"] for d in docs))}
        atomic_write_text(tmp / "utils.py", UTILS)
        contaminated = sorted(i for i, f in flags.items() if f["flags"])
        manifest = {"format": "lmms-eval", "bank": bank, "run": run, "tasks": tasks, "mc_scoring": cfg.mc_scoring,
                    "flagged_by_run_targets": contaminated,
                    "trained_items": sum(1 for i in items if i.get("split") == TRAINED)}
        atomic_write_text(tmp / "README.md", lmms_readme(corpus, bank, run, manifest, out))
        atomic_write_text(tmp / MARKER, json.dumps(manifest, indent=1))
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.info(f"export: bank {bank!r} ({len(items)} items) as {len(tasks)} lmms-eval task(s), one per Day-N -> {out}")
    return out


def lmms_readme(corpus: Corpus, bank: str, run: str, manifest: dict, out: Path) -> str:
    first = next(iter(manifest["tasks"]), "streamlearn_main_day1")
    day = manifest["tasks"].get(first, {}).get("day", 1)
    rows = "\n".join(f"| {t} | Day-{m['day']} | {m['items']} | "
                     + ", ".join(f"{g} {n}" for g, n in sorted(m["groups"].items())) + " |"
                     for t, m in manifest["tasks"].items())
    return f"""# streamlearn question bank {bank!r} as lmms-eval tasks

One task per Day-N checkpoint of run {run!r}: the groups depend on the checkpoint's day.

| task | checkpoint | items | groups |
|---|---|---|---|
{rows}

Run each task against its own checkpoint and against Day-0 (the baseline on the same items), with
streamlearn's model (`pip install 'streamlearn[lmms]'`), from any folder:

    lmms-eval --model streamlearn --model_args pretrained={corpus.root.resolve()}/runs/{run}/export/day-{day:02d} \\
        --tasks {first} --include_path {out} --log_samples --output_path out
    lmms-eval --model streamlearn --model_args pretrained={corpus.root.resolve()}/runs/{run}/export/day-00 \\
        --tasks {first} --include_path {out} --log_samples --output_path out-day0

Metrics: `acc` (every graded item), `acc_<group>` for memorised (QA-trained), transfer (held out,
evidence on a trained day: the hypothesis), placebo (held out, evidence after the checkpoint) and
contaminated (held out but found in the run's targets by the audit: out of the verdict), scored as
`eval.mc_scoring` = {manifest['mc_scoring']} and under the other rule (`_logprob` / `_calibrated`),
and `acc_<group>_ev<d>` per evidence day. Each logged sample's `target` holds the item id, group,
evidence day and answer. The difference Day-N minus Day-0 per group, with cluster CIs, is what
`streamlearn eval` reports; lmms-eval gives the accuracies.
"""
