"""A loopback HTTP server for synthetic tours: files, playlist pages, Range requests, faults.

Bound to 127.0.0.1 only. Text files have `{BASE}` replaced by the server's own address, so a
tour rendered once can be served on any port. Faults for tests: paths that answer 404, and
paths whose first GET drops the connection after N bytes (to exercise resume).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TEXT_TYPES = {
    ".html": "text/html; charset=utf-8", ".rss": "application/rss+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8", ".json": "application/json; charset=utf-8",
    ".jsonl": "application/jsonl; charset=utf-8", ".vtt": "text/vtt; charset=utf-8",
    ".xspf": "application/xspf+xml; charset=utf-8", ".txt": "text/plain; charset=utf-8",
    ".mpd": "application/dash+xml; charset=utf-8",
}
BINARY_TYPES = {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".webm": "video/webm", ".jpg": "image/jpeg",
                ".png": "image/png", ".wav": "audio/wav", ".m4a": "audio/mp4", ".m4s": "video/iso.segment"}
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Faults:
    not_found: set[str] = field(default_factory=set)  # URL paths answering 404
    drop_after: dict[str, int] = field(default_factory=dict)  # URL path -> bytes sent before the GET drops
    drop_nth: int = 1  # which GET of such a path drops (an extractor may probe the URL first)
    gets: dict[str, int] = field(default_factory=dict)
    throttle_bps: float = 0.0  # > 0: binary files are sent at about this many bytes per second


class _Handler(BaseHTTPRequestHandler):
    server_version = "streamlearn-loopback/1"

    def log_message(self, fmt, *args):  # quiet; requests are kept in server.requests
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        srv: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        url_path = unquote(urlsplit(self.path).path)
        rng = self.headers.get("Range")
        srv.requests.append((self.command, url_path, rng))
        if url_path in srv.faults.not_found:
            return self._status(404)
        target = (srv.root / url_path.lstrip("/")).resolve()
        if url_path.endswith("/"):
            target = target / "index.html"
        if not target.is_relative_to(srv.root) or not target.is_file():
            return self._status(404)
        suffix = target.suffix.lower()
        if suffix in TEXT_TYPES:
            data = target.read_text(encoding="utf-8").replace("{BASE}", srv.base_url).encode("utf-8")
            ctype = TEXT_TYPES[suffix]
        else:
            data = target.read_bytes()
            ctype = BINARY_TYPES.get(suffix, "application/octet-stream")
        start, end, status = 0, len(data) - 1, 200
        if rng:
            m = RANGE.match(rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self._status(416)
            if m.group(1) == "":
                start = max(0, len(data) - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(end, int(m.group(2)))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if head:
            return
        cut = srv.faults.drop_after.get(url_path)
        nth = srv.faults.gets[url_path] = srv.faults.gets.get(url_path, 0) + 1
        if cut is not None and nth == srv.faults.drop_nth:
            self.close_connection = True
            try:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(2)  # the client sees a connection cut mid-file
            except OSError:
                pass
            return
        rate = srv.faults.throttle_bps  # read once: a test may lift the throttle mid-response
        if rate > 0 and suffix not in TEXT_TYPES:
            step = 16384
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                time.sleep(step / rate)
            return
        self.wfile.write(body)

    def _status(self, code: int):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class LoopbackServer:
    """`with LoopbackServer(folder) as srv: srv.url("playlist.rss")`"""

    def __init__(self, root: Path, port: int = 0, faults: Faults | None = None):
        self.root = Path(root).resolve()
        self.faults = faults or Faults()
        self.requests: list[tuple[str, str, str | None]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, rel: str) -> str:
        return f"{self.base_url}/{rel.lstrip('/')}"

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
