"""Audio-only recordings (a voice memo, a call): described from speech alone.

Such a chunk has no picture, so nothing visual may be claimed. The signals backend's speech,
people, continuity and QA logic is reused on a stand-in of two blank frames; everything it would
say about the picture (lighting, scenes, on-screen text) is then removed and the summary and
limitations say the recording is audio only. Backends that need frames (openai, transformers)
get the same treatment: the description comes from the transcript, not from a model looking at
nothing.
"""

from __future__ import annotations

import numpy as np

from streamlearn.describe.context import ChunkContext

AUDIO_ONLY = ("Audio-only recording (no video stream): everything here comes from what was said; "
              "nothing was seen.")


class _NoPicture:
    """A ChunkContext whose frames are two blank 64x36 pictures (and which says so)."""

    def __init__(self, ctx: ChunkContext):
        self._ctx = ctx

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def frames(self, n: int, max_width: int):
        return [0.0, self._ctx.duration / 2], np.zeros((2, 36, 64, 3), np.uint8)


def describe_speech_only(ctx: ChunkContext) -> tuple[dict, dict]:
    from streamlearn.describe.signals import SignalsBackend

    doc, usage = SignalsBackend().describe(_NoPicture(ctx))
    doc["lighting"] = None
    doc["timeline"] = [{"start_s": s["start_s"], "end_s": round(min(ctx.duration, s["start_s"] + 5.0), 2),
                        "event": f"{s.get('speaker') or 'someone'} speaks"} for s in doc["speech"][:20]]
    doc["on_screen_text"] = []
    doc["notable"] = [n for n in doc["notable"] if not n.startswith("A clock on screen")]
    doc["qa"] = [q for q in doc["qa"] if q["type"] not in ("ocr", "place")]
    voices = len(doc["people"])
    first = f" First words: \"{doc['speech'][0]['text']}\"" if doc["speech"] else ""
    doc["summary"] = (f"Audio-only recording, {doc['time_of_day']}; {voices} voice(s) heard, "
                      f"{len(doc['speech'])} utterance(s)." + first)
    doc["limitations"] = [AUDIO_ONLY]
    return doc, usage
