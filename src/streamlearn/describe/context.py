"""What a generator gets for one chunk: metadata, the speaker-attributed transcript slice, frames
at the generator's budget, and the previous chunk's description."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamlearn.corpus import transcript
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.store import Store


@dataclass
class ChunkContext:
    corpus: Corpus
    chunk: dict
    video: dict
    n_days: int | None
    store: Store
    previous: dict | None = None
    _frames: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.chunk["duration_s"])

    def info(self) -> dict:
        path = self.corpus.video_dir(self.chunk["video_id"]) / f"{self.chunk['video_id']}.info.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def metadata_text(self) -> str:
        """Title, channel and the platform description: where place names usually are."""
        info = self.info()
        return " \n".join(str(x) for x in (self.video.get("title"), info.get("description"), self.video.get("channel"))
                          if x)

    def transcript(self) -> dict | None:
        """The chunk's transcript slice (chunk-relative times), speaker-attributed when diarized."""
        if self.chunk.get("transcript_path") and self.corpus.abs(self.chunk["transcript_path"]).exists():
            return transcript.load(self.corpus.abs(self.chunk["transcript_path"]))
        source = self.video.get("speaker_transcript_path") or self.video.get("transcript_path")
        if source and self.corpus.abs(source).exists():
            return transcript.slice_doc(transcript.load(self.corpus.abs(source)), float(self.chunk["start_s"]),
                                        float(self.chunk["end_s"]))
        return None

    @property
    def has_video(self) -> bool:
        """False for an audio-only recording (a voice memo): described from its speech alone."""
        if "has_video" not in self._frames:
            from streamlearn.media.probe import probe

            with tempfile.TemporaryDirectory() as tmp:
                self._frames["has_video"] = probe(self._chunk_file(Path(tmp))).has_video
        return self._frames["has_video"]

    def frames(self, n: int, max_width: int) -> tuple[list[float], np.ndarray]:
        """n frames spread over the chunk (chunk-relative times), upright as a player shows them
        (rotation and pixel aspect applied), at most max_width wide."""
        key = (n, max_width)
        if key not in self._frames:
            from streamlearn.corpus.framecache import extract
            from streamlearn.media.probe import probe

            with tempfile.TemporaryDirectory() as tmp:
                src = self._chunk_file(Path(tmp))
                p = probe(src)
                if not p.has_video:
                    raise StreamlearnError(f"{self.chunk['chunk_id']}: the chunk has no video stream")
                dw, dh = p.display_size()
                w = min(max_width, dw) // 2 * 2
                h = int(round(dh * w / dw / 2)) * 2
                arr = extract(src, 0.0, self.duration, n, w, h, source_fps=p.fps or 30.0, rotation=p.rotation)
            self._frames[key] = ([i * self.duration / n for i in range(n)], arr)
        return self._frames[key]

    def _chunk_file(self, tmp: Path) -> Path:
        rel = self.store.rel_of(self.chunk.get("media_uri") or "")
        if rel is None:
            raise StreamlearnError(f"{self.chunk['chunk_id']}: media_uri is not in the store {self.store.display}")
        local = self.store.local_path(rel)
        return local if local is not None else self.store.get(rel, tmp / Path(rel).name)
