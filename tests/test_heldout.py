"""The held-out protocol's mechanics: the split (seeded, disjoint, recorded, sealed), training that
never takes a held-out item and refuses a corpus that would, the contamination audit (it catches a
planted item and ignores the fact inside a description), bank/run date checks, groups and
placebo, the no-memory guesser and the cluster statistics.

Run: python -m pytest tests/test_heldout.py -q
"""

from __future__ import annotations

import json
from itertools import product

import pytest
from trainkit import make_train_corpus

from streamlearn.corpus import heldout as H
from streamlearn.core.errors import StreamlearnError
from streamlearn.evaluate import bank as B
from streamlearn.corpus import questionbank as QB
from streamlearn.corpus.contamination import audit
from streamlearn.evaluate.guesser import cue, guess
from streamlearn.evaluate.stats import cluster_signflip_p, holm, paired_cluster_bootstrap
from streamlearn.core.config import load_train_config
from streamlearn.corpus.targets import build_specs

FAST = {"lr": 1e-3, "warmup_steps": 1, "require_sealed_bank": True, "targets": ["description", "qa_text"]}


def facts(days=3, chunks=4, per=5):
    return [{"fact": f"d{d}c{c}#{k}", "chunk_id": f"d{d}c{c}", "day": d}
            for d in range(1, days + 1) for c in range(chunks) for k in range(per)]


def test_split_is_seeded_disjoint_and_keeps_both_groups_per_chunk():
    fs = facts()
    a = H.split_facts(fs, seed=0, heldout_fraction=0.5, heldout_chunk_fraction=0.25)
    assert a == H.split_facts(fs, seed=0, heldout_fraction=0.5, heldout_chunk_fraction=0.25)  # recorded = redone
    assert a != H.split_facts(fs, seed=1, heldout_fraction=0.5, heldout_chunk_fraction=0.25)
    assert set(a["assign"]) == {f["fact"] for f in fs} and set(a["assign"].values()) == {H.TRAINED, H.HELDOUT}
    whole = a["heldout_chunks"]
    assert sorted(c[:2] for c in whole) == ["d1", "d2", "d3"]  # one whole chunk per day (4 chunks x 0.25)
    for cid in {f["chunk_id"] for f in fs}:
        splits = {a["assign"][f["fact"]] for f in fs if f["chunk_id"] == cid}
        assert splits == ({H.HELDOUT} if cid in whole else {H.TRAINED, H.HELDOUT})


@pytest.fixture()
def sealed(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=4, signs=4, train=FAST)
    B.run_questions(corpus, "main", do_seal=True)
    return corpus


def test_bank_records_the_split_and_its_items(sealed):
    items = QB.load_bank(sealed, "main")
    split = QB.load_split(sealed, "main")
    by_fact = {f["fact"]: f["split"] for f in split["facts"]}
    assert json.loads(QB.seal_path(sealed, "main").read_text())["split_sha256"]
    generated = [i for i in items if i["id"].startswith("q")]
    signs: dict[int, set] = {}
    for path in (sealed.root / "descriptions").glob("*.json"):
        doc = json.loads(path.read_text())
        signs.setdefault(doc["day_index"], set()).update(t["text"] for t in doc["on_screen_text"])
    assert generated and all(i["split"] == by_fact[i["unit"]] for i in generated)
    assert {i["variant"] for i in generated} == {"original", "paraphrase", "reverse"}
    for i in generated:
        if i["variant"] != "original":  # a reworded or reversed question, never the original behind a prefix
            fact = next(f for f in split["facts"] if f["fact"] == i["unit"])
            assert fact["question"] not in i["question"]
        if i["answer_type"] == "mc":
            assert cue(i["question"], i["answer"]) < B.LEAK
            if i["category"] == "ocr" and i["variant"] == "original":  # distractors: signs of the same day
                assert set(i["options"]) <= signs[i["evidence_day"]], i
    assert all(i["split"] == H.HELDOUT for i in items if i["id"][0] in "xn")
    from streamlearn.core.textnorm import normalize

    assert len({normalize(i["question"]) for i in items}) == len(items)  # a question determines its answer
    # the split file was sealed with the bank: changing it is refused
    path = QB.split_path(sealed, "main")
    path.write_text(path.read_text().replace('"trained"', '"heldout"', 1))
    with pytest.raises(StreamlearnError, match="held-out split of question bank 'main'.*changed since it was sealed"):
        QB.load_bank(sealed, "main")


