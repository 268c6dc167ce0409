"""WebVTT parsing on real-shaped files: rolling auto-captions, cue settings, overlaps, errors.

Run: python -m pytest tests/test_captions.py -q
"""

from __future__ import annotations

import pytest

from streamlearn.acquire.captions import CaptionError, vtt_to_segments

YOUTUBE_AUTO = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.230 align:start position:0%
 
we<00:00:00.320><c> just</c><00:00:00.480><c> got</c><00:00:00.900><c> to</c><00:00:01.100><c> miami</c>

00:00:02.230 --> 00:00:02.240 align:start position:0%
we just got to miami
 

00:00:02.240 --> 00:00:04.590 align:start position:0%
we just got to miami
it's<00:00:02.560><c> so</c><00:00:02.800><c> hot</c>

00:00:04.590 --> 00:00:04.600 align:start position:0%
it's so hot
 

"""

MANUAL = """\ufeffWEBVTT

NOTE this file was written by a person

STYLE
::cue { color: yellow }

intro-1
00:01.000 --> 00:03.500 line:0 position:20% size:60% align:start
<v Speed>Welcome to <b>Atlanta</b> &amp; friends</v>

00:03.000 --> 00:05.000
Overlapping cue,
second line

1:00:00.000 --> 1:00:01.000
an hour in
"""


def test_rolling_auto_captions_come_out_once():
    segs = vtt_to_segments(YOUTUBE_AUTO)
    assert [s["text"] for s in segs] == ["we just got to miami", "it's so hot"]
    words = segs[0]["words"]
    assert [w["word"] for w in words] == ["we", "just", "got", "to", "miami"]
    assert [w["start"] for w in words] == [0.16, 0.32, 0.48, 0.9, 1.1]
    assert words[-1]["end"] == 2.23 and all(a["end"] == b["start"] for a, b in zip(words, words[1:]))
    assert segs[1]["start"] == 2.24 and segs[1]["words"][0]["start"] == 2.24


def test_manual_captions_settings_overlaps_entities():
    segs = vtt_to_segments(MANUAL)
    assert [s["text"] for s in segs] == ["Welcome to Atlanta & friends", "Overlapping cue, second line", "an hour in"]
    assert (segs[0]["start"], segs[0]["end"]) == (1.0, 3.5)
    assert segs[1]["start"] == 3.0  # overlaps the previous cue; kept, in start order
    assert segs[2]["start"] == 3600.0
    assert all(w.get("approx") for w in segs[0]["words"])  # no inline times: spread evenly
    assert segs[0]["words"][0]["start"] == 1.0 and segs[0]["words"][-1]["end"] == 3.5


@pytest.mark.parametrize("text,message", [
    ("1\n00:00:01.000 --> 00:00:02.000\nhi\n", "captions is not WebVTT (first line '1')"),
    ("WEBVTT\n\n00:00:01.000 -> 00:00:02.000\nhi\n", "captions line 3: expected a cue timing"),
    ("WEBVTT\n\n00:00:01.000 --> 00:00:xx.000\nhi\n", "captions line 3: bad cue timing"),
    ("WEBVTT\n\n00:00:05.000 --> 00:00:02.000\nhi\n", "captions line 3: cue ends before it starts"),
])
def test_malformed_vtt_names_the_line(text, message):
    with pytest.raises(CaptionError) as e:
        vtt_to_segments(text)
    assert str(e.value).startswith(message)
