"""Text comparison keys shared by grading, the held-out split and the contamination audit."""

from __future__ import annotations

import re
import unicodedata

ARTICLES = {"a", "an", "the"}


def normalize(text: str) -> str:
    """Case, accents, punctuation and articles ignored; unicode compatibility forms folded."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", str(text)))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words = re.sub(r"[^\w\s]", " ", text).split()
    return " ".join(w for w in words if w not in ARTICLES)


def tokens(text: str) -> list[str]:
    return normalize(text).split()
