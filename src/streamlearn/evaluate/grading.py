"""Objective graders: multiple choice by letter, short answers against aliases, numbers with tolerance."""

from __future__ import annotations

import re

from streamlearn.core.textnorm import normalize

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
WORD_NUMBERS = {w: i for i, w in enumerate(ONES)}


def grade_short(response: str, answer: str, aliases: list[str] | None = None) -> bool:
    """True when the answer or an alias appears in the response as whole words."""
    resp = f" {normalize(response)} "
    for cand in [answer] + list(aliases or []):
        c = normalize(cand)
        if c and f" {c} " in resp:
            return True
    return False


def numbers_in(text: str) -> list[float]:
    """Numbers written with digits (1,234.5 / 14 dollars / $14) or as English words (twenty-one)."""
    out = [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*\.?\d*", text)]
    words = re.sub(r"[^a-z\s-]", " ", text.lower()).replace("-", " ").split()
    i = 0
    while i < len(words):
        w = words[i]
        if w in TENS:
            value = TENS[w]
            if i + 1 < len(words) and words[i + 1] in WORD_NUMBERS and WORD_NUMBERS[words[i + 1]] < 10:
                value += WORD_NUMBERS[words[i + 1]]
                i += 1
            out.append(float(value))
        elif w in WORD_NUMBERS:
            out.append(float(WORD_NUMBERS[w]))
        i += 1
    return out


def grade_numeric(response: str, answer: str, tolerance: float = 0.0) -> bool:
    target = numbers_in(str(answer))
    if not target:
        return False
    return any(abs(n - target[0]) <= tolerance * max(1.0, abs(target[0])) for n in numbers_in(response))


LETTER_PATTERNS = [
    r"^\s*\(?([A-J])\)?\s*(?:[.:)\]]|$)",  # "B", "(B)", "B.", "B:"
    r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-J])\)?\b",  # "the answer is B", "Option (C)"
    r"\(([A-J])\)",  # "... (B) Boston ..."
]


def extract_letter(response: str, options: list[str]) -> str | None:
    """The chosen option letter, from a bare letter, a phrase like 'the answer is (B)', or the
    option's own text when exactly one option is quoted."""
    letters = [chr(65 + i) for i in range(len(options))]
    for pat in LETTER_PATTERNS:
        m = re.search(pat, response.strip(), flags=re.I if "answer" in pat else 0)
        if m and m.group(1).upper() in letters:
            return m.group(1).upper()
    hits = [letters[i] for i, opt in enumerate(options) if normalize(opt) and f" {normalize(opt)} " in f" {normalize(response)} "]
    return hits[0] if len(hits) == 1 else None


def rotate(options: list[str], k: int) -> list[str]:
    k %= len(options)
    return options[k:] + options[:k]
