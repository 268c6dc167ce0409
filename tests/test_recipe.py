"""The knowledge recipe's levers ([train]): diverse fact renderings that never hold a bank question,
the order of a day's samples, a lower peak for later days, and the pull toward the starting weights;
a run with all of them resumes to the same losses.

Run: python -m pytest tests/test_recipe.py -q
"""

from __future__ import annotations

import json

import pytest
import torch
from trainkit import make_train_corpus

from streamlearn.corpus import heldout as H
from streamlearn.corpus import questionbank as QB
from streamlearn.core.config import load_train_config
from streamlearn.corpus.contamination import audit, contamination_summary
from streamlearn.evaluate import bank as B
from streamlearn.corpus.targets import SampleSpec, build_specs
from streamlearn.train.engine import train
from streamlearn.train.samples import day_epochs

FAST = {"lr": 1e-3, "warmup_steps": 1, "require_sealed_bank": False, "keep_days": 1, "keep_last": 1}


def test_a_dozen_renderings_differ_and_hold_no_bank_question(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=2, signs=3,
                               train={**FAST, "targets": ["facts"], "fact_variants": 12})
    B.run_questions(corpus, "main", do_seal=True)
    c = H.load_constraints(corpus.root / "questions")
    by_day, _ = build_specs(corpus, load_train_config(corpus.config.train), None, c)
    facts = [s for d in by_day.values() for s in d]
    per_chunk: dict[str, list[str]] = {}
    for s in facts:
        per_chunk.setdefault(s.meta["chunk_id"], []).append(s.target)
    assert all(len(v) == 12 and len(set(v)) == 12 for v in per_chunk.values())  # twelve distinct renderings
    first_lines = {t.splitlines()[0] for v in per_chunk.values() for t in v}
    assert len(first_lines) > 24  # the order and the wording vary, not only the template of one fact
    assert c.violations([(s.key, s.target) for s in facts]) == []
    items = QB.load_bank(corpus, "main")
    flags = audit(items, [{"key": s.key, "target": s.target} for s in facts])
    assert contamination_summary(items, flags)["flagged_heldout"] == 0
    # a sign's fact is stated in both directions, with its day and clock: text first, and time first
    lines = [ln for t in per_chunk["vid01_c000"] for ln in t.splitlines() if '"GATE 10"' in ln]  # the shown fact
    assert lines and all("12:00:05" in ln and "day 1" in ln.lower() for ln in lines)
    assert any(ln.index("GATE 10") < ln.index("12:00:05") for ln in lines)
    assert any(ln.index("12:00:05") < ln.index("GATE 10") for ln in lines)


def test_day_order_qa_first_and_shuffled():
    specs = [SampleSpec(f"c{k}/{kind}", kind, 1, [], "t", "i") for k in range(3) for kind in ("description", "qa_text")]
    stream = day_epochs(specs, 2, "stream", 0, 1)
    assert [s.key for s in stream] == [s.key for s in specs] * 2
    qa_first = day_epochs(specs, 2, "qa_first", 0, 1)
    assert [s.kind for s in qa_first[:6]] == ["qa_text"] * 3 + ["description"] * 3
    shuffled = day_epochs(specs, 2, "shuffled", 0, 1)
    assert shuffled == day_epochs(specs, 2, "shuffled", 0, 1)  # seeded: a resumed run draws the same
    assert sorted(s.key for s in shuffled[:6]) == sorted(s.key for s in specs)  # each epoch is every sample once
    assert shuffled[:6] != shuffled[6:] and [s.key for s in shuffled[:6]] != [s.key for s in specs]


