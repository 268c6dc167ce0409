"""Evaluation units: graders on tricky cases, statistics against known values, the judge panel
against a local OpenAI-compatible server (agreeing, disagreeing, failing judges), bank import/seal.

Run: python -m pytest tests/test_eval_units.py -q
"""

from __future__ import annotations

import json

import pytest
from fake_chat import FakeChatServer, completion

from streamlearn.core.errors import StreamlearnError
from streamlearn.evaluate.grading import extract_letter, grade_numeric, grade_short, normalize, numbers_in
from streamlearn.evaluate.judges import JudgePanel, parse_judge_spec
from streamlearn.evaluate.stats import cluster_bootstrap, cohen_kappa

OPTS = ["Miami", "Boston", "Denver", "It never happened"]


@pytest.mark.parametrize("response,letter", [
    ("B", "B"), ("(C)", "C"), ("B.", "B"), ("The answer is (B) Boston.", "B"), ("answer: d", "D"),
    ("I think it was Boston, clearly.", "B"), ("Option C", "C"), ("It never happened.", "D"),
    ("Boston or Miami, hard to say", None), ("Z", None), ("I don't know", None),
])
def test_letter_extraction(response, letter):
    assert extract_letter(response, OPTS) == letter


@pytest.mark.parametrize("response,answer,aliases,ok", [
    ("They were in São Paulo.", "Sao Paulo", [], True),
    ("the BOSTON common", "Boston Common", [], True),
    ("Bostonian food", "Boston", [], False),  # whole words only
    ("ＮＹＣ it was", "New York", ["NYC"], True),  # full-width unicode alias
    ("at fenway", "Fenway Park", ["fenway"], True),
    ("an apple", "apple", [], True),
])
def test_short_answers(response, answer, aliases, ok):
    assert grade_short(response, answer, aliases) is ok


@pytest.mark.parametrize("response,answer,tol,ok", [
    ("They bought 14 dollars worth", "14", 0, True),
    ("fourteen", "14", 0, True),
    ("twenty-one tacos", "21", 0, True),
    ("$1,250.50 in total", "1250.5", 0, True),
    ("about 9", "10", 0.1, True),
    ("about 8", "10", 0.1, False),
    ("no idea", "3", 0, False),
])
def test_numeric_answers(response, answer, tol, ok):
    assert grade_numeric(response, answer, tol) is ok


def test_normalize_and_numbers():
    assert normalize("The Café — Día 1!") == "cafe dia 1"
    assert numbers_in("two and 3.5 and ninety nine") == [3.5, 2.0, 99.0]


