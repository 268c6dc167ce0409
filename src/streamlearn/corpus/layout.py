"""A corpus is a folder: config, manifests, per-video artifacts and later-stage outputs.

    CORPUS/
      streamlearn.toml        config (subject, timezone, operating point, models, storage)
      playlist_raw.jsonl      the flat playlist as extracted
      videos.csv              one row per video: the spine
      videos/<video_id>/      media and per-video artifacts (info.json, captions, transcript, RTTM)
      chunks.csv              one row per chunk
      *.csv.journal           records not yet folded into the CSV beside it (core/manifest.py)
      chunks.d/<node>.csv     per-node parts, merged into chunks.csv
      store/                  the default (local) chunk store
      frames/                 frame cache read by training
      descriptions/ questions/ runs/ evals/ logs/
      rewrites/               generated rewrites of each description (streamlearn rewrite)
"""

from __future__ import annotations

import os
from pathlib import Path

from streamlearn.core.config import CONFIG_NAME, Config, load_config, save_config
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.manifest import Manifest
from streamlearn.core.paths import contained
from streamlearn.corpus.tables import CHUNKS, VIDEOS

DATA_ROOT_ENV = "STREAMLEARN_DATA_ROOT"
# where each artifact lives (docs/architecture.md, "Corpus layout"); modules ask `Corpus.folder`, never spell it
FOLDERS = {"videos": "videos", "parts": "chunks.d", "frames": "frames", "descriptions": "descriptions",
           "day_summaries": "descriptions/videos", "questions": "questions", "runs": "runs", "evals": "evals",
           "exports": "exports", "logs": "logs", "locks": ".locks", "rewrites": "rewrites"}
MADE_AT_INIT = ("videos", "parts", "descriptions", "questions", "runs", "evals", "logs")


def resolve_root(path: str | os.PathLike | None) -> Path:
    """CORPUS argument, else $STREAMLEARN_DATA_ROOT."""
    if path:
        return Path(path)
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env)
    raise StreamlearnError(f"no corpus given: pass the corpus folder or set {DATA_ROOT_ENV}")


class Corpus:
    def __init__(self, root: Path, config: Config):
        self.root = Path(root)
        self.config = config
        self.videos = Manifest(self.root / "videos.csv", VIDEOS)
        self.chunks = Manifest(self.root / "chunks.csv", CHUNKS)

    @classmethod
    def open(cls, path: str | os.PathLike | None) -> "Corpus":
        root = resolve_root(path)
        inside = (root.parent / CONFIG_NAME).exists()  # a path in a corpus: the corpus is meant, not a new one
        if root.exists() and not root.is_dir():
            hint = f"`{root.parent}`, the corpus that holds it" if inside else "the folder that holds streamlearn.toml"
            raise StreamlearnError(f"{root} is a file, not a corpus folder; pass {hint}")
        if not root.is_dir() and inside:
            raise StreamlearnError(f"{root} does not exist and is inside the corpus {root.parent}; pass `{root.parent}`")
        if not root.is_dir():
            raise StreamlearnError(f"{root} does not exist; create a corpus with `streamlearn init {root}`")
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            raise StreamlearnError(
                f"{root} is not a streamlearn corpus (no {CONFIG_NAME}); create one with `streamlearn init {root}`")
        return cls(root, load_config(cfg))

    @classmethod
    def init(cls, path: str | os.PathLike | None, config: Config | None = None) -> tuple["Corpus", bool]:
        """Create the corpus folder; an existing corpus is left as it is. Returns (corpus, created)."""
        root = resolve_root(path)
        if (root / CONFIG_NAME).exists():
            return cls.open(root), False
        if root.exists() and not root.is_dir():
            raise StreamlearnError(f"{root} is a file; pick a folder path for the corpus")
        root.mkdir(parents=True, exist_ok=True)
        for what in MADE_AT_INIT:
            (root / FOLDERS[what]).mkdir(exist_ok=True)
        config = config or Config()
        save_config(root / CONFIG_NAME, config)
        return cls(root, config), True

    def save_config(self) -> None:
        save_config(self.root / CONFIG_NAME, self.config)

    # ------------------------------------------------------------------ paths
    def video_dir(self, video_id: str, create: bool = False) -> Path:
        path = contained(self.folder("videos"), video_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: Path) -> str:
        """Path relative to the corpus root, as stored in manifests (a symlink stays a link)."""
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        if rel.startswith(".."):
            raise StreamlearnError(f"{path} is outside the corpus {self.root}")
        return Path(rel).as_posix()

    def abs(self, rel_path: str) -> Path:
        path = Path(os.path.abspath(self.root / rel_path))
        if not path.is_relative_to(os.path.abspath(self.root)):
            raise StreamlearnError(f"manifest path {rel_path!r} points outside the corpus; fix the row")
        return path

    def folder(self, what: str, create: bool = False) -> Path:
        """The folder of one kind of artifact (a key of FOLDERS), made when `create`."""
        if what not in FOLDERS:
            raise ValueError(f"no corpus folder {what!r}; one of {', '.join(FOLDERS)}")
        path = self.root / FOLDERS[what]
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def run_dir(self, run: str) -> Path:
        return contained(self.folder("runs"), run)


def stream_order(chunks: list[dict], videos: dict[str, dict]) -> list[dict]:
    """Chunks in the order the stream happened: day, start time, playlist position, chunk index."""

    def key(c):
        v = videos.get(c["video_id"], {})
        return (v.get("day_index") or 0, c.get("start_utc") or "", v.get("playlist_index") or 0, c["video_id"],
                int(c["chunk_index"]))

    return sorted(chunks, key=key)


def init_corpus(corpus: Path | None, subject: str | None = None, tz: str | None = None,
                storage: str | None = None) -> str:
    """`streamlearn init`: a corpus folder (`corpus`, a path) with its config; says whether it was created."""
    from streamlearn.core.config import CorpusSection, StorageSection

    cfg = Config()
    if subject or tz:
        cfg.corpus = CorpusSection(subject=subject or cfg.corpus.subject, timezone=tz or cfg.corpus.timezone)
    if storage:
        cfg.storage = StorageSection(uri=storage)
    c, created = Corpus.init(corpus, cfg)
    if not created:  # init never rewrites an existing corpus's config: say so instead of ignoring the options
        have = c.config
        differ = [f"{flag} {want!r} (it has {got!r})" for flag, want, got in (
            ("--subject", subject, have.corpus.subject), ("--timezone", tz, have.corpus.timezone),
            ("--storage", storage, have.storage.uri)) if want is not None and want != got]
        if differ:
            raise StreamlearnError(f"{c.root} is already a corpus and init does not change it: {differ[0]}; edit "
                                   f"[corpus]/[storage] in {c.root / CONFIG_NAME} instead")
    return f"{'created' if created else 'already a corpus:'} {c.root}"
