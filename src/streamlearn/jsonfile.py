"""Reading one JSON object file that the product wrote (a description, a rewrites file): a file that is
missing, not UTF-8, not JSON or not an object raises one line naming the file and how to make it again."""

from __future__ import annotations

import json
from pathlib import Path

from streamlearn.errors import StreamlearnError


def read_object(path: Path, what: str, fix: str) -> dict:
    """`what`: the kind of file ("description"), `fix`: how to make it again."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StreamlearnError(f"{what} {path.name} is missing; {fix}") from None
    except UnicodeDecodeError:
        raise StreamlearnError(f"{what} {path.name} is not UTF-8 text; {fix}") from None
    except json.JSONDecodeError as exc:
        raise StreamlearnError(f"{what} {path.name} is not valid JSON (line {exc.lineno}: {exc.msg}); {fix}") from None
    if not isinstance(doc, dict):
        raise StreamlearnError(f"{what} {path.name} is a JSON {type(doc).__name__}, not an object; {fix}")
    return doc
