"""Files the product writes and reads back: atomic writes (a crash leaves the old or the new content), a file's
sha256, and reading one JSON object file that the product wrote (a description, a rewrites file): a file that
is missing, not UTF-8, not JSON or not an object raises one line naming the file and how to make it again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from streamlearn.core.errors import StreamlearnError


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


def read_json_lines(path: Path, fix: str, encoding_fix: str | None = None) -> list[tuple[int, object]]:
    """(line number, value) of every non-blank line of a JSON Lines file the product or a user wrote; a file
    that is not UTF-8 or a line that is not JSON raises one line naming the file (and line) and `fix`
    (`encoding_fix` for the encoding, when it differs)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StreamlearnError(f"{path.name}: not UTF-8 text (byte {exc.start}); {encoding_fix or fix}") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise StreamlearnError(f"{path.name} line {n}: not JSON ({exc.msg}); {fix}") from None
    return out


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to `path` so that a crash leaves the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a kill mid-write: no partial temp file stays behind
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()
