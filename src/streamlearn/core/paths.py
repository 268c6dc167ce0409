"""Safe names: ids and titles never become paths that escape the corpus folder."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from streamlearn.core.errors import StreamlearnError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.match(value)) and ".." not in value


def ascii_name(text: str, max_len: int = 80) -> str:
    """ASCII-safe artifact name from a title: accents folded, everything else mapped to '_'."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", folded)
    slug = re.sub(r"_+", "_", slug).strip("._-")
    slug = re.sub(r"\.{2,}", ".", slug)
    return slug[:max_len].rstrip("._-") or "untitled"


def derive_id(raw: str) -> str:
    """A stable, path-safe id: the raw id when it is already safe, else a slug plus a short hash."""
    if is_safe_id(raw):
        return raw
    digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:10]
    return f"{ascii_name(raw, 40)}-{digest}"


def contained(root: Path, *parts: str) -> Path:
    """root/parts..., refusing any component that is not a safe id or that resolves outside root."""
    for part in parts:
        if not is_safe_id(part):
            raise StreamlearnError(
                f"unsafe name {part!r}: ids must match [A-Za-z0-9][A-Za-z0-9_.-]* without '..'; "
                "re-create the row with `streamlearn playlist`, which derives safe ids"
            )
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise StreamlearnError(f"path {path} escapes {root}; refusing to touch it")
    return path
