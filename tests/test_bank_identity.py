"""Bank generation, the held-out split, the seal, the contamination audit and training's check of
protected questions make the same bytes as the code before issue 28 made them linear.

GOLDEN holds sha256 digests computed with that code (main at cd92df8, before any change of issue 28's
items 4 and 5) on two corpora: the training kit's (`make_train_corpus`, as test_heldout's `sealed`) and a
synthetic described corpus of 300 chunks (`streamlearn.testdata.described`, every branch of bank
generation). A digest that differs means a bank, split or audit that is no longer what it was: find
out why before recomputing anything.

Run: python -m pytest tests/test_bank_identity.py -q
"""

from __future__ import annotations

import hashlib
import json

import pytest
from trainkit import make_train_corpus

from streamlearn.corpus import heldout as H
from streamlearn.corpus import questionbank as QB
from streamlearn.corpus.contamination import BankAudit, audit, contamination_summary
from streamlearn.evaluate import bank as B
from streamlearn.testdata.described import described_corpus

GOLDEN = {
    "kit": {
        "bank": "7ae6ec87498ce24539a8f9231f469672800c8d29fedda5d517dc820e2dcf7c2b",
        "split": "1cd206b96da69fd53105edc6223ea8a4b6225a2d3462ba85a8e92214d3661131",
        "seal": "6c282c9f0f6d3da7173b43c66ba9d46e56199d342ff1e88ab69041683a8f8c91",
        "questions": "1bb4c90c3d2844d25ba1c43173f7fa8dae3e8b96f2064f37bbd0a3397025d39f",
        "audit": "2bb4969836d5bea78fc6f4ab9aea3d0650003821f6af7b6e1a449ca3a010a6d2",
        "summary": "7812f0c1978ebdace76e884baeaeca0602e82d83fd548b6a0d7793f33d9563b1",
        "hits": "b0133267b73814ec3cf0cd3b55f863d9db61974edfadb38bce2d05b1e4a8ed67",
        "violations": "7381d4d91d89312d49a3e8fc80a59f4fc3a10d22ef2775271609432ade22826a",
        "counts": [85, 34, 18, 30, 19],
    },
    "synthetic": {
        "bank": "7224bf89adfea69bcd5a6c20302d455dd2ef166a4ad3238e5431264eb895cfc1",
        "split": "72e05bad4a0fb50b6dede051fac2d390c36eac9762d3427a0fc1c866f88244cb",
        "seal": "aaa2f8a1efa9ae282e7c565ec48a90de4662438748a9281d14bae999a797a240",
        "questions": "ce6e30fc1d528cc45200fd517c1a58547c650b9c1c2165049afb5dda10ee1f3a",
        "audit": "ca4b1076626cff78c234230a57af5a185557ef33c8d954094ff2dde87229346a",
        "summary": "22964432c196b88caa22ecdf54b2d95949ae312e6eff91130a6a9ccc436b0293",
        "hits": "4058ceb30fcfa201442fcee56f3255e9f6b3210064c8e0f12b05d4e8d888b8b2",
        "violations": "851913f49254e92952e68d0198aaff5f909fd0e16a93ba02e38e90a1951f68a3",
        "counts": [4111, 2231, 1933, 1492, 1065],  # items, facts, dropped, targets, flagged items
    },
}