def test_training_takes_only_qa_trained_facts(sealed):
    cfg = load_train_config(sealed.config.train)
    c = H.load_constraints(sealed.root / "questions")
    by_day, _ = build_specs(sealed, cfg, None, c)
    trained_q = {s.target.splitlines()[0][3:] for d in by_day.values() for s in d if s.kind == "qa_text"}
    split = QB.load_split(sealed, "main")
    assert trained_q == {f["question"] for f in split["facts"] if f["split"] == H.TRAINED}
    everything, _ = build_specs(sealed, cfg, None, None)
    assert len([s for d in everything.values() for s in d if s.kind == "qa_text"]) > len(trained_q)
    texts = [(s.key, s.target) for d in by_day.values() for s in d]
    assert c.violations(texts) == []


def test_train_refuses_a_planted_heldout_question_and_a_missing_bank(sealed, tmp_path, run_cli):
    held = next(i for i in QB.load_bank(sealed, "main") if i["split"] == H.HELDOUT and i["id"].startswith("q"))
    cid = held["evidence"]["chunk_ids"][0]
    path = sealed.root / "descriptions" / f"{cid}.json"
    doc = json.loads(path.read_text())
    doc["notable"].append(f"Someone asked: {held['question']} {held['answer']}")
    path.write_text(json.dumps(doc))
    res = run_cli("train", sealed.root)
    assert res.exit_code == 1
    assert (f"train would train on a held-out question: target {cid}/description: item {held['id']} of sealed "
            "bank 'main'") in res.stderr and "nothing was trained" in res.stderr
    assert not (sealed.root / "runs" / "main" / "export").exists()
    bare = make_train_corpus(tmp_path / "bare", days=1, chunks_per_day=1, train=FAST)
    res = run_cli("train", bare.root)
    assert res.exit_code == 1 and "no sealed question bank: seal one before training" in res.stderr


def test_audit_flags_a_planted_item_and_not_the_fact_in_a_description():
    items = [{"id": "q1", "unit": "u1", "question": "What did the sign read at 12:00:05 on day 2?", "answer": "GATE 27"},
             {"id": "q2", "unit": "u2", "question": "What did the sign read at 12:00:10 on day 2?", "answer": "EXIT 4"},
             {"id": "q2r", "unit": "u2", "question": 'On day 2, when did "EXIT 4" appear?', "answer": "12:00:10"},
             {"id": "q3", "unit": "u3", "question": "Which city was the streamer in at 12:30 on day 2?",
              "answer": "Denver"}]
    targets = [
        # the description: the facts themselves, by design
        {"key": "c1/description", "target": 'On screen: "GATE 27" (12:00:05); "EXIT 4" (12:00:10). Denver.'},
        # a QA-trained pair with the same template: shares "what did the sign read at 12 00", identifies nothing
        {"key": "c1/qa_text0", "target": "Q: What did the sign read at 12:00:15 on day 2?\nA: LANE 3"},
        # the planted item: q2 trained verbatim
        {"key": "c1/qa_text1", "target": "Q: What did the sign read at 12:00:10 on day 2?\nA: EXIT 4"},
        # q3 reworded into a training target
        {"key": "c2/notes", "target": "They asked which city was the streamer in at 12:30 on day 2 and it was Denver."},
    ]
    flags = audit(items, targets)
    assert flags["q1"]["flags"] == [] and flags["q2r"]["flags"] == []
    # windows stay within a line: the 13-word ones that joined the question line to the answer line are gone,
    # the item is still caught by its question and its answer with it
    assert flags["q2"]["flags"] == ["answer_with_question", "ngram8", "question"]
    assert flags["q2"]["targets"] == ["c1/qa_text1"]
    assert {"ngram8", "answer_with_question"} <= set(flags["q3"]["flags"]) and flags["q3"]["targets"] == ["c2/notes"]


def test_eval_refuses_a_bank_sealed_after_the_run_started(sealed):
    from streamlearn.evaluate.run import run_checks
    from streamlearn.corpus.runrecord import start_heldout

    c = H.load_constraints(sealed.root / "questions")
    start_heldout(sealed.root / "runs" / "main", c.banks)
    assert run_checks(sealed, "main", "main")["banks"][0]["name"] == "main"
    items = QB.load_bank(sealed, "main")
    B.write_bank(sealed, "late", items[:5], split=QB.load_split(sealed, "main"))
    B.seal(sealed, "late")
    with pytest.raises(StreamlearnError, match=r"question bank 'late' \(sealed at .*\) was not sealed when run 'main' "
                                               r"started training .* evaluate with a bank sealed before the run"):
        run_checks(sealed, "main", "late")
    B.write_bank(sealed, "main", items[:-1], force=True, split=QB.load_split(sealed, "main"))
    B.seal(sealed, "main")
    with pytest.raises(StreamlearnError, match="question bank 'main' changed since run 'main' started training on it"):
        run_checks(sealed, "main", "main")


