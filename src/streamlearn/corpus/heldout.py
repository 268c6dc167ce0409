"""The held-out split: which facts may be training targets in question-answer form, which never.

A fact is one QA pair of a chunk's description (`fact_key(chunk_id, question)`). When a question
bank is generated, every fact goes, seeded and recorded, to

- `trained`: its QA pair may be a training target (it teaches the question -> answer format); its
  bank items form the `memorised` group, which never enters the verdict;
- `heldout`: never a target in any form; the fact reaches training only inside the description
  and the video. Whole chunks per day are held out too.

The split is written beside the bank (`questions/<bank>.split.json`) and sealed with it. `train`
reads every sealed bank's split (`load_constraints`): only facts recorded as `trained` become QA
targets, and a run whose targets would contain a protected item's question is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.core.textnorm import normalize

TRAINED, HELDOUT = "trained", "heldout"
MIN_QUESTION_WORDS = 4  # shorter questions ("Where?") are too generic to match against targets


def fact_key(chunk_id: str, question: str) -> str:
    return f"{chunk_id}#{hashlib.sha1(normalize(question).encode()).hexdigest()[:10]}"


def _unit(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) from the seed and the parts (stable across runs and machines)."""
    h = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def split_facts(facts: list[dict], seed: int, heldout_fraction: float, heldout_chunk_fraction: float) -> dict:
    """Assign facts ({fact, chunk_id, day, ...}) to trained/heldout.

    Per day, the round(heldout_chunk_fraction * chunks) chunks with the smallest seeded hash are held
    out whole (at least one when the day has two or more chunks and the fraction is > 0); in the
    other chunks each fact is held out when its seeded hash falls below heldout_fraction, with at
    least one held-out and one trained fact per chunk of two or more facts (so every chunk with
    facts contributes to both groups)."""
    by_day: dict = {}
    for f in facts:
        by_day.setdefault(f["day"], {}).setdefault(f["chunk_id"], []).append(f)
    heldout_chunks: list[str] = []
    assign: dict[str, str] = {}
    for day in sorted(by_day, key=lambda d: (d is None, d)):
        chunks = by_day[day]
        order = sorted(chunks, key=lambda c: _unit(seed, "chunk", c))
        k = round(heldout_chunk_fraction * len(order))
        if heldout_chunk_fraction > 0 and len(order) >= 2:
            k = max(1, min(k, len(order) - 1))
        whole = set(order[:k])
        heldout_chunks += sorted(whole)
        for cid, fs in chunks.items():
            if cid in whole:
                assign.update({f["fact"]: HELDOUT for f in fs})
                continue
            draws = {f["fact"]: _unit(seed, "fact", f["fact"]) for f in fs}
            picks = {k: HELDOUT if u < heldout_fraction else TRAINED for k, u in draws.items()}
            if len(fs) >= 2 and 0 < heldout_fraction < 1:
                ranked = sorted(draws, key=draws.get)
                if HELDOUT not in picks.values():
                    picks[ranked[0]] = HELDOUT
                if TRAINED not in picks.values():
                    picks[ranked[-1]] = TRAINED
            assign.update(picks)
    return {"assign": assign, "heldout_chunks": heldout_chunks}


class QuestionIndex:
    """Where whole questions (word lists) occur in a text, in time linear in the text's words: indexed by
    their first MIN_QUESTION_WORDS words and, under those, by length, so a word that opens thousands of
    questions ("what did the ...") costs one lookup per question length, not one comparison per question."""

    def __init__(self, questions: list[tuple[list[str], object]]):
        self.lengths: dict[tuple, list[int]] = {}  # first words -> lengths of the questions they open
        self.whole: dict[tuple, list[tuple[int, object]]] = {}  # question -> (its order, its value), in order
        for order, (q, value) in enumerate(questions):
            if len(q) < MIN_QUESTION_WORDS:
                continue
            lengths = self.lengths.setdefault(tuple(q[:MIN_QUESTION_WORDS]), [])
            if len(q) not in lengths:
                lengths.append(len(q))
            self.whole.setdefault(tuple(q), []).append((order, value))

    def at(self, words: list[str], i: int) -> list:
        """The values of the questions that start at words[i], in the order they were given."""
        lengths = self.lengths.get(tuple(words[i:i + MIN_QUESTION_WORDS]))
        if not lengths:
            return []
        found = [hit for n in lengths for hit in self.whole.get(tuple(words[i:i + n]), ())]
        if len(lengths) > 1:
            found.sort(key=lambda hit: hit[0])
        return [value for _, value in found]


