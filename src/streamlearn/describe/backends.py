"""Model backends for `describe`: an OpenAI-compatible endpoint, a local transformers VLM, and
provider batch files (write requests now, import the results later at about half the price)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from streamlearn.corpus import description as D
from streamlearn.core.config import DescribeSection
from streamlearn.describe.context import ChunkContext
from streamlearn.describe.llm import ChatClient, Reply, RequestCache, generate, parse_completion
from streamlearn.describe.prompt import extract_json, messages, request_key
from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import atomic_write_text


def cost(s: DescribeSection, usage: dict) -> float:
    """USD for one request's tokens at the configured prices."""
    return round(usage.get("prompt_tokens", 0) * s.price_prompt_per_mtok / 1e6
                 + usage.get("completion_tokens", 0) * s.price_completion_per_mtok / 1e6, 6)


class OpenAIBackend:
    name = "openai"

    def __init__(self, s: DescribeSection, cache: RequestCache):
        if not s.model:
            raise StreamlearnError("describe.model is empty; set the model name the endpoint serves")
        self.s, self.cache, self.model = s, cache, s.model
        self.client = ChatClient(s.endpoint, s.model, s.api_key_env, s.timeout_s, s.max_retries, s.backoff_s,
                                 s.max_tokens)

    def describe(self, ctx: ChunkContext) -> tuple[dict, dict]:
        msgs = messages(ctx, self.s.n_frames, self.s.frame_width)
        doc, usage = generate(self.client.complete, msgs, D.empty(ctx.chunk, ctx.n_days), self.s.repairs,
                              self.cache, self.s.model)
        usage["cost_usd"] = cost(self.s, usage)
        return doc, usage


class TransformersBackend:
    """A local Qwen2.5-VL (or compatible) by path or hub id; frames go in as a video."""

    name = "transformers"

    def __init__(self, s: DescribeSection, cache: RequestCache):
        from streamlearn.models.inference import load_for_generation

        self.s, self.cache, self.model = s, cache, s.model or "tiny"
        self.vlm = load_for_generation(self.model, s.device)
        self.lock = threading.Lock()  # one model, one generation at a time (batching is the model's job)

    def _ask(self, msgs: list[dict], frames: np.ndarray, sample_fps: float) -> Reply:
        text = "\n".join(part["text"] for m in msgs for part in (
            m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])
            if part.get("type") == "text")
        with self.lock:
            out, n_in, n_out, finish = self.vlm.generate_text(text, frames, sample_fps, self.s.max_tokens)
        return Reply(content=out, prompt_tokens=n_in, completion_tokens=n_out, finish_reason=finish)

    def describe(self, ctx: ChunkContext) -> tuple[dict, dict]:
        msgs = messages(ctx, 0, self.s.frame_width)  # text part; the frames go in as one video
        times, frames = ctx.frames(max(2, self.s.n_frames // 2 * 2), self.s.frame_width)
        fps = len(times) / ctx.duration
        doc, usage = generate(lambda m: self._ask(m, frames, fps), msgs, D.empty(ctx.chunk, ctx.n_days),
                              self.s.repairs, self.cache, f"{self.model}|frames={len(times)}")
        usage["cost_usd"] = 0.0
        return doc, usage


class BatchWriter:
    """Writes one provider batch request per chunk (OpenAI batch JSONL shape); nothing is described yet."""

    name = "batch"

    def __init__(self, s: DescribeSection, out: Path):
        if not s.model:
            raise StreamlearnError("describe.model is empty; set the model the batch provider should run")
        self.s, self.out, self.model = s, out, s.model
        self.lock = threading.Lock()
        self.client = ChatClient(s.endpoint or "https://batch.invalid/v1", s.model, max_tokens=s.max_tokens)

    def add(self, ctx: ChunkContext) -> None:
        msgs = messages(ctx, self.s.n_frames, self.s.frame_width)
        line = {"custom_id": ctx.chunk["chunk_id"], "method": "POST", "url": "/v1/chat/completions",
                "body": self.client.body(msgs)}
        with self.lock:
            with open(self.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")


def read_batch_results(path: Path) -> dict[str, Reply | str]:
    """custom_id -> Reply, or -> the error text the provider reported for that request."""
    out: dict[str, Reply | str] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise StreamlearnError(f"{Path(path).name} line {n}: not JSON; pass the provider's output file") from None
        cid = item.get("custom_id")
        if not cid:
            raise StreamlearnError(f"{Path(path).name} line {n}: no custom_id; pass the provider's output file")
        resp = item.get("response") or {}
        if item.get("error") or resp.get("status_code", 200) != 200:
            out[cid] = f"batch error: {json.dumps(item.get('error') or resp.get('body'))[:200]}"
        else:
            out[cid] = parse_completion(resp.get("body") or {})
    return out


def describe_from_batch(reply: Reply | str, ctx: ChunkContext, s: DescribeSection) -> tuple[dict, dict]:
    """A batch result becomes a description (no repair round trip: invalid output fails the chunk)."""
    if isinstance(reply, str):
        raise StreamlearnError(reply)
    skeleton = D.empty(ctx.chunk, ctx.n_days)
    if reply.finish_reason == "length":
        raise StreamlearnError("batch reply was cut off at max_tokens; raise describe.max_tokens and resubmit")
    try:
        from streamlearn.describe.llm import finalize

        doc = finalize(extract_json(reply.content), skeleton)
    except ValueError as exc:
        raise StreamlearnError(f"batch reply is not JSON ({exc})") from None
    problems = D.validate(doc)
    if problems:
        raise StreamlearnError(f"batch reply fails the schema: {'; '.join(problems[:3])}")
    usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
    # batch APIs bill about half the synchronous price
    usage["cost_usd"] = round(cost(s, usage) / 2, 6)
    return doc, usage


def write_text(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1))


__all__ = ["OpenAIBackend", "TransformersBackend", "BatchWriter", "read_batch_results", "describe_from_batch",
           "request_key"]
