"""A described chunk's generated rewrites: `rewrites/<chunk_id>.json`, written by `streamlearn rewrite`
and read by the training targets (`targets.build_specs`, kind "rewrites").

    {"schema": SCHEMA, "chunk_id": ..., "description_sha256": sha256 of the description file it was made
     from, "generator": {"backend", "model"}, "requested": N, "rewrites": [text, ...],
     "dropped": [{"index": k, "reason": ...}], "checked_against": [{"bank", "sha256"}] (empty: no bank
     existed, nothing was checked)}

A file whose `description_sha256` is not the description's is stale: made from an earlier description.
"""

from __future__ import annotations

from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import read_object, sha256_file

SCHEMA = "streamlearn.rewrites/1"


def load(path: Path) -> dict:
    """A rewrites file; one that is not one raises one line naming the file and how to make it again."""
    path = Path(path)
    fix = f"make it again: `streamlearn rewrite CORPUS --force --only {path.stem}`"
    doc = read_object(path, "rewrites", fix)
    if doc.get("schema") != SCHEMA:
        raise StreamlearnError(f"rewrites {path.name} is not a {SCHEMA} file; {fix}")
    texts = doc.get("rewrites")
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        raise StreamlearnError(f"rewrites {path.name}: 'rewrites' must be a list of non-empty strings; {fix}")
    return doc


def is_current(doc: dict, description: Path) -> bool:
    """Made from the description as it is now."""
    return doc.get("description_sha256") == sha256_file(description)