def split_path(questions_dir: Path, bank: str) -> Path:
    return Path(questions_dir) / f"{bank}.split.json"


@dataclass
class Constraints:
    """What every sealed bank asks of training."""

    banks: list[dict] = field(default_factory=list)  # {name, sha256, split_sha256, sealed_at}
    trained: set[str] = field(default_factory=set)  # fact keys recorded as trained by a sealed split
    heldout: set[str] = field(default_factory=set)  # fact keys recorded as held out by any sealed split
    protected: dict[str, tuple[str, str]] = field(default_factory=dict)  # normalized question -> (bank, item id)
    _index: tuple[int, QuestionIndex] | None = field(default=None, init=False, repr=False, compare=False)

    def qa_trainable(self, chunk_id: str, question: str) -> bool:
        key = fact_key(chunk_id, question)
        return key in self.trained and key not in self.heldout

    def violations(self, targets: list[tuple[str, str]]) -> list[str]:
        """`key: bank/item` for every (key, target text) containing a protected question verbatim
        (after normalisation); linear in the targets' words (`QuestionIndex`, built once, not per call:
        the rewrite stage asks about one candidate at a time)."""
        if self._index is None or self._index[0] != len(self.protected):  # protected is filled after creation
            self._index = (len(self.protected), QuestionIndex([(q.split(), (" ".join(q.split()), where))
                                                               for q, where in self.protected.items()]))
        index = self._index[1]
        out = []
        for key, text in targets:
            words = normalize(text).split()
            for i in range(len(words) - MIN_QUESTION_WORDS + 1):
                for q, (bank, item) in index.at(words, i):
                    out.append(f"{key}: item {item} of sealed bank {bank!r} (\"{q}\")")
        return sorted(set(out))


def load_constraints(questions_dir: Path) -> Constraints:
    """The union of every sealed bank's split and protected items under `questions_dir`."""
    c = Constraints()
    qdir = Path(questions_dir)
    for seal in sorted(qdir.glob("*.seal.json")):
        name = seal.name[: -len(".seal.json")]
        info = json.loads(seal.read_text())
        bank = qdir / f"{name}.jsonl"
        if not bank.exists():
            raise StreamlearnError(f"sealed question bank {name!r} has no {bank.name}; restore it or delete "
                                   f"{seal.name} to unseal")
        got = hashlib.sha256(bank.read_bytes()).hexdigest()
        if got != info["sha256"]:
            raise StreamlearnError(f"question bank {name!r} changed since it was sealed (sha256 {got[:12]} != "
                                   f"{info['sha256'][:12]}); restore it, or build a new bank under another name")
        c.banks.append({"name": name, "sha256": info["sha256"], "split_sha256": info.get("split_sha256"),
                        "sealed_at": info.get("sealed_at")})
        for line in bank.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                if item.get("split") != TRAINED:
                    c.protected.setdefault(normalize(item["question"]), (name, item["id"]))
        sp = split_path(qdir, name)
        if sp.exists():
            if info.get("split_sha256") and hashlib.sha256(sp.read_bytes()).hexdigest() != info["split_sha256"]:
                raise StreamlearnError(f"the held-out split of question bank {name!r} ({sp.name}) changed since it "
                                       "was sealed; restore it, or build a new bank under another name")
            for f in json.loads(sp.read_text())["facts"]:
                (c.trained if f["split"] == TRAINED else c.heldout).add(f["fact"])
    return c


GROUPS = ("memorised", "transfer", "placebo")


def group_of(item: dict, flagged: bool, day: int) -> str | None:
    """The item's group for a Day-`day` checkpoint: `memorised` (its QA pair was a target), `transfer`
    (held out, evidence on a trained day: the hypothesis), `placebo` (held out, evidence after the
    checkpoint's last trained day), `contaminated` (held out but found in a target), or None (no
    evidence day: abstention and the like, reported by category only)."""
    ev = item.get("evidence_day")
    if ev is None or item["category"] == "abstention":
        return None
    if item.get("split") == TRAINED:
        return "memorised" if int(ev) <= day else None
    if flagged:
        return "contaminated"
    return "transfer" if int(ev) <= day else "placebo"
