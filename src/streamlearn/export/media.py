"""The chunk media an export points to: paths relative to a root the user chooses (the export's own
folder by default, so an export and its corpus move together), what codec they are in and which
readers decode it, and an optional H.264 rendition for tools whose reader cannot decode VP9."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.media.probe import MediaError, probe
from streamlearn.core.store import store_for

# What is known to decode each codec (seen here or reported with a version); the export's README says it.
READERS = {
    "vp9": "PyAV (av) and torchcodec decode it, as does ffmpeg; decord 0.6.0 (lmms-eval's default video reader) "
           "fails on some of these files with its default threads (seen on the demo's chunks; num_threads=1 "
           "decodes them): export with --h264 for decord-based tools",
    "h264": "decord 0.6.0 (any thread count, seen here), PyAV (av), torchcodec and ffmpeg decode it",
}


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def local_media(corpus: Corpus, uri: str) -> Path | None:
    """The local file behind a chunk's media URI (None for an object in a remote store)."""
    if is_remote(uri):
        return None
    return corpus.abs(uri[len("file://"):] if uri.startswith("file://") else uri)


def path_for(corpus: Corpus, uri: str, root: Path) -> str:
    """How an export names a chunk's media: relative to `root` when local, the URI itself when remote."""
    local = local_media(corpus, uri)
    if local is None:
        return uri
    return Path(os.path.relpath(local, root)).as_posix()


def codec_note(corpus: Corpus, uris: list[str]) -> dict:
    """The container and codecs of the exported media (probed on the first local file) and the readers
    known to decode them."""
    for uri in uris:
        local = local_media(corpus, uri)
        if local is None or not local.exists():
            continue
        try:
            p = probe(local)
        except MediaError as exc:
            return {"probed": uri, "error": str(exc)}
        return {"probed": Path(uri).name, "container": p.format_name, "video": p.vcodec, "audio": p.acodec,
                "readers": READERS.get(p.vcodec or "", "decoded by ffmpeg and PyAV; other readers not checked")}
    return {"probed": None, "note": "no local chunk media to probe (remote store or text-only export)"}


def h264_rendition(corpus: Corpus, uris: list[str], folder: Path) -> dict[str, str]:
    """Each chunk's media transcoded to H.264 + AAC in MP4 under `folder` (media/<name>.mp4); returns
    {media URI: rendition path}. A remote chunk is fetched from the store first."""
    folder.mkdir(parents=True, exist_ok=True)
    store = store_for(corpus)
    out: dict[str, str] = {}
    for n, uri in enumerate(uris, 1):
        dest = folder / (Path(uri).stem + ".mp4")
        with tempfile.TemporaryDirectory() as tmp:
            src = local_media(corpus, uri)
            if src is None:
                rel = store.rel_of(uri)
                if rel is None:
                    raise StreamlearnError(f"--h264: {uri} is not in the corpus's chunk store ({store.display}); "
                                           "check storage.uri")
                src = store.get(rel, Path(tmp) / Path(uri).name)
            part = Path(tmp) / "out.mp4"
            cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src.resolve()), "-map", "0:v:0?",
                   "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                   "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(part)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                reason = " ".join(proc.stderr.split())[-200:] or f"exit status {proc.returncode}"
                raise StreamlearnError(f"--h264: ffmpeg could not transcode {Path(uri).name} ({reason}); check that "
                                       "ffmpeg has libx264 (`ffmpeg -encoders | grep 264`)")
            shutil.move(str(part), dest)
        out[uri] = str(dest)
        console.info(f"export: H.264 rendition {n}/{len(uris)} done")
    return out
