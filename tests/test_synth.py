"""The synthetic tour: real media with the promised codecs, text on screen, speech at the
ground-truth times, YouTube-shaped metadata and auto-caption VTT on some days only.

Run: python -m pytest tests/test_synth.py -q
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from streamlearn.testdata.synth_plan import plan_tour


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,codec_type:format=duration:format_tags=creation_time",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_plan_is_deterministic_and_consistent():
    a, b = plan_tour(3, 2, seed=5), plan_tour(3, 2, seed=5)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != plan_tour(3, 2, seed=6).to_dict()
    assert len({d.city for d in a.days}) == 3
    for day in a.days:
        assert day.scenes[0].start == 0 and abs(day.scenes[-1].end - day.duration_s) < 1e-6
        assert all(s1.end == s2.start for s1, s2 in zip(day.scenes, day.scenes[1:]))


def test_media_variants_and_metadata(tour):
    truth = json.loads((tour / "ground_truth.json").read_text())
    assert len(truth["days"]) == 2
    for day in truth["days"]:
        vid = day["video_id"]
        mkv, mp4 = probe(tour / "media" / f"{vid}.mkv"), probe(tour / "media" / f"{vid}.mp4")
        assert [s["codec_name"] for s in mkv["streams"]] == ["vp9", "opus"]
        assert [s["codec_name"] for s in mp4["streams"]] == ["h264", "aac"]
        for p in (mkv, mp4):
            assert abs(float(p["format"]["duration"]) - day["duration_s"]) < 0.1
            assert p["format"]["tags"]["creation_time"].startswith(day["start_utc"][:19])
        info = json.loads((tour / "media" / f"{vid}.info.json").read_text())
        assert info["id"] == vid and info["release_timestamp"] == day["release_timestamp"]
        assert day["city"] in info["description"] and any(ord(c) > 127 for c in info["title"])
        assert len(info["upload_date"]) == 8 and info["duration"] == day["duration_s"]
        vtt = tour / "media" / f"{vid}.en.vtt"
        assert vtt.exists() == day["captions"]
    assert [d["captions"] for d in truth["days"]] == [False, True]
    assert "/" in truth["days"][1]["title"] and ".." in truth["days"][1]["title"]
    lines = (tour / "playlist_raw.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [d["video_id"] for d in truth["days"]]


def test_utterances_inside_scenes_and_not_overlapping(tour):
    truth = json.loads((tour / "ground_truth.json").read_text())
    assert set(truth["speakers"]) == {"S1", "S2"}
    for day in truth["days"]:
        utts = day["utterances"]
        assert len(utts) >= 5 and {u["speaker"] for u in utts} == {"S1", "S2"}
        for u, nxt in zip(utts, utts[1:]):
            assert u["end"] + 0.4 < nxt["start"]
        for u in utts:
            scene = next(s for s in day["scenes"] if s["start"] <= u["start"] < s["end"])
            assert u["end"] <= scene["end"]
            assert u["words"][0]["start"] == u["start"] and abs(u["words"][-1]["end"] - u["end"]) < 1e-3


def _audio(path, rate=16000):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0


@pytest.mark.parametrize("variant", ["mkv", "mp4"])
def test_speech_is_where_the_truth_says(tour, variant):
    day = json.loads((tour / "ground_truth.json").read_text())["days"][0]
    pcm = _audio(tour / "media" / f"{day['video_id']}.{variant}")
    rms = lambda a, b: float(np.sqrt(np.mean(pcm[int(a * 16000):int(b * 16000)] ** 2)))  # noqa: E731
    for u in day["utterances"]:
        assert rms(u["start"], u["end"]) > 0.03
    gaps = [(u["end"] + 0.15, n["start"] - 0.15) for u, n in zip(day["utterances"], day["utterances"][1:])]
    assert all(rms(a, b) < 0.01 for a, b in gaps if b - a > 0.2)


def test_on_screen_text_is_readable(tour, tmp_path):
    from rapidocr_onnxruntime import RapidOCR

    day = json.loads((tour / "ground_truth.json").read_text())["days"][0]
    scene = day["scenes"][1]
    t = (scene["start"] + scene["end"]) / 2
    png = tmp_path / "f.png"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", str(t), "-i", str(tour / "media" / f"{day['video_id']}.mp4"),
                    "-frames:v", "1", str(png)], check=True)
    result, _ = RapidOCR()(str(png))
    text = "".join(r[1] for r in result).upper().replace(" ", "")  # OCR drops some spaces
    for expected in (scene["city"], scene["venue"], scene["sign"], f"DAY {day['day']}"):
        assert expected.replace(" ", "") in text, (expected, text)


def test_vtt_has_rolling_duplicates(tour):
    day = json.loads((tour / "ground_truth.json").read_text())["days"][1]
    vtt = (tour / "media" / f"{day['video_id']}.en.vtt").read_text()
    first = " ".join(w["word"].lower().strip(".,?!") for w in day["utterances"][0]["words"])
    assert vtt.startswith("WEBVTT\nKind: captions\nLanguage: en\n")
    assert vtt.count(first + "\n") >= 2  # finished line repeated as context for the next cue
    assert "<c>" in vtt and "align:start position:0%" in vtt


def test_cli_synth_refuses_existing(run_cli, tour):
    res = run_cli("synth", tour)
    assert res.exit_code == 1
    assert "already holds a synthetic tour" in res.stderr


def test_cli_synth_bad_args(run_cli, tmp_path):
    res = run_cli("synth", tmp_path / "x", "--speakers", "9")
    assert res.exit_code == 2 and "--speakers must be between 2 and 4" in res.output
    res = run_cli("synth", tmp_path / "x", "--size", "big")
    assert res.exit_code == 2 and "'big' is not WxH" in res.output
