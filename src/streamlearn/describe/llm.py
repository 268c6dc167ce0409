"""Talking to generators: an OpenAI-compatible chat client with retries, a request cache, and the
generate → parse → validate → repair loop every model backend shares.

The API key is read from the environment at call time and sent only in the Authorization header;
it is never logged, cached or written to any file.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamlearn import console
from streamlearn import description as D
from streamlearn.describe.prompt import extract_json, repair_messages, request_key
from streamlearn.errors import StreamlearnError
from streamlearn.manifest import atomic_write_text

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class Reply:
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False


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


class ChatClient:
    """POST {endpoint}/chat/completions with bounded retries, backoff with jitter, Retry-After."""

    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0,
                 max_retries: int = 5, backoff_s: float = 2.0, max_tokens: int = 4096, temperature: float = 0.0):
        if not endpoint:
            raise StreamlearnError("describe.endpoint is empty; set it to an OpenAI-compatible base URL, "
                                   "e.g. http://localhost:8000/v1 for a vLLM server")
        self.endpoint = endpoint.rstrip("/")
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.max_tokens, self.temperature = max_tokens, temperature

    def body(self, messages: list[dict]) -> dict:
        return {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "response_format": {"type": "json_object"}}

    def complete(self, messages: list[dict]) -> Reply:
        import httpx

        key = os.environ.get(self.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                resp = httpx.post(f"{self.endpoint}/chat/completions", json=self.body(messages), headers=headers,
                                  timeout=self.timeout_s)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__} talking to {self.endpoint}"
            else:
                if resp.status_code == 200:
                    return parse_completion(resp.json())
                last = f"HTTP {resp.status_code} from {self.endpoint}: {resp.text[:160]!r}"
                if resp.status_code not in RETRY_STATUS:
                    raise StreamlearnError(last + ("; check describe.api_key_env" if resp.status_code in (401, 403)
                                                   else "; check describe.model and the endpoint"))
                retry_after = resp.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(120.0, float(retry_after))
            if attempt == self.max_retries:
                break
            wait = wait if wait is not None else min(60.0, self.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.5)
            console.debug(f"describe: {last}; retry {attempt + 1}/{self.max_retries} in {wait:.1f}s")
            time.sleep(wait)
        raise StreamlearnError(f"gave up after {self.max_retries + 1} attempts: {last}")


def parse_completion(data: dict) -> Reply:
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise StreamlearnError(f"the endpoint's reply has no choices[0].message.content: {str(data)[:160]}") from None
    usage = data.get("usage") or {}
    return Reply(content=content, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                 completion_tokens=int(usage.get("completion_tokens") or 0),
                 finish_reason=choice.get("finish_reason"))


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
