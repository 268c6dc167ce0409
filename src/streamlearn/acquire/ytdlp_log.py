"""yt-dlp plumbing: its log lines go to our debug output, its errors become one clean line."""

from __future__ import annotations

import re
from collections import deque

from streamlearn.core import console

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def clean_error(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc))
    text = re.sub(r"^ERROR:\s*", "", text.strip())
    text = re.sub(r"\s*\(caused by .*\)$", "", text, flags=re.S)
    return " ".join(text.split())


class YtdlpLogger:
    """Forwards yt-dlp's lines to debug output and keeps the recent ones to explain failures."""

    def __init__(self):
        self.recent: deque[str] = deque(maxlen=200)

    def debug(self, msg: str) -> None:
        if not msg.startswith("[debug] "):
            self.recent.append(_ANSI.sub("", msg))
            console.debug(_ANSI.sub("", msg))

    def info(self, msg: str) -> None:
        self.recent.append(_ANSI.sub("", msg))
        console.debug(_ANSI.sub("", msg))

    def explain(self, error: str) -> str:
        """Name the fragment when a fragmented (DASH/HLS) download gave up."""
        frag = total = None
        for line in self.recent:
            if m := re.search(r"(?:Retrying|Skipping) fragment (\d+)", line):
                frag = m.group(1)
            if m := re.search(r"Total fragments: (\d+)", line):
                total = m.group(1)
        if frag and "fragment" not in error.lower():
            return (f"fragment {frag}{f' of {total}' if total else ''} unavailable ({error}); "
                    "stopped instead of leaving a gap")
        return error

    def warning(self, msg: str) -> None:
        console.debug("yt-dlp warning: " + _ANSI.sub("", msg))

    def error(self, msg: str) -> None:
        console.debug("yt-dlp error: " + _ANSI.sub("", msg))