def test_cluster_bootstrap():
    acc, lo, hi = cluster_bootstrap([True] * 10, [str(i) for i in range(10)])
    assert (acc, lo, hi) == (1.0, 1.0, 1.0)
    correct = [True, False] * 50
    acc, lo, hi = cluster_bootstrap(correct, [str(i) for i in range(100)], n_boot=4000)
    # independent items: close to the normal approximation 0.5 +- 1.96 * 0.05
    assert acc == 0.5 and lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    # the same outcomes in 10 perfectly correlated clusters: much wider
    clustered = [i < 50 for i in range(100)]
    _, lo2, hi2 = cluster_bootstrap(clustered, [str(i // 10) for i in range(100)], n_boot=4000)
    assert hi2 - lo2 > 2 * (hi - lo)


def test_cohen_kappa():
    assert cohen_kappa(["y", "n", "y", "n"], ["y", "n", "y", "n"]) == 1.0
    assert cohen_kappa(["y", "y", "n", "n"], ["y", "n", "y", "n"]) == 0.0
    from sklearn.metrics import cohen_kappa_score

    a, b = list("yynynnyyny"), list("yynnnyyyny")
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


class Judges:
    """Three fake judge models on one local server: how each answers is scripted by model name."""

    def __init__(self, behaviour: dict[str, str]):
        self.behaviour = behaviour
        self.calls: list[dict] = []
        self.server = FakeChatServer(self.reply)
        self.url = self.server.url

    def reply(self, body: dict, headers) -> tuple[int, dict | None, dict]:
        self.calls.append(body)
        how = self.behaviour[body["model"]]
        if how == "fail":
            return 500, None, {}
        user = json.loads(body["messages"][1]["content"])
        if how == "strict":
            verdict = user["candidate"].strip().lower() == user["reference"].lower()
        elif how == "lenient":
            verdict = True
        else:  # garbage
            verdict = "maybe"
        return 200, completion(json.dumps({"correct": verdict})), {}

    def panel(self, models: list[str]) -> JudgePanel:
        return JudgePanel([parse_judge_spec(f"{m}@{self.url}", "NO_SUCH_KEY_ENV") for m in models])

    def stop(self):
        self.server.stop()


def test_judge_panel_votes():
    srv = Judges({"a": "strict", "b": "strict", "c": "lenient", "d": "fail", "e": "garbage"})
    try:
        agree = srv.panel(["a", "b", "c"]).grade("Which city?", "Boston", ["Boston"], "Boston")
        assert agree == {"correct": True, "status": "graded", "votes": [True, True, True], "judge_errors": []}
        majority = srv.panel(["a", "b", "c"]).grade("Which city?", "Boston", ["Boston"], "Miami")
        assert majority["correct"] is False and majority["votes"] == [False, False, True]
        tie = srv.panel(["a", "c"]).grade("Which city?", "Boston", ["Boston"], "Miami")
        assert tie["correct"] is None and tie["status"] == "no_majority"
        failing = srv.panel(["d", "e"]).grade("Which city?", "Boston", ["Boston"], "Boston")
        assert failing["correct"] is None and failing["status"] == "judge_failed"  # never counted as wrong
        assert len(failing["judge_errors"]) == 2 and "HTTP 500" in failing["judge_errors"][0]
        partial = srv.panel(["a", "d", "b"]).grade("Which city?", "Boston", ["Boston"], "Boston")
        assert partial["correct"] is True and partial["votes"] == [True, None, True]
        blind = json.loads(srv.calls[0]["messages"][1]["content"])
        assert set(blind) == {"question", "reference", "key_facts", "candidate"}  # no system name
    finally:
        srv.stop()
    with pytest.raises(StreamlearnError, match="needs two or more judges"):
        JudgePanel([parse_judge_spec("a@http://x", "K")])
    with pytest.raises(StreamlearnError, match="must be MODEL@URL"):
        parse_judge_spec("gpt", "K")


def test_bank_import_and_seal(tmp_path, monkeypatch):
    from streamlearn.core.config import Config
    from streamlearn.corpus.layout import Corpus
    from streamlearn.evaluate.bank import run_questions
    from streamlearn.corpus.questionbank import load_bank

    corpus, _ = Corpus.init(tmp_path / "c", Config())
    src = tmp_path / "bank.csv"
    src.write_text("id,category,question,answer_type,options,answer,aliases,evidence_day\n"
                   "h1,place,Where was day 1?,mc,Miami|Boston|Denver,Miami,,1\n"
                   "h2,counting,How many tacos?,numeric,,4,four,2\n"
                   "h3,spoken,What did he say first?,open,,We are in Miami now,,1\n")
    out = run_questions(corpus, "human", import_file=src, do_seal=True)
    assert out["items"] == 3 and len(out["sha256"]) == 64
    items = load_bank(corpus, "human")
    assert items[0]["options"] == ["Miami", "Boston", "Denver"] and items[1]["aliases"] == ["four"]
    assert all(i["provenance"] == "human" for i in items)
    with pytest.raises(StreamlearnError, match="is sealed; write a new bank"):
        run_questions(corpus, "human", import_file=src)
    import streamlearn.evaluate.bank as bank_module  # refused before any generation or import work

    monkeypatch.setattr(bank_module, "generate", lambda *a, **k: pytest.fail("generated a sealed bank again"))
    monkeypatch.setattr(bank_module, "import_items", lambda *a, **k: pytest.fail("imported into a sealed bank"))
    for kwargs in ({}, {"import_file": src}):
        with pytest.raises(StreamlearnError, match="is sealed; write a new bank"):
            run_questions(corpus, "human", **kwargs)
    monkeypatch.undo()
    path = tmp_path / "c" / "questions" / "human.jsonl"
    text = path.read_text()
    edited = text.replace('"Miami"', '"Tampa"', 1)
    assert edited != text  # one answer changed after sealing, nothing else
    path.write_text(edited)
    with pytest.raises(StreamlearnError, match="changed since it was sealed"):
        load_bank(corpus, "human")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,category,question,answer\nx,weather,Is it sunny?,yes\n")
    with pytest.raises(StreamlearnError, match="bad.csv row 1: category 'weather' is not one of"):
        run_questions(corpus, "other", import_file=bad)
    excel = tmp_path / "excel.csv"  # Excel's "CSV UTF-8" starts with a byte-order mark
    excel.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    assert run_questions(corpus, "excel", import_file=excel)["items"] == 3
    latin = tmp_path / "latin.csv"
    latin.write_bytes(src.read_bytes().replace(b"Miami now", b"Mi\xe9mi now"))
    with pytest.raises(StreamlearnError, match=r"latin.csv: not UTF-8 text \(byte \d+\); save it as UTF-8"):
        run_questions(corpus, "latin", import_file=latin)
    (tmp_path / "c" / "streamlearn.toml").write_bytes(b"[corpus]\nsubject = \"caf\xe9\"\n")
    with pytest.raises(StreamlearnError, match=r"streamlearn.toml: not UTF-8 text \(byte \d+\); save it as UTF-8"):
        Corpus.open(tmp_path / "c")


def test_json_lines_files_fail_with_one_line_naming_the_file_and_line(tmp_path):
    from streamlearn.core.files import read_json_lines
    from streamlearn.corpus.runrecord import read_targets

    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "day-01.jsonl").write_text('{"key": "a"}\n\n{"key": "b"}\n')
    assert [t["key"] for t in read_targets(tmp_path)] == ["a", "b"]
    (tmp_path / "targets" / "day-02.jsonl").write_text('{"key": "c"}\n{"key": \n')
    with pytest.raises(StreamlearnError, match=r"^day-02.jsonl line 2: not JSON \(.*\); the run's record is damaged"):
        read_targets(tmp_path)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"q": "caf\xe9"}\n')
    with pytest.raises(StreamlearnError, match=r"^latin.jsonl: not UTF-8 text \(byte 10\); save it as UTF-8"):
        read_json_lines(latin, "fix the line", "save it as UTF-8")


def test_rag_at_day_n_reads_only_days_up_to_n():
    """Issue 24 (2): RAG reads what was described by Day-N, so its placebo cannot beat its transfer."""
    from streamlearn.evaluate.run import known_by

    chunks = [{"chunk_id": f"c{d}{k}", "day_index": str(d)} for d in (1, 2, 3) for k in range(2)]
    assert [c["chunk_id"] for c in known_by(chunks, 0)] == []
    assert [c["chunk_id"] for c in known_by(chunks, 2)] == ["c10", "c11", "c20", "c21"]
    assert len(known_by(chunks, 3)) == 6


def test_report_plots_say_what_they_pool_and_carry_n(tmp_path, monkeypatch):
    """Issue 24 (2): the hypothesis plot (transfer and placebo against Day-N, with n), pooled plots titled
    as pooled with the checkpoints actually drawn and n on the bars, a labelled retention colour bar."""
    import matplotlib.figure

    from streamlearn.evaluate.report import _plots

    figures = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figures.append(self))
    acc = [{"system": s, "checkpoint": c, "category": cat, "accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 7}
           for s, cks in (("weights", ("day0", "day2")), ("rag", ("day0",))) for c in cks for cat in ("place", "ocr")]
    verdict = [{"system": "weights", "scoring": "calibrated", "group": g, "checkpoint": f"day{d}", "day": d,
                "diff": 0.1, "diff_low": 0.0, "diff_high": 0.2, "n": 11} for g in ("transfer", "placebo") for d in (1, 2)]
    results = {"accuracy": acc, "checkpoints": ["day0", "day1", "day2"], "mc_scoring": "calibrated",
               "verdict": verdict, "retention": {"weights": {"1": {"day0": 0.3, "day1": 0.5, "day2": 0.4}}}}
    files = _plots(results, [], tmp_path)
    assert list(files.values())[0] == "hypothesis_weights.png"
    titles = {f.axes[0].get_title(): f for f in figures}
    hyp = next(f for t, f in titles.items() if t.startswith("weights: held-out facts"))
    assert {t.get_text() for t in hyp.axes[0].texts} == {"n=11"}
    assert "weights: day0 vs day2, every item pooled (memorised, transfer, placebo, flagged)" in titles
    assert "rag: day0, every item pooled (memorised, transfer, placebo, flagged)" in titles  # not "day0 vs day2"
    pooled = titles["weights: day0 vs day2, every item pooled (memorised, transfer, placebo, flagged)"]
    assert [t.get_text() for t in pooled.axes[0].texts].count("n=7") == 4
    heat = titles["retention, weights"]
    assert heat.axes[1].get_ylabel() == "accuracy"  # the colour bar says what its colours are


def test_expensive_systems_run_at_log_spaced_checkpoints_in_a_long_run():
    from pathlib import Path

    from streamlearn.corpus.forecast import expensive_days
    from streamlearn.evaluate.run import checkpoints_by_system

    assert expensive_days(list(range(0, 5))) == [0, 1, 2, 3, 4]  # a short run: every checkpoint
    assert expensive_days(list(range(0, 36))) == [0, 1, 2, 4, 8, 16, 32, 35]  # 35 days: 8 of 36
    assert expensive_days([0, 3, 5, 6, 7, 9, 10, 12]) == [0, 3, 5, 7, 12]  # the 1st, 2nd, 4th and last trained day
    ckpts = [(f"day{d}", d, Path(f"day-{d:02d}")) for d in range(0, 36)]
    at = checkpoints_by_system(ckpts, ["weights", "video", "rag"], chosen=False)
    assert len(at["weights"]) == len(at["rag"]) == 36 and at["video"] == [f"day{d}" for d in (0, 1, 2, 4, 8, 16, 32, 35)]
    assert checkpoints_by_system(ckpts, ["video"], chosen=True)["video"] == [c[0] for c in ckpts]  # --checkpoints wins
