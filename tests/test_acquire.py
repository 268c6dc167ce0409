"""Acquire end to end on the synthetic tour: real yt-dlp from a loopback server, real
faster-whisper, real VAD + speaker embeddings. Plus the bad inputs: 404s, missing fragments,
truncated files, dropped connections, a killed run, files without audio, non-media files.

Run: python -m pytest tests/test_acquire.py -q
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlearn.acquire.diarize import run_diarize
from streamlearn.acquire.download import run_download
from streamlearn.acquire.playlist import run_playlist
from streamlearn.acquire.transcribe import run_transcribe
from streamlearn.core.config import AcquireSection, Config
from streamlearn.corpus.layout import Corpus
from streamlearn.testdata.loopback import Faults, LoopbackServer

FAST = AcquireSection(retries=1, retry_sleep=0.05)


def new_corpus(path: Path) -> Corpus:
    corpus, _ = Corpus.init(path, Config(acquire=FAST))
    return corpus


@pytest.fixture(scope="module")
def acquired(tour, tmp_path_factory):
    truth = json.loads((tour / "ground_truth.json").read_text())
    with LoopbackServer(tour) as srv:
        corpus = new_corpus(tmp_path_factory.mktemp("acq") / "corpus")
        run_playlist(corpus, url=srv.url("playlist.rss"))
        assert run_download(corpus).ok
        assert run_transcribe(corpus).ok
        assert run_diarize(corpus).ok
        yield corpus, truth, srv


def norm(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def test_playlist_rows(acquired):
    corpus, truth, srv = acquired
    rows = corpus.videos.read()
    assert [r["video_id"] for r in rows] == [d["video_id"] for d in truth["days"]]
    for r, d in zip(rows, truth["days"]):
        assert r["title"] == d["title"] and r["ascii_title"].isascii() and "/" not in r["ascii_title"]
        assert r["timestamp"] == d["release_timestamp"] and r["duration_s"] == int(d["duration_s"])
        assert r["day_index"] == d["day"] and r["source"] == "url"
        assert "smuggle" not in r["url"] and r["url"].startswith(srv.base_url)
    raw = (corpus.root / "playlist_raw.jsonl").read_text().splitlines()
    assert len(raw) == 2


def test_playlist_rerun_keeps_edits_and_runtime(acquired):
    corpus, truth, srv = acquired
    vid = truth["days"][0]["video_id"]

    def edit(rows):
        rows[0]["day_index"] = 5

    corpus.videos.transform(edit)
    before = corpus.videos.get(vid)
    out = run_playlist(corpus, url=srv.url("playlist.rss"))
    assert out["added"] == 0
    after = corpus.videos.get(vid)
    assert after == before and after["day_index"] == 5 and after["download_status"] == "done"
    corpus.videos.transform(lambda rows: rows[0].update(day_index=1))


def test_download_archival_and_verified(acquired):
    corpus, truth, _ = acquired
    from streamlearn.media.probe import probe
    from streamlearn.core.files import sha256_file

    for r, d in zip(corpus.videos.read(), truth["days"]):
        media = corpus.abs(r["media_path"])
        assert media.name == f"{d['video_id']}.mkv"
        p = probe(media)
        assert (p.vcodec, p.acodec) == ("vp9", "opus")  # VP9 beats H.264, Opus beats AAC
        assert r["integrity"] == "ok" and r["media_sha256"] == sha256_file(media)
        assert abs(r["probe_duration_s"] - d["duration_s"]) < 0.1
        info = json.loads(corpus.abs(r["info_json"]).read_text())
        assert info["id"] == d["video_id"]
        blob = json.dumps(info)
        assert '"url"' not in blob and "http_headers" not in blob and "fragments" not in blob
        assert (r["subtitles"] == "en:manual") == d["captions"]
    archive = (corpus.root / "download_archive.txt").read_text().split()
    assert sorted(archive[1::2]) == sorted(d["video_id"] for d in truth["days"])


def test_transcripts(acquired):
    corpus, truth, _ = acquired
    for r, d in zip(corpus.videos.read(), truth["days"]):
        assert r["transcript_source"] == ("captions" if d["captions"] else "asr")
        doc = json.loads(corpus.abs(r["transcript_path"]).read_text())
        words = [w for s in doc["segments"] for w in s["words"]]
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and 0 <= starts[0] and words[-1]["end"] <= d["duration_s"] + 0.5
        heard = set(norm(" ".join(w["word"] for w in words)))
        spoken = set(norm(" ".join(u["text"] for u in d["utterances"])))
        assert len(heard & spoken) / len(spoken) > 0.8
        # utterance starts within 1 s of the truth, from word timestamps
        for u in d["utterances"]:
            inside = [w["start"] for w in words if u["start"] - 1.0 <= w["start"] < u["end"]]
            assert inside and abs(inside[0] - u["start"]) < 1.0, (u["text"], u["start"], inside[:1])
        assert (corpus.abs(r["transcript_path"]).with_suffix(".srt")).read_text().startswith("1\n00:00:")


def test_diarization_speakers_and_words(acquired):
    corpus, truth, _ = acquired
    for r, d in zip(corpus.videos.read(), truth["days"]):
        assert r["n_speakers"] == 2, r["video_id"]
        rttm = corpus.abs(r["rttm_path"]).read_text().splitlines()
        assert rttm[0].startswith(f"SPEAKER {d['video_id']} 1 ")
        doc = json.loads(corpus.abs(r["speaker_transcript_path"]).read_text())
        # map hypothesis labels to truth speakers by majority, then count correctly attributed words
        pairs = []
        for seg in doc["segments"]:
            for w in seg["words"]:
                mid = (w["start"] + w["end"]) / 2
                u = next((u for u in d["utterances"] if u["start"] - 0.3 <= mid <= u["end"] + 0.3), None)
                if u:
                    pairs.append((w["speaker"], u["speaker"]))
        best = {}
        for hyp in {h for h, _ in pairs}:
            votes = [t for h, t in pairs if h == hyp]
            best[hyp] = max(set(votes), key=votes.count)
        correct = sum(best[h] == t for h, t in pairs)
        assert correct / len(pairs) >= 0.9


def test_status_after_acquire(acquired, run_cli):
    corpus, _, _ = acquired
    report = json.loads(run_cli("status", corpus.root, "--json").output)
    for stage in ("download", "transcribe", "diarize"):
        s = next(x for x in report["stages"] if x["stage"] == stage)
        assert (s["done"], s["failed"], s["pending"]) == (2, 0, 0)


def _jsonl(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def test_bad_entries_fail_with_reasons_and_retry(tour, tmp_path):
    truth = json.loads((tour / "ground_truth.json").read_text())
    good, other = truth["days"][0]["video_id"], truth["days"][1]["video_id"]
    seg = f"/dash/{other}/seg-0-00002.m4s"
    faults = Faults(not_found={seg})
    with LoopbackServer(tour, faults=faults) as srv:
        entries = [
            {"id": good, "url": srv.url(f"dash/{good}/manifest.mpd"), "title": "good", "duration": 40},
            {"id": "gone0000001", "url": srv.url("dash/gone/manifest.mpd"), "title": "[Private video]"},
            {"id": other, "url": srv.url(f"dash/{other}/manifest.mpd"), "title": "missing fragment", "duration": 40},
            {"id": "short000001", "url": srv.url(f"dash/{good}/manifest.mpd"), "title": "says 100 s", "duration": 100},
        ]
        corpus = new_corpus(tmp_path / "c")
        run_playlist(corpus, from_jsonl=_jsonl(tmp_path / "p.jsonl", entries))
        result = run_download(corpus)
        assert result.done == [good]
        assert "HTTP Error 404" in result.failed["gone0000001"]
        assert result.failed[other] == ("fragment 3 of 11 unavailable ([download] Got error: HTTP Error 404: Not Found. "
                                        "Giving up after 1 retries); stopped instead of leaving a gap")
        assert result.failed["short000001"].startswith("integrity: short000001.mkv lasts 40.0 s but the platform "
                                                       "says 100.0 s (truncated?)")
        assert not (corpus.video_dir("short000001") / "short000001.mkv").exists()
        rows = corpus.videos.rows_by_key()
        assert rows["gone0000001"]["download_status"] == "failed"
        # the next run retries the failed rows and leaves the done one alone
        faults.not_found.clear()
        result = run_download(corpus)
        assert result.done == [other] and set(result.failed) == {"gone0000001", "short000001"}
        assert corpus.videos.get(good)["download_status"] == "done"


def test_dropped_connection_resumes_with_range(tour, tmp_path):
    truth = json.loads((tour / "ground_truth.json").read_text())
    vid = truth["days"][0]["video_id"]
    path = f"/media/{vid}.mp4"
    # GET 1 is the generic extractor looking at the URL; GET 2 is the download, cut at 200 kB
    with LoopbackServer(tour, faults=Faults(drop_after={path: 200_000}, drop_nth=2)) as srv:
        corpus = new_corpus(tmp_path / "c")
        run_playlist(corpus, from_jsonl=_jsonl(tmp_path / "p.jsonl", [
            {"id": vid, "url": srv.url(path), "title": "progressive", "duration": 40}]))
        assert run_download(corpus).ok
        ranges = [r for m, p, r in srv.requests if p == path and m == "GET"]
        resumed = [int(r[6:-1]) for r in ranges if r and re.fullmatch(r"bytes=\d+-", r)]
        assert len(ranges) == 3 and len(resumed) == 1 and 0 < resumed[0] <= 200_000  # resumed, not restarted
        from streamlearn.core.files import sha256_file

        row = corpus.videos.get(vid)
        assert row["media_sha256"] == sha256_file(tour / "media" / f"{vid}.mp4")


def test_killed_download_resumes_without_refetching(tour, tmp_path):
    truth = json.loads((tour / "ground_truth.json").read_text())
    first, second = (d["video_id"] for d in truth["days"])
    corpus = new_corpus(tmp_path / "c")
    faults = Faults(throttle_bps=400_000)
    with LoopbackServer(tour, faults=faults) as srv:
        run_playlist(corpus, url=srv.url("playlist.rss"))
        proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "download", str(corpus.root)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            rows = {r["video_id"]: r for r in corpus.videos.read()}  # the CSV with its journal replayed
            if rows[first]["download_status"] == "done":
                break
            time.sleep(0.2)
        while time.time() < deadline and not _fragment_parts(corpus, second):
            time.sleep(0.05)  # kill it inside the second video, mid-fragment
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert corpus.videos.get(second)["download_status"] in (None, "pending", "")
        # the worst moment to be killed: a fragment written whole but not yet renamed, which
        # yt-dlp resumes past its end (HTTP 416); the download starts that video again instead
        whole = _complete_one_fragment(corpus, second, tour / "dash" / second)
        assert whole
        faults.throttle_bps = 0
        n_before = len(srv.requests)
        assert run_download(corpus).done == [second]
        later = [p for _, p, _ in srv.requests[n_before:]]
        assert later and not any(first in p for p in later)
        assert corpus.videos.get(second)["integrity"] == "ok"


def _fragment_parts(corpus, vid: str) -> list[Path]:
    return [p for p in (corpus.video_dir(vid) / ".partial").glob("*-Frag*.part") if p.stat().st_size > 0]


def _complete_one_fragment(corpus, vid: str, served: Path) -> str | None:
    segments = [p.read_bytes() for p in served.glob("*.m4s")]
    for part in _fragment_parts(corpus, vid):
        have = part.read_bytes()
        for seg in segments:
            if len(seg) > len(have) and seg.startswith(have):
                part.write_bytes(seg)
                return part.name
    return None


def _make_no_audio(src: Path, dst: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-an", "-c", "copy", str(dst)], check=True)


def test_from_dir_recordings(tour, tmp_path):
    truth = json.loads((tour / "ground_truth.json").read_text())
    vid = truth["days"][0]["video_id"]
    rec = tmp_path / "recordings"
    rec.mkdir()
    good = rec / "رحلة 🚗 day one.mp4"
    good.write_bytes((tour / "media" / f"{vid}.mp4").read_bytes())
    _make_no_audio(tour / "media" / f"{vid}.mp4", rec / "silent.mp4")
    (rec / "broken.mp4").write_bytes((tour / "media" / f"{vid}.mp4").read_bytes()[:5000])
    (rec / "notes.txt").write_text("not a video")
    corpus = new_corpus(tmp_path / "c")
    out = run_playlist(corpus, from_dir=rec)
    assert out["ignored"] == ["notes.txt"] and out["failed"] == 1
    rows = {Path(r["local_path"]).name: r for r in corpus.videos.read()}
    assert set(rows) == {good.name, "silent.mp4", "broken.mp4"}
    assert all(re.fullmatch(r"rec-[0-9a-f]{12}", r["video_id"]) for r in rows.values())
    assert not rows["broken.mp4"]["download_status"]  # the download stage records its failure, not the playlist
    assert rows[good.name]["start_source"] == "container"
    assert rows[good.name]["release_timestamp"] == truth["days"][0]["release_timestamp"]
    again = run_playlist(corpus, from_dir=rec)
    assert again["added"] == 0  # ids are stable
    result = run_download(corpus)
    assert sorted(result.done) == sorted([rows[good.name]["video_id"], rows["silent.mp4"]["video_id"]])
    broken = corpus.videos.get(rows["broken.mp4"]["video_id"])
    assert broken["download_status"] == "failed" and result.failed == {broken["video_id"]: broken["download_error"]}
    assert broken["download_error"] == ("broken.mp4: truncated: the file ends inside its header; "
                                        "copy or download the complete file again")
    media = corpus.abs(corpus.videos.get(rows[good.name]["video_id"])["media_path"])
    assert media.is_symlink() and media.parent == corpus.video_dir(rows[good.name]["video_id"])
    result = run_transcribe(corpus)
    silent = rows["silent.mp4"]["video_id"]
    # not applicable is not a failure: skipped with the reason, and a re-run has nothing to do
    assert result.ok and result.skipped[silent].startswith(f"{silent}.mp4 has no audio stream; nothing to transcribe")
    assert corpus.videos.get(silent)["transcribe_status"] == "skipped"
    assert result.done == [rows[good.name]["video_id"]]
    again = run_transcribe(corpus)
    assert again.ok and not again.done and not again.skipped


def test_malformed_captions_fall_back_to_asr(acquired, tmp_path):
    corpus, truth, _ = acquired
    d = truth["days"][1]
    vtt = corpus.video_dir(d["video_id"]) / f"{d['video_id']}.en.vtt"
    saved = vtt.read_text()
    try:
        vtt.write_text("WEBVTT\n\n00:00:01.000 -> nonsense\nhello\n")
        result = run_transcribe(corpus, only=[d["video_id"]], force=True)
        assert result.ok
        row = corpus.videos.get(d["video_id"])
        assert row["transcript_source"] == "asr"
        doc = json.loads(corpus.abs(row["transcript_path"]).read_text())
        assert doc["notes"][0].startswith(f"{d['video_id']}.en.vtt line 3: expected a cue timing")
    finally:
        vtt.write_text(saved)
        run_transcribe(corpus, only=[d["video_id"]], force=True)
        run_diarize(corpus, only=[d["video_id"]], force=True)


def test_calibrate_stores_threshold(acquired, tmp_path, run_cli):
    corpus, truth, _ = acquired
    d = truth["days"][0]
    ref = tmp_path / "ref.rttm"
    from streamlearn.acquire.diarize import to_rttm

    ref.write_text(to_rttm([(u["start"], u["end"], u["speaker"]) for u in d["utterances"]], d["video_id"]))
    res = run_cli("diarize", corpus.root, "--calibrate", ref)
    assert res.exit_code == 0, res.output
    assert "calibrate: diarize.threshold = " in res.output
    cfg = (corpus.root / "streamlearn.toml").read_text()
    chosen = float(re.search(r"threshold = ([0-9.]+)", cfg).group(1))
    assert 0.2 <= chosen <= 0.45
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER nosuchvideo 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n")
    res = run_cli("diarize", corpus.root, "--calibrate", bad)
    assert res.exit_code == 1 and "names 'nosuchvideo', which is not a downloaded video in this corpus" in res.stderr


def test_acquire_command_end_to_end(tour, tmp_path, run_cli):
    with LoopbackServer(tour) as srv:
        corpus = new_corpus(tmp_path / "c")
        res = run_cli("acquire", corpus.root, "--url", srv.url("playlist.rss"))
        assert res.exit_code == 0, res.output
        for line in ("playlist: 2 entries, 2 new", "download: 2 done, 0 failed of 2", "transcribe: 2 done",
                     "diarize: 2 done", "acquire: finished with 0 failed items"):
            assert line in res.output
        res = run_cli("acquire", corpus.root)  # nothing left to do
        assert "download: 0 done, 0 failed of 0" in res.output


def test_training_rendition_is_fetched_and_used_for_frames(tour, tmp_path):
    from streamlearn.chunk import run_chunk
    from streamlearn.corpus.framecache import load_frames
    from streamlearn.chunk.frames import run_frames
    from streamlearn.media.probe import probe

    with LoopbackServer(tour) as srv:
        corpus, _ = Corpus.init(tmp_path / "c", Config(acquire=AcquireSection(
            retries=1, retry_sleep=0.05, train_format="bv*[vcodec^=avc1]")))
        truth = json.loads((tour / "ground_truth.json").read_text())
        vid = truth["days"][0]["video_id"]
        run_playlist(corpus, from_jsonl=_jsonl(tmp_path / "p.jsonl", [
            {"id": vid, "url": srv.url(f"dash/{vid}/manifest.mpd"), "title": "t", "duration": 40}]))
        assert run_download(corpus).ok
    row = corpus.videos.get(vid)
    train = corpus.abs(row["train_media_path"])
    assert train.name.startswith(f"{vid}.train.") and probe(train).vcodec == "h264" and row["vcodec"] == "vp9"
    assert run_chunk(corpus, chunk_seconds=20).ok and run_frames(corpus).ok
    _, meta = load_frames(corpus, corpus.chunks.read()[1])
    assert meta["source"] == "train_rendition"


def test_a_file_named_like_an_option_is_read_as_a_file(tour, tmp_path, run_cli, monkeypatch):
    """`playlist --from-dir .` with a recording called `-report`: ffprobe gets it as a path, not as its
    `-report` flag (which writes a log file into the working directory)."""
    import shutil as _shutil

    from streamlearn.corpus.layout import Corpus

    vid = json.loads((tour / "ground_truth.json").read_text())["days"][0]["video_id"]
    rec = tmp_path / "rec"
    rec.mkdir()
    _shutil.copy(tour / "media" / f"{vid}.mp4", rec / "-report")
    Corpus.init(tmp_path / "corpus")
    monkeypatch.chdir(rec)
    res = run_cli("playlist", tmp_path / "corpus", "--from-dir", ".")
    assert res.exit_code == 0, res.output
    assert not list(rec.glob("ffprobe-*.log")) and not list(rec.glob("ffmpeg-*.log"))
    rows = Corpus.open(tmp_path / "corpus").videos.read()
    assert len(rows) == 1 and float(rows[0]["duration_s"]) > 5


def test_a_playlist_with_wrong_types_or_a_cut_line_writes_nothing(tmp_path, run_cli):
    from streamlearn.corpus.layout import Corpus

    Corpus.init(tmp_path / "corpus")
    good = {"id": "v1", "url": "https://example.com/v1", "title": "Day 1", "release_timestamp": 1754000000}
    cases = [({**good, "release_timestamp": "2025-08-01"},
              "field 'release_timestamp' is '2025-08-01', not a number (a Unix time in seconds)"),
             ({**good, "duration": "abc"}, "field 'duration' is 'abc', not a number"),
             ({**good, "upload_date": "Aug 1"}, "field 'upload_date' is 'Aug 1', not YYYYMMDD")]
    for entry, text in cases:
        path = tmp_path / "playlist.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(entry) + "\n")
        res = run_cli("playlist", tmp_path / "corpus", "--from-jsonl", path)
        assert res.exit_code == 1 and res.stderr == f"error: playlist.jsonl line 2: {text}; fix the value or remove the field\n"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:-9] + "\n")  # cut off mid-line
    res = run_cli("playlist", tmp_path / "corpus", "--from-jsonl", path)
    assert res.exit_code == 1 and res.stderr.startswith("error: playlist.jsonl line 2: not JSON")
    assert not (tmp_path / "corpus" / "playlist_raw.jsonl").exists() and not Corpus.open(tmp_path / "corpus").videos.read()


def test_a_silent_track_is_not_sent_through_vad_or_asr(tmp_path, monkeypatch):
    """Opus "digital silence" decodes to +-1 LSB, not zeros: the level check sees it as silent, so neither
    Silero nor whisper runs and the ASR model is never loaded (it cost ~35 s an hour of silence)."""
    import numpy as np

    from streamlearn.media import vad
    from streamlearn.acquire import transcribe as T
    from streamlearn.core.config import ModelsSection
    from streamlearn.media.probe import decode_audio

    silent = tmp_path / "silent.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=20", "-c:a", "libopus",
                    "-b:a", "6k", str(silent)], check=True)
    audio = decode_audio(silent)
    assert len(audio) >= 16000 * 19 and vad.is_silent(audio)
    assert not vad.is_silent(np.full(1600, 0.002, dtype=np.float32))  # -54 dBFS: sound, VAD decides
    monkeypatch.setattr(T, "load_model", lambda *a: pytest.fail("the ASR model was loaded for a silent track"))
    monkeypatch.setattr(vad, "_model", lambda: pytest.fail("Silero ran on a silent window"))
    assert T.asr_words(silent, ModelsSection()) == ([], None)
    assert vad.speech_regions(audio) == []
