"""What an LLM is asked for rewrites, and how its reply is read. The prompt holds the description's
facts (its rendering and the fact sentences), never its QA pairs: a rewrite must not learn how the
evaluation asks."""

from __future__ import annotations

import json
import re

from streamlearn.corpus import description as D

SYSTEM = (
    "You rewrite the facts of one part of a person's first-person livestream into many different documents, "
    "so that a model trained on them can recall every fact however it is asked. Each rewrite must keep every "
    "fact with its day (write \"day N\") and its clock time exactly as given; invent nothing; ask no questions. "
    "Answer with one JSON object and nothing else."
)

STYLES = (
    "Vary the rewrites: some as a diary entry, some as a timeline, some as a plain report, some as a letter "
    "to a friend. Vary which element leads each sentence: a person, a quote, a place, a sign or the time. "
    "Vary active and passive voice, sentence structure and the order of the facts. State each relation in "
    "both directions across the rewrites, e.g. \"X said Y at 14:02 on day 3\" and \"at 14:02 on day 3, Y was "
    "said by X\"; \"the sign read Z at 14:05 on day 3\" and \"Z was the sign seen at 14:05 on day 3\".")


def facts_text(doc: dict) -> str:
    """The description as the generator sees it: its rendering and its fact sentences, without QA pairs."""
    bare = {**doc, "qa": []}
    return "\n".join([D.render_target(bare), "", "Facts, one per line:", D.render_facts(bare, 0)])


def messages(doc: dict, n: int) -> list[dict]:
    user = "\n".join([
        f"Write {n} different rewrites of these facts. {STYLES}",
        "Every rewrite must contain every fact below, each with its day and clock time.",
        "", facts_text(doc), "",
        f'Return JSON: {{"rewrites": ["first rewrite", "second rewrite", ...]}} with {n} strings.',
    ])
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_rewrites(text: str) -> list[str]:
    """The rewrites in a reply: {"rewrites": [...]} or a bare list, inside code fences or chatter (the
    first JSON value that holds them). Raises ValueError saying what is wrong."""
    text = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.M)
    starts = [m.start() for m in re.finditer(r"[{\[]", text)][:50]
    if not starts:
        raise ValueError("no JSON in the reply")
    problem = "not JSON"
    for start in starts:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError as exc:
            problem = problem if problem != "not JSON" else f"not JSON ({exc.msg})"
            continue
        if isinstance(value, dict):
            value = value.get("rewrites")
        out = [(v.get("text") if isinstance(v, dict) else v) for v in value] if isinstance(value, list) else []
        out = [v.strip() for v in out if isinstance(v, str) and v.strip()]
        if out:
            return out
        problem = 'no list of rewrites (expected {"rewrites": ["...", ...]})'
    raise ValueError(problem)
