"""Describe: the signals backend against the synthetic tour's ground truth; the openai backend
against a local OpenAI-compatible server that misbehaves on purpose; the transformers backend with
a tiny random Qwen2.5-VL; batch files; resume after a kill; the review page in headless Chromium.

Run: python -m pytest tests/test_describe.py -q
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_chat import FakeChatServer, completion

from streamlearn.corpus import description as D
from streamlearn.chunk import run_chunk
from streamlearn.core.config import AcquireSection, Config, CorpusSection, DescribeSection
from streamlearn.corpus.layout import Corpus
from streamlearn.describe.run import run_describe


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@pytest.fixture(scope="module")
def described(tour, tmp_path_factory):
    """The tour acquired end to end, chunked at 20 s and described by the signals backend."""
    from streamlearn.acquire.run import run_acquire
    from streamlearn.testdata.loopback import LoopbackServer

    truth = json.loads((tour / "ground_truth.json").read_text())
    corpus, _ = Corpus.init(tmp_path_factory.mktemp("desc") / "corpus",
                            Config(acquire=AcquireSection(retries=1, retry_sleep=0.05)))
    with LoopbackServer(tour) as srv:
        run_acquire(corpus, url=srv.url("playlist.rss"))
    tz = {d["video_id"]: d["timezone"] for d in truth["days"]}
    corpus.videos.transform(lambda rows: [r.update(timezone=tz[r["video_id"]]) for r in rows])
    assert run_chunk(corpus, chunk_seconds=20).ok
    result = run_describe(corpus, backend="signals")
    assert result.ok, result.failed
    return corpus, truth


def test_signals_names_city_speech_and_screen_text(described):
    corpus, truth = described
    days = {d["video_id"]: d for d in truth["days"]}
    for chunk in corpus.chunks.read():
        doc = D.load(corpus.abs(chunk["description_path"]))
        assert D.validate(doc) == []
        day = days[chunk["video_id"]]
        assert doc["setting"]["city"] == day["city"], chunk["chunk_id"]
        assert doc["day_index"] == day["day"] and doc["n_days"] == 2
        a, b = chunk["start_s"], chunk["end_s"]
        # every scene shown in the chunk: its caption, venue and sign are read
        shown = norm(" ".join(t["text"] for t in doc["on_screen_text"]))
        for scene in day["scenes"]:
            if scene["start"] < b - 3 and scene["end"] > a + 3:
                for text in (scene["city"], scene["venue"], scene["sign"]):
                    assert norm(text) in shown, (chunk["chunk_id"], text)
        # the spoken phrases of the chunk are in the description (as transcribed)
        said = norm(" ".join(s["text"] for s in doc["speech"]))
        inside = [u for u in day["utterances"] if a <= u["start"] and u["end"] <= b]
        hits = sum(norm(u["text"])[:12] in said for u in inside)
        assert hits >= 0.8 * len(inside), (chunk["chunk_id"], hits, len(inside))
        target = D.render_target(doc)
        assert target.startswith(f"Day {day['day']} of 2 · {day['city']}, {day['state']} · ")
        assert doc["limitations"] and "without a vision model" in doc["limitations"][0]
        assert {q["type"] for q in doc["qa"]} >= {"place", "ocr", "spoken"}


def test_summaries_and_digest(described):
    corpus, truth = described
    for d in truth["days"]:
        day = json.loads((corpus.root / "descriptions" / "videos" / f"{d['video_id']}.json").read_text())
        assert day["cities"] == [d["city"]] and day["day_index"] == d["day"]
    digest = json.loads((corpus.root / "descriptions" / "stream.json").read_text())
    assert digest["route"] == [d["city"] for d in truth["days"]]


def test_status_sums_tokens_and_cost(described, run_cli, tmp_path):
    from streamlearn.corpus.layout import Corpus

    src, _ = described
    shutil.copytree(src.root, tmp_path / "c", symlinks=True)
    corpus = Corpus.open(tmp_path / "c")
    rows = corpus.chunks.read()
    ids = [r["chunk_id"] for r in rows]
    # what a paid backend records per chunk (the embedded one records zeros)
    corpus.chunks.record_many([(r["chunk_id"], "describe", "done", None,
                                {"description_path": r["description_path"], "describe_backend": "openai",
                                 "prompt_tokens": 1000 + k, "completion_tokens": 10 * k, "cost_usd": 0.0125 * (k + 1)})
                               for k, r in enumerate(rows)], force=True)
    report = json.loads(run_cli("status", corpus.root, "--json").output)
    n = len(ids)
    assert report["describe"] == {"chunks": n, "prompt_tokens": sum(1000 + k for k in range(n)),
                                  "completion_tokens": sum(10 * k for k in range(n)),
                                  "cost_usd": round(sum(0.0125 * (k + 1) for k in range(n)), 4)}


def test_review_page_renders_in_chromium(described, tmp_path, run_cli):
    corpus, _ = described
    res = run_cli("review", corpus.root, "--limit", "3")
    page = Path(res.output.strip().splitlines()[-1])
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--no-first-run"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(page.as_uri())
        shot = tmp_path / "review.png"
        tab.screenshot(path=str(shot))
        assert tab.locator("section.chunk").count() == 3 and tab.locator("video").count() == 3
        assert "Target text" in tab.content()
        # each player shows a poster frame before it loads; "k of N"; each QA pair says how a bank uses it
        posters = tab.evaluate("Array.from(document.querySelectorAll('video')).map(v => v.poster.slice(0, 23))")
        assert posters == ["data:image/jpeg;base64,"] * 3
        n = len(corpus.chunks.read())
        assert tab.locator("h1").inner_text().endswith(f": 3 of {n} described chunks ({n} chunks in the corpus)")
        splits = set(tab.evaluate("Array.from(document.querySelectorAll('td.split')).map(t => t.textContent)"))
        assert splits == {"no sealed bank yet"}
        browser.close()
    assert errors == []
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1280, 900) and len(set(img.getdata())) > 50  # not a blank page


def test_review_marks_each_qa_pair_by_the_sealed_split():
    from streamlearn.describe.review import split_of
    from streamlearn.corpus.heldout import Constraints, fact_key

    c = Constraints(banks=[{"name": "main"}], trained={fact_key("v_c000", "Which city?")},
                    heldout={fact_key("v_c000", "Who spoke?")})
    assert [split_of(c, "v_c000", q) for q in ("Which city?", "Who spoke?", "What else?")] == [
        "QA-trained", "held out", "not in a bank"]
    assert split_of(Constraints(), "v_c000", "Which city?") == "no sealed bank yet"


# ---------------------------------------------------------------- an OpenAI-compatible test server
GOOD = {
    "setting": {"city": "Testville", "region": None, "venue": "Main Street", "indoor": False},
    "time_of_day": "afternoon", "lighting": "daylight",
    "timeline": [{"start_s": 0.0, "end_s": 5.0, "event": "The streamer walks down Main Street."}],
    "people": [{"id": "SPEAKER_00", "name": None, "role": "streamer", "speaks": True, "description": None}],
    "speech": [{"start_s": 1.0, "speaker": "SPEAKER_00", "text": "Hello chat."}],
    "on_screen_text": [{"start_s": 0.0, "text": "MAIN ST"}], "notable": ["A red bus passes."],
    "continuity": {"from_previous": None, "sets_up": None}, "summary": "A walk down Main Street.",
    "limitations": [], "qa": [{"question": "Which street?", "answer": "Main Street", "type": "place",
                               "evidence_s": [0.0, 5.0]}],
}


class FakeLLM:
    """Scripted replies per chunk: good, malformed, truncated, slow, http429, http500."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = script
        self.calls: dict[str, int] = {}
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        self.server = FakeChatServer(self.reply)
        self.url = self.server.url

    def reply(self, body: dict, headers) -> tuple[int, dict | None, dict]:
        self.auth.add(headers.get("Authorization", ""))
        text = json.dumps(body["messages"])
        chunk = re.search(r"Chunk (\S+) of video", text).group(1)
        repair = "That output cannot be used" in text
        with self.lock:
            n = self.calls[chunk] = self.calls.get(chunk, 0) + 1
        plan = self.script.get(chunk, ["good"])
        what = plan[min(n, len(plan)) - 1]
        if what.startswith("http"):
            return int(what[4:]), {}, {"Retry-After": "0.1"} if what == "http429" else {}
        if what == "slow":
            time.sleep(2.0)
        content, finish = json.dumps(GOOD), "stop"
        if what == "malformed":
            content = "Sure! Here is the description: {\"setting\": {\"city\": }"
        elif what == "truncated":
            content, finish = json.dumps(GOOD)[:60], "length"
        elif what == "badschema":
            content = json.dumps({**GOOD, "time_of_day": "teatime", "qa": [{"question": "?"}]})
        return 200, completion(content, finish, 1000 + 10 * repair, 200), {}

    def stop(self):
        self.server.stop()


