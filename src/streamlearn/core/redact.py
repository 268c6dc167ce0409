"""Secrets never reach a manifest, log, status page or backup: every error text and log line passes
through `redact` before it is written or printed.

Removed: the password (and user) of a URL (`https://user:pass@host` -> `https://***@host`), bearer
tokens, API-key shapes (`sk-...`, `hf_...`, `ghp_...`, `xox?-...`, `AKIA...`), and the value of any
environment variable whose name says it holds a secret (KEY, TOKEN, SECRET, PASSWORD, such as the
configured `describe.api_key_env`), wherever it appears. An endpoint's reply body is cut to
`excerpt` characters by its caller and redacted like the rest.
"""

from __future__ import annotations

import os
import re

MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+|=|:\s*)[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPES = re.compile(r"\b(sk-(?:proj-|ant-)?[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|ghp_[A-Za-z0-9]{8,}|"
                         r"xox[abpr]-[A-Za-z0-9-]{8,}|AKIA[0-9A-Z]{12,})")
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)


def _env_secrets() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with credentials in URLs, bearer tokens, key-shaped strings and secret env values masked."""
    if not text:
        return text
    out = _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", str(text))
    out = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, out)
    out = _KEY_SHAPES.sub(MASK, out)
    for value in _env_secrets():
        out = out.replace(value, MASK)
    return out


def excerpt(text: str, limit: int = 120) -> str:
    """A safe, short piece of an untrusted reply (an HTML error page, an echo of the request)."""
    flat = " ".join(str(text).split())
    return redact(flat if len(flat) <= limit else flat[:limit] + "...")
