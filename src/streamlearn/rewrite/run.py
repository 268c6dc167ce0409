"""`streamlearn rewrite`: every described chunk's rewrites (`rewrites/<chunk_id>.json`).

The file is written (tmp + rename) before its row is recorded done. A done chunk is not asked again
without --force, unless its description changed since (its sha256 differs: made again) or the question
banks changed (its rewrites are checked again, nothing is asked). Chunks not described yet wait.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus.layout import Corpus, stream_order
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.manifest import DONE, SETTLED, status_of
from streamlearn.core.files import atomic_write_text
from streamlearn.core.paths import contained
from streamlearn.rewrite.backends import OpenAIRewriter, SignalsRewriter
from streamlearn.rewrite.check import BankCheck, bank_check
from streamlearn.core.files import sha256_file
from streamlearn.corpus.rewrites import SCHEMA, load
from streamlearn.runner import Stage, StageResult, run_stage, select

BACKENDS = ("signals", "openai")
DEFAULT_N = 8


def rewrites_path(corpus: Corpus, chunk_id: str) -> Path:
    return contained(corpus.folder("rewrites", create=True), chunk_id).with_suffix(".json")


def make_backend(corpus: Corpus, name: str):
    """One of BACKENDS (run_rewrite refuses any other name before any work)."""
    return SignalsRewriter() if name == "signals" else OpenAIRewriter(corpus.config.describe)


def rewrite_chunk(corpus: Corpus, c: dict, impl, n: int, force: bool, check: BankCheck) -> dict:
    """Rewrite one chunk's description (or check its rewrites again when only the banks changed) and
    write its file; returns the chunk's rewrite columns."""
    cid = c["chunk_id"]
    desc = corpus.abs(c["description_path"])
    doc = D.load(desc, checked=True)
    sha = sha256_file(desc)
    path = rewrites_path(corpus, cid)
    old = _readable(path)
    if old and not force and old.get("description_sha256") == sha:  # only the banks changed: nothing is asked
        candidates, generator, requested, dropped = old["rewrites"], old["generator"], old["requested"], old["dropped"]
    else:
        candidates, requested, dropped = impl.rewrite(doc, n), n, []
        generator = {"backend": impl.name, "model": impl.model}
    kept, more = check.filter(candidates, doc.get("day_index"))
    dropped = dropped + more
    if not kept:
        raise StreamlearnError(f"all {len(candidates)} candidate rewrites were dropped (e.g. one {more[0]['reason']}); "
                               f"check the description, then `streamlearn rewrite CORPUS --force --only {cid}`")
    out = {"schema": SCHEMA, "chunk_id": cid, "description_sha256": sha, "generator": generator,
           "requested": requested, "rewrites": kept, "dropped": dropped, "checked_against": check.banks}
    atomic_write_text(path, json.dumps(out, ensure_ascii=False, indent=1))  # the file first, the record last
    return {"rewrites_path": corpus.rel(path), "rewrite_backend": generator["backend"],
            "rewrite_model": generator["model"], "n_rewrites": len(kept), "rewrites_dropped": len(dropped)}


def _readable(path: Path) -> dict | None:
    try:
        return load(path)
    except StreamlearnError:
        return None


def _stale(corpus: Corpus, c: dict, check: BankCheck) -> bool:
    """A done chunk whose rewrites no longer match its description, or were checked against other banks."""
    old = _readable(rewrites_path(corpus, c["chunk_id"]))
    try:
        sha = sha256_file(corpus.abs(c["description_path"]))
    except (OSError, TypeError):
        return True  # the worker says what is wrong with the description
    return old is None or old.get("description_sha256") != sha or old.get("checked_against") != check.banks


def run_rewrite(corpus: Corpus, backend: str | None = None, n: int = DEFAULT_N, limit: int | None = None,
                only: list[str] | None = None, parallel: int = 1, force: bool = False,
                executor=None) -> StageResult:
    name = backend or "signals"
    if name not in BACKENDS:
        raise StreamlearnError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if n < 1:
        raise StreamlearnError(f"--n {n}: ask for at least 1 rewrite per chunk")
    videos = corpus.videos.rows_by_key()
    if not corpus.chunks.read():
        raise StreamlearnError("chunks.csv is empty; run `streamlearn chunk` first")
    check = bank_check(corpus)
    # every row --only names (unknown ids refused); which of them run is decided here
    rows, _ = select(corpus.chunks, "rewrite", only=only, force=True, match=("video_id",))
    waiting: dict[str, str] = {}
    todo = []
    for c in stream_order(rows, videos):
        if status_of(c, "describe") != DONE:
            waiting[c["chunk_id"]] = "not described yet; run `streamlearn describe CORPUS` first"
        elif force or status_of(c, "rewrite") not in SETTLED or _stale(corpus, c, check):
            todo.append(c)
    todo = todo[:limit]
    if todo and not check.banks:
        console.warn("rewrite: no question bank yet, so the rewrites are not checked against one (training's "
                     "refusal and the eval audit still are); `streamlearn questions CORPUS --seal` first checks them")
    if waiting:
        console.info(f"rewrite: {len(waiting)} chunks wait for describe (e.g. {next(iter(waiting))})")
    impl = make_backend(corpus, name) if todo else None
    stage = Stage("rewrite", "chunks", partial(rewrite_chunk, impl=impl, n=n, force=force, check=check),
                  match=("video_id",))
    result = run_stage(stage, corpus, todo, parallel=parallel, force=force, executor=executor)
    result.skipped.update(waiting)
    return result