@pytest.fixture()
def media_corpus(tour, tmp_path):
    """Chunks with media but no transcripts: enough for the model backends."""
    from streamlearn.acquire.download import run_download
    from streamlearn.acquire.playlist import run_playlist

    vid = json.loads((tour / "ground_truth.json").read_text())["days"][0]["video_id"]
    (tmp_path / "rec").mkdir()
    shutil.copy(tour / "media" / f"{vid}.mp4", tmp_path / "rec" / "day1.mp4")
    corpus, _ = Corpus.init(tmp_path / "corpus", Config(corpus=CorpusSection(timezone="America/Chicago")))
    run_playlist(corpus, from_dir=tmp_path / "rec")
    run_download(corpus)
    assert run_chunk(corpus, chunk_seconds=6).ok  # 7 chunks
    return corpus


def test_openai_backend_retries_repairs_and_fails_cleanly(media_corpus, monkeypatch):
    corpus = media_corpus
    ids = [c["chunk_id"] for c in corpus.chunks.read()]
    script = {ids[1]: ["malformed", "good"], ids[2]: ["http429", "good"], ids[3]: ["http500", "http500", "good"],
              ids[4]: ["truncated", "truncated", "truncated"], ids[5]: ["slow", "good"],
              ids[6]: ["badschema", "badschema", "badschema"]}
    llm = FakeLLM(script)
    monkeypatch.setenv("STREAMLEARN_TEST_KEY", "sk-secret-do-not-write")
    corpus.config.describe = DescribeSection(backend="openai", model="fake-vlm", endpoint=llm.url,
                                             api_key_env="STREAMLEARN_TEST_KEY", n_frames=4, frame_width=160,
                                             timeout_s=1.0, max_retries=3, backoff_s=0.05, repairs=2,
                                             price_prompt_per_mtok=2.0, price_completion_per_mtok=8.0)
    corpus.save_config()
    try:
        result = run_describe(corpus, parallel=3)
    finally:
        llm.stop()
    assert sorted(result.done) == sorted([ids[0], ids[1], ids[2], ids[3], ids[5]])
    assert result.failed[ids[4]].startswith("invalid description after 2 repair attempts: the reply was cut off")
    assert result.failed[ids[6]].startswith("invalid description after 2 repair attempts: time_of_day must be one of")
    assert llm.calls == {ids[0]: 1, ids[1]: 2, ids[2]: 2, ids[3]: 3, ids[4]: 3, ids[5]: 2, ids[6]: 3}
    assert llm.auth == {"Bearer sk-secret-do-not-write"}
    rows = corpus.chunks.rows_by_key()
    assert rows[ids[1]]["prompt_tokens"] == 2010 and rows[ids[1]]["completion_tokens"] == 400
    assert rows[ids[1]]["cost_usd"] == pytest.approx((2010 * 2 + 400 * 8) / 1e6)
    doc = D.load(corpus.abs(rows[ids[1]]["description_path"]))
    assert doc["chunk_id"] == ids[1] and doc["setting"]["city"] == "Testville"  # metadata ours, content theirs
    assert doc["start_local"] == rows[ids[1]]["start_local"]
    assert not (corpus.root / "descriptions" / f"{ids[4]}.json").exists()
    # the key is nowhere on disk
    for path in corpus.root.rglob("*"):
        if path.is_file():
            assert b"sk-secret-do-not-write" not in path.read_bytes(), path
    # a re-run retries only the failed chunks, and answered requests come from the cache
    llm2 = FakeLLM({})
    corpus.config.describe = DescribeSection(**{**corpus.config.describe.__dict__, "endpoint": llm2.url})
    corpus.save_config()
    try:
        again = run_describe(corpus)
    finally:
        llm2.stop()
    assert sorted(again.done) == sorted([ids[4], ids[6]]) and not again.failed
    assert set(llm2.calls) == {ids[4], ids[6]}
    assert len(list((corpus.root / "descriptions").glob("*_c*.json"))) == 7


