"""`streamlearn review`: one static HTML page to judge descriptions before paying for 2,290 chunks.

Per chunk, side by side: the video (an HTML5 player on the chunk file with a poster frame when the store
is local; a strip of frames otherwise, never a signed URL), the speaker-attributed transcript, the rendered
target text and the QA pairs, each marked as the sealed split uses it (QA-trained or held out).
"""

from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from streamlearn.core import console
from streamlearn.corpus import description as D
from streamlearn.corpus.layout import Corpus
from streamlearn.describe.context import ChunkContext
from streamlearn.corpus.layout import stream_order
from streamlearn.describe.run import description_path
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus.heldout import Constraints, fact_key, load_constraints
from streamlearn.core.manifest import DONE, status_of
from streamlearn.core.files import atomic_write_text

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px} .chunk{display:grid;grid-template-columns:360px 1fr 1fr;gap:12px;background:#fff;
border:1px solid #ddd;border-radius:6px;padding:12px;margin-bottom:16px}
.chunk h2{grid-column:1/-1;font-size:15px;margin:0} video,img.strip{width:100%;border-radius:4px}
pre{white-space:pre-wrap;font-size:12px;margin:0} table{border-collapse:collapse;width:100%;font-size:12px}
td,th{border-top:1px solid #eee;padding:3px;text-align:left;vertical-align:top} .spk{color:#555;font-weight:600}
.qa{grid-column:1/-1}
"""


def _strip(frames: np.ndarray) -> str:
    tiles = [Image.fromarray(np.asarray(f)).resize((160, max(1, int(160 * f.shape[0] / f.shape[1])))) for f in frames]
    canvas = Image.new("RGB", (160 * len(tiles), tiles[0].height))
    for i, t in enumerate(tiles):
        canvas.paste(t, (160 * i, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def split_of(constraints: Constraints, chunk_id: str, question: str) -> str:
    """How a sealed bank uses a QA pair: trained as QA, held out (scored, never a target), or not sealed yet."""
    if not constraints.banks:
        return "no sealed bank yet"
    key = fact_key(chunk_id, question)
    return "held out" if key in constraints.heldout else "QA-trained" if key in constraints.trained else "not in a bank"


def render_chunk(corpus: Corpus, chunk: dict, doc: dict, ctx: ChunkContext, page_dir: Path,
                 constraints: Constraints | None = None) -> str:
    rel = ctx.store.rel_of(chunk.get("media_uri") or "")
    local = ctx.store.local_path(rel) if rel else None
    if local is not None and local.exists():
        src = os.path.relpath(local, page_dir)
        if ctx.has_video:  # a poster frame, so the unloaded player shows the chunk, not a black box
            _, frames = ctx.frames(1, 320)
            media = f'<video controls preload="none" poster="{_strip(frames)}" src="{escape(src)}"></video>'
        else:
            media = f'<audio controls preload="none" src="{escape(src)}"></audio>'
    elif not ctx.has_video:
        media = "<i>audio-only recording</i>"
    else:
        _, frames = ctx.frames(6, 320)
        media = f'<img class="strip" alt="frames" src="{_strip(frames)}">'
    tx = ctx.transcript() or {"segments": []}
    lines = "".join(f'<div><span class="spk">{escape(s.get("speaker") or "?")}</span> '
                    f'[{s["start"]:.1f}s] {escape(s["text"])}</div>' for s in tx["segments"]) or "<i>no speech</i>"
    constraints = constraints or Constraints()
    qa = "".join(f"<tr><td>{escape(q['type'])}</td><td>{escape(q['question'])}</td><td>{escape(q['answer'])}</td>"
                 f"<td>{q['evidence_s'][0]:.0f}-{q['evidence_s'][1]:.0f}s</td>"
                 f"<td class='split'>{split_of(constraints, chunk['chunk_id'], q['question'])}</td></tr>"
                 for q in doc.get("qa", []))
    gen = doc.get("generator") or {}
    return (f'<section class="chunk" id="{escape(chunk["chunk_id"])}"><h2>{escape(chunk["chunk_id"])} · '
            f'{escape(D.header(doc))} · {escape(gen.get("backend", ""))} {escape(gen.get("model", ""))}</h2>'
            f'<div>{media}</div><div><b>Transcript</b>{lines}</div>'
            f'<div><b>Target text</b><pre>{escape(D.render_target(doc))}</pre></div>'
            f'<div class="qa"><b>QA pairs</b><table><tr><th>type</th><th>question</th><th>answer</th>'
            f'<th>evidence</th><th>split</th></tr>{qa}</table></div></section>')


def run_review(corpus: Corpus, limit: int | None = 20, out: Path | None = None) -> Path:
    """The page with the first `limit` described chunks (0 or None: all); returns its path."""
    limit = limit or None
    from streamlearn.core.store import store_for

    store = store_for(corpus)
    videos = corpus.videos.rows_by_key()
    every = corpus.chunks.read()
    chunks = [c for c in stream_order(every, videos) if status_of(c, "describe") == DONE]
    described = len(chunks)
    if not chunks:
        raise StreamlearnError("no described chunks yet; run `streamlearn describe --limit 10` first")
    chunks = chunks[:limit] if limit else chunks
    out = Path(out or corpus.folder("descriptions") / "review.html")
    n_days = max((v.get("day_index") or 0 for v in videos.values()), default=0) or None
    constraints = load_constraints(corpus.folder("questions"))
    sections = []
    for c in chunks:
        doc = D.load(description_path(corpus, c["chunk_id"]), checked=True)
        ctx = ChunkContext(corpus, c, videos.get(c["video_id"], {}), n_days, store)
        sections.append(render_chunk(corpus, c, doc, ctx, out.parent, constraints))
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>streamlearn review</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(corpus.config.corpus.subject)}: "
            f"{len(chunks)} of {described} described chunks ({len(every)} chunks in the corpus)</h1>"
            f"{''.join(sections)}</body></html>")
    atomic_write_text(out, html)
    console.info(f"review: {len(chunks)} chunks -> {out}")
    return out
