"""`streamlearn demo`: the whole chain on embedded defaults, one progress line per stage.

Finished work is reused: a second run skips every stage whose outputs are already recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

from streamlearn import console
from streamlearn.config import Config, CorpusSection
from streamlearn.corpus import Corpus
from streamlearn.status import corpus_status, format_status


def run_demo(workdir: Path, days: int = 3, minutes: float = 2.0) -> dict:
    from streamlearn.synth import load_truth, synthesize

    workdir = Path(workdir)
    t0 = time.monotonic()
    tour_dir = workdir / "tour"
    if (tour_dir / "ground_truth.json").exists():
        console.info(f"[demo] synth: reusing {tour_dir}")
    else:
        synthesize(tour_dir, days=days, minutes=minutes, seed=0)
    truth = load_truth(tour_dir)
    cfg = Config(corpus=CorpusSection(subject=truth["subject"], timezone=truth["days"][0]["timezone"]))
    corpus, created = Corpus.init(workdir / "corpus", cfg)
    console.info(f"[demo] init: {'created' if created else 'reusing'} {corpus.root}")
    report = corpus_status(corpus)
    console.info(format_status(report))
    console.info(f"[demo] finished in {time.monotonic() - t0:.1f}s")
    return report
