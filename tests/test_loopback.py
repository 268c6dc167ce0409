"""Loopback server: 127.0.0.1 only, {BASE} substitution, Range requests, injected faults.

Run: python -m pytest tests/test_loopback.py -q
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest

from streamlearn.testdata.loopback import Faults, LoopbackServer


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def test_base_substitution_and_bind(served_tour, tour):
    assert served_tour.base_url.startswith("http://127.0.0.1:")
    status, headers, body = get(served_tour.url("playlist_raw.jsonl"))
    entry = json.loads(body.decode().splitlines()[0])
    assert entry["url"].startswith(served_tour.base_url + "/dash/")
    assert int(headers["Content-Length"]) == len(body)


def test_range_requests(served_tour, tour):
    vid = json.loads((tour / "ground_truth.json").read_text())["days"][0]["video_id"]
    full = (tour / "media" / f"{vid}.mp4").read_bytes()
    status, headers, body = get(served_tour.url(f"media/{vid}.mp4"), {"Range": "bytes=100-199"})
    assert status == 206 and body == full[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(full)}"
    status, _, body = get(served_tour.url(f"media/{vid}.mp4"), {"Range": "bytes=1000-"})
    assert status == 206 and body == full[1000:]
    with pytest.raises(urllib.error.HTTPError) as e:
        get(served_tour.url(f"media/{vid}.mp4"), {"Range": f"bytes={len(full)}-"})
    assert e.value.code == 416


def test_faults_and_escapes(tour):
    vid = json.loads((tour / "ground_truth.json").read_text())["days"][0]["video_id"]
    path = f"/media/{vid}.mp4"
    with LoopbackServer(tour, faults=Faults(not_found={"/playlist.rss"}, drop_after={path: 5000})) as srv:
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv.url("playlist.rss"))
        assert e.value.code == 404
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            get(srv.url(path))
        status, _, body = get(srv.url(path))  # only the first GET drops
        assert status == 200 and body == (tour / "media" / f"{vid}.mp4").read_bytes()
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv.url("../../etc/passwd"))
        assert e.value.code == 404
