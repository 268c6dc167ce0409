"""The whole loop: `streamlearn demo` on a short tour, every stage's manifest complete, the report
rendered in headless Chromium, a real learning signal (the trained checkpoint beats the untrained
one on recall questions with non-overlapping CIs), and a second run that reuses everything.

Run: python -m pytest tests/test_demo.py -q   (about five minutes on two CPU cores)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from streamlearn.evaluate.stats import cluster_bootstrap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "streamlearn", "demo", str(work), "--days", "2", "--minutes", "1",
                          "--chunk-seconds", "30"], capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work, res.stdout, time.monotonic() - t0


def test_every_stage_complete(demo, run_cli):
    work, out, _ = demo
    for n, stage in enumerate(["synth", "acquire", "chunk", "frames", "describe", "questions", "train", "eval",
                               "report"], start=1):
        assert f"[demo] {n}/9 {stage}: done" in out
    report = json.loads(run_cli("status", work / "corpus", "--json").output)
    for s in report["stages"]:
        assert s["failed"] == 0 and s["pending"] == 0 and s["done"] > 0, s
    assert report["problems"] == []
    assert report["training"][0]["completed_days"] == [1, 2]
    assert report["training"][0]["exports"] == ["day-00", "day-01", "day-02"]
    assert len([x for x in out.splitlines() if x.startswith("[verdict]")]) == 3


def test_trained_beats_untrained_on_recall(demo):
    work, _, _ = demo
    answers = [json.loads(x) for x in (work / "corpus/evals/main-main/answers.jsonl").read_text().splitlines()]
    # recall: the bank's original questions about what was shown and said (not paraphrases)
    recall = {a["id"] for a in answers if a["id"].startswith("q") and not a["id"].endswith("p")}

    def acc(ckpt):
        rows = [a for a in answers if a["system"] == "weights" and a["checkpoint"] == ckpt and a["id"] in recall]
        return cluster_bootstrap([bool(a["correct"]) for a in rows], [a["cluster"] for a in rows], 4000)

    base, trained = acc("day0"), acc("day2")
    assert trained[0] - base[0] >= 0.25, (base, trained)
    assert trained[1] > base[2], (base, trained)  # the CIs do not overlap


def test_report_renders(demo):
    work, _, _ = demo
    page = work / "corpus/evals/main-main/report/index.html"
    html = page.read_text()
    assert "smoke-scale model" in html and "McNemar" in html and "accuracy_weights.png" in html
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        tab = browser.new_page()
        errors = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(page.as_uri())
        widths = tab.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        browser.close()
    assert errors == [] and len(widths) >= 3 and all(w > 100 for w in widths)  # every plot loaded


def test_second_run_reuses_everything(demo):
    work, _, first = demo
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "streamlearn", "demo", str(work), "--days", "2", "--minutes", "1",
                          "--chunk-seconds", "30"], capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-2000:]
    assert "reusing the previous evaluation" in res.stdout
    assert not [x for x in res.stdout.splitlines() if x.startswith("step ")]  # no training step repeated
    assert took < 60, took
