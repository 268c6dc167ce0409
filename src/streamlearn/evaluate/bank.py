"""The question bank: `questions/<bank>.jsonl`, one item per line (schema in docs/eval.md).

Generated from the descriptions' QA pairs (each pair is one fact, a unit of the bank: its original
question, a reworded paraphrase and, where the fact has two directions, a reversed question),
cross-day items and "never happened" items; or imported from a human-written CSV/JSONL.

Every generated fact is assigned, seeded and recorded, to the QA-trained or the held-out split
(`streamlearn.corpus.heldout`): `questions/<bank>.split.json`. Options are of the answer's form and from
the question's day; an item whose answer the question's own words give away is dropped, as is a
form whose answer is the same most of the time (the no-memory guesser would get it). `--seal`
records the hashes of the bank and its split; a sealed bank that changed is refused, and `train`
refuses to train on its held-out items.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus import heldout as H
from streamlearn.corpus.layout import Corpus, stream_order
from streamlearn.core.errors import StreamlearnError
from streamlearn.evaluate import draws
from streamlearn.evaluate.guesser import content_words, cue, cue_of_words
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.files import atomic_write_text
from streamlearn.corpus.questionbank import bank_path, load_bank, seal_path, sealed_sha, split_path, validate_item
from streamlearn.core.textnorm import normalize

QA_TO_CATEGORY = {"place": "place", "time": "time_order", "people": "people", "spoken": "spoken", "ocr": "ocr",
                  "visual": "visual", "counting": "counting", "cross_day": "cross_day", "abstention": "abstention"}
MC_TYPES = {"place", "time", "ocr", "spoken", "visual"}
NEVER = "It never happened"
# places a stream could plausibly have visited, for "never happened" questions
ELSEWHERE = ["Tokyo", "Paris", "Cairo", "Sydney", "Toronto", "Lagos", "Lima", "Oslo", "Mumbai", "Rome", "Dublin",
             "Nairobi", "Seoul", "Madrid", "Vienna"]
LEAK = 0.5  # an option whose content words are at least this much in the question is given away by it
MODAL = 0.5  # a free-answer form whose most frequent answer is at least this share is guessable


def _same(text: str) -> str:
    """Comparison key for options: "DAY1" and "Day 1" are the same option."""
    return normalize(text).replace(" ", "")


class _Pool:
    """Option candidates of one form (of a day, or of the whole stream), with each distinct answer's
    comparison key and content words made once: every item of the form draws from the pool."""

    def __init__(self, answers: list[str]):
        self.answers = answers
        self.keys: list[str | None] = []  # per answer; None for a blank one, never an option
        self.strings: Counter = Counter()  # comparison key -> how many distinct answers have it
        self.total = 0  # distinct answers that are not blank
        self._words: dict[str, frozenset[str]] = {}

    def ready(self) -> _Pool:
        """The pool with its keys made (once its answers are all in: they are gathered before any draw)."""
        if len(self.keys) != len(self.answers):
            key_of = {a: _same(a) if a.strip() else None for a in self.answers}
            self.keys = [key_of[a] for a in self.answers]
            self.strings = Counter(k for k in key_of.values() if k is not None)
            self.total = sum(self.strings.values())
        return self

    def words(self, answer: str) -> frozenset[str]:
        if answer not in self._words:
            self._words[answer] = frozenset(content_words(answer))
        return self._words[answer]


def _options(answer: str, question: str, day_pool: _Pool, stream_pool: _Pool, rng: random.Random,
             k: int = 3, also_correct: list[str] = ()) -> list[str]:
    """Distractors of the answer's form: from the question's day first, then the rest of the stream;
    never another right answer, never one the question's wording points to.

    Each pool is shuffled whole, as `rng.sample(pool, len(pool))`, because the bank's bytes depend on
    the generator's state after every shuffle; but only the candidates looked at are drawn, and the
    rest of the shuffle's draws are made in bulk (`draws.SampleOrder`) once k are found or no distinct
    answer is left that could be one."""
    seen = {_same(answer)} | {_same(a) for a in also_correct}
    out: list[str] = []
    asked = content_words(question)
    for pool in (day_pool.ready(), stream_pool.ready()):
        if not draws.exact():  # an interpreter whose random.sample draws differently: the plain shuffle
            for cand in rng.sample(pool.answers, len(pool.answers)):
                if len(out) == k:
                    return out
                if cand.strip() and _same(cand) not in seen and cue(question, cand) < LEAK:
                    seen.add(_same(cand))
                    out.append(cand)
            continue
        order = draws.SampleOrder(rng, len(pool.answers))
        live = pool.total - sum(pool.strings.get(key, 0) for key in seen)  # answers that could still be options
        refused: set[str] = set()
        refused_keys: Counter = Counter()
        while order.left:
            if len(out) == k:
                order.skip()
                return out
            if not live:  # every distinct answer is taken or refused: the rest of the shuffle adds none
                order.skip()
                break
            idx = order.take()
            cand, key = pool.answers[idx], pool.keys[idx]
            if key is None or key in seen or cand in refused:
                continue
            if cue_of_words(asked, pool.words(cand)) < LEAK:  # = cue(question, cand)
                seen.add(key)
                out.append(cand)
                live -= pool.strings[key] - refused_keys[key]
            else:
                refused.add(cand)
                refused_keys[key] += 1
                live -= 1
    return out


def _facts(corpus: Corpus) -> tuple[list[dict], list[dict]]:
    """One fact per distinct question, in stream order (a question asked twice, such as two signs on
    screen in the same second, is one fact whose other answers are aliases)."""
    videos = corpus.videos.rows_by_key()
    chunks = [c for c in stream_order(corpus.chunks.read(), videos) if status_of(c, "describe") == DONE]
    if not chunks:
        raise StreamlearnError("no described chunks; run `streamlearn describe` first")
    facts: list[dict] = []
    by_question: dict[str, dict] = {}
    answers: dict[str, set[str]] = {}  # question key -> comparison keys of its answer and aliases
    for c in chunks:  # one description at a time: a fact keeps its QA pair and its city, not the document
        doc = D.load(corpus.abs(c["description_path"]), checked=True)
        city = (doc.get("setting") or {}).get("city")
        for qa in doc.get("qa", []):
            key = normalize(qa["question"])
            if key in by_question:
                if _same(qa["answer"]) not in answers[key]:
                    by_question[key]["also"].append(qa["answer"])
                    answers[key].add(_same(qa["answer"]))
                continue
            fact = {"fact": H.fact_key(c["chunk_id"], qa["question"]), "chunk_id": c["chunk_id"],
                    "day": c.get("day_index"), "qa": qa, "city": city, "also": []}
            by_question[key] = fact
            answers[key] = {_same(qa["answer"])}
            facts.append(fact)
    return facts, chunks


def _variants(qa: dict) -> list[dict]:
    """(variant, question, answer, form) of a fact: the original, then its paraphrases and reversal."""
    out = [{"variant": "original", "question": qa["question"], "answer": qa["answer"]}]
    for v in qa.get("variants") or []:
        if v.get("kind") == "paraphrase":
            out.append({"variant": "paraphrase", "question": v["question"], "answer": qa["answer"]})
        elif v.get("kind") == "reverse" and v.get("answer"):
            out.append({"variant": "reverse", "question": v["question"], "answer": v["answer"]})
    for v in out:
        v["form"] = f"{'reverse' if v['variant'] == 'reverse' else 'original'}:{qa['type']}"
    return out


def generate(corpus: Corpus, seed: int | None = None) -> tuple[list[dict], dict]:
    """(items, split record) for a new bank; the record lists every fact with its split, the
    answer frequencies the no-memory guesser may use, and the items dropped with their reasons."""
    cfg = corpus.config.eval
    seed = cfg.split_seed if seed is None else seed
    facts, chunks = _facts(corpus)
    split = H.split_facts([{"fact": f["fact"], "chunk_id": f["chunk_id"], "day": f["day"]} for f in facts], seed,
                          cfg.heldout_fraction, cfg.heldout_chunk_fraction)
    pools: dict[tuple, _Pool] = {}
    frequencies: dict[str, Counter] = {}
    for f in facts:
        for v in _variants(f["qa"]):
            if v["variant"] == "paraphrase":
                continue
            pools.setdefault((v["form"], f["day"]), _Pool([])).answers.append(v["answer"])
            pools.setdefault((v["form"], None), _Pool([])).answers.append(v["answer"])
            frequencies.setdefault(v["form"], Counter())[normalize(v["answer"])] += 1
    rng = random.Random(seed)
    items: list[dict] = []
    dropped: list[dict] = []
    paraphrases: Counter = Counter()  # unit -> its paraphrases kept so far (they are numbered p, p1, p2, ...)
    nothing = _Pool([])
    for n, f in enumerate(facts, start=1):
        qa, c = f["qa"], f["chunk_id"]
        cat = QA_TO_CATEGORY.get(qa["type"], "visual")
        base = {"category": cat, "evidence": {"chunk_ids": [c], "times": [qa["evidence_s"]]},
                "evidence_day": f["day"], "provenance": "generated", "unit": f["fact"],
                "split": split["assign"][f["fact"]]}
        for v in _variants(qa):
            qid = f"q{n:04d}" + {"original": "", "paraphrase": "p", "reverse": "r"}[v["variant"]]
            if v["variant"] == "paraphrase":
                qid += str(paraphrases[f["fact"]] or "")
            also = f["also"] if v["variant"] != "reverse" else []
            item = {"id": qid, **base, "question": v["question"], "answer": v["answer"],
                    "aliases": list(qa.get("aliases", [])) + also, "variant": v["variant"], "form": v["form"],
                    "variant_of": None if v["variant"] == "original" else f"q{n:04d}", "key_facts": [v["answer"]]}
            if cue(v["question"], v["answer"]) >= LEAK:
                dropped.append({"id": qid, "question": v["question"], "reason": "the question's wording gives the "
                                "answer away"})
                continue
            if v["variant"] == "reverse" or qa["type"] in MC_TYPES:
                opts = [v["answer"]] + _options(v["answer"], v["question"], pools.get((v["form"], f["day"]), nothing),
                                                 pools.get((v["form"], None), nothing), rng, also_correct=also)
                if len(opts) < 2:
                    dropped.append({"id": qid, "question": v["question"], "reason": "no distractor of the answer's "
                                    "form in the stream"})
                    continue
                rng.shuffle(opts)
                item.update(answer_type="mc", options=opts)
            else:
                item.update(answer_type="numeric" if qa["type"] in ("counting", "people") else "short", options=None)
            items.append(item)
            if v["variant"] == "paraphrase":
                paraphrases[f["fact"]] += 1
    # a free-answer form whose most frequent answer is most of its answers: guessable without the stream
    free_of: dict[str, list[dict]] = {}
    for i in items:
        if i["answer_type"] != "mc":
            free_of.setdefault(i["form"], []).append(i)
    guessable: set[str] = set()  # item ids (unique among generated items)
    for form, freq in frequencies.items():
        total = sum(freq.values())
        answer, top = freq.most_common(1)[0]
        free = free_of.get(form, [])
        if free and total >= 2 and top / total >= MODAL:
            for i in free:
                dropped.append({"id": i["id"], "question": i["question"], "reason": f"guessable: {answer!r} is the "
                                f"answer to {top} of {total} {form} questions"})
                guessable.add(i["id"])
    items = [i for i in items if i["id"] not in guessable]
    items += _stream_items(facts, chunks, rng)
    items = _one_answer_per_question(items, dropped)
    for it in items:
        validate_item(it, it["id"])
    record = {"seed": seed, "heldout_fraction": cfg.heldout_fraction,
              "heldout_chunk_fraction": cfg.heldout_chunk_fraction, "heldout_chunks": split["heldout_chunks"],
              "facts": [{"fact": f["fact"], "chunk_id": f["chunk_id"], "day": f["day"], "question": f["qa"]["question"],
                         "answer": f["qa"]["answer"], "split": split["assign"][f["fact"]]} for f in facts],
              "answer_frequencies": {k: dict(v) for k, v in frequencies.items()}, "dropped": dropped}
    return items, record


def _one_answer_per_question(items: list[dict], dropped: list[dict]) -> list[dict]:
    """A question must determine its answer. Two facts' variants can word the same question (the
    words "DAY2" are on screen in two chunks of day 2: "when did they first appear?"): asked with
    different answers it is ambiguous and every copy goes; asked with the same answer, it is kept once."""
    by_question: dict[str, list[dict]] = {}
    for it in items:
        by_question.setdefault(normalize(it["question"]), []).append(it)
    drop: dict[str, str] = {}
    for same in by_question.values():
        if len(same) < 2:
            continue
        answers = {_same(i["answer"]) for i in same}
        if len(answers) > 1:
            why = (f"ambiguous: {len(same)} items ask this question with {len(answers)} different answers "
                   f"({', '.join(x['id'] for x in same)})")
            for i in same:
                drop[i["id"]] = why
        else:
            for i in same[1:]:
                drop[i["id"]] = f"the same question and answer as {same[0]['id']}"
    dropped.extend({"id": i["id"], "question": i["question"], "reason": drop[i["id"]]} for i in items if i["id"] in drop)
    return [i for i in items if i["id"] not in drop]


class _DaysBut(Sequence):
    """["Day x" for x in days if x != days[skip]], made when indexed: `rng.sample` draws the same from it,
    and a stream of many days does not build a list of every other day for each day."""

    def __init__(self, days: list[int], skip: int):
        self.days, self.skip = days, skip

    def __len__(self) -> int:
        return len(self.days) - 1

    def __getitem__(self, j: int) -> str:
        if not 0 <= j < len(self):
            raise IndexError(j)
        return f"Day {self.days[j if j < self.skip else j + 1]}"


def _stream_items(facts: list[dict], chunks: list[dict], rng: random.Random) -> list[dict]:
    """Items no single chunk answers: on which day the stream was in a city, where it went next
    (held out by nature: no QA pair of theirs is ever a target), and places it never went."""
    items: list[dict] = []
    day_city: dict[int, str] = {}
    day_chunks: dict[int, list[str]] = {}
    for f in facts:
        city = f["city"]
        if city and f["day"] and f["day"] not in day_city:
            day_city[f["day"]] = city
    for c in chunks:
        if c.get("day_index"):
            day_chunks.setdefault(int(c["day_index"]), []).append(c["chunk_id"])
    cities = list(dict.fromkeys(day_city.values()))
    days = sorted(day_city)
    common = {"provenance": "generated", "variant_of": None, "variant": "original", "split": H.HELDOUT}
    k = 0
    for i, d in enumerate(days):
        city = day_city[d]
        others = _DaysBut(days, i)
        opts = [f"Day {d}"] + rng.sample(others, min(3, len(others)))
        if len(opts) > 1:
            k += 1
            rng.shuffle(opts)
            items.append({"id": f"x{k:03d}", "category": "cross_day", "question": f"On which day of the stream was "
                          f"the streamer in {city}?", "answer_type": "mc", "options": opts, "answer": f"Day {d}",
                          "aliases": [str(d)], "evidence": {"chunk_ids": day_chunks.get(d, [])[:1], "times": []},
                          "evidence_day": d, "unit": f"x:day:{d}", "form": "original:cross_day_day",
                          "key_facts": [f"Day {d}"], **common})
        if i + 1 < len(days) and day_city[days[i + 1]] != city:
            nxt = day_city[days[i + 1]]
            q = f"Where did the stream go right after {city}?"
            opts = [nxt] + _options(nxt, q, _Pool([]), _Pool([x for x in cities if x != city]), rng)
            if len(opts) > 1:
                k += 1
                rng.shuffle(opts)
                items.append({"id": f"x{k:03d}", "category": "cross_day", "question": q, "answer_type": "mc",
                              "options": opts, "answer": nxt, "aliases": [],
                              "evidence": {"chunk_ids": day_chunks.get(days[i + 1], [])[:1], "times": []},
                              "evidence_day": days[i + 1], "unit": f"x:next:{d}", "form": "original:cross_day_next",
                              "key_facts": [nxt], **common})
    stream_days = sorted(day_chunks)
    visited = {normalize(c) for c in cities}
    unvisited = [x for x in ELSEWHERE if normalize(x) not in visited]
    for j, place in enumerate(rng.sample(unvisited, min(3, len(unvisited)))):
        opts = [NEVER] + [f"Day {x}" for x in rng.sample(stream_days, min(3, len(stream_days)))]
        if len(opts) < 2:
            continue
        rng.shuffle(opts)
        items.append({"id": f"n{j + 1:03d}", "category": "abstention", "question": f"On which day did the "
                      f"streamer visit {place}?", "answer_type": "mc", "options": opts, "answer": NEVER,
                      "aliases": ["never", "did not", "didn't"], "evidence": {"chunk_ids": [], "times": []},
                      "evidence_day": None, "unit": f"n:{place}", "form": "original:abstention",
                      "key_facts": ["The streamer never visited " + place], **common})
    return items


def import_items(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise StreamlearnError(f"{path} does not exist; pass a CSV or JSONL question file")
    rows: list[dict] = []
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a spreadsheet's byte-order mark is not in the first header
    except UnicodeDecodeError as exc:
        raise StreamlearnError(f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (a spreadsheet's "
                               "\"CSV UTF-8\")") from None
    if path.suffix.lower() == ".csv":
        rows = [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]
    else:
        for n, line in enumerate(text.splitlines(), start=1):
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
                "variant_of": r.get("variant_of") or None, "key_facts": r.get("key_facts") or [r.get("answer")],
                "split": H.HELDOUT, "unit": r.get("unit") or r.get("variant_of") or str(r.get("id") or f"h{n:04d}")}
        if r.get("human_label") not in (None, ""):
            item["human_label"] = str(r["human_label"])
        validate_item(item, f"{path.name} row {n}")
        items.append(item)
    return items


def write_bank(corpus: Corpus, name: str, items: list[dict], force: bool = False, split: dict | None = None) -> Path:
    path = bank_path(corpus, name)
    if seal_path(corpus, name).exists() and not force:
        raise StreamlearnError(f"question bank {name!r} is sealed; write a new bank (--bank NAME) or pass --force")
    ids = Counter(i["id"] for i in items)
    if len(ids) != len(items):
        dup = next(x for x, n in ids.items() if n > 1)
        raise StreamlearnError(f"duplicate question id {dup!r}; ids must be unique in a bank")
    text = "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)
    sp = split_path(corpus, name)
    # the split first, naming the bank it belongs to by hash, then the bank: a run killed in between
    # leaves a pair that `seal` refuses, never a bank sealed without its split
    if split is not None:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        atomic_write_text(sp, json.dumps({**split, "bank": name, "bank_sha256": digest}, indent=1, ensure_ascii=False))
    else:
        sp.unlink(missing_ok=True)
    atomic_write_text(path, text)
    if force:
        seal_path(corpus, name).unlink(missing_ok=True)
    return path


def seal(corpus: Corpus, name: str) -> dict:
    """Seal a bank with its held-out split: only a complete pair (a generated bank's split present and
    written for this very bank), else one line saying how to make it again."""
    path = bank_path(corpus, name)
    items = load_bank(corpus, name)
    sp = split_path(corpus, name)
    if any(i.get("provenance") == "generated" and i.get("split") for i in items):  # generated: it has a split
        fix = f"make it again: `streamlearn questions CORPUS --bank {name} --force --seal`"
        if not sp.exists():
            raise StreamlearnError(f"question bank {name!r} has held-out items but no split file ({sp.name}): a run "
                                   f"was stopped while writing it; {fix}")
        owner = json.loads(sp.read_text(encoding="utf-8")).get("bank_sha256")
        if owner and owner != sealed_sha(path):
            raise StreamlearnError(f"the held-out split {sp.name} was written for another version of bank {name!r}: "
                                   f"a run was stopped between the two files; {fix}")
    data = {"bank": name, "sha256": sealed_sha(path), "split_sha256": sealed_sha(sp) if sp.exists() else None,
            "items": len(items), "sealed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(seal_path(corpus, name), json.dumps(data, indent=1))
    return data


def _make(corpus: Corpus, name: str, import_file: Path | None, force: bool, seed: int | None) -> None:
    """Generate or import a bank and write it with its split; its items are let go on return, before
    `run_questions` reads the bank back (two copies of a large bank at once would double the peak)."""
    if seal_path(corpus, name).exists() and not force:  # before generating anything
        raise StreamlearnError(f"question bank {name!r} is sealed; write a new bank (--bank NAME) or pass --force")
    split = None
    if import_file:
        items = import_items(import_file)
    else:
        items, split = generate(corpus, seed)
    write_bank(corpus, name, items, force=force, split=split)
    cats = Counter(i["category"] for i in items)
    console.info(f"questions: {len(items)} items in {name} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(cats.items())) + ")")
    if split:
        n_held = sum(1 for f in split["facts"] if f["split"] == H.HELDOUT)
        console.info(f"questions: {len(split['facts'])} facts, {n_held} held out ({len(split['heldout_chunks'])} "
                     f"whole chunks), {len(split['facts']) - n_held} QA-trained; {len(split['dropped'])} items "
                     "dropped as guessable or without distractors")


def run_questions(corpus: Corpus, name: str = "main", import_file: Path | None = None, do_seal: bool = False,
                  force: bool = False, seed: int | None = None) -> dict:
    if import_file or not do_seal or not bank_path(corpus, name).exists():
        _make(corpus, name, import_file, force, seed)
    out = {"bank": name, "items": len(load_bank(corpus, name))}
    if do_seal:
        out.update(seal(corpus, name))
        console.info(f"questions: sealed {name} (sha256 {out['sha256'][:12]})")
    return out
