"""`streamlearn rewrite`: generated rewrites of each described chunk, cached and recorded like descriptions,
none holding a bank question, and the training targets they become.

Run: python -m pytest tests/test_rewrite.py -q
"""

from __future__ import annotations

import hashlib
import json
import re
import threading

from fake_chat import FakeChatServer, completion
from trainkit import make_train_corpus

from streamlearn.corpus import description as D
from streamlearn.corpus import questionbank as QB
from streamlearn.core.config import DescribeSection, load_train_config
from streamlearn.evaluate import bank as B
from streamlearn.rewrite.run import run_rewrite
from streamlearn.corpus.targets import INSTRUCTIONS, build_specs
from streamlearn.core.textnorm import normalize

KEY = "sk-rewrite-secret-0123456789abcdef"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _specs(corpus, **train):
    by_day, skipped = build_specs(corpus, load_train_config(corpus.config.train, **train))
    return [s for day in by_day.values() for s in day], skipped


def test_signals_rewrites_are_written_recorded_and_trained(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=2, signs=2)
    ids = [c["chunk_id"] for c in corpus.chunks.read()]
    # not made yet: the chunk's other targets train, the rewrites are reported missing
    specs, skipped = _specs(corpus, targets=["description", "rewrites"])
    assert [s.kind for s in specs] == ["description"] * 4
    assert skipped == {f"{cid}/rewrites": "no rewrites; run `streamlearn rewrite CORPUS`" for cid in ids}

    stages = lambda: [s["stage"] for s in json.loads(run_cli("status", corpus.root, "--json").output)["stages"]]  # noqa: E731
    assert "rewrite" not in stages()  # an optional stage never run is not work left to do
    res = run_cli("rewrite", corpus.root, "--n", "3")
    assert res.exit_code == 0, res.output
    assert "no question bank yet" in res.stderr
    assert "rewrite" in stages()
    row = corpus.chunks.rows_by_key()[ids[0]]
    assert (row["rewrite_status"], row["rewrites_path"], row["rewrite_backend"], row["n_rewrites"],
            row["rewrites_dropped"]) == ("done", f"rewrites/{ids[0]}.json", "signals", 3, 0)
    desc = corpus.root / "descriptions" / f"{ids[0]}.json"
    doc = json.loads((corpus.root / row["rewrites_path"]).read_text())
    assert doc == {"schema": "streamlearn.rewrites/1", "chunk_id": ids[0], "description_sha256": _sha(desc),
                   "generator": {"backend": "signals", "model": "render_facts"}, "requested": 3,
                   "rewrites": [D.render_facts(D.load(desc), v) for v in range(3)], "dropped": [],
                   "checked_against": []}
    assert not list((corpus.root / "rewrites").glob(".*.tmp"))

    specs, skipped = _specs(corpus, targets=["rewrites"])
    assert skipped == {}
    first = [s for s in specs if s.meta["chunk_id"] == ids[0]]
    assert [(s.key, s.kind) for s in first] == [(f"{ids[0]}/rewrite{k}", "rewrites") for k in range(3)]
    assert all(s.frames == [f"frames/{ids[0]}.npy"] and s.instruction == INSTRUCTIONS["rewrites"] for s in first)
    assert [s.target for s in first] == doc["rewrites"]
    assert len(_specs(corpus, targets=["rewrites"], rewrites_max=2)[0]) == 4 * 2

    assert run_rewrite(corpus).done == []  # cached: nothing is made again

    # a changed description: its rewrites are stale for training, and the next run makes them again
    d = json.loads(desc.read_text())
    d["summary"] = "The streamer walks through Miami and buys a kite."
    desc.write_text(json.dumps(d))
    specs, skipped = _specs(corpus, targets=["rewrites"])
    assert skipped == {f"{ids[0]}/rewrites": "no rewrites of the current description (it changed since); run "
                       "`streamlearn rewrite CORPUS`"}
    assert run_rewrite(corpus, n=3).done == [ids[0]]
    assert json.loads((corpus.root / row["rewrites_path"]).read_text())["description_sha256"] == _sha(desc)

    # a bank sealed since: every chunk's rewrites are checked against it, and the export takes them
    B.run_questions(corpus, "main", do_seal=True)
    assert sorted(run_rewrite(corpus, n=3).done) == sorted(ids)
    bank = corpus.root / "questions" / "main.jsonl"
    doc = json.loads((corpus.root / row["rewrites_path"]).read_text())
    assert doc["checked_against"] == [{"bank": "main", "sha256": _sha(bank)}] and len(doc["rewrites"]) == 3
    from streamlearn.export.samples import select

    corpus.config.train = load_train_config(corpus.config.train, targets=["description", "rewrites"])
    kinds = [s.kind for s in select(corpus).samples]
    assert kinds.count("rewrites") == 4 * 3 and kinds.count("description") == 4


