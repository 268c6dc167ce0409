"""`streamlearn demo`: the whole loop on embedded defaults, one progress line per stage.

A synthetic multi-day tour is rendered and served on 127.0.0.1; then every stage runs on the
offline defaults: playlist and download through real yt-dlp, captions/ASR, diarization, chunking,
the frame cache, `signals` descriptions, a sealed question bank with its held-out split, day-by-day
continual training of the smol preset (Day-0 ... Day-N checkpoints), evaluation (memorised,
transfer, placebo, guesser, RAG with clustered CIs) and the HTML report. Every stage skips finished
work, so a second run is quick.
"""

from __future__ import annotations

import time
from pathlib import Path

from streamlearn.core import console
from streamlearn.core.config import AcquireSection, Config, CorpusSection, OperatingPoint
from streamlearn.corpus.layout import Corpus

# small enough for two CPU cores: 30 s chunks at 0.5 fps, frames of 84x168 (18 vision tokens a pair)
DEMO_OP = OperatingPoint(chunk_seconds=60, fps=0.5, max_frames=32, total_pixels=288 * 28 * 28,
                         frame_min_pixels=4 * 28 * 28, frame_max_pixels=84 * 168)
# the smol preset: a pretrained language model (a Day-0 that reads and answers), full-parameter
# training on descriptions, augmented descriptions ("facts") and the QA-trained facts; earlier days
# replayed, and a fifth of the samples general questions and answers (general rehearsal), against forgetting
# (it cut the demo's general-set loss from +17.9 % to -43 % over Day-0); docs/eval.md records the settings
# tried and what each measured
DEMO_TRAIN = {"model": "smol", "lr": 1.5e-4, "warmup_steps": 2, "epochs_per_day": 2, "grad_accum": 2,
              "targets": ["description", "facts", "qa_text"], "fact_variants": 1, "stream_replay": 0.25,
              "general_replay": 0.2,
              "activation_checkpointing": False, "export_dtype": "bfloat16", "keep_days": 1, "seed": 0}


def run_demo(workdir: Path, days: int = 3, minutes: float = 1.5, chunk_seconds: float = 30.0, epochs: int = 2,
             train_overrides: dict | None = None) -> dict:
    from streamlearn.evaluate.report import run_report
    from streamlearn.evaluate.run import run_eval
    from streamlearn.train.engine import train

    t_start = time.monotonic()
    corpus, timings = prepare_corpus(Path(workdir), days, minutes, chunk_seconds, seed=0,
                                     train={**DEMO_TRAIN, "epochs_per_day": epochs, **(train_overrides or {})})
    t0 = time.monotonic()
    progress = train(corpus, corpus.config.train)
    _done(timings, "train", t0, f"{progress.step} steps, days {progress.completed_days}")
    t0 = time.monotonic()
    results = run_eval(corpus)  # each checkpoint x system pass already answered is reused
    _done(timings, "eval", t0)
    t0 = time.monotonic()
    page = run_report(corpus)
    _done(timings, "report", t0)
    total = time.monotonic() - t_start
    console.info(f"[demo] report: {page}")
    console.info(f"[demo] finished in {total:.0f}s")
    return {"report": str(page), "results": results, "timings": timings, "seconds": total}


STAGES = ["synth", "acquire", "chunk", "frames", "describe", "questions", "train", "eval", "report"]


def _done(timings: dict, name: str, t0: float, note: str = "") -> None:
    timings[name] = time.monotonic() - t0
    console.info(f"[demo] {STAGES.index(name) + 1}/{len(STAGES)} {name}: done in {timings[name]:.1f}s"
                 + (f" ({note})" if note else ""))


def prepare_corpus(workdir: Path, days: int, minutes: float, chunk_seconds: float, seed: int = 0,
                   train: dict | None = None) -> tuple[Corpus, dict]:
    """A synthetic tour (seeded) through every data stage to a sealed question bank: what the demo
    trains on, and what benchmarks/knowledge_study.py builds its tours with. Finished work is skipped."""
    from dataclasses import replace

    from streamlearn.acquire.diarize import run_diarize
    from streamlearn.acquire.download import run_download
    from streamlearn.acquire.playlist import run_playlist
    from streamlearn.acquire.transcribe import run_transcribe
    from streamlearn.chunk import run_chunk
    from streamlearn.chunk.frames import run_frames
    from streamlearn.describe.run import run_describe
    from streamlearn.evaluate.bank import run_questions
    from streamlearn.corpus.questionbank import bank_path, seal_path
    from streamlearn.testdata.loopback import LoopbackServer
    from streamlearn.testdata.synth import load_truth, synthesize

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    tour = workdir / "tour"
    if not (tour / "ground_truth.json").exists():
        synthesize(tour, days=days, minutes=minutes, seed=seed, speakers=2)
    truth = load_truth(tour)
    _done(timings, "synth", t0, f"{len(truth['days'])} days")

    t0 = time.monotonic()
    cfg = Config(corpus=CorpusSection(subject=truth["subject"], timezone=truth["days"][0]["timezone"]),
                 operating_point=replace(DEMO_OP, chunk_seconds=chunk_seconds),
                 acquire=AcquireSection(retries=2, retry_sleep=0.2), train=dict(train or DEMO_TRAIN))
    cfg.eval.systems = ["weights", "rag"]  # `video` too on a GPU; on two CPU cores it does not fit the demo
    cfg.eval.rag_top_k = 3
    corpus, _ = Corpus.init(workdir / "corpus", cfg)
    with LoopbackServer(tour) as srv:
        run_playlist(corpus, url=srv.url("playlist.rss"))
        # what a user does by hand: each day's timezone in videos.csv
        tz = {d["video_id"]: d["timezone"] for d in truth["days"]}
        corpus.videos.transform(lambda rows: [r.update(timezone=tz.get(r["video_id"], r["timezone"])) for r in rows
                                              if r.get("download_status") != "done"])
        run_download(corpus)
    run_transcribe(corpus)
    run_diarize(corpus)
    _done(timings, "acquire", t0)
    t0 = time.monotonic()
    run_chunk(corpus)
    _done(timings, "chunk", t0, f"{len(corpus.chunks.read())} chunks")
    t0 = time.monotonic()
    run_frames(corpus)
    _done(timings, "frames", t0)
    t0 = time.monotonic()
    run_describe(corpus, backend="signals")
    _done(timings, "describe", t0)
    t0 = time.monotonic()
    if not seal_path(corpus, "main").exists():
        run_questions(corpus, "main", do_seal=True)
    n_items = sum(1 for line in bank_path(corpus, "main").read_text().splitlines() if line.strip())
    _done(timings, "questions", t0, f"{n_items} items, sealed")
    return corpus, timings
