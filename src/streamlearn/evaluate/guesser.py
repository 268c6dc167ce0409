"""The no-memory guesser: what a bank item gives away without any knowledge of the stream.

It sees the question, the options and the stream's answer frequencies per answer form (recorded
with the bank), never a chunk. For multiple choice it takes the options sharing the most content
words with the question (a cue in the wording: "on day 2" and an option "DAY 2"), else the options
whose answer is most frequent in the stream; for short and numeric answers, the most frequent
answer of the item's form. Ties are split evenly, so its score is the expected accuracy.
"""

from __future__ import annotations

from streamlearn.core.textnorm import normalize

STOPWORDS = set("""a about after all an and any are as at be been before by can could did do does for from had has
have he her his how i if in into is it its me my no not of on or our out over she so than that the their them then
there they this to up was we were what when where which while who whom why will with would you your""".split())


def content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in STOPWORDS}


def cue(question: str, option: str) -> float:
    """The share of an option's content words that the question also contains (0: no cue)."""
    return cue_of_words(content_words(question), content_words(option))


def cue_of_words(question_words: set[str], option_words: set[str] | frozenset[str]) -> float:
    """`cue` from the content words (the question bank asks it of one question for many options)."""
    return len(option_words & question_words) / len(option_words) if option_words else 0.0


def form_of(item: dict) -> str:
    return item.get("form") or f"{item.get('variant') or 'original'}:{item['category']}"


def guess(item: dict, frequencies: dict[str, dict[str, int]]) -> float:
    """Expected correctness (0..1) of the guesser on one item."""
    freq = frequencies.get(form_of(item), {})
    answer = normalize(item["answer"])
    if item["answer_type"] == "mc":
        options = item["options"]
        cues = [cue(item["question"], o) for o in options]
        if max(cues) > 0:
            best = [o for o, c in zip(options, cues) if c == max(cues)]
        else:
            counts = [freq.get(normalize(o), 0) for o in options]
            best = [o for o, n in zip(options, counts) if n == max(counts)]
        return sum(normalize(o) == answer for o in best) / len(best)
    if not freq:
        return 0.0
    top = max(freq.values())
    modal = [a for a, n in freq.items() if n == top]
    right = {answer} | {normalize(a) for a in item.get("aliases") or []}
    return sum(a in right for a in modal) / len(modal)