def _chunk_of(body: dict) -> str:
    """The chunk a request is about, from its description header (`Day 1 of 2 · ... 13:00-13:01`)."""
    text = body["messages"][1]["content"]
    day = int(re.search(r"Day (\d+) of \d+", text).group(1))
    hour = int(re.search(r", (\d\d):\d\d-\d\d:\d\d", text).group(1))
    return f"vid{day:02d}_c{hour - 12:03d}"


class ScriptedEndpoint:
    """Answers each chunk with its script's next step: good (fenced JSON), http500 (echoing the
    Authorization header), garbage; `extra[chunk]` adds candidate texts to a good reply."""

    def __init__(self, corpus, script: dict[str, list[str]], extra: dict[str, list[str]] | None = None):
        self.corpus, self.script, self.extra = corpus, script, extra or {}
        self.bodies: list[dict] = []
        self.auth: set[str] = set()
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = FakeChatServer(self.reply)

    def reply(self, body, headers):
        cid = _chunk_of(body)
        with self.lock:
            self.bodies.append(body)
            self.auth.add(headers.get("Authorization", ""))
            n = self.calls[cid] = self.calls.get(cid, 0) + 1
        plan = self.script.get(cid, ["good"])
        what = plan[min(n, len(plan)) - 1]
        if what == "http500":
            return 500, {"error": f"overloaded; request had Authorization: {headers.get('Authorization')}"}, {}
        if what == "garbage":
            return 200, completion("Sure! Here are your rewrites: {rewrites: [first, second"), {}
        doc = D.load(self.corpus.root / "descriptions" / f"{cid}.json")
        texts = [D.render_facts(doc, v + 100) for v in range(2)] + self.extra.get(cid, [])
        return 200, completion("Here they are:\n```json\n" + json.dumps({"rewrites": texts}) + "\n```"), {}


