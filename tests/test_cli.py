"""CLI surface: every command has --help with an example; init/status; clear one-line errors.

Run: python -m pytest tests/test_cli.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamlearn import __version__
from streamlearn.cli import cli


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help_with_example(run_cli, name):
    res = run_cli(name, "--help")
    assert res.exit_code == 0
    assert "Example: streamlearn " + name in res.output


def test_version_and_console_script():
    out = subprocess.run([sys.executable, "-m", "streamlearn", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"streamlearn, version {__version__}"


def test_init_then_status(run_cli, tmp_path):
    c = tmp_path / "corpus"
    res = run_cli("init", c, "--subject", "me", "--timezone", "Europe/Paris")
    assert res.exit_code == 0 and "created" in res.output
    for sub in ("videos", "chunks.d", "descriptions", "questions", "runs", "evals"):
        assert (c / sub).is_dir()
    assert "timezone = \"Europe/Paris\"" in (c / "streamlearn.toml").read_text()
    res = run_cli("status", c, "--json")
    report = json.loads(res.output)
    assert report["subject"] == "me" and report["videos"]["rows"] == 0
    assert {s["stage"] for s in report["stages"]} >= {"download", "transcribe", "diarize", "chunk", "frames", "describe"}
    res = run_cli("init", c)
    assert "already a corpus" in res.output


def test_status_on_non_corpus(run_cli, tmp_path):
    res = run_cli("status", tmp_path)
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"error: {tmp_path} is not a streamlearn corpus (no streamlearn.toml); "
                                  f"create one with `streamlearn init {tmp_path}`")
    res = run_cli("status", tmp_path / "nope")
    assert res.stderr.strip() == (f"error: {tmp_path / 'nope'} does not exist; create a corpus with "
                                  f"`streamlearn init {tmp_path / 'nope'}`")


def test_status_uses_data_root_env(run_cli, tmp_path, monkeypatch):
    run_cli("init", tmp_path / "c")
    monkeypatch.setenv("STREAMLEARN_DATA_ROOT", str(tmp_path / "c"))
    res = run_cli("status")
    assert res.exit_code == 0 and str(tmp_path / "c") in res.output
    monkeypatch.delenv("STREAMLEARN_DATA_ROOT")
    res = run_cli("status")
    assert res.stderr.strip() == "error: no corpus given: pass the corpus folder or set STREAMLEARN_DATA_ROOT"


def test_corrupt_videos_csv(run_cli, tmp_path):
    c = tmp_path / "c"
    run_cli("init", c)
    from streamlearn.corpus.tables import VIDEOS

    header = [col.name for col in VIDEOS.columns()]
    rows = [header, ["abc"] + [""] * (len(header) - 1)]
    rows[1][header.index("duration_s")] = "ten minutes"
    (c / "videos.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    res = run_cli("status", c)
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: videos.csv line 2, column duration_s: 'ten minutes' is not a number; fix or clear the value"
    (c / "videos.csv").write_text("video_id,url\nabc,http://x\n")
    res = run_cli("status", c)
    assert res.stderr.strip().startswith("error: videos.csv: missing column 'title' in the header")


def test_status_lists_failures(run_cli, tmp_path):
    from streamlearn.corpus.layout import Corpus
    from streamlearn.core.manifest import DONE, FAILED

    corpus, _ = Corpus.init(tmp_path / "c")
    corpus.videos.upsert([{"video_id": "v1", "title": "one", "duration_s": 3600.0},
                          {"video_id": "v2", "title": "two", "duration_s": 1800.0}])
    corpus.videos.record("v1", "download", DONE, media_bytes=2_000_000)
    corpus.videos.record("v2", "download", FAILED, error="HTTP Error 404: Not Found")
    report = json.loads(run_cli("status", corpus.root, "--json").output)
    dl = next(s for s in report["stages"] if s["stage"] == "download")
    assert (dl["done"], dl["failed"], dl["pending"], dl["hours"], dl["bytes"]) == (1, 1, 0, 1.0, 2_000_000)
    assert report["failed"] == [{"table": "videos", "id": "v2", "stage": "download", "error": "HTTP Error 404: Not Found"}]
    res = run_cli("status", corpus.root)
    assert res.exit_code == 0 and "videos/v2 download: HTTP Error 404: Not Found" in res.output
    # an integrity failure is an error (1), not a usage error (2, click's code)
    corpus.videos.record("v1", "download", DONE, force=True, media_bytes=2_000_000, integrity="sha256_mismatch")
    res = run_cli("status", corpus.root)
    assert res.exit_code == 1 and "PROBLEM: videos/v1: integrity sha256_mismatch" in res.output


def cli_surface() -> dict:
    """Every command and its parameters: names, flags, types, defaults."""
    out = {}
    for name, cmd in sorted(cli.commands.items()):
        params = [{"name": p.name, "opts": sorted(p.opts), "kind": type(p).__name__.lower(), "type": p.type.name,
                   "multiple": bool(getattr(p, "multiple", False)), "flag": bool(getattr(p, "is_flag", False)),
                   "required": bool(p.required),
                   "default": p.default if isinstance(p.default, (str, int, float, bool, type(None))) else repr(p.default)}
                  for p in cmd.params]
        out[name] = sorted(params, key=lambda x: x["opts"])
    return out


def test_cli_surface_is_pinned():
    """A change to the command line is deliberate: regenerate tests/cli_surface.json with
    STREAMLEARN_WRITE_CLI_SURFACE=1 and review its diff."""
    from pathlib import Path
    import os

    pinned = Path(__file__).parent / "cli_surface.json"
    if os.environ.get("STREAMLEARN_WRITE_CLI_SURFACE"):
        pinned.write_text(json.dumps(cli_surface(), indent=1, sort_keys=True) + "\n")
    assert cli_surface() == json.loads(pinned.read_text())
    stage_options = {"--parallel", "--only", "--force", "--executor", "--ray-address", "--gpus-per-task"}
    for name in ("download", "transcribe", "diarize", "chunk", "frames", "describe", "rewrite"):  # one shared option set
        assert stage_options <= {o for p in cli.commands[name].params for o in p.opts}, name


def test_flag_values_are_checked_where_they_enter(run_cli, tmp_path):
    res = run_cli("plan", "--chunk-seconds", "inf")
    assert res.exit_code == 1 and res.stderr == "error: plan: --chunk-seconds inf: must be a number of seconds in (0, 86400]\n"
    res = run_cli("plan", "--fps", "-1")
    assert res.exit_code == 1 and res.stderr == "error: plan: --fps -1: must be in (0, 60]\n"
    res = run_cli("describe", tmp_path, "--limit", "-1")
    assert res.exit_code == 2 and "Invalid value for '--limit': -1 is not in the range x>=1." in res.stderr
    from streamlearn.core.config import ConfigError, OperatingPoint

    with pytest.raises(ConfigError, match="operating_point.chunk_seconds must be a number of seconds"):
        OperatingPoint(chunk_seconds=float("inf"))


def test_wrong_corpus_paths_and_init_options_say_so(tmp_path, run_cli):
    """Issue 24 (4): a file passed as the corpus names the corpus that holds it; init on an existing corpus
    with other options refuses (exit 1) instead of ignoring them; the same options are fine."""
    assert run_cli("init", tmp_path / "c", "--subject", "a").exit_code == 0
    res = run_cli("status", tmp_path / "c" / "streamlearn.toml")
    assert res.exit_code == 1
    assert f"streamlearn.toml is a file, not a corpus folder; pass `{tmp_path / 'c'}`, the corpus that holds it" in res.output
    res = run_cli("status", tmp_path / "c" / "videos.csv")  # not made yet: still inside the corpus
    assert res.exit_code == 1 and f"is inside the corpus {tmp_path / 'c'}; pass `{tmp_path / 'c'}`" in res.output
    assert "streamlearn init" not in res.output  # the old advice made a corpus inside a corpus
    res = run_cli("init", tmp_path / "c", "--subject", "x")
    assert res.exit_code == 1
    assert "is already a corpus and init does not change it: --subject 'x' (it has 'a')" in res.output
    assert run_cli("init", tmp_path / "c", "--subject", "a").exit_code == 0


def test_new_configs_hold_only_keys_that_are_read(tmp_path, run_cli):
    """Issue 24 (4): `init` no longer writes models.train / models.describe (nothing read them); an older
    config with them still opens, and one that set them to something else is told the live key."""
    assert run_cli("init", tmp_path / "c").exit_code == 0
    text = (tmp_path / "c" / "streamlearn.toml").read_text()
    assert "[models]" in text and 'train = "tiny"' not in text and 'describe = "signals"' not in text
    (tmp_path / "c" / "streamlearn.toml").write_text(text.replace("[models]\n", '[models]\ntrain = "qwen2.5-vl-7b"\n'))
    res = run_cli("status", tmp_path / "c")
    assert res.exit_code == 0
    assert "models.train = 'qwen2.5-vl-7b' is not read; the setting is train.model" in res.output + res.stderr


def test_plan_says_when_max_frames_caps_the_fps(run_cli):
    """Issue 24 (4): `plan --fps 2` at 1,200 s showed 2 fps while 1 fps was sampled (max_frames 1200)."""
    res = run_cli("plan", "--fps", "2", "--fps", "0.5")
    assert res.exit_code == 0
    rows = res.output.splitlines()
    assert rows[1].split()[:3] == ["1200", "2->1", "1200"] and rows[2].split()[:3] == ["1200", "0.5", "600"]
    assert ("note: at 1200 s, --fps 2 asks for 2400 frames; operating_point.max_frames caps them at 1200, so frames "
            "are sampled at 1 fps (raise --max-frames or lower --fps)") in res.output
    assert json.loads(run_cli("plan", "--fps", "2", "--json").output)[0]["sample_fps"] == 1.0