def test_later_days_peak_lower_and_the_anchor_holds_the_weights(tmp_path):
    corpus = make_train_corpus(tmp_path / "a", days=2, chunks_per_day=2,
                               train={**FAST, "lr_day_decay": 0.5, "warmup_steps": 0})
    train(corpus, load_train_config(corpus.config.train))
    metrics = [json.loads(x) for x in (corpus.root / "runs/main/metrics.jsonl").read_text().splitlines()]
    peak = {d: max(m["lr"] for m in metrics if m["day"] == d) for d in (1, 2)}
    assert peak[1] == pytest.approx(1e-3) and peak[2] == pytest.approx(0.5e-3)
    # anchor_decay = 1 / lr: at the peak a step ends back on the starting weights; as the lr decays the pull
    # weakens with it, so Day-2 stays near Day-0
    from transformers import Qwen2_5_VLForConditionalGeneration

    held = make_train_corpus(tmp_path / "b", days=2, chunks_per_day=2,
                             train={**FAST, "anchor_decay": 1000.0, "export_dtype": "float32"})
    train(held, load_train_config(held.config.train))
    export = held.root / "runs/main/export"
    day0 = Qwen2_5_VLForConditionalGeneration.from_pretrained(export / "day-00").state_dict()
    day2 = Qwen2_5_VLForConditionalGeneration.from_pretrained(export / "day-02").state_dict()
    free = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=2, train={**FAST, "export_dtype": "float32"})
    train(free, load_train_config(free.config.train))
    moved = Qwen2_5_VLForConditionalGeneration.from_pretrained(free.root / "runs/main/export/day-02").state_dict()
    drift = sum(float((day2[k].float() - day0[k].float()).norm()) for k in day0)
    free_drift = sum(float((moved[k].float() - day0[k].float()).norm()) for k in day0)
    assert drift < 0.1 * free_drift and free_drift > 0


def test_a_run_with_every_lever_resumes_to_the_same_losses(tmp_path):
    levers = {**FAST, "order": "shuffled", "lr_day_decay": 0.7, "anchor_decay": 0.1, "epochs_per_day": 1,
              "grad_accum": 2, "stream_replay": 0.25, "general_replay": 0.2, "checkpoint_every": 1,
              "targets": ["description", "facts"], "fact_variants": 1}
    whole = make_train_corpus(tmp_path / "whole", days=2, chunks_per_day=2, train=levers)
    reference = train(whole, load_train_config(whole.config.train))
    parts = make_train_corpus(tmp_path / "parts", days=2, chunks_per_day=2, train=levers)
    cfg = load_train_config(parts.config.train)
    first = train(parts, cfg, max_steps=4)  # stops inside day 2 (3 steps a day), after its periodic checkpoint
    assert len(first.losses) == 4 and first.completed_days == [1] and len(reference.losses) > 4
    resumed = train(parts, cfg)
    assert resumed.losses == pytest.approx(reference.losses, rel=1e-5)
    assert torch.get_default_dtype() == torch.float32
    # each day: 4 samples of its own, stream replay 1 in 4 (day 2), then general rehearsal 1 in 5 of what is there
    kinds = {d: [r["kind"] for r in map(json.loads, (parts.root / f"runs/main/targets/day-0{d}.jsonl").open())]
             for d in (1, 2)}
    assert kinds[1].count("general") == 1 and kinds[2].count("general") == 1
    assert sum(k != "general" for k in kinds[2]) == 5  # its 4 and one replayed from day 1


def test_the_general_rehearsal_set_is_not_the_forgetting_check(tmp_path):
    """The packaged rehearsal set shares no question template and no answer with eval's general set, so
    rehearsal cannot teach the forgetting check's items; a user's own set is read, and bad lines refused."""
    import re
    from importlib import resources

    from streamlearn.core.errors import StreamlearnError
    from streamlearn.train.samples import general_pool, general_specs

    words = lambda s: set(re.findall(r"[a-z]+", s.lower()))  # noqa: E731
    check = [json.loads(x) for x in resources.files("streamlearn").joinpath("data/general_qa.jsonl").open()]
    rehearsal = general_specs("")
    assert len(rehearsal) >= 80 and all(s.kind == "general" and s.frames == [] for s in rehearsal)
    for s in rehearsal:
        for it in check:
            q, c = words(s.instruction), words(it["question"])
            assert len(q & c) / len(q | c) < 0.5, (s.instruction, it["question"])
            assert s.target != it["answer"]
    assert general_pool(rehearsal, 2, 0) == general_pool(rehearsal, 2, 0) != general_pool(rehearsal, 3, 0)
    own = tmp_path / "own.jsonl"
    own.write_text('{"question": "Q?", "answer": "A."}\n\n')
    assert [(s.instruction, s.target) for s in general_specs(str(own))] == [("Q?", "A.")]
    own.write_text('{"question": "Q?"}\n')
    with pytest.raises(StreamlearnError, match=r"own.jsonl line 1: not a JSON object with \"question\" and"):
        general_specs(str(own))
    with pytest.raises(StreamlearnError, match="is not a file; give a JSONL"):
        general_specs(str(tmp_path / "missing.jsonl"))
