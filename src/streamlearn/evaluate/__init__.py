"""Evaluate: Day-0 vs Day-N on a sealed question bank, with confidence intervals.

`bank.py` (the question bank: generate, import, seal), `grading.py` (objective graders),
`judges.py` (LLM judge panel for open answers), `systems.py` (who answers: weights, video, rag,
openai), `stats.py` (cluster bootstrap, sign-flip test, Holm, kappa),
the audit (`corpus/contamination.py`), `guesser.py` (the no-memory guesser), `run.py` (`streamlearn eval`),
`report.py` (`streamlearn report`), `sweep.py` (`streamlearn sweep`).
"""
