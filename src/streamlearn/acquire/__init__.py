"""Acquire: playlist → videos.csv → download (yt-dlp) → captions / ASR → diarization.

Each step is its own module with one entry point taking a Corpus; `run_acquire` chains them.
"""
