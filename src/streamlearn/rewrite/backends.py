"""Rewrite generators: `signals` (offline: the description's fact renderings, `description.render_facts`)
and `openai` (the OpenAI-compatible endpoint, model and key variable of `[describe]`)."""

from __future__ import annotations

from streamlearn.corpus import description as D
from streamlearn.core.config import DescribeSection
from streamlearn.core.errors import StreamlearnError
from streamlearn.models.llm_client import ChatClient
from streamlearn.core.redact import excerpt
from streamlearn.rewrite.prompt import messages, parse_rewrites

TEMPERATURE = 0.9  # rewrites are meant to differ from each other


class SignalsRewriter:
    name, model = "signals", "render_facts"

    def rewrite(self, doc: dict, n: int) -> list[str]:
        return [D.render_facts(doc, v) for v in range(n)]


class OpenAIRewriter:
    name = "openai"

    def __init__(self, s: DescribeSection):
        if not s.model:
            raise StreamlearnError("describe.model is empty; set the model name the endpoint serves (rewrite uses "
                                   "the [describe] endpoint, model and api_key_env)")
        self.model, self.repairs = s.model, s.repairs
        self.client = ChatClient(s.endpoint, s.model, s.api_key_env, s.timeout_s, s.max_retries, s.backoff_s,
                                 s.max_tokens, temperature=TEMPERATURE)

    def rewrite(self, doc: dict, n: int) -> list[str]:
        """Ask; a reply without a list of rewrites is asked again with the problem named, up to
        describe.repairs times, then the chunk fails with the problem."""
        msgs = messages(doc, n)
        for attempt in range(self.repairs + 1):
            reply = self.client.complete(msgs)
            if reply.finish_reason == "length":
                problem = "the reply was cut off at max_tokens (raise describe.max_tokens or lower --n)"
            else:
                try:
                    return parse_rewrites(reply.content)
                except ValueError as exc:
                    problem = f"{exc}: {excerpt(reply.content, 80)!r}"
            msgs = msgs[:2] + [{"role": "assistant", "content": reply.content[:20000]},
                               {"role": "user", "content": f"That output cannot be used: {problem}. Return "
                                '{"rewrites": [...]} as one JSON object, nothing else.'}]
        raise StreamlearnError(f"no rewrites after {self.repairs} repair attempts: {problem}")
