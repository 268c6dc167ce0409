"""Rewrite: each described chunk's facts restated in many diverse rewrites (`rewrites/<chunk_id>.json`),
training samples of kind "rewrites" (Physics of LMs 3.1, EntiGraph, Active Reading: held-out facts become
extractable when each document is seen in many rewrites).

Backends: `signals` (offline: the description's fact renderings) and `openai` (the describe stage's
OpenAI-compatible endpoint). `run.py` drives them; `check.py` drops every candidate that holds a
question bank's question; `prompt.py` is what the endpoint is asked (the facts, never the QA pairs).
"""
