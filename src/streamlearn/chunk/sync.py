"""`streamlearn sync`: the seed's safety net — an additive copy of the corpus to an object store.

Copies manifests (each journal folded into its CSV first), config, playlist, per-video metadata,
transcripts, diarization, chunk slices, descriptions, rewrites, question banks, eval results and
training logs, plus any source media whose video is not chunked yet (chunked media already lives in
the chunk store). Never deletes anything remote. A re-run uploads only files whose size, mtime or
hash changed since the last sync to that URI (state in `.sync/`), and re-uploads anything missing
remotely.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from streamlearn.core import console
from streamlearn.core.config import CONFIG_NAME
from streamlearn.corpus.layout import Corpus
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.files import atomic_write_text
from streamlearn.core.files import sha256_file
from streamlearn.core.redact import redact
from streamlearn.core.store import Store

TOP_LEVEL = ("streamlearn.toml", "videos.csv", "chunks.csv", "playlist_raw.jsonl", "download_archive.txt")
TREES = ("parts", "descriptions", "rewrites", "questions", "evals")
VIDEO_SUFFIXES = (".json", ".vtt", ".srt", ".rttm", ".description", ".jpg", ".webp", ".png")
RUN_SUFFIXES = (".json", ".jsonl", ".csv", ".toml", ".txt", ".md")


def files_to_sync(corpus: Corpus) -> list[Path]:
    root = corpus.root
    out = [root / n for n in TOP_LEVEL if (root / n).is_file()]
    for tree in TREES:
        out += [p for p in sorted(corpus.folder(tree).rglob("*")) if p.is_file()]
    for p in sorted(corpus.folder("runs").rglob("*")):
        if p.is_file() and p.suffix in RUN_SUFFIXES:  # metrics and configs, not checkpoints
            out.append(p)
    videos = corpus.videos.rows_by_key()
    vroot = corpus.folder("videos")
    for vdir in sorted(vroot.iterdir()) if vroot.is_dir() else []:
        for p in sorted(vdir.rglob("*")):
            if p.is_file() and p.suffix in VIDEO_SUFFIXES:
                out.append(p)
        row = videos.get(vdir.name)
        if row and row.get("media_path") and status_of(row, "chunk") != DONE:
            media = corpus.abs(row["media_path"])
            if media.exists():
                out.append(media)
    return [p for p in out if ".partial" not in p.parts and not p.name.startswith(".")]


def upload_copy(path: Path, scratch: Path) -> Path:
    """What is uploaded for `path`: the file itself, or for the config, a copy with any credential a
    user wrote into it (an endpoint URL with a password, a token) masked (`redact`)."""
    if path.name != CONFIG_NAME:
        return path
    text = path.read_text(encoding="utf-8")
    clean = redact(text)
    if clean == text:
        return path
    out = scratch / f".{CONFIG_NAME}.redacted"
    atomic_write_text(out, clean)
    return out


def run_sync(corpus: Corpus, uri: str) -> dict:
    target = Store(uri, corpus.root, endpoint_url=corpus.config.storage.endpoint_url or None)
    state_path = corpus.root / ".sync" / (hashlib.sha1(target.display.encode()).hexdigest()[:16] + ".json")
    state_path.parent.mkdir(exist_ok=True)  # before the first save: every 50 uploads, not only at the end
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    for manifest in (corpus.videos, corpus.chunks):  # what a stage running now recorded goes out in the CSV
        manifest.compact()
    files = files_to_sync(corpus)
    copied = skipped = 0
    nbytes = 0
    with console.stage_progress("sync", len(files)) as prog:
        for path in files:
            rel = corpus.rel(path)
            source = upload_copy(path, state_path.parent)  # the config goes out with its secrets masked
            st, size = path.stat(), source.stat().st_size
            key = f"corpus/{rel}"
            seen = state.get(rel)
            if seen and seen[:2] == [st.st_size, st.st_mtime_ns]:
                remote_size, _ = target.stat(key, with_hash=False)
                if remote_size == size:
                    skipped += 1
                    prog.advance(rel, note="unchanged")
                    continue
            digest = sha256_file(source)
            if seen and seen[2] == digest and target.stat(key, with_hash=False)[0] == size:
                state[rel] = [st.st_size, st.st_mtime_ns, digest]
                skipped += 1
                prog.advance(rel, note="unchanged")
                continue
            target.put(source, key, sha256=digest)
            state[rel] = [st.st_size, st.st_mtime_ns, digest]
            copied += 1
            nbytes += size
            prog.advance(rel)
            if copied % 50 == 0:
                atomic_write_text(state_path, json.dumps(state))
    atomic_write_text(state_path, json.dumps(state))
    console.info(f"sync: {copied} copied ({nbytes / 1e6:.1f} MB), {skipped} unchanged -> {target.display}/corpus")
    return {"copied": copied, "skipped": skipped, "bytes": nbytes, "target": target.display}