def test_groups_placebo_and_verdict_rows():
    from streamlearn.evaluate.run import verdict_table
    from streamlearn.corpus.heldout import group_of

    def item(i, day, split, cat="ocr"):
        return {"id": i, "category": cat, "evidence_day": day, "split": split, "answer": "A", "answer_type": "mc",
                "options": ["A", "B"], "question": "q?", "evidence": {"chunk_ids": [f"c{i}"]}}

    items = [item(f"t{k}", 1 + k % 2, H.HELDOUT) for k in range(8)] + [item("m0", 1, H.TRAINED),
                                                                       item("n0", None, H.HELDOUT, "abstention")]
    assert group_of(items[0], False, 1) == "transfer" and group_of(items[1], False, 1) == "placebo"
    assert group_of(items[1], False, 2) == "transfer" and group_of(items[0], True, 2) == "contaminated"
    assert group_of(items[8], False, 0) is None and group_of(items[8], False, 1) == "memorised"
    assert group_of(items[9], False, 2) is None
    answers = []
    for ckpt, day in (("day0", 0), ("day1", 1), ("day2", 2)):
        for it in items:
            right = ckpt != "day0" and it["evidence_day"] is not None and it["evidence_day"] <= day
            answers.append({"system": "weights", "checkpoint": ckpt, "id": it["id"], "correct": right,
                            "correct_logprob": right, "correct_calibrated": right})
    flags = {i["id"]: {"flags": []} for i in items}
    rows = verdict_table(answers, items, flags, {"day0": 0, "day1": 1, "day2": 2}, "calibrated", 200, {})
    get = {(r["checkpoint"], r["group"], r["scoring"]): r for r in rows}
    assert get[("day1", "transfer", "calibrated")]["n"] == 4 and get[("day1", "transfer", "calibrated")]["diff"] == 1.0
    assert get[("day1", "placebo", "calibrated")]["diff"] == 0.0  # evidence after day 1: unchanged
    assert get[("day2", "transfer", "calibrated")]["n"] == 8 and ("day2", "placebo", "calibrated") not in get
    assert get[("day1", "memorised", "logprob")]["n"] == 1
    assert all(r["few_clusters"] and r["guesser"] == 0.5 for r in rows)


def test_guesser_uses_wording_cues_and_answer_frequencies():
    leak = {"id": "a", "category": "ocr", "question": "What did the text on screen read on day 2?", "answer": "DAY 2",
            "answer_type": "mc", "options": ["DAY 2", "GATE 7", "EXIT 3"]}
    assert guess(leak, {}) == 1.0
    freq = {"original:place": {"miami": 5, "denver": 5, "boston": 1}}
    place = {"id": "b", "category": "place", "question": "Which city at 12:00?", "answer": "Miami",
             "answer_type": "mc", "options": ["Boston", "Miami", "Denver"]}
    assert guess(place, freq) == 0.5  # a tie between the two frequent cities: half credit
    count = {"id": "c", "category": "people", "question": "How many voices?", "answer": "2", "answer_type": "numeric"}
    assert guess(count, {"original:people": {"2": 9, "3": 1}}) == 1.0


