"""Which candidate rewrites may be kept: none holding a question bank's question (verbatim, or by a
diagnostic n-gram of its wording: the product's own checks, `heldout.Constraints.violations` and
`contamination.audit`), none repeating another, none without its day. Training refuses protected
questions and eval audits every target regardless; this keeps them out of the rewrites in the first place."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from streamlearn.corpus.contamination import BankAudit
from streamlearn.corpus.layout import Corpus
from streamlearn.corpus.heldout import Constraints, load_constraints
from streamlearn.corpus.questionbank import load_bank
from streamlearn.core.files import sha256_file

FLAGS = ("question", "ngram8", "ngram13")  # the audit's flags for a question's wording in a target


@dataclass
class BankCheck:
    constraints: Constraints
    audits: dict[str, BankAudit] = field(default_factory=dict)  # bank name -> its audit index, built once
    banks: list[dict] = field(default_factory=list)  # [{bank, sha256}]: what a kept rewrite was checked against

    def filter(self, candidates: list[str], day: int | None) -> tuple[list[str], list[dict]]:
        """(kept, dropped [{reason}]) in the candidates' order."""
        reasons: dict[int, str] = {}
        seen: set[str] = set()
        for k, text in enumerate(candidates):
            bad = self.constraints.violations([("", text)])
            if bad:  # named by item and bank: the question's text is not copied into the rewrites file
                reasons[k] = "holds " + re.search(r"item .+? of sealed bank '.*?'", bad[0]).group(0)
            elif " ".join(text.split()).lower() in seen:
                reasons[k] = "repeats an earlier rewrite"
            elif day and not re.search(rf"\bday {day}\b", text, re.IGNORECASE):
                reasons[k] = f"does not name day {day}"
            seen.add(" ".join(text.split()).lower())
        for bank in self.audits:
            for k, why in self._audited(bank, candidates).items():
                reasons.setdefault(k, why)
        kept = [t for k, t in enumerate(candidates) if k not in reasons]
        return kept, [{"reason": reasons[k]} for k in sorted(reasons)]

    def _audited(self, bank: str, candidates: list[str]) -> dict[int, str]:
        targets = [{"key": str(k), "target": t} for k, t in enumerate(candidates)]
        out: dict[int, str] = {}
        for iid, r in self.audits[bank].hits(targets).items():
            flags = [f for f in sorted(r["flags"]) if f in FLAGS]
            for key in r["targets"] if flags else []:
                out.setdefault(int(key), f" the wording of question {iid} of bank {bank!r} ({', '.join(flags)})")
        return {k: "shares" + why for k, why in out.items()}


def bank_check(corpus: Corpus) -> BankCheck:
    """Every question bank of the corpus (sealed or not); a sealed one changed since sealing is refused."""
    qdir = corpus.folder("questions")
    check = BankCheck(load_constraints(qdir))
    for path in sorted(qdir.glob("*.jsonl")) if qdir.is_dir() else []:
        check.audits[path.stem] = BankAudit(load_bank(corpus, path.stem))
        check.banks.append({"bank": path.stem, "sha256": sha256_file(path)})
    return check
