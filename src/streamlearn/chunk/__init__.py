"""Stage 2: lossless chunks in the durable store (`chunking`), their frame caches at model resolution
(`frames`), the token-budget planner (`plan`) and the additive copy of the corpus to object storage
(`sync`)."""

from streamlearn.chunk.chunking import chunk_video, merge, run_chunk, segment, verify

__all__ = ["chunk_video", "merge", "run_chunk", "segment", "verify"]