def test_cluster_statistics():
    base = [False] * 12 + [True] * 4
    new = [True] * 12 + [True] * 4
    clusters = [f"c{i // 2}" for i in range(16)]
    diff, lo, hi = paired_cluster_bootstrap(base, new, clusters, 2000)
    assert diff == 0.75 and lo > 0.4 and hi <= 1.0
    # exact sign flip against brute force over the 6 clusters that changed
    p = cluster_signflip_p(base, new, clusters)
    sums = [2] * 6
    brute = sum(abs(sum(s * x for s, x in zip(signs, sums))) >= 12 for signs in product((-1, 1), repeat=6)) / 64
    assert p == brute == pytest.approx(2 / 64)
    assert cluster_signflip_p(base, base, clusters) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_eval_flags_heldout_items_a_run_trained_on_by_id(tmp_path, run_cli):
    """A run trained without a split (train.require_sealed_bank = false, every QA pair a target), then
    evaluated on a bank sealed afterwards: the audit names every held-out item the run trained on,
    and they are out of the verdict."""
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=2, signs=3,
                               train={**FAST, "require_sealed_bank": False})
    res = run_cli("train", corpus.root)
    assert res.exit_code == 0, res.output
    B.run_questions(corpus, "main", do_seal=True)
    res = run_cli("eval", corpus.root, "--systems", "weights")
    assert res.exit_code == 0, res.output
    assert "trained without a held-out split" in res.output
    held = [i["id"] for i in QB.load_bank(corpus, "main") if i["split"] == H.HELDOUT and i["variant"] == "original"
            and i["id"].startswith("q")]
    flags = json.loads((corpus.root / "evals/main-main/contamination.json").read_text())["items"]
    assert held and all("question" in flags[i]["flags"] for i in held)
    line = next(x for x in res.output.splitlines() if x.startswith("eval contamination audit"))
    assert all(i in line for i in held[:12])
    results = json.loads((corpus.root / "evals/main-main/results.json").read_text())
    assert set(held) <= set(results["contamination"]["heldout_ids"])
    items = QB.load_bank(corpus, "main")
    clean = [i for i in items if i["split"] == H.HELDOUT and i["evidence_day"] is not None
             and i["category"] != "abstention" and not flags[i["id"]]["flags"]]
    transfer = [r for r in results["verdict"] if r["group"] == "transfer" and r["scoring"] == results["mc_scoring"]]
    assert [r["n"] for r in transfer] == ([len(clean)] if clean else [])  # the flagged ones are not counted
    answers = [json.loads(x) for x in (corpus.root / "evals/main-main/answers.jsonl").read_text().splitlines()]
    assert all(a["contaminated"] for a in answers if a["id"] in held)


def test_a_question_asked_with_two_answers_is_dropped():
    """Two chunks of day 2 show "DAY2": "when did it first appear?" has two answers, so neither is
    asked; the same question with the same answer is asked once."""
    def item(qid, q, a):
        return {"id": qid, "question": q, "answer": a}

    items = [item("q1r", 'On day 2, when did "DAY2" first appear?', "13:30:00"),
             item("q2r", 'On day 2, when did "DAY2" first appear?', "13:30:30"),
             item("q3", "Which city on day 2?", "Denver"), item("q4p", "which city on day 2", "denver"),
             item("q5", "How many tacos?", "4")]
    dropped: list[dict] = []
    kept = B._one_answer_per_question(items, dropped)
    assert [i["id"] for i in kept] == ["q3", "q5"]
    reasons = {d["id"]: d["reason"] for d in dropped}
    assert reasons["q1r"].startswith("ambiguous: 2 items ask this question with 2 different answers (q1r, q2r)")
    assert reasons["q4p"] == "the same question and answer as q3"


def test_seal_refuses_a_bank_without_its_split(tmp_path, run_cli):
    """`questions --seal` stopped between the bank and its split: the next seal refuses the incomplete pair
    (it used to seal the bank with split_sha256 null, and training then had no held-out protection)."""
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=2, signs=3, train=FAST)
    B.run_questions(corpus, "main")  # generated, not sealed yet
    split = QB.split_path(corpus, "main")
    kept = split.read_text()
    split.unlink()  # as if killed before the split was written
    res = run_cli("questions", corpus.root, "--seal")
    assert res.exit_code == 1 and res.stderr.startswith("error: question bank 'main' has held-out items but no split "
                                                        "file (main.split.json)") and res.stderr.count("\n") == 1
    assert not QB.seal_path(corpus, "main").exists()
    other = json.loads(kept)
    other["bank_sha256"] = "0" * 64  # a split written for another version of the bank
    split.write_text(json.dumps(other))
    res = run_cli("questions", corpus.root, "--seal")
    assert res.exit_code == 1 and "was written for another version of bank 'main'" in res.stderr
    split.write_text(kept)
    res = run_cli("questions", corpus.root, "--seal")
    assert res.exit_code == 0, res.stderr
    assert json.loads(QB.seal_path(corpus, "main").read_text())["split_sha256"]