def test_openai_backend_gives_up_on_a_dead_endpoint(media_corpus):
    corpus = media_corpus
    corpus.config.describe = DescribeSection(backend="openai", model="m", endpoint="http://127.0.0.1:9/v1",
                                             n_frames=2, frame_width=160, max_retries=1, backoff_s=0.01)
    corpus.save_config()
    result = run_describe(corpus, limit=1)
    cid = corpus.chunks.read()[0]["chunk_id"]
    assert result.failed[cid].startswith("gave up after 2 attempts: ConnectError talking to http://127.0.0.1:9/v1")


def test_batch_write_then_import(media_corpus, tmp_path):
    corpus = media_corpus
    corpus.config.describe = DescribeSection(backend="batch", model="fake-vlm", n_frames=2, frame_width=160,
                                             price_prompt_per_mtok=2.0)
    corpus.save_config()
    run_describe(corpus)
    requests = [json.loads(x) for x in (corpus.root / "descriptions/batch/requests.jsonl").read_text().splitlines()]
    first = corpus.chunks.read()[0]["chunk_id"]
    assert [r["custom_id"] for r in requests] == [first]  # the rest wait for their previous description
    assert requests[0]["url"] == "/v1/chat/completions" and requests[0]["body"]["model"] == "fake-vlm"
    results = tmp_path / "out.jsonl"
    results.write_text(json.dumps({"custom_id": first, "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": json.dumps(GOOD)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 10}}}}) + "\n")
    result = run_describe(corpus, import_file=results, only=[first])
    assert result.done == [first]
    row = corpus.chunks.get(first)
    assert row["describe_backend"] == "batch" and row["cost_usd"] == pytest.approx(1000 * 2 / 1e6 / 2)
    second = corpus.chunks.read()[1]["chunk_id"]
    run_describe(corpus)  # next batch: the chunk after the imported one is now ready
    requests = [json.loads(x) for x in (corpus.root / "descriptions/batch/requests.jsonl").read_text().splitlines()]
    assert requests[0]["custom_id"] == second
    assert "A walk down Main Street." in json.dumps(requests[0]["body"]["messages"])  # recurrent context


