"""The question bank on disk: `questions/<bank>.jsonl` (schema in docs/eval.md), its held-out split
and its seal. Read by eval, export and the sweep; written by `streamlearn questions`.

A sealed bank (or split) whose bytes changed since sealing is refused, so a score always belongs
to the bank that was sealed before training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from streamlearn.corpus import heldout as H
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import read_json_lines
from streamlearn.core.paths import contained

CATEGORIES = ("place", "time_order", "people", "spoken", "ocr", "visual", "counting", "cross_day", "abstention")
ANSWER_TYPES = ("mc", "short", "numeric", "open")


def bank_path(corpus: Corpus, name: str) -> Path:
    return contained(corpus.folder("questions", create=True), name).with_suffix(".jsonl")


def seal_path(corpus: Corpus, name: str) -> Path:
    return contained(corpus.folder("questions", create=True), name).with_suffix(".seal.json")


def split_path(corpus: Corpus, name: str) -> Path:
    contained(corpus.folder("questions", create=True), name)
    return H.split_path(corpus.folder("questions", create=True), name)


def sealed_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate_item(item: dict, where: str) -> None:
    for f in ("id", "question", "answer"):
        if not isinstance(item.get(f), str) or not item[f].strip():
            raise StreamlearnError(f"{where}: field {f!r} must be a non-empty string")
    if item.get("category") not in CATEGORIES:
        raise StreamlearnError(f"{where}: category {item.get('category')!r} is not one of {', '.join(CATEGORIES)}")
    if item.get("answer_type") not in ANSWER_TYPES:
        raise StreamlearnError(f"{where}: answer_type {item.get('answer_type')!r} is not one of {', '.join(ANSWER_TYPES)}")
    ev = item.get("evidence")
    if ev is not None and not (isinstance(ev, dict) and isinstance(ev.get("chunk_ids", []), list)):
        raise StreamlearnError(f"{where}: field 'evidence' must be an object with a list of chunk_ids")
    if item["answer_type"] == "mc":
        opts = item.get("options")
        if not isinstance(opts, list) or len(opts) < 2 or item["answer"] not in opts:
            raise StreamlearnError(f"{where}: a multiple-choice item needs options (2 or more) that include the answer")
    if item.get("split") not in (None, H.TRAINED, H.HELDOUT):
        raise StreamlearnError(f"{where}: split {item['split']!r} must be trained or heldout")


def load_bank(corpus: Corpus, name: str = "main") -> list[dict]:
    path = bank_path(corpus, name)
    if not path.exists():
        have = sorted(f.stem for f in path.parent.glob("*.jsonl")) if path.parent.is_dir() else []
        raise StreamlearnError(f"no question bank {name!r} ({corpus.rel(path)}); "
                               + (f"banks here: {', '.join(have)} (pass --bank NAME)" if have else
                                  "make one with `streamlearn questions`"))
    seal = seal_path(corpus, name)
    if seal.exists():
        info = json.loads(seal.read_text())
        got = sealed_sha(path)
        if got != info["sha256"]:
            raise StreamlearnError(f"question bank {name!r} changed since it was sealed (sha256 {got[:12]} != "
                                   f"{info['sha256'][:12]}); restore it, or build a new bank under another name")
        sp = split_path(corpus, name)
        if info.get("split_sha256") and (not sp.exists() or sealed_sha(sp) != info["split_sha256"]):
            raise StreamlearnError(f"the held-out split of question bank {name!r} ({sp.name}) changed since it was "
                                   "sealed; restore it, or build a new bank under another name")
    items = []
    for n, item in read_json_lines(path, "fix the line, or build the bank again (`streamlearn questions --force`)"):
        if not isinstance(item, dict):
            raise StreamlearnError(f"{path.name} line {n}: a JSON {type(item).__name__}, not an item object")
        validate_item(item, f"{path.name} line {n}")
        items.append(item)
    return items


def load_split(corpus: Corpus, name: str) -> dict | None:
    sp = split_path(corpus, name)
    return json.loads(sp.read_text()) if sp.exists() else None


def seal_info(corpus: Corpus, name: str) -> dict | None:
    path = seal_path(corpus, name)
    return json.loads(path.read_text()) if path.exists() else None