def test_bad_descriptions_and_bank_lines_get_one_line_with_the_file(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=2, signs=2, train=FAST)
    path = corpus.root / "descriptions" / "vid01_c001.json"
    good = path.read_text()
    for bad, text in (("{not json", "is not valid JSON (line 1"), ("[1, 2]", "is a JSON list, not an object"),
                      (json.dumps({**json.loads(good), "qa": "x"}), "fails the schema (qa must be a list")):
        path.write_text(bad)
        res = run_cli("questions", corpus.root)
        assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith(f"error: description vid01_c001.json {text}"), res.stderr
        assert "streamlearn describe CORPUS --force --only vid01_c001" in res.stderr
    path.write_text(good)
    assert run_cli("questions", corpus.root).exit_code == 0
    bank = QB.bank_path(corpus, "main")
    lines = bank.read_text().splitlines()
    for bad, text in (("{oops", "main.jsonl line 2: not JSON"),
                      (json.dumps({**json.loads(lines[1]), "evidence": "vid01_c000"}),
                       "main.jsonl line 2: field 'evidence' must be an object")):
        bank.write_text("\n".join([lines[0], bad] + lines[2:]) + "\n")
        res = run_cli("eval", corpus.root)
        assert res.exit_code == 1 and text in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_a_wrong_eval_command_costs_nothing_finished(tmp_path, run_cli, monkeypatch):
    """Issue 24 (1): an unknown system and an openai system without its settings are refused before any
    pass, with the valid choices; a finished evaluation is reused whether the corpus is typed relative or
    absolute; one that covered more checkpoints is kept aside, not overwritten by a narrower one."""
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=2, signs=2, train=FAST)
    B.run_questions(corpus, "main", do_seal=True)
    assert run_cli("train", corpus.root).exit_code == 0
    ev = corpus.root / "evals" / "main-main"
    res = run_cli("eval", corpus.root, "--systems", "weigths")
    assert res.exit_code == 1 and not ev.exists()
    assert "unknown system 'weigths' in --systems; choose from weights, video, rag, openai" in res.output
    res = run_cli("eval", corpus.root, "--bank", "mian")
    assert res.exit_code == 1 and not ev.exists()
    assert "no question bank 'mian' (questions/mian.jsonl); banks here: main (pass --bank NAME)" in res.output
    res = run_cli("eval", corpus.root, "--checkpoints", "day0,day9")
    assert res.exit_code == 1 and "checkpoint 'day9' not found; available: day0, day1" in res.output
    res = run_cli("eval", corpus.root, "--systems", "weights,openai")
    assert res.exit_code == 1 and not ev.exists()
    assert "the openai system needs eval.openai_model and eval.openai_endpoint" in res.output
    res = run_cli("eval", corpus.root, "--systems", "weights")
    assert res.exit_code == 0
    passes = [x for x in res.output.splitlines() if x.startswith("eval weights day")]
    assert [x.split(":")[0] for x in passes] == ["eval weights day0", "eval weights day1"]  # one line a pass
    groups = [x for x in res.output.splitlines() if x.startswith("eval weights   day1")]
    assert groups and all("(under 30: the CI is indicative only)" in x for x in groups)  # a tiny corpus
    assert "too few for the CI" not in res.output
    finished = json.loads((ev / "results.json").read_text())
    assert finished["checkpoints"] == ["day0", "day1"] and finished["verdict"]
    from streamlearn.corpus.verdict import headline  # status headlines the verdict, not the all-items accuracy

    line = next(x for x in run_cli("status", corpus.root).output.splitlines() if x.startswith("eval main-main"))
    assert line == f"eval main-main: {finished['items']} items; {headline(finished)}" and "day0" in line
    monkeypatch.chdir(corpus.root.parent)  # the same corpus, typed relative
    res = run_cli("--quiet", "eval", corpus.root.name, "--systems", "weights")
    assert res.exit_code == 0 and "reusing 4 answer sets" not in res.output  # quiet: only the verdict
    verdict = [x for x in res.output.splitlines() if x.startswith("[verdict]")]
    assert verdict and ("answers held-out facts" in verdict[0] or "no verdict on transfer" in verdict[0])
    assert any(x.startswith("[verdict] forgetting: general-set loss") and x.endswith(("PASS", "EXCEEDED"))
               for x in verdict), verdict
    res = run_cli("eval", corpus.root.name, "--systems", "weights")
    assert res.exit_code == 0 and "reusing 4 answer sets" in res.output
    assert res.output.splitlines()[-1].startswith("eval: results in")
    res = run_cli("eval", corpus.root.name, "--systems", "weights", "--checkpoints", "day1")
    assert res.exit_code == 0 and "also covered day0; it is kept in" in res.output
    res = run_cli("report", corpus.root, "--name", "main")
    assert res.exit_code == 1 and "no evaluation 'main'; evaluations here: main-main (pass --name NAME)" in res.output
    kept = list((ev / "superseded").glob("*/results.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["checkpoints"] == ["day0", "day1"]
    assert json.loads((ev / "results.json").read_text())["checkpoints"] == ["day1"]
