"""Talking to generators: a request cache, and the generate → parse → validate → repair loop
every model backend shares (the HTTP client itself is `streamlearn.models.llm_client`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from streamlearn.corpus import description as D
from streamlearn.describe.prompt import extract_json, repair_messages, request_key
from streamlearn.core.errors import StreamlearnError
from streamlearn.models.llm_client import ChatClient, Reply, parse_completion  # noqa: F401 (re-exported)
from streamlearn.core.files import atomic_write_text



class RequestCache:
    """Replies keyed by model + full prompt: a re-run pays nothing for requests already answered.
    Only replies that produced a valid description are cached; a bad one is asked again next time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Reply | None:
        p = self._path(key)
        if not p.exists():
            return None
        data = json.loads(p.read_text(encoding="utf-8"))
        return Reply(**{**data, "cached": True})

    def put(self, key: str, reply: Reply) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps({k: v for k, v in reply.__dict__.items() if k != "cached"}))


def finalize(raw: dict, skeleton: dict) -> dict:
    """Our metadata is authoritative: ids, times and day come from the manifest, not the model."""
    doc = {**skeleton, **{k: v for k, v in raw.items() if k in skeleton}}
    for k in ("schema", "chunk_id", "video_id", "day_index", "n_days", "start_local", "end_local", "timezone",
              "duration_s"):
        doc[k] = skeleton[k]
    return doc


def generate(ask: Callable[[list[dict]], Reply], msgs: list[dict], skeleton: dict, repairs: int = 2,
             cache: RequestCache | None = None, model: str = "") -> tuple[dict, dict]:
    """Ask, parse, validate; on bad output ask again with the problems listed (up to `repairs` times).
    Returns (description, usage); raises StreamlearnError with the last problems."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "cached": 0}
    problems: list[str] = []
    for attempt in range(repairs + 1):
        k = request_key(model, msgs)
        reply = cache.get(k) if cache else None
        if reply is None:
            reply = ask(msgs)
            usage["requests"] += 1
        else:
            usage["cached"] += 1
        usage["prompt_tokens"] += reply.prompt_tokens if not reply.cached else 0
        usage["completion_tokens"] += reply.completion_tokens if not reply.cached else 0
        if reply.finish_reason == "length":
            problems = ["the reply was cut off at max_tokens; return a shorter description"]
        elif not reply.content.strip():
            problems = ["the reply was empty"]
        else:
            try:
                raw = extract_json(reply.content)
                doc = finalize(raw, skeleton) if isinstance(raw, dict) else raw
                problems = D.validate(doc)
            except ValueError as exc:
                problems = [f"not JSON ({exc})"]
            if not problems:
                if cache and not reply.cached:  # only replies that made a valid description are kept
                    cache.put(k, reply)
                return doc, usage
        if attempt < repairs:
            msgs = repair_messages(msgs, reply.content, problems)
    raise StreamlearnError(f"invalid description after {repairs} repair attempts: {'; '.join(problems[:3])}")
