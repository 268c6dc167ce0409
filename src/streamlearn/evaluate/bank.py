"""The question bank: `questions/<bank>.jsonl`, one item per line (schema in docs/eval.md).

Generated from the descriptions' QA pairs and the stream's metadata (paraphrase variants,
distractors from the subject's own life, cross-day and "never happened" items), or imported from
a human-written CSV/JSONL. `--seal` records the bank's hash; a sealed bank that changed is refused,
so Day-0 and Day-N are scored on the same questions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from datetime import datetime, timezone
from pathlib import Path

from streamlearn import console
from streamlearn import description as D
from streamlearn.corpus import Corpus, stream_order
from streamlearn.errors import StreamlearnError
from streamlearn.evaluate.grading import normalize
from streamlearn.manifest import DONE, atomic_write_text, status_of
from streamlearn.paths import contained

CATEGORIES = ("place", "time_order", "people", "spoken", "ocr", "visual", "counting", "cross_day", "abstention")
ANSWER_TYPES = ("mc", "short", "numeric", "open")
QA_TO_CATEGORY = {"place": "place", "time": "time_order", "people": "people", "spoken": "spoken", "ocr": "ocr",
                  "visual": "visual", "counting": "counting", "cross_day": "cross_day", "abstention": "abstention"}
NEVER = "It never happened"
# places a stream could plausibly have visited, for "never happened" questions
ELSEWHERE = ["Tokyo", "Paris", "Cairo", "Sydney", "Toronto", "Lagos", "Lima", "Oslo", "Mumbai", "Rome", "Dublin",
             "Nairobi", "Seoul", "Madrid", "Vienna"]
PARAPHRASES = ["Thinking back on the stream: {q}", "From what you saw and heard on the stream, {ql}",
               "A question about the stream. {q}"]


def bank_path(corpus: Corpus, name: str) -> Path:
    return contained(corpus.subdir("questions"), name).with_suffix(".jsonl")


def seal_path(corpus: Corpus, name: str) -> Path:
    return contained(corpus.subdir("questions"), name).with_suffix(".seal.json")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate_item(item: dict, where: str) -> None:
    for f in ("id", "question", "answer"):
        if not isinstance(item.get(f), str) or not item[f].strip():
            raise StreamlearnError(f"{where}: field {f!r} must be a non-empty string")
    if item.get("category") not in CATEGORIES:
        raise StreamlearnError(f"{where}: category {item.get('category')!r} is not one of {', '.join(CATEGORIES)}")
    if item.get("answer_type") not in ANSWER_TYPES:
        raise StreamlearnError(f"{where}: answer_type {item.get('answer_type')!r} is not one of {', '.join(ANSWER_TYPES)}")
    if item["answer_type"] == "mc":
        opts = item.get("options")
        if not isinstance(opts, list) or len(opts) < 2 or item["answer"] not in opts:
            raise StreamlearnError(f"{where}: a multiple-choice item needs options (2 or more) that include the answer")


def load_bank(corpus: Corpus, name: str = "main") -> list[dict]:
    path = bank_path(corpus, name)
    if not path.exists():
        raise StreamlearnError(f"no question bank {name!r} ({corpus.rel(path)}); make one with `streamlearn questions`")
    seal = seal_path(corpus, name)
    if seal.exists():
        want = json.loads(seal.read_text())["sha256"]
        got = _sha(path)
        if got != want:
            raise StreamlearnError(f"question bank {name!r} changed since it was sealed (sha256 {got[:12]} != "
                                   f"{want[:12]}); restore it, or build a new bank under another name")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            item = json.loads(line)
            validate_item(item, f"{path.name} line {n}")
            items.append(item)
    return items


def _same(text: str) -> str:
    """Comparison key for options: "DAY1" and "Day 1" are the same option."""
    return normalize(text).replace(" ", "")


def _distractors(answer: str, pool: list[str], rng: random.Random, k: int = 3,
                 also_correct: list[str] = ()) -> list[str]:
    seen = {_same(answer)} | {_same(a) for a in also_correct}
    out = []
    for cand in rng.sample(pool, len(pool)):
        if _same(cand) not in seen and cand.strip():
            seen.add(_same(cand))
            out.append(cand)
        if len(out) == k:
            break
    return out


def generate(corpus: Corpus, seed: int = 0) -> list[dict]:
    videos = corpus.videos.rows_by_key()
    chunks = [c for c in stream_order(corpus.chunks.read(), videos) if status_of(c, "describe") == DONE]
    if not chunks:
        raise StreamlearnError("no described chunks; run `streamlearn describe` first")
    raw = []  # (chunk, doc, qa)
    pools: dict[str, list[str]] = {}
    answers_of: dict[str, list[str]] = {}  # the same question asked twice (two texts on screen at once...)
    for c in chunks:
        doc = D.load(corpus.abs(c["description_path"]))
        for qa in doc.get("qa", []):
            pools.setdefault(qa["type"], []).append(qa["answer"])
            same = answers_of.setdefault(normalize(qa["question"]), [])
            if not same:
                raw.append((c, doc, qa))
            if _same(qa["answer"]) not in {_same(a) for a in same}:
                same.append(qa["answer"])
    rng = random.Random(seed)
    items: list[dict] = []
    mc_types = {"place", "time", "ocr", "spoken", "visual"}
    for n, (c, doc, qa) in enumerate(raw, start=1):
        qid = f"q{n:04d}"
        cat = QA_TO_CATEGORY.get(qa["type"], "visual")
        others = answers_of[normalize(qa["question"])][1:]  # also right: never a distractor, accepted as aliases
        item = {"id": qid, "category": cat, "question": qa["question"], "answer": qa["answer"],
                "aliases": list(qa.get("aliases", [])) + others, "evidence": {"chunk_ids": [c["chunk_id"]],
                                                                     "times": [qa["evidence_s"]]},
                "evidence_day": c.get("day_index"), "provenance": "generated", "variant_of": None,
                "key_facts": [qa["answer"]]}
        if qa["type"] in mc_types:
            options = [qa["answer"]] + _distractors(qa["answer"], pools.get(qa["type"], []), rng, also_correct=others)
            if len(options) >= 2:
                rng.shuffle(options)
                item.update(answer_type="mc", options=options)
            else:
                item.update(answer_type="short", options=None)
        elif qa["type"] in ("counting", "people"):
            item.update(answer_type="numeric", options=None)
        else:
            item.update(answer_type="short", options=None)
        items.append(item)
        q = qa["question"]
        para = rng.choice(PARAPHRASES).format(q=q, ql=q[0].lower() + q[1:])
        items.append({**item, "id": f"{qid}p", "question": para, "variant_of": qid})
    # cross-day: which day was the stream in a city; which city came next
    day_city: dict[int, str] = {}
    for c, doc, _ in raw:
        city = (doc.get("setting") or {}).get("city")
        if city and c.get("day_index") and c["day_index"] not in day_city:
            day_city[c["day_index"]] = city
    cities = list(dict.fromkeys(day_city.values()))
    days = sorted(day_city)
    k = 0
    for i, d in enumerate(days):
        city = day_city[d]
        k += 1
        others = [f"Day {x}" for x in days if x != d]
        opts = [f"Day {d}"] + rng.sample(others, min(3, len(others)))
        rng.shuffle(opts)
        items.append({"id": f"x{k:03d}", "category": "cross_day", "question": f"On which day of the stream was the "
                      f"streamer in {city}?", "answer_type": "mc" if len(opts) > 1 else "numeric",
                      "options": opts if len(opts) > 1 else None, "answer": f"Day {d}", "aliases": [str(d)],
                      "evidence": {"chunk_ids": [], "times": []}, "evidence_day": d, "provenance": "generated",
                      "variant_of": None, "key_facts": [f"Day {d}"]})
        if i + 1 < len(days) and day_city[days[i + 1]] != city:
            nxt = day_city[days[i + 1]]
            opts = [nxt] + _distractors(nxt, [x for x in cities if x != city], rng)
            rng.shuffle(opts)
            if len(opts) > 1:
                k += 1
                items.append({"id": f"x{k:03d}", "category": "cross_day", "question": f"Where did the stream go "
                              f"right after {city}?", "answer_type": "mc", "options": opts, "answer": nxt,
                              "aliases": [], "evidence": {"chunk_ids": [], "times": []}, "evidence_day": days[i + 1],
                              "provenance": "generated", "variant_of": None, "key_facts": [nxt]})
    # abstention: places the stream never went
    stream_days = sorted({int(c["day_index"]) for c in chunks if c.get("day_index") not in (None, "")})
    unvisited = [x for x in ELSEWHERE if normalize(x) not in {normalize(c) for c in cities}]
    for j, place in enumerate(rng.sample(unvisited, min(3, len(unvisited)))):
        opts = [NEVER] + [f"Day {x}" for x in rng.sample(stream_days, min(3, len(stream_days)))]
        rng.shuffle(opts)
        items.append({"id": f"n{j + 1:03d}", "category": "abstention", "question": f"On which day did the "
                      f"streamer visit {place}?", "answer_type": "mc" if len(opts) > 1 else "short",
                      "options": opts if len(opts) > 1 else None, "answer": NEVER,
                      "aliases": ["never", "did not", "didn't"], "evidence": {"chunk_ids": [], "times": []},
                      "evidence_day": None, "provenance": "generated", "variant_of": None,
                      "key_facts": ["The streamer never visited " + place]})
    for it in items:
        validate_item(it, it["id"])
    return items


def import_items(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise StreamlearnError(f"{path} does not exist; pass a CSV or JSONL question file")
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                rows.append(dict(r))
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise StreamlearnError(f"{path.name} line {n}: not JSON") from None
    items = []
    for n, r in enumerate(rows, start=1):
        opts = r.get("options")
        if isinstance(opts, str):
            opts = [o.strip() for o in opts.split("|") if o.strip()] or None
        aliases = r.get("aliases") or []
        if isinstance(aliases, str):
            aliases = [a.strip() for a in aliases.split("|") if a.strip()]
        chunk_ids = r.get("evidence_chunk_ids") or (r.get("evidence") or {}).get("chunk_ids") or []
        if isinstance(chunk_ids, str):
            chunk_ids = [x for x in chunk_ids.split("|") if x]
        day = r.get("evidence_day")
        item = {"id": str(r.get("id") or f"h{n:04d}"), "category": r.get("category"), "question": r.get("question"),
                "answer_type": r.get("answer_type") or ("mc" if opts else "short"), "options": opts,
                "answer": r.get("answer"), "aliases": aliases,
                "evidence": {"chunk_ids": chunk_ids, "times": (r.get("evidence") or {}).get("times", [])},
                "evidence_day": int(day) if day not in (None, "") else None, "provenance": "human",
                "variant_of": r.get("variant_of") or None, "key_facts": r.get("key_facts") or [r.get("answer")]}
        if r.get("human_label") not in (None, ""):
            item["human_label"] = str(r["human_label"])
        validate_item(item, f"{path.name} row {n}")
        items.append(item)
    return items


def write_bank(corpus: Corpus, name: str, items: list[dict], force: bool = False) -> Path:
    path = bank_path(corpus, name)
    if seal_path(corpus, name).exists() and not force:
        raise StreamlearnError(f"question bank {name!r} is sealed; write a new bank (--bank NAME) or pass --force")
    ids = [i["id"] for i in items]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise StreamlearnError(f"duplicate question id {dup!r}; ids must be unique in a bank")
    atomic_write_text(path, "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    if force:
        seal_path(corpus, name).unlink(missing_ok=True)
    return path


def seal(corpus: Corpus, name: str) -> dict:
    path = bank_path(corpus, name)
    items = load_bank(corpus, name)
    data = {"bank": name, "sha256": _sha(path), "items": len(items),
            "sealed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(seal_path(corpus, name), json.dumps(data, indent=1))
    return data


def run_questions(corpus: Corpus, name: str = "main", import_file: Path | None = None, do_seal: bool = False,
                  force: bool = False, seed: int = 0) -> dict:
    if import_file or not do_seal or not bank_path(corpus, name).exists():
        items = import_items(import_file) if import_file else generate(corpus, seed)
        write_bank(corpus, name, items, force=force)
        cats: dict[str, int] = {}
        for i in items:
            cats[i["category"]] = cats.get(i["category"], 0) + 1
        console.info(f"questions: {len(items)} items in {name} ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(cats.items())) + ")")
    out = {"bank": name, "items": len(load_bank(corpus, name))}
    if do_seal:
        out.update(seal(corpus, name))
        console.info(f"questions: sealed {name} (sha256 {out['sha256'][:12]})")
    return out
