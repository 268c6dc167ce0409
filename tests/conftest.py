"""Shared fixtures: a small synthetic tour rendered once per session, served on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tour(tmp_path_factory) -> Path:
    """Two days of 40 s each, both container variants, captions on day 2 only."""
    from streamlearn.testdata.synth import synthesize

    out = tmp_path_factory.mktemp("tour")
    synthesize(out, days=2, minutes=40 / 60, seed=7, speakers=2, scene_seconds=20)
    return out


@pytest.fixture()
def served_tour(tour):
    from streamlearn.testdata.loopback import LoopbackServer

    with LoopbackServer(tour) as srv:
        yield srv


@pytest.fixture()
def run_cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, output, stderr)."""
    from streamlearn.cli import cli

    def _run(*args: str):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return _run