def test_openai_rewrites_never_see_a_question_and_drop_one_that_holds_it(tmp_path, monkeypatch, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=2, signs=2)
    ids = [c["chunk_id"] for c in corpus.chunks.read()]
    B.run_questions(corpus, "main", do_seal=True)
    items = QB.load_bank(corpus, "main")
    q = next(i for i in items if i["split"] != "trained" and i["category"] == "ocr" and i["variant"] == "original")
    target = q["evidence"]["chunk_ids"][0]
    verbatim = f"On day {q['evidence_day']}, a viewer wrote in: {q['question']} It was {q['answer']}."
    near = (f"Day {q['evidence_day']}: {' '.join(q['question'].rstrip('?').split()[2:])}, {q['answer']}, "
            "as the viewer could tell.")  # the question without its first two words, then its answer
    failing, garbage = [c for c in ids if c != target][:2]
    monkeypatch.setenv("STREAMLEARN_TEST_KEY", KEY)
    endpoint = ScriptedEndpoint(corpus, {failing: ["http500"], garbage: ["garbage"]}, {target: [verbatim, near]})
    corpus.config.describe = DescribeSection(backend="openai", model="fake-llm", endpoint=endpoint.server.url,
                                             api_key_env="STREAMLEARN_TEST_KEY", timeout_s=5.0, max_retries=1,
                                             backoff_s=0.01, repairs=1)
    corpus.save_config()
    try:
        res = run_cli("rewrite", corpus.root, "--backend", "openai", "--n", "4", "--parallel", "2")
        rows = corpus.chunks.rows_by_key()
        assert res.exit_code == 1
        assert {c for c in ids if rows[c]["rewrite_status"] == "done"} == set(ids) - {failing, garbage}
        assert rows[failing]["rewrite_status"] == "failed"
        assert rows[failing]["rewrite_error"].startswith(
            f"gave up after 2 attempts: HTTP 500 from {endpoint.server.url}: '{{\"error\": \"overloaded; request "
            "had Authorization: Bearer ***")
        assert rows[garbage]["rewrite_error"].startswith("no rewrites after 1 repair attempts: not JSON")
        assert endpoint.calls[garbage] == 2 and endpoint.calls[failing] == 2
        assert endpoint.auth == {f"Bearer {KEY}"}

        # the candidate holding the question verbatim and the one holding its wording are dropped and counted
        doc = json.loads((corpus.root / "rewrites" / f"{target}.json").read_text())
        assert doc["generator"] == {"backend": "openai", "model": "fake-llm"} and doc["requested"] == 4
        assert len(doc["rewrites"]) == 2 and verbatim not in doc["rewrites"] and near not in doc["rewrites"]
        assert rows[target]["rewrites_dropped"] == 2 and rows[target]["n_rewrites"] == 2
        assert doc["dropped"][0] == {"reason": f"holds item {q['id']} of sealed bank 'main'"}
        assert doc["dropped"][1]["reason"].startswith(f"shares the wording of question {q['id']} of bank 'main' (ngram")

        # what the endpoint saw: the facts, never a bank question or a QA pair
        questions = {normalize(i["question"]) for i in items}
        for cid in ids:
            for pair in D.load(corpus.root / "descriptions" / f"{cid}.json")["qa"]:
                questions.add(normalize(pair["question"]))
                questions |= {normalize(v["question"]) for v in pair.get("variants", [])}
        for body in endpoint.bodies:
            sent = normalize("\n".join(m["content"] for m in body["messages"]))
            assert "GATE" in "\n".join(m["content"] for m in body["messages"])  # the facts are there
            assert [x for x in questions if x in sent] == []

        # a second run asks only for the failed chunks; a third asks nothing
        endpoint.script.clear()
        endpoint.calls.clear()
        assert run_cli("rewrite", corpus.root, "--backend", "openai", "--n", "4").exit_code == 0
        assert set(endpoint.calls) == {failing, garbage}
        endpoint.calls.clear()
        assert run_cli("rewrite", corpus.root, "--backend", "openai", "--n", "4").exit_code == 0
        assert endpoint.calls == {}
    finally:
        endpoint.server.stop()
    assert KEY not in res.output + res.stderr
    leaks = [p for p in corpus.root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaks == []


def test_an_undescribed_chunk_waits(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=2)
    ids = [c["chunk_id"] for c in corpus.chunks.read()]
    corpus.chunks.reset_stage([ids[1]], "describe")
    result = run_rewrite(corpus)
    assert result.done == [ids[0]] and result.failed == {}
    assert result.skipped == {ids[1]: "not described yet; run `streamlearn describe CORPUS` first"}
    assert corpus.chunks.rows_by_key()[ids[1]]["rewrite_status"] is None
    assert not (corpus.root / "rewrites" / f"{ids[1]}.json").exists()


def test_replies_are_read_inside_fences_and_chatter():
    import pytest

    from streamlearn.rewrite.prompt import parse_rewrites

    assert parse_rewrites('Here are [2] rewrites:\n```json\n{"rewrites": ["a", " b "]}\n```') == ["a", "b"]
    assert parse_rewrites('["x", {"text": "y"}, 3, ""]') == ["x", "y"]
    with pytest.raises(ValueError, match="no list of rewrites"):
        parse_rewrites('{"rewrites": []}')
    with pytest.raises(ValueError, match=r"not JSON \(Expecting property name"):
        parse_rewrites("Sure: {rewrites: [first")
