"""Config validation (errors name the key) and safe ids/paths (nothing escapes the corpus).

Run: python -m pytest tests/test_config_paths.py -q
"""

from __future__ import annotations

import pytest

from streamlearn.core.config import Config, load_config, save_config
from streamlearn.core.errors import ConfigError, StreamlearnError
from streamlearn.core.paths import ascii_name, contained, derive_id, is_safe_id


def test_default_config_roundtrips(tmp_path):
    p = tmp_path / "streamlearn.toml"
    save_config(p, Config())
    assert load_config(p) == Config()


@pytest.mark.parametrize("body,message", [
    ("[corpus]\nsubjekt = 'x'\n", "streamlearn.toml: unknown key 'corpus.subjekt'; known keys here: subject, timezone, schema_version"),
    ("[operating_point]\nfps = 'fast'\n", "streamlearn.toml: operating_point.fps must be a number, got 'fast'"),
    ("[operating_point]\nfps = -1\n", "streamlearn.toml: operating_point.fps must be in (0, 60]"),
    ("[corpus]\ntimezone = 'Mars/Olympus'\n", "streamlearn.toml: corpus.timezone = 'Mars/Olympus' is not an IANA timezone; use a name like 'America/New_York' or 'UTC'"),
    ("[storage]\nuri = 'ftp://x'\n", "streamlearn.toml: storage.uri has unsupported scheme 'ftp'; use a local path, file://, s3:// or gs://"),
    ("operating_point = 3\n", "streamlearn.toml: operating_point must be a table ([section])"),
    ("[corpus\n", "streamlearn.toml: not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, body, message):
    p = tmp_path / "streamlearn.toml"
    p.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(message)


def test_ascii_names_and_ids():
    assert ascii_name("Day 2 / ../Boston — رحلة 🚗 (día 2)") == "Day_2_._Boston_dia_2"
    assert ascii_name("🚗🚗") == "untitled"
    assert is_safe_id("dQw4w9WgXcQ") and is_safe_id("a-b_c.d")
    for bad in ("../x", "a/b", "..", ".hidden", "-rf", "a..b", "", "x" * 97):
        assert not is_safe_id(bad)
    derived = derive_id("../../etc/passwd")
    assert is_safe_id(derived) and derived == derive_id("../../etc/passwd")
    assert derive_id("abc") == "abc"


def test_contained_refuses_escapes(tmp_path):
    assert contained(tmp_path, "abc") == tmp_path / "abc"
    for bad in ("..", "../x", "a/b"):
        with pytest.raises(StreamlearnError, match="unsafe name"):
            contained(tmp_path, bad)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(StreamlearnError, match="escapes"):
        contained(tmp_path, "link")