def _sha(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def _targets(corpus, items: list[dict], split: dict) -> list[dict]:
    """Training-like targets made here (not by targets.py, whose rendering may change on its own): each
    description's statements, the QA-trained pairs, and planted held-out items, verbatim and reworded."""
    out = []
    for c in corpus.chunks.read():
        doc = json.loads(corpus.abs(c["description_path"]).read_text(encoding="utf-8"))
        lines = [doc["summary"], *(f"{s['speaker']}: {s['text']}" for s in doc["speech"]),
                 *(e["event"] for e in doc["timeline"]), *(f'On screen: "{s["text"]}"' for s in doc["on_screen_text"])]
        out.append({"key": f"{c['chunk_id']}/description", "target": "\n".join(lines)})
    for k, f in enumerate(split["facts"]):
        if f["split"] == H.TRAINED:
            out.append({"key": f"{f['chunk_id']}/qa_text{k}", "target": f"Q: {f['question']}\nA: {f['answer']}"})
    held = [i for i in items if i["split"] == H.HELDOUT and i["id"][0] == "q"]
    for k, i in enumerate(held[::7]):
        if k % 2:  # verbatim, with its answer
            text = f"Someone asked: {i['question']} It was {i['answer']}."
        else:  # reworded: the question's words without its first, then the answer
            text = "They wondered " + " ".join(i["question"].split()[1:]) + f" and the answer was {i['answer']}"
        out.append({"key": f"planted/{i['id']}", "target": text})
    return out


def _digests(corpus) -> dict:
    out = B.run_questions(corpus, "main", do_seal=True)
    qdir = corpus.folder("questions")
    items = QB.load_bank(corpus, "main")
    split = QB.load_split(corpus, "main")
    targets = _targets(corpus, items, split)
    flags = audit(items, targets)
    hits = BankAudit(items).hits(targets)
    constraints = H.load_constraints(qdir)
    return {
        "bank": _sha((qdir / "main.jsonl").read_bytes()),
        "split": _sha((qdir / "main.split.json").read_bytes()),
        "seal": _sha({k: v for k, v in json.loads((qdir / "main.seal.json").read_text()).items() if k != "sealed_at"}),
        "questions": _sha({k: v for k, v in out.items() if k != "sealed_at"}),
        "audit": _sha(flags),
        "summary": _sha(contamination_summary(items, flags)),
        "hits": _sha([[iid, sorted(h["flags"]), h["targets"]] for iid, h in hits.items()]),
        "violations": _sha(constraints.violations([(t["key"], t["target"]) for t in targets])),
        "counts": [len(items), len(split["facts"]), len(split["dropped"]), len(targets),
                   sum(1 for f in flags.values() if f["flags"])],
    }


@pytest.mark.parametrize("corpus_kind", ["kit", "synthetic"])
def test_bank_split_and_audit_are_byte_identical_to_the_quadratic_code(corpus_kind, tmp_path):
    if corpus_kind == "kit":
        corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=4, signs=4,
                                   train={"require_sealed_bank": True})
    else:
        corpus = described_corpus(tmp_path / "c", 300, per_day=24, seed=3)
    assert _digests(corpus) == GOLDEN[corpus_kind]


def test_sample_order_is_random_sample_taken_lazily():
    """The lazy shuffle behind the bank's distractors: the first elements of `random.sample(pool, len(pool))`
    and the generator's state after it, for pools small (drawn one by one) and large (skipped in bulk, by
    the vectorised solver and by the loop), whatever was drawn before."""
    import random

    import numpy as np

    from streamlearn.evaluate import draws

    assert draws.exact() and draws._bulk_exact()
    rng = random.Random(11)
    for n in [0, 1, 2, 5, 47, 300, 1023, 1024, 1025, 1500, 4097, 30000] + [rng.randrange(2, 9000) for _ in range(40)]:
        take = min(n, rng.choice([0, 1, 3, 12]))
        want, got, bits = random.Random(n), random.Random(n), rng.randrange(1, 90)
        want.getrandbits(bits)  # the generator anywhere in its word array
        got.getrandbits(bits)
        full = want.sample(range(n), n)
        order = draws.SampleOrder(got, n)
        assert [order.take() for _ in range(take)] == full[:take]
        order.skip()
        assert got.getstate() == want.getstate(), n
    for _ in range(60):  # the solver against the plain loop, on words of one width
        m = rng.randrange(600, 70000)
        low = 1 << (m.bit_length() - 1)
        v = np.array([rng.getrandbits(m.bit_length()) for _ in range(rng.randrange(1, 3 * (m - low) + 2))])
        assert draws._block(v, m, low) == draws._loop(v, m, low)