def test_transformers_backend_plumbing_with_tiny_model(media_corpus):
    corpus = media_corpus
    corpus.config.describe = DescribeSection(backend="transformers", model="tiny", n_frames=4, frame_width=112,
                                             max_tokens=24, repairs=1)
    corpus.save_config()
    result = run_describe(corpus, limit=1)
    cid = corpus.chunks.read()[0]["chunk_id"]
    # random weights write garbage: parsed, rejected with the reason, retried once, then failed cleanly
    assert result.failed[cid].startswith("invalid description after 1 repair attempts:")
    assert not (corpus.root / "descriptions" / f"{cid}.json").exists()
    assert not list((corpus.root / "descriptions" / ".cache").rglob("*.json"))  # invalid replies are not cached


def test_killed_describe_resumes_without_duplicates(media_corpus, tmp_path):
    corpus = media_corpus
    copy = Corpus.init(tmp_path / "copy", corpus.config)[0]
    shutil.copytree(corpus.root, copy.root, dirs_exist_ok=True)
    assert run_describe(corpus, backend="signals").ok
    proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "describe", str(copy.root), "--backend", "signals"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not list((copy.root / "descriptions").glob("*_c00[1-9].json")):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_describe(copy, backend="signals").ok
    names = sorted(p.name for p in (copy.root / "descriptions").glob("*_c*.json"))
    assert names == sorted(p.name for p in (corpus.root / "descriptions").glob("*_c*.json"))
    assert not list((copy.root / "descriptions").glob(".*.tmp"))
    for name in names:
        a = json.loads((corpus.root / "descriptions" / name).read_text())
        b = json.loads((copy.root / "descriptions" / name).read_text())
        assert a == b


