"""One redaction for every error text and log line (src/streamlearn/core/redact.py).

Run: python -m pytest tests/test_redact.py -q
"""

from __future__ import annotations

from streamlearn.core.manifest import one_line
from streamlearn.core.redact import excerpt, redact


def test_credentials_tokens_and_key_shapes_are_masked(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "opaque-value-1234")
    text = ("HTTP 401 from https://alice:s3cr3t-pass@gw.example.com/v1: 'Authorization: Bearer sk-abc12345678 "
            "hf_ABCDEFGHIJKL token=zzzzzzzzzzzz opaque-value-1234'")
    out = redact(text)
    for secret in ("s3cr3t-pass", "alice", "sk-abc12345678", "hf_ABCDEFGHIJKL", "zzzzzzzzzzzz", "opaque-value-1234"):
        assert secret not in out, secret
    assert out.startswith("HTTP 401 from https://***@gw.example.com/v1")
    assert redact("GATE 12 at 12:00:05 on day 1") == "GATE 12 at 12:00:05 on day 1"  # ordinary text untouched


def test_manifest_reasons_and_reply_excerpts_are_redacted():
    assert "sk-" not in one_line("failed: key sk-proj-abcdefghijklmnop rejected")
    long = "<html>" + "x" * 500 + " Bearer abcdefghijklmnop</html>"
    cut = excerpt(long, 40)
    assert len(cut) <= 43 and "Bearer abc" not in cut and cut.endswith("...")
