"""Inference: video-conditioned inputs with streamlearn's own preprocessing (NumPy, no torchvision) and
M-RoPE positions (`rope_index`, which training uses too), cached prompt prefixes, batched option scoring and
greedy generation (one decoding loop), and `load_for_generation`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamlearn.models.loading import inference_dtype, load_model, pick_device
from streamlearn.models.tokenizer import VIDEO_PAD

BLANK_FRAMES = np.zeros((2, 28, 28, 3), dtype=np.uint8)  # the video of a text-only sample: black, one token


def rope_index(input_ids, video_grid_thw, second_per_grid_ts, spatial_merge: int = 2, tokens_per_second: float = 2.0,
               video_token_id: int = 151656):
    """3-D M-RoPE position ids (3, 1, S) for one sequence with at most one video, as Qwen2.5-VL was
    trained: text positions count up by one; a video's tokens get (t, h, w) ids with t spaced by
    tokens_per_second * seconds_per_grid (the real sampling fps), offset by the text before it; text
    after the video resumes at the largest id used so far + 1.

    Computed here rather than by the model class because transformers versions disagree (5.2x needs
    `mm_token_type_ids`, and resumes text after a video at a different position); training,
    generation and scoring all use this one function."""
    import torch

    ids = input_ids.reshape(-1)
    pos = torch.zeros(3, ids.numel(), dtype=torch.long)
    is_video = (ids == video_token_id).nonzero().reshape(-1)
    if video_grid_thw is None or not len(is_video):
        pos[:] = torch.arange(ids.numel())
        return pos.unsqueeze(1)
    a, b = int(is_video[0]), int(is_video[-1]) + 1
    t, h, w = (int(x) for x in video_grid_thw.reshape(-1, 3)[0])
    h, w = h // spatial_merge, w // spatial_merge
    if b - a != t * h * w:
        raise ValueError(f"{b - a} video tokens in the text but the grid {t}x{h}x{w} needs {t * h * w}")
    interval = tokens_per_second * float(second_per_grid_ts.reshape(-1)[0])
    pos[:, :a] = torch.arange(a)
    tt = (torch.arange(t) * interval).long()
    grid = torch.stack(torch.meshgrid(tt, torch.arange(h), torch.arange(w), indexing="ij")).reshape(3, -1) + a
    pos[:, a:b] = grid
    nxt = int(grid.max()) + 1
    pos[:, b:] = torch.arange(ids.numel() - b) + nxt
    return pos.unsqueeze(1)


def _cache_kwarg(model) -> str:
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
MARK = "\u2063"  # an invisible separator no template emits: where a shared prompt prefix ends


@dataclass
class Prefix:
    """The key/value cache of a shared prompt prefix and where the next position starts."""

    cache: object
    next_pos: int
    length: int
    tail: list[int] = field(default_factory=list)  # template tokens after a per-item user text


class VLM:
    """Video-conditioned greedy generation with streamlearn's own preprocessing and positions."""

    def __init__(self, model, tokenizer):
        from streamlearn.media.vision_budget import geometry_from_config

        self.model, self.tok = model, tokenizer
        self.geometry = geometry_from_config(model.config.vision_config.to_dict())

    def inputs(self, prompt: str, frames: np.ndarray | None, sample_fps: float = 1.0,
               system: str | None = None, answer_prefix: str = "") -> dict:
        import torch

        from streamlearn.media.video_pixels import n_video_tokens, video_inputs
        from streamlearn.media.vision_budget import smart_resize

        content: list[dict] = []
        vis: dict = {}
        if frames is not None and len(frames):
            # frames keep their size (cached at the model's resolution; the blank video of text-only
            # samples is one 28x28 token, exactly as training encodes it)
            px = frames.shape[1] * frames.shape[2]
            h, w = smart_resize(frames.shape[1], frames.shape[2], factor=self.geometry.factor,
                                min_pixels=min(4 * self.geometry.factor ** 2, px), max_pixels=px)
            vis = video_inputs(frames, h, w, sample_fps, self.geometry)
            content.append({"type": "video"})
        content.append({"type": "text", "text": prompt})
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
        text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + answer_prefix
        if vis:
            text = text.replace(VIDEO_PAD, VIDEO_PAD * n_video_tokens(tuple(vis["video_grid_thw"][0]), self.geometry), 1)
        ids = self.tok(text, return_tensors="pt", add_special_tokens=False)
        out = {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}
        if vis:
            out.update(pixel_values_videos=torch.from_numpy(vis["pixel_values_videos"]),
                       video_grid_thw=torch.from_numpy(vis["video_grid_thw"]),
                       second_per_grid_ts=torch.from_numpy(vis["second_per_grid_ts"]))
        dev = next(self.model.parameters()).device
        dt = next(self.model.parameters()).dtype
        return {k: (v.to(dev, dt) if k == "pixel_values_videos" else v.to(dev)) for k, v in out.items()}

    def prefix(self, user_text: str | None, frames: np.ndarray | None, sample_fps: float = 1.0) -> "Prefix":
        """Encode the part of a chat prompt that many items share, once: the system prompt, the video
        (blank or a chunk's) and, when `user_text` is given, the user turn up to the assistant's start.
        With `user_text=None` the user's text is per item: it starts the suffix, followed by the
        template's tail (`Prefix.tail`)."""
        import torch

        inp = self.inputs(MARK if user_text is None else user_text, frames, sample_fps)
        ids = inp["input_ids"][0].tolist()
        tail = []
        if user_text is None:
            mark = self.tok(MARK, add_special_tokens=False)["input_ids"]
            at = next(i for i in range(len(ids)) if ids[i:i + len(mark)] == mark)
            ids, tail = ids[:at], ids[at + len(mark):]
        fwd = {k: v for k, v in inp.items() if k != "attention_mask"}
        fwd["input_ids"] = torch.tensor([ids], device=inp["input_ids"].device)
        pos = self.positions(fwd)
        with torch.no_grad():
            out = self.model(**fwd, position_ids=pos, use_cache=True)
        return Prefix(getattr(out, _cache_kwarg(self.model)), int(pos.max()) + 1, len(ids), tail)

    def continuation_logprobs(self, prefix: "Prefix", suffix: str, options: list[str], lead: str = " ",
                              user_suffix: bool = False) -> list[float]:
        """Mean log-probability of each option after prefix + suffix, all options in one batch over
        a copy of the prefix's cache (right-padded: causal attention never sees the padding). A long
        suffix (retrieved notes) is encoded once and its cache shared by the options."""
        import copy

        import torch

        s_ids = self.tok(suffix, add_special_tokens=False)["input_ids"] + (prefix.tail if user_suffix else [])
        if not s_ids:
            raise ValueError("the per-item part of a prompt cannot be empty")
        o_ids = [self.tok(lead + o, add_special_tokens=False)["input_ids"] for o in options]
        dev = next(self.model.parameters()).device
        key = _cache_kwarg(self.model)
        cache = copy.deepcopy(prefix.cache)
        start, lead_ids = prefix.next_pos, s_ids
        if len(s_ids) * (len(options) - 1) > 64:  # encode the suffix once, keep its last token per option
            pos = (torch.arange(len(s_ids) - 1, device=dev) + start).view(1, 1, -1).expand(3, 1, -1)
            if len(s_ids) > 1:
                with torch.no_grad():
                    cache = getattr(self.model(input_ids=torch.tensor([s_ids[:-1]], device=dev), position_ids=pos,
                                               use_cache=True, **{key: cache}), key)
            start, lead_ids = start + len(s_ids) - 1, s_ids[-1:]
        length = len(lead_ids) + max(len(o) for o in o_ids)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        batch = torch.tensor([lead_ids + o + [pad] * (length - len(lead_ids) - len(o)) for o in o_ids], device=dev)
        pos = (torch.arange(length, device=dev) + start).view(1, 1, -1).expand(3, len(options), -1)
        cache.batch_repeat_interleave(len(options))
        with torch.no_grad():
            logits = self.model(input_ids=batch, position_ids=pos, use_cache=True, **{key: cache}).logits
        scores = []
        for j, o in enumerate(o_ids):
            rows = logits[j, len(lead_ids) - 1:len(lead_ids) - 1 + len(o)].float()
            logp = torch.log_softmax(rows, dim=-1)
            scores.append(float(logp[torch.arange(len(o)), torch.tensor(o, device=dev)].mean()))
        return scores

    def score_pairs(self, prefix: "Prefix", pairs: list[tuple[str, str]]) -> list[float]:
        """Mean log-probability of each (suffix, continuation) pair after the prefix: many items'
        options in one right-padded batch over copies of the prefix's cache."""
        import copy

        import torch

        enc = [(self.tok(a, add_special_tokens=False)["input_ids"], self.tok(b, add_special_tokens=False)["input_ids"])
               for a, b in pairs]
        if any(not a for a, _ in enc):
            raise ValueError("the per-item part of a prompt cannot be empty")
        length = max(len(a) + len(b) for a, b in enc)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        dev = next(self.model.parameters()).device
        batch = torch.tensor([a + b + [pad] * (length - len(a) - len(b)) for a, b in enc], device=dev)
        pos = (torch.arange(length, device=dev) + prefix.next_pos).view(1, 1, -1).expand(3, len(enc), -1)
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(len(enc))
        with torch.no_grad():
            logits = self.model(input_ids=batch, position_ids=pos, use_cache=True,
                                **{_cache_kwarg(self.model): cache}).logits
            rows = torch.cat([logits[j, len(a) - 1:len(a) - 1 + len(b)] for j, (a, b) in enumerate(enc)]).float()
            targets = torch.tensor([t for _, b in enc for t in b], device=dev)
            logp = torch.log_softmax(rows, dim=-1)[torch.arange(len(targets), device=dev), targets]
            sizes = [len(b) for _, b in enc]
            means = torch.stack([chunk.mean() for chunk in torch.split(logp, sizes)]).tolist()
        return means

    def greedy_from(self, prefix: "Prefix", suffix: str, max_new_tokens: int, stop_ids: set[int],
                    user_suffix: bool = False) -> list[int]:
        """Greedy decoding after prefix + suffix, from a copy of the prefix's cache."""
        import copy

        import torch

        ids = self.tok(suffix, add_special_tokens=False)["input_ids"] + (prefix.tail if user_suffix else [])
        dev = next(self.model.parameters()).device
        key = _cache_kwarg(self.model)
        cache = copy.deepcopy(prefix.cache)

        def forward(step: list[int], at: int):
            pos = (torch.arange(len(step), device=dev) + at).view(1, 1, -1).expand(3, 1, -1)
            return self.model(input_ids=torch.tensor([step], device=dev), position_ids=pos, use_cache=True,
                              **{key: cache})

        with torch.no_grad():
            return _greedy(forward(ids, prefix.next_pos), prefix.next_pos + len(ids),
                           lambda tok, at: forward([tok], at), max_new_tokens, stop_ids)

    def positions(self, inp: dict):
        vc = self.model.config.vision_config
        return rope_index(inp["input_ids"].cpu(), inp.get("video_grid_thw"), inp.get("second_per_grid_ts"),
                          vc.spatial_merge_size, vc.tokens_per_second,
                          self.model.config.video_token_id).to(inp["input_ids"].device)

    def greedy(self, inp: dict, max_new_tokens: int, stop_ids: set[int]) -> list[int]:
        """Greedy decoding with our own M-RoPE positions (prefill, then one position per new token)."""
        import torch

        key = _cache_kwarg(self.model)
        pos = self.positions(inp)
        fwd = {k: v for k, v in inp.items() if k != "attention_mask"}
        with torch.no_grad():
            out = self.model(**fwd, position_ids=pos, use_cache=True)
            cache = getattr(out, key)  # grows in place, as in greedy_from

            def step(tok: int, at: int):
                return self.model(input_ids=torch.tensor([[tok]], device=pos.device), use_cache=True,
                                  position_ids=torch.full((3, 1, 1), at, dtype=torch.long, device=pos.device),
                                  **{key: cache})

            return _greedy(out, int(pos.max()) + 1, step, max_new_tokens, stop_ids)

    def generate_text(self, prompt: str, frames: np.ndarray | None, sample_fps: float = 1.0,
                      max_new_tokens: int = 256, system: str | None = None) -> tuple[str, int, int, str]:
        inp = self.inputs(prompt, frames, sample_fps, system)
        new = self.greedy(inp, max_new_tokens, {self.tok.eos_token_id, self.tok.pad_token_id})
        finish = "stop" if new and new[-1] in (self.tok.eos_token_id, self.tok.pad_token_id) else "length"
        return self.tok.decode(new, skip_special_tokens=True), int(inp["input_ids"].shape[1]), len(new), finish


def _greedy(out, at: int, step, max_new_tokens: int, stop_ids: set[int]) -> list[int]:
    """The one greedy decoding loop: the argmax of the last logits, until a stop id or `max_new_tokens`;
    `step(token, position)` feeds one token at the next position and returns the model's output."""
    out_ids: list[int] = []
    for _ in range(max_new_tokens):
        tok = int(out.logits[0, -1].argmax())
        out_ids.append(tok)
        if tok in stop_ids:
            break
        out, at = step(tok, at), at + 1
    return out_ids


def load_for_generation(model: str, device: str = "auto", dtype=None) -> VLM:
    """A checkpoint ready to answer, loaded straight onto its device in `inference_dtype`."""
    dev = pick_device(device)
    m, tok = load_model(model, dtype=dtype or inference_dtype(dev), device=dev)
    m.eval()
    return VLM(m, tok)
