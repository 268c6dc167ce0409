"""One training process: what `streamlearn train` runs in-process and what each torchrun worker runs
(`python -m streamlearn.train CORPUS [--model M] [--days D] [--config F] [--run R] [--max-steps N]`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamlearn.core.errors import StreamlearnError


def parse_days(text: str | None) -> list[int] | None:
    """"3" -> [3]; "1-3" -> [1, 2, 3]; "1,4-5" -> [1, 4, 5]; None -> all days."""
    if not text:
        return None
    days: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.strip().partition("-")
            days += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise StreamlearnError(f"--days {text!r} is not a day list; use e.g. 3, 1-3 or 1,4-5") from None
    if not days or min(days) < 0:
        raise StreamlearnError(f"--days {text!r} is empty or negative")
    return sorted(set(days))


def train_worker(argv: list[str]) -> int:
    from streamlearn.core.config import load_train_config
    from streamlearn.corpus.layout import Corpus
    from streamlearn.train.engine import train

    ap = argparse.ArgumentParser(prog="streamlearn.train")
    ap.add_argument("corpus")
    for name in ("--model", "--days", "--config", "--run"):
        ap.add_argument(name)
    ap.add_argument("--max-steps", type=int)
    a = ap.parse_args(argv)
    try:
        c = Corpus.open(a.corpus)
        cfg = load_train_config(c.config.train, Path(a.config) if a.config else None, model=a.model, run=a.run)
        train(c, cfg, parse_days(a.days), a.max_steps)
    except StreamlearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
