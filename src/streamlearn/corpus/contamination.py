"""The contamination audit: every bank item against every training target, the ones a run actually
trained (`runrecord.read_targets`, read by `eval`) or the ones an export writes (`export`).

An item is flagged when a target

- `question`: contains the item's question verbatim (after normalisation);
- `answer_with_question`: contains its answer together with its question (verbatim or by a
  diagnostic n-gram below);
- `ngram8` / `ngram13`: shares an 8-/13-word window of the item's question + answer (PaLM's and
  GPT-3's contamination tests) that is diagnostic of the item: it includes a word of the question
  outside quotes (a window of the answer or of a quoted line alone is the fact itself, which the
  description carries by design), and no other bank unit has it (a template's wording, such as
  "what did the text on screen read at", identifies no item).

Windows are taken within a line of the target: a rendered fact or a described event is a line, and
a window that joined the end of one line to the start of the next would pair words that were never
said together. Flagged items leave the verdict and are counted in the report. The audit is linear in
the targets' length: only the bank's own windows are indexed.
"""

from __future__ import annotations

from streamlearn.corpus.heldout import TRAINED, QuestionIndex
from streamlearn.core.textnorm import normalize

NS = (8, 13)


def _marked_words(question: str) -> list[tuple[str, bool]]:
    """(word, free) for the question: `free` is False inside double quotes."""
    out = []
    for k, part in enumerate(question.replace("“", '"').replace("”", '"').split('"')):
        out += [(w, k % 2 == 0) for w in normalize(part).split()]
    return out


def _windows(item: dict, n: int) -> set[str]:
    """The item's n-word windows that hold a word of its question outside quotes, each as its words joined
    by spaces (one string, not a tuple of n: a large bank's index is most of the audit's memory)."""
    q = _marked_words(item["question"])
    words = [w for w, _ in q] + normalize(item["answer"]).split()
    free = [f for _, f in q] + [False] * (len(words) - len(q))
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1) if any(free[i:i + n])}


class BankAudit:
    """One bank's audit index, built once (its diagnostic windows and question openings), then asked about
    any number of targets: a caller that checks targets a few at a time (the rewrite stage, per chunk) does
    not rebuild it for each. Built and asked in time linear in the bank's and the targets' words."""

    def __init__(self, items: list[dict]):
        unit_of = {i["id"]: i.get("unit") or i["id"] for i in items}
        self.index: dict[int, dict[str, list[str]]] = {}  # diagnostic window -> items
        for n in NS:  # one window length at a time: its windows are dropped once indexed
            windows = {i["id"]: _windows(i, n) for i in items}
            owner: dict[str, str | None] = {}  # window -> the one unit that has it, None when several do
            for iid, ws in windows.items():
                for w in ws:
                    if owner.setdefault(w, unit_of[iid]) != unit_of[iid]:
                        owner[w] = None
            self.index[n] = {}
            for iid, ws in windows.items():
                for w in ws:
                    if owner[w] is not None:
                        self.index[n].setdefault(w, []).append(iid)
        self.questions = QuestionIndex([(normalize(i["question"]).split(), i["id"]) for i in items])
        self.answers = {i["id"]: f" {normalize(i['answer'])} " for i in items}

    def hits(self, targets: list[dict]) -> dict[str, dict]:
        """{item id: {"flags": set, "targets": [every key that hit it]}} for the items the targets hit."""
        result: dict[str, dict] = {}
        keys: dict[str, set[str]] = {}  # item id -> its targets' keys, for the membership test
        for t in targets:
            text = f" {normalize(t['target'])} "
            hit_question: set[str] = set()
            for line in t["target"].splitlines():  # a window never joins the end of one statement to the next
                words = normalize(line).split()
                for i in range(len(words)):
                    for iid in self.questions.at(words, i):
                        result.setdefault(iid, {"flags": set(), "targets": []})["flags"].add("question")
                        hit_question.add(iid)
                    for n in NS:
                        for iid in self.index[n].get(" ".join(words[i:i + n]), []):
                            result.setdefault(iid, {"flags": set(), "targets": []})["flags"].add(f"ngram{n}")
                            hit_question.add(iid)
            for iid in hit_question:
                if self.answers[iid].strip() and self.answers[iid] in text:
                    result[iid]["flags"].add("answer_with_question")
                if t["key"] not in keys.setdefault(iid, set()):
                    keys[iid].add(t["key"])
                    result[iid]["targets"].append(t["key"])
        return result


def audit(items: list[dict], targets: list[dict]) -> dict[str, dict]:
    """{item id: {"flags": [...], "targets": [at most 5 keys]}} for every item (flags empty when clean)."""
    hits = BankAudit(items).hits(targets)
    return {i["id"]: {"flags": sorted(hits[i["id"]]["flags"]), "targets": hits[i["id"]]["targets"][:5]}
            if i["id"] in hits else {"flags": [], "targets": []} for i in items}


def contamination_summary(items: list[dict], flags: dict) -> dict:
    """Counts of flagged items, by flag and by split: QA-trained items are expected to be flagged (their
    pairs are targets); a flagged held-out item is contamination."""
    out = {"flagged": 0, "flagged_heldout": 0, "by_flag": {}, "heldout_ids": []}
    for i in items:
        f = flags[i["id"]]["flags"]
        if f:
            out["flagged"] += 1
            for x in f:
                out["by_flag"][x] = out["by_flag"].get(x, 0) + 1
            if i.get("split") != TRAINED:
                out["flagged_heldout"] += 1
                out["heldout_ids"].append(i["id"])
    out["flagged_trained"] = out["flagged"] - out["flagged_heldout"]
    return out
