"""Describe: gold per-chunk descriptions (the training targets), day summaries, a stream digest.

Backends: `signals` (offline: transcript, speakers, OCR, scene changes, metadata), `openai` (any
OpenAI-compatible endpoint), `transformers` (a local Qwen2.5-VL) and `batch` (provider batch
files). `run.py` drives them; `review.py` renders a page to judge the results.
"""
