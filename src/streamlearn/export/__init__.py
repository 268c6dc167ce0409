"""`streamlearn export`: the training samples in other tools' shapes, or the question bank as an
lmms-eval task.

An export writes exactly the samples training takes (`export/samples.py`): under every sealed bank's
held-out split, or as a named run recorded them. Without a sealed bank it refuses unless told
`--no-heldout-protection`, and its README then says it is unprotected. Each export is written whole
into a temporary folder and swapped in, so a failed export never replaces a finished one; beside the
data it holds `export.json` (what, from where, counts), `audit.json` (the contamination audit),
`operating_point.json` and a README (how to load it, its media's codec and readers).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text
from streamlearn.export.folder import MARKER, check_out, publish

FORMATS = ("llava", "sharegpt", "hf", "webdataset", "lmms-eval")


def _operating_point(corpus: Corpus) -> dict:
    """The operating point as run: the configured one, with the chunk length(s) the videos were
    actually cut at and the frame sizes actually cached."""
    op = dict(corpus.config.operating_point.__dict__)
    lengths = sorted({float(v["chunk_seconds"]) for v in corpus.videos.read() if v.get("chunk_seconds")})
    if lengths:
        op["chunk_seconds"] = lengths[0] if len(lengths) == 1 else lengths
    chunks = [c for c in corpus.chunks.read() if c.get("frame_width")]
    op["frame_sizes"] = sorted({f"{c['frame_width']}x{c['frame_height']}" for c in chunks})
    op["sample_fps"] = sorted({round(float(c["sample_fps"]), 4) for c in chunks if c.get("sample_fps")})
    op["configured"] = dict(corpus.config.operating_point.__dict__)
    return op


def run_export(corpus: Corpus, fmt: str, out: Path | None = None, bank: str | None = None, run: str | None = None,
               media_root: Path | None = None, h264: bool = False, no_heldout_protection: bool = False) -> Path:
    """Write one export; every check comes before any work. Returns the export folder."""
    if fmt not in FORMATS:
        raise StreamlearnError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(os.path.abspath(out or corpus.folder("exports") / fmt))
    check_out(out)
    if media_root is not None and not Path(media_root).is_dir():
        raise StreamlearnError(f"--media-root {media_root} is not a folder; give the folder the paths should be "
                               "relative to (it must exist)")
    if fmt == "lmms-eval":
        if media_root is not None or h264 or no_heldout_protection:
            raise StreamlearnError("--media-root, --h264 and --no-heldout-protection apply to the training formats; "
                                   "the lmms-eval task asks the bank's questions without video")
        from streamlearn.export.lmms_eval import write_task

        return write_task(corpus, bank or corpus.config.eval.bank, out, run or corpus.config.eval.run)
    if bank:
        raise StreamlearnError("--bank applies to --format lmms-eval; the training formats honour every sealed bank")
    from streamlearn.export.samples import select

    sel = select(corpus, run, protection=not no_heldout_protection)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(corpus, fmt, sel, out, tmp, Path(os.path.abspath(media_root)) if media_root else None, h264, run)
        publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    console.info(f"export: {len(sel.samples)} samples as {fmt} -> {out}")
    return out


def write(corpus: Corpus, fmt: str, sel, out: Path, tmp: Path, media_root: Path | None, h264: bool,
          run: str | None) -> None:
    from streamlearn.export import formats as F
    from streamlearn.export import media as M
    from streamlearn.export.samples import audit_samples

    root = media_root or out
    uris = list(dict.fromkeys(u for s in sel.samples for u in s.media))
    rendition = M.h264_rendition(corpus, uris, tmp / "media") if h264 else {}
    # paths are computed against the final folder: `tmp` is renamed to `out` when everything is written
    videos = {s.key: [os.path.relpath(out / Path(rendition[u]).relative_to(tmp), root) if u in rendition
                      else M.path_for(corpus, u, root) for u in s.media] for s in sel.samples}
    frames = {s.key: [Path(os.path.relpath(Path(f) if Path(f).is_absolute() else corpus.abs(f), root)).as_posix()
                      for f in s.frames] for s in sel.samples}
    if fmt == "llava":
        F.write_llava(sel.samples, videos, frames, tmp)
    elif fmt == "sharegpt":
        F.write_sharegpt(sel.samples, videos, frames, tmp)
    elif fmt == "hf":
        F.write_hf(sel.samples, videos, frames, tmp)
    else:
        F.write_webdataset(sel.samples, videos, frames, tmp, corpus.root)
    report = audit_samples(corpus, sel)
    atomic_write_text(tmp / "audit.json", json.dumps(report, indent=1))
    atomic_write_text(tmp / "operating_point.json", json.dumps(_operating_point(corpus), indent=1))
    codec = {"video": "h264", "audio": "aac", "container": "mp4", "readers": M.READERS["h264"]} if h264 \
        else M.codec_note(corpus, uris)
    manifest = {
        "format": fmt, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": sel.source, "run": run, "samples": len(sel.samples),
        "counts": {"kind": dict(Counter(s.kind for s in sel.samples)),
                   "day": {str(k): v for k, v in sorted(Counter(s.day for s in sel.samples).items())}},
        "protected": sel.constraints is not None,
        "banks": sel.constraints.banks if sel.constraints else [],
        "audit_heldout_flagged": sum(b.get("flagged_heldout", 0) for b in report["banks"].values()),
        "skipped": sel.skipped, "media_root": str(root), "h264": h264, "codec": codec,
        "media_root_note": ("this folder" if root == out else f"{root} (--media-root)"),
    }
    atomic_write_text(tmp / "README.md", F.readme(fmt, manifest))
    atomic_write_text(tmp / MARKER, json.dumps(manifest, indent=1))  # written last: a complete export