def test_no_secret_reaches_the_corpus_the_output_or_a_backup(media_corpus, tmp_path, monkeypatch, run_cli):
    """An endpoint that echoes the request's Authorization header in its error replies (401, then 500s
    with retries), an endpoint URL with a password, and a dead one: the key and the password are in no
    file of the corpus but the config the user wrote, in no backup, and in no output."""
    corpus = media_corpus
    key, password = "sk-live-abcdef1234567890SECRET", "hunter2-correct-horse"
    monkeypatch.setenv("STREAMLEARN_TEST_KEY", key)
    ids = [c["chunk_id"] for c in corpus.chunks.read()]
    calls: dict[str, int] = {}

    def echo(body, headers):
        n = calls.setdefault("n", 0)
        calls["n"] = n + 1
        status = 401 if n == 0 else 500
        return status, {"error": f"rejected request with Authorization: {headers.get('Authorization')}"}, {}

    server = FakeChatServer(echo)
    outputs = []
    try:
        for endpoint in (server.url.replace("://", f"://alice:{password}@"), server.url,
                         f"http://bob:{password}@127.0.0.1:9/v1"):
            corpus.config.describe = DescribeSection(backend="openai", model="m", endpoint=endpoint,
                                                     api_key_env="STREAMLEARN_TEST_KEY", n_frames=2, frame_width=160,
                                                     max_retries=1, backoff_s=0.01, timeout_s=2.0)
            corpus.save_config()
            res = run_cli("describe", corpus.root, "--only", ids[0], "--only", ids[1], "--force")
            outputs.append(res.output + (res.stderr or ""))
            assert res.exit_code == 1
    finally:
        server.stop()
    # httpx sends the URL's user:password as Basic auth: the echoed header is masked like a bearer token
    assert "HTTP 401" in outputs[0] and "Authorization: Basic ***" in outputs[0] and "alice" not in outputs[0]
    assert "HTTP 500" in outputs[1] and "Authorization: Bearer ***" in outputs[1]
    assert "http://***@127.0.0.1:9/v1" in corpus.chunks.rows_by_key()[ids[0]]["describe_error"]
    status = run_cli("status", corpus.root)
    outputs.append(status.output)
    backup = tmp_path / "backup"
    assert run_cli("sync", corpus.root, backup).exit_code == 0
    texts = outputs + [p.read_text(errors="replace") for p in backup.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace") for p in corpus.root.rglob("*") if p.is_file() and p.suffix in
              (".csv", ".json", ".jsonl", ".log", ".txt") or p.name == ".streamlearn.toml.redacted"]
    assert password in (corpus.root / "streamlearn.toml").read_text()  # the user's own file keeps what they wrote
    leaks = [t[:200] for t in texts if key in t or password in t or "Bearer sk-" in t]
    assert leaks == []
    assert "***@" in (backup / "corpus" / "streamlearn.toml").read_text()  # the backed-up config is masked


def test_an_endpoint_answering_html_is_named_with_the_fix(media_corpus):
    """A proxy's login page or a wrong path answering HTTP 200 with HTML: a one-line reason with the fix,
    not "JSONDecodeError"."""
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"<html><body>Please sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    corpus = media_corpus
    corpus.config.describe = DescribeSection(backend="openai", model="m", n_frames=2, frame_width=160, max_retries=0,
                                             endpoint=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    corpus.save_config()
    try:
        result = run_describe(corpus, limit=1)
    finally:
        httpd.shutdown()
    reason = next(iter(result.failed.values()))
    assert "answered HTTP 200 with something that is not JSON ('<html><body>Please sign in</body></html>')" in reason
    assert "point describe.endpoint at an OpenAI-compatible base URL" in reason


def test_ocr_reads_a_picture_once_while_it_holds_still(monkeypatch):
    """The signals backend's OCR gate (issue 26): a frame within `ocr_same_picture` of the last frame
    read keeps that frame's text; a changed picture is read again; 0 reads every frame."""
    import numpy as np

    from streamlearn.describe import signals

    calls = []
    monkeypatch.setattr(signals, "ocr", lambda f: calls.append(int(f.mean())) or [(f"text {int(f.mean())}", 10.0)])
    still = np.full((54, 96, 3), 100, np.uint8)
    noisy = still.copy()
    noisy[::2, ::2] = 103  # grain of 3 levels on a quarter of the pixels: under a level a block
    word = still.copy()
    word[20:24, 40:44] = 0  # a few dark pixels (a letter): the mean barely moves, one block moves a lot
    frames = [still, noisy, still, word, word, still]
    reads = signals.read_text(frames, same_picture=8.0)
    assert len(calls) == 3  # still, word, still again
    assert reads[1] == reads[0] and reads[4] == reads[3] and reads[3] != reads[0]
    calls.clear()
    assert len(signals.read_text(frames, same_picture=0)) == 6 and len(calls) == 6
