"""An export's folder: `export.json` marks a finished export, --out must be new, empty or an earlier export,
and a finished export is swapped in whole for the old one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streamlearn.core.errors import StreamlearnError

MARKER = "export.json"


def check_out(out: Path) -> None:
    """--out must be a new or empty folder, or an earlier streamlearn export (which is replaced whole)."""
    if out.exists() and not out.is_dir():
        raise StreamlearnError(f"--out {out} is a file; pick a folder (it is created if missing)")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise StreamlearnError(f"--out {out} holds files that are not a streamlearn export; pick a new or empty "
                               "folder (an earlier export there is replaced whole)")


def publish(tmp: Path, out: Path) -> None:
    """Swap a finished export in for the old one (a rename each; the old one goes last)."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
