"""A described corpus of any size, written directly (no media, no model): `videos.csv`, `chunks.csv`
and one description per chunk whose QA pairs are shaped like the describe stage's (place, time, people,
spoken, ocr, counting, visual; paraphrases and reversals), cheap enough for 23,000 chunks.

For the question bank's and the audit's tests and benchmarks (`tests/test_bank_identity.py`,
`benchmarks/questions_scale.py`). The tests hold golden hashes of banks generated from these corpora:
changing what this writes means recomputing them with the bank code of the time.

Facts are chosen to reach every branch of bank generation: questions asked twice in a chunk (aliases),
the same question with different answers across chunks (ambiguous), answers the question gives away,
answers without a distractor of their form,
a form whose answer is nearly always the same (guessable), two paraphrases of one fact, a paraphrase
that leaks and one that does not, days in the same city and a move to the next.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from streamlearn.corpus import description as D
from streamlearn.core.config import Config, CorpusSection
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE, SKIPPED

CITIES = ["Miami", "Atlanta", "Nashville", "Memphis", "Dallas", "Austin", "Denver", "Phoenix", "Seattle",
          "Portland", "Boston", "Chicago", "Detroit", "Orlando", "Houston", "Omaha", "Reno", "Boise"]
LINES = ["We just got to the park.", "I just bought three burgers.", "It is sunny here today.",
         "Hey everyone, look at that sign.", "My friend Sophie is here with me.", "This place is packed.",
         "Let us go find some food.", "The line here is really long.", "Thanks for the follow!",
         "Can you hear the music?", "We are almost at the hotel.", "That was a great show.",
         "I have never seen a bridge like that.", "The weather turned cold.", "Chat, which way should we go?",
         "This coffee is amazing.", "We took the wrong exit.", "Look at all these boats.",
         "The museum opens at nine.", "I think it is going to rain."]
SIGNS = ["GATE 12", "EXIT", "LANE", "FLOOR9", "CENTRALPARK", "NO PARKING", "OPEN", "TICKETS", "PIER 39",
         "MUSEUM", "HOTEL", "CAFE", "BUS STOP", "ONE WAY", "STATION", "MARKET", "PLATFORM 2", "TAXI",
         "BRIDGE", "ZOO", "LIBRARY", "STADIUM", "HARBOR", "ARENA"]
CHUNK_S = 30.0


def _clock(start: datetime, offset_s: float) -> str:
    return (start + timedelta(seconds=offset_s)).strftime("%H:%M:%S")


def _qa(question: str, answer: str, kind: str, span: tuple[float, float], *variants: dict) -> dict:
    return {"question": question, "answer": answer, "type": kind, "evidence_s": list(span),
            "variants": list(variants)}


def _para(question: str) -> dict:
    return {"kind": "paraphrase", "question": question}


def _rev(question: str, answer: str) -> dict:
    return {"kind": "reverse", "question": question, "answer": answer}


def describe_chunk(doc: dict, day: int, k: int, city: str, start: datetime, rng: random.Random) -> dict:
    """Fill one description skeleton: speech, signs and the QA pairs about them."""
    d = f"day {day}"
    doc["setting"]["city"] = city
    doc["time_of_day"] = "afternoon"
    speech = [{"start_s": 2.0 + 9.0 * j, "speaker": f"SPEAKER_0{j % 2}", "text": rng.choice(LINES)} for j in range(3)]
    signs = [{"start_s": 0.0, "text": rng.choice(SIGNS)}]
    if k % 4 == 1:  # two signs in the same second: one question, the second answer is an alias
        signs.append({"start_s": 0.0, "text": rng.choice(SIGNS)})
    if k % 3 == 0:
        signs.append({"start_s": 15.0, "text": rng.choice(SIGNS)})
    doc["speech"], doc["on_screen_text"] = speech, signs
    doc["timeline"] = [{"start_s": 0.0, "end_s": CHUNK_S, "event": "on screen: " + ", ".join(s["text"] for s in signs)}]
    doc["summary"] = f"Afternoon in {city}; on screen: {signs[0]['text']}. First words: \"{speech[0]['text']}\""
    mid, first = _clock(start, 15.0), signs[0]["text"]
    hhmm = _clock(start, 0.0)[:5]
    place_variants = [_para(f"On {d}, at {mid}, the stream was broadcasting from which city?")]
    if k % 5 == 2:  # a paraphrase that names the answer (dropped), then one that does not
        place_variants.insert(0, _para(f"On {d}, at {mid}, was the stream in {city}, and which city was it?"))
    if k % 7 == 3:  # two paraphrases kept: ids q..p and q..p1
        place_variants.append(_para(f"Which city did the stream broadcast from at {mid} on {d}?"))
    qa = [_qa(f"Which city was the streamer in at {mid} on {d}?", city, "place", (0.0, CHUNK_S), *place_variants),
          _qa(f"At what local time did the part of the stream showing {first} begin on {d}?", hhmm, "time",
              (0.0, 1.0), _para(f"On {d}, when, in local time, did the stretch of stream that shows {first} start?"),
              _rev(f"On {d}, what was the first text on screen in the part of the stream that began at {hhmm}?",
                   first)),
          _qa(f"How many different voices are heard in the part of the stream starting at {_clock(start, 0.0)} on "
              f"{d}?", "2" if k % 9 else "3", "people", (0.0, CHUNK_S),
              _para(f"On {d}, how many distinct speakers can be heard in the stretch of stream that starts at "
                    f"{_clock(start, 0.0)}?"))]
    for s in speech:
        at = _clock(start, s["start_s"])
        qa.append(_qa(f"What did {s['speaker']} say at {at} on {d}?", s["text"], "spoken",
                      (s["start_s"], s["start_s"] + 3.0), _para(f"On {d}, at {at}, what were {s['speaker']}'s words?"),
                      _rev(f"On {d}, at what time did {s['speaker']} say \"{s['text']}\"?", at)))
    for s in signs:
        at = _clock(start, s["start_s"])
        qa.append(_qa(f"What did the text on screen read at {at} on {d}?", s["text"], "ocr",
                      (s["start_s"], s["start_s"] + 5.0), _para(f"On {d}, at {at}, which words could be read on screen?"),
                      _rev(f"On {d}, at what time did the words \"{s['text']}\" first appear on screen?", at)))
    if k % 3 == 0:
        qa.append(_qa(f"How many burgers did SPEAKER_00 buy at {mid} on {d}?", str(1 + k % 4), "counting",
                      (9.0, 12.0), _para(f"On {d}, at {mid}, how many burgers were bought by SPEAKER_00?")))
    if k % 10 == 4:  # the question gives its answer away: dropped
        qa.append(_qa(f"What was written on the sign that says {first} on {d}?", first, "ocr", (0.0, 5.0)))
    if k % 25 == 6:  # the same answer every time: no distractor of its form, dropped
        qa.append(_qa(f"What colour was the umbrella at {mid} on {d}?", "Red", "visual", (0.0, CHUNK_S)))
    doc["qa"] = qa
    return doc


def described_corpus(root: Path, chunks: int, per_day: int = 64, seed: int = 0) -> Corpus:
    """A corpus of `chunks` described chunks of 30 s, `per_day` a day (the last day may be shorter), one
    video a day; frames are marked skipped (audio only), so training targets are text only."""
    corpus, _ = Corpus.init(Path(root), Config(corpus=CorpusSection(timezone="UTC")))
    rng = random.Random(seed)
    days = -(-chunks // per_day)
    n_days = days
    city = rng.choice(CITIES)
    videos, rows = [], []
    for day in range(1, days + 1):
        if day > 1 and rng.random() < 0.6:  # a stream stays in a city a day or two, then moves on
            city = rng.choice([c for c in CITIES if c != city])
        vid = f"v{day:05d}"
        start_day = datetime(2025, 1, 1, 10, 0) + timedelta(days=day - 1)
        n = min(per_day, chunks - (day - 1) * per_day)
        videos.append({"video_id": vid, "title": f"Day {day} in {city}", "day_index": day, "timezone": "UTC",
                       "source": "jsonl"})
        for k in range(n):
            cid = f"{vid}_c{k:03d}"
            start = start_day + timedelta(seconds=CHUNK_S * k)
            iso = start.isoformat() + "+00:00"
            end = (start + timedelta(seconds=CHUNK_S)).isoformat() + "+00:00"
            doc = D.empty({"chunk_id": cid, "video_id": vid, "day_index": day, "start_local": iso, "end_local": end,
                           "timezone": "UTC", "duration_s": CHUNK_S}, n_days)
            describe_chunk(doc, day, k, city, start, rng)
            (corpus.folder("descriptions") / f"{cid}.json").write_text(json.dumps(doc), encoding="utf-8")
            rows.append({"chunk_id": cid, "video_id": vid, "chunk_index": k, "n_chunks": n,
                         "start_s": CHUNK_S * k, "end_s": CHUNK_S * (k + 1), "duration_s": CHUNK_S, "day_index": day,
                         "start_utc": iso, "start_local": iso, "end_local": end, "timezone": "UTC",
                         "frames_status": SKIPPED, "describe_status": DONE, "description_path": f"descriptions/{cid}.json"})
    corpus.videos.upsert(videos)
    corpus.chunks.write([{**{c.name: None for c in corpus.chunks.table.columns()}, **r} for r in rows])
    return corpus
