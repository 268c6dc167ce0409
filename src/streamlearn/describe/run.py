"""`streamlearn describe`: every chunk's description, then day summaries and the stream digest.

Chunks of one video are described in order, each with the previous chunk's description as
context (recurrent, so the story carries across chunks); videos run in parallel. A description
file is written (tmp + rename) before its row is recorded done, so a killed run leaves no
half-written or duplicated descriptions, and a re-run skips what is done. Model replies are
cached by model + prompt hash, so re-running after a crash costs nothing for answered requests.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus.layout import Corpus, stream_order
from streamlearn.describe import summaries
from streamlearn.describe.backends import (BatchWriter, OpenAIBackend, TransformersBackend,
                                           describe_from_batch, read_batch_results, write_text)
from streamlearn.describe.context import ChunkContext
from streamlearn.describe.llm import RequestCache
from streamlearn.describe.signals import SignalsBackend
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.paths import contained
from streamlearn.runner import Stage, StageResult, run_stage, select
from streamlearn.core.store import store_for

BACKENDS = ("signals", "openai", "transformers", "batch")


def make_backend(corpus: Corpus, name: str):
    d = corpus.config.describe
    cache = RequestCache(corpus.folder("descriptions", create=True) / ".cache")
    if name == "signals":
        return SignalsBackend(d)
    if name == "openai":
        return OpenAIBackend(corpus.config.describe, cache)
    if name == "transformers":
        return TransformersBackend(corpus.config.describe, cache)
    raise StreamlearnError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")


def description_path(corpus: Corpus, chunk_id: str) -> Path:
    return contained(corpus.folder("descriptions", create=True), chunk_id).with_suffix(".json")


_BACKENDS: dict[tuple, object] = {}


def backend_for(corpus: Corpus, name: str):
    """One backend per process, corpus and model settings (a local VLM is loaded once, then reused;
    a changed endpoint or model gets a new one)."""
    key = (str(corpus.root), name, repr(corpus.config.describe))
    if key not in _BACKENDS:
        _BACKENDS[key] = make_backend(corpus, name)
    return _BACKENDS[key]


@lru_cache(maxsize=2)
def _batch_replies(path: str, mtime: float) -> dict:
    return read_batch_results(Path(path))


def describe_chunk(corpus: Corpus, c: dict, name: str, n_days: int | None, previous_of: dict, videos: dict,
                   import_file: str | None) -> dict:
    """Describe one chunk (seeing its predecessor's description, when there is one) and write its
    file; returns the chunk's describe columns. The runner keeps a video's chunks in order."""
    replies = _batch_replies(import_file, Path(import_file).stat().st_mtime) if import_file else None
    impl = None if replies is not None else backend_for(corpus, name)
    model_name = corpus.config.describe.model if replies is not None else impl.model
    prev_id = previous_of.get(c["chunk_id"])
    prev_path = description_path(corpus, prev_id) if prev_id else None
    prev = D.load(prev_path) if prev_path and prev_path.exists() else None
    ctx = ChunkContext(corpus, c, videos.get(c["video_id"], {}), n_days, store_for(corpus), prev)
    if not ctx.has_video:  # a voice memo: described from its speech, never from frames
        from streamlearn.describe.speech_only import describe_speech_only

        doc, usage = describe_speech_only(ctx)
    elif replies is not None:
        if c["chunk_id"] not in replies:
            raise StreamlearnError(f"no result for {c['chunk_id']} in {Path(import_file).name}")
        doc, usage = describe_from_batch(replies[c["chunk_id"]], ctx, corpus.config.describe)
    else:
        doc, usage = impl.describe(ctx)
    doc["generator"] = {"backend": name, "model": model_name}
    problems = D.validate(doc)
    if problems:
        raise StreamlearnError(f"description fails the schema: {'; '.join(problems[:3])}")
    path = description_path(corpus, c["chunk_id"])
    write_text(path, doc)  # the file first, the record last
    return {"description_path": corpus.rel(path), "describe_backend": name,
            "describe_model": model_name, "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"), "cost_usd": usage.get("cost_usd")}


def run_describe(corpus: Corpus, backend: str | None = None, limit: int | None = None, only: list[str] | None = None,
                 parallel: int = 1, force: bool = False, import_file: Path | None = None,
                 executor=None) -> StageResult:
    if import_file and backend not in (None, "batch"):
        raise StreamlearnError("--import goes with --backend batch")
    name = "batch" if import_file else backend or corpus.config.describe.backend
    if name not in BACKENDS:
        raise StreamlearnError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    store = store_for(corpus)
    videos = corpus.videos.rows_by_key()
    all_chunks = stream_order(corpus.chunks.read(), videos)
    if not all_chunks:
        raise StreamlearnError("chunks.csv is empty; run `streamlearn chunk` first")
    n_days = max((v.get("day_index") or 0 for v in videos.values()), default=0) or None
    previous_of = {b["chunk_id"]: a["chunk_id"] for a, b in zip(all_chunks, all_chunks[1:])
                   if a["video_id"] == b["video_id"]}
    stage = Stage("describe", "chunks", partial(describe_chunk, name=name, n_days=n_days, previous_of=previous_of,
                                                videos=videos, import_file=str(import_file) if import_file else None),
                  group_by="video_id", match=("video_id",))
    rows, _ = select(corpus.chunks, "describe", only=only, force=force, match=stage.match)
    order = {c["chunk_id"]: k for k, c in enumerate(all_chunks)}
    todo = sorted(rows, key=lambda c: order[c["chunk_id"]])[:limit]
    if name == "batch" and import_file is None:
        return _write_batch(corpus, todo, videos, n_days, store)
    result = run_stage(stage, corpus, todo, parallel=parallel, force=force, executor=executor)
    summaries.write_all(corpus, n_days)
    return result


def _write_batch(corpus: Corpus, todo: list[dict], videos: dict, n_days: int | None, store) -> StageResult:
    """Batch mode, step 1: one request per chunk into descriptions/batch/requests.jsonl.
    Recurrent context needs the previous description, so a batch carries the chunks whose
    predecessor is already described (or that start a video); run again after importing."""
    out_dir = corpus.folder("descriptions", create=True) / "batch"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / "requests.jsonl"
    out.unlink(missing_ok=True)
    writer = BatchWriter(corpus.config.describe, out)
    result = StageResult("describe")
    done = {c["chunk_id"] for c in corpus.chunks.read() if status_of(c, "describe") == DONE}
    ordered = stream_order(corpus.chunks.read(), videos)
    prev_of = {b["chunk_id"]: a["chunk_id"] for a, b in zip(ordered, ordered[1:]) if a["video_id"] == b["video_id"]}
    n = 0
    for c in todo:
        p = prev_of.get(c["chunk_id"])
        if p and p not in done:
            result.skipped[c["chunk_id"]] = f"previous chunk {p} not described yet"
            continue
        prev = D.load(description_path(corpus, p)) if p else None
        writer.add(ChunkContext(corpus, c, videos.get(c["video_id"], {}), n_days, store, prev))
        n += 1
    console.info(f"describe: wrote {n} batch requests to {corpus.rel(out)} ({len(result.skipped)} wait for their "
                 "previous chunk); submit it to the provider, then `streamlearn describe --backend batch --import "
                 "RESULTS.jsonl`")
    return result
