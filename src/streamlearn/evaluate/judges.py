"""An LLM judge panel for open answers: two or more OpenAI-compatible judges, blind to which
system answered, each given the question, the reference and its key facts. Majority vote; a judge
that fails is recorded as failed and never counts as a "wrong" vote; no majority means ungraded."""

from __future__ import annotations

import json
import re

from streamlearn.core.errors import StreamlearnError
from streamlearn.models.llm_client import ChatClient

JUDGE_SYSTEM = ("You grade answers to questions about a livestream. You see the question, the reference "
                "answer with its key facts, and a candidate answer. The candidate is correct when it states the "
                "reference's key facts and contradicts none of them; wording does not matter. Reply with JSON: "
                "{\"correct\": true|false, \"reason\": \"...\"}")


def parse_judge_spec(spec: str, api_key_env: str) -> ChatClient:
    """"MODEL@URL" → a client (the key comes from api_key_env at call time)."""
    if "@" not in spec:
        raise StreamlearnError(f"judge {spec!r} must be MODEL@URL, e.g. gpt-4.1@https://api.openai.com/v1")
    model, url = spec.rsplit("@", 1)
    return ChatClient(url, model, api_key_env=api_key_env, max_tokens=200, max_retries=2, backoff_s=1.0,
                      timeout_s=60.0)


class JudgePanel:
    def __init__(self, judges: list[ChatClient]):
        if len(judges) < 2:
            raise StreamlearnError("a judge panel needs two or more judges (eval.judges = ['MODEL@URL', ...])")
        self.judges = judges

    def grade(self, question: str, reference: str, key_facts: list[str], candidate: str) -> dict:
        user = json.dumps({"question": question, "reference": reference, "key_facts": key_facts,
                           "candidate": candidate}, ensure_ascii=False)
        votes: list[bool | None] = []
        errors: list[str] = []
        for judge in self.judges:
            try:
                reply = judge.complete([{"role": "system", "content": JUDGE_SYSTEM},
                                        {"role": "user", "content": user}])
                m = re.search(r"\{.*\}", reply.content, re.S)
                verdict = json.loads(m.group(0))["correct"] if m else None
                if not isinstance(verdict, bool):
                    raise ValueError(f"no true/false verdict in {reply.content[:80]!r}")
                votes.append(verdict)
            except (StreamlearnError, ValueError, KeyError, json.JSONDecodeError) as exc:
                votes.append(None)
                errors.append(f"{judge.model}: {exc}")
        cast = [v for v in votes if v is not None]
        yes, no = cast.count(True), cast.count(False)
        if not cast:
            verdict, status = None, "judge_failed"
        elif yes == no:
            verdict, status = None, "no_majority"
        else:
            verdict, status = yes > no, "graded"
        return {"correct": verdict, "status": status, "votes": votes, "judge_errors": errors}
