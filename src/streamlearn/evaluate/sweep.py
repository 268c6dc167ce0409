"""`streamlearn sweep`: the operating-point sweep (the seed's Phase 2).

For each model x chunk length x fps, every question with evidence is answered by the `video`
system on a clip of that length centred on its evidence, sampled at that fps within the operating
point's pixel budget (the planner's arithmetic); accuracy with CIs and the token budget of each
point are printed, plotted and saved under evals/sweep-<bank>/.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from streamlearn.core import console
from streamlearn.media import vision_budget
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus import questionbank as QB
from streamlearn.evaluate.run import cluster_of, grade
from streamlearn.evaluate.stats import cluster_bootstrap
from streamlearn.core.files import atomic_write_text
from streamlearn.media.probe import probe


def evidence_clips(corpus: Corpus, items: list[dict]) -> list[tuple[dict, Path, float, float, dict]]:
    """(item, source file, evidence time in the source, source duration, video row) for items with evidence."""
    chunks = corpus.chunks.rows_by_key()
    videos = corpus.videos.rows_by_key()
    out = []
    for item in items:
        ev = item.get("evidence") or {}
        if not ev.get("chunk_ids"):
            continue
        c = chunks.get(ev["chunk_ids"][0])
        if not c:
            continue
        v = videos[c["video_id"]]
        src = corpus.abs(v.get("train_media_path") or v["media_path"])
        times = (ev.get("times") or [[0, float(c["duration_s"])]])[0]
        t = float(c["start_s"]) + (float(times[0]) + float(times[1])) / 2
        out.append((item, src, t, float(v.get("probe_duration_s") or v.get("duration_s") or 0), v))
    return out


def run_sweep(corpus: Corpus, models: list[str], chunk_seconds: list[float], fps: list[float],
              bank: str | None = None, limit: int | None = None) -> list[dict]:
    from streamlearn.evaluate.systems import LocalAnswerer
    from streamlearn.corpus.framecache import extract

    bank = bank or corpus.config.eval.bank
    clips = evidence_clips(corpus, QB.load_bank(corpus, bank))
    if limit:
        clips = clips[:limit]
    if not clips:
        raise StreamlearnError(f"bank {bank!r} has no items with evidence chunks to sweep over")
    op0 = corpus.config.operating_point
    g = vision_budget.VisionGeometry()
    table = []
    for model in models:
        answerer = LocalAnswerer(model, model, corpus.config.eval.mc_scoring, device=corpus.config.eval.device)
        for cs in chunk_seconds:
            for f in fps:
                op = replace(op0, chunk_seconds=cs, fps=f)
                rows = []
                tokens = []
                for item, src, t, dur, v in clips:
                    info = probe(src)
                    a = max(0.0, min(t - cs / 2, max(0.0, dur - cs)))
                    length = min(cs, dur - a) if dur else cs
                    dw, dh = info.display_size()  # upright, as shown (rotation, pixel aspect)
                    p = vision_budget.plan(length, dw, dh, op, g, source_fps=info.fps or 30.0)
                    frames = extract(src, a, length, p.n_frames, p.frame_width, p.frame_height,
                                     source_fps=info.fps or 30.0, rotation=info.rotation)
                    r = answerer.answer(item, frames, p.sample_fps)
                    correct, status, _ = grade(item, r, None, corpus.config.eval.numeric_tolerance)
                    if correct is not None:
                        rows.append((bool(correct), cluster_of(item)))
                    tokens.append(p.vision_tokens)
                acc, lo, hi = cluster_bootstrap([c for c, _ in rows], [k for _, k in rows], corpus.config.eval.bootstrap)
                entry = {"model": model, "chunk_seconds": cs, "fps": f, "n": len(rows), "accuracy": acc,
                         "ci_low": lo, "ci_high": hi, "vision_tokens_mean": sum(tokens) / len(tokens)}
                table.append(entry)
                console.info(f"sweep {model} {cs:g}s @ {f:g} fps: {acc:.1%} [{lo:.1%}, {hi:.1%}] (n={len(rows)}, "
                             f"~{entry['vision_tokens_mean']:,.0f} vision tokens)")
        del answerer
    out = corpus.folder("evals", create=True) / f"sweep-{bank}"
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(table, indent=1))
    _plot(table, out / "sweep.png")
    console.info(f"sweep: results in {corpus.rel(out)}")
    return table


def _plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key in sorted({(r["model"], r["fps"]) for r in table}):
        rows = sorted((r for r in table if (r["model"], r["fps"]) == key), key=lambda r: r["chunk_seconds"])
        ax.errorbar([r["chunk_seconds"] for r in rows], [r["accuracy"] for r in rows],
                    yerr=[[r["accuracy"] - r["ci_low"] for r in rows], [r["ci_high"] - r["accuracy"] for r in rows]],
                    marker="o", capsize=3, label=f"{Path(key[0]).name} @ {key[1]:g} fps")
    ax.set_xlabel("chunk length (s)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
