"""An OpenAI-compatible chat client: bounded retries, exponential backoff with jitter, Retry-After.

Used by describe (generators) and eval (judges, frontier references). The API key is read from the
environment at call time and sent only in the Authorization header; it is never logged, cached or
written to any file.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

from streamlearn.core import console
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.redact import excerpt, redact

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class Reply:
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False


class ChatClient:
    """POST {endpoint}/chat/completions with bounded retries, backoff with jitter, Retry-After."""

    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0,
                 max_retries: int = 5, backoff_s: float = 2.0, max_tokens: int = 4096, temperature: float = 0.0,
                 json_mode: bool = True):
        if not endpoint:
            raise StreamlearnError("describe.endpoint is empty; set it to an OpenAI-compatible base URL, "
                                   "e.g. http://localhost:8000/v1 for a vLLM server")
        self.endpoint = endpoint.rstrip("/")
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.max_tokens, self.temperature, self.json_mode = max_tokens, temperature, json_mode

    def body(self, messages: list[dict]) -> dict:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

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
                last = f"{type(exc).__name__} talking to {redact(self.endpoint)}"
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise StreamlearnError(f"the endpoint {redact(self.endpoint)} answered HTTP 200 with something "
                                               f"that is not JSON ({excerpt(resp.text, 80)!r}); point describe.endpoint "
                                               "at an OpenAI-compatible base URL (ending in /v1)") from None
                    return parse_completion(data)
                last = f"HTTP {resp.status_code} from {redact(self.endpoint)}: {excerpt(resp.text)!r}"
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
        raise StreamlearnError(f"the endpoint's reply has no choices[0].message.content: {excerpt(str(data))}") from None
    usage = data.get("usage") or {}
    return Reply(content=content, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                 completion_tokens=int(usage.get("completion_tokens") or 0),
                 finish_reason=choice.get("finish_reason"))


