"""Samples as the model sees them: encoded, one at a time (the targets come from `streamlearn.corpus.targets`).

INPUT  = chat prefix + <|vision_start|> video pads <|vision_end|> + instruction
TARGET = the rendered description (or QA pairs, a paraphrase, a day summary) + <|im_end|>
LOSS   = on target tokens only: labels are -100 everywhere else, vision positions included.

Frames come from the frame cache (`streamlearn frames`) and go through streamlearn's NumPy copy of
the model's video processor; the real sampling fps goes into `second_per_grid_ts`, so M-RoPE time
ids follow real seconds (transformers' processor assumes 24 fps when given frames without metadata).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamlearn.core.errors import StreamlearnError
from streamlearn.core.files import read_json_lines
from streamlearn.corpus.framecache import read_sample_frames
from streamlearn.models.inference import BLANK_FRAMES, rope_index
from streamlearn.models.tokenizer import VIDEO_PAD
from streamlearn.corpus.targets import SampleSpec
from streamlearn.media.video_pixels import n_video_tokens, video_inputs
from streamlearn.media.vision_budget import VisionGeometry


def earlier_days_pool(by_day: dict[int, list[SampleSpec]], day: int, seed: int) -> list[SampleSpec]:
    """Samples of the stream days before `day`, in a fixed shuffled order (the stream replay pool)."""
    pool = [s for d, specs in sorted(by_day.items()) if d < day for s in specs]
    random.Random(seed * 1000 + day).shuffle(pool)
    return pool


QA_KINDS = ("qa", "qa_text")


def day_epochs(specs: list[SampleSpec], epochs: int, order: str, seed: int, day: int) -> list[SampleSpec]:
    """A day's samples for all its epochs, each epoch in `train.order`: as given (stream order), the QA
    pairs first, or shuffled (seeded by day and epoch, so a resumed run draws the same order)."""
    out: list[SampleSpec] = []
    for epoch in range(epochs):
        batch = list(specs)
        if order == "qa_first":
            batch = [s for s in batch if s.kind in QA_KINDS] + [s for s in batch if s.kind not in QA_KINDS]
        elif order == "shuffled":
            random.Random(f"{seed}:{day}:{epoch}").shuffle(batch)
        out += batch
    return out


def replay_specs(folder: Path) -> list[SampleSpec]:
    """General video-caption pairs: `<folder>/samples.jsonl` lines {"frames": path.npy, "caption": text}."""
    index = Path(folder) / "samples.jsonl"
    if not index.exists():
        raise StreamlearnError(f"replay set {folder} has no samples.jsonl; export one with `streamlearn export`")
    out = []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            item = json.loads(line)
            out.append(SampleSpec(f"replay/{n}", "replay", 0, [str(Path(folder) / item["frames"])], item["caption"],
                                  item.get("instruction") or "Describe this video."))
    if not out:
        raise StreamlearnError(f"replay set {folder} is empty")
    return out


def general_specs(path: str) -> list[SampleSpec]:
    """The general rehearsal set as text samples (question as the instruction, answer as the target):
    `path` is a JSONL of {"question", "answer"} lines, "" the packaged set."""
    from importlib import resources

    if path and not Path(path).is_file():
        raise StreamlearnError(f"train.general_set {path} is not a file; give a JSONL of "
                               '{"question", "answer"} lines, or "" for the packaged set')
    fix = "fix or delete the line"
    with resources.as_file(resources.files("streamlearn").joinpath("data/general_rehearsal.jsonl")) as packaged:
        source = Path(path) if path else packaged
        lines = read_json_lines(source, fix, "save it as UTF-8")
    out = []
    for n, item in lines:
        if not (isinstance(item, dict) and "question" in item and "answer" in item):
            raise StreamlearnError(f"{source.name} line {n}: not a JSON object with \"question\" and \"answer\"; {fix}")
        out.append(SampleSpec(f"general/{n}", "general", 0, [], str(item["answer"]), str(item["question"])))
    if not out:
        raise StreamlearnError(f"{source.name} has no question-answer lines; fill it or set train.general_replay = 0")
    return out


def general_pool(general: list[SampleSpec], day: int, seed: int) -> list[SampleSpec]:
    """The general set in a fixed shuffled order for `day` (a resumed day draws the same samples)."""
    pool = list(general)
    random.Random(f"general:{seed}:{day}").shuffle(pool)
    return pool


def mix_replay(specs: list[SampleSpec], replay: list[SampleSpec], ratio: float, offset: int) -> tuple[list, int]:
    """Every 1/ratio-th sample is a replay sample (deterministic, continuing where the last day stopped)."""
    if not replay or ratio <= 0:
        return specs, offset
    out, every, acc = [], ratio / (1 - ratio), 0.0
    for s in specs:
        out.append(s)
        acc += every
        while acc >= 1.0:
            out.append(replay[offset % len(replay)])
            offset += 1
            acc -= 1.0
    return out, offset


@dataclass
class Encoded:
    key: str
    input_ids: "object"  # torch.LongTensor (1, S)
    labels: "object"  # (1, S)
    position_ids: "object"  # (3, 1, S)
    pixel_values_videos: "object"  # (patches, C*t*p*p) float32
    video_grid_thw: "object"  # (1, 3)
    second_per_grid_ts: "object"  # (1,)
    n_target: int
    n_vision: int


def load_frames_for(corpus_root: Path, spec: SampleSpec, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Frames (T, H, W, 3) and their sampling fps (`framecache.read_sample_frames`); a text-only
    sample gets a blank two-frame video (one token), so every rank runs the vision tower in every
    step (an uneven mix of video and text-only samples hangs sharded runs)."""
    if not spec.frames:
        return BLANK_FRAMES, 1.0
    return read_sample_frames(corpus_root, spec.frames, spec.key, max_frames)


class Encoder:
    """Samples to model inputs, with what repeats cached: a chunk's pixels (shared by its description,
    facts and QA samples, and by every epoch and replay; up to `cache_bytes`), and each instruction's
    chat prefix, tokenized once with a single video pad and widened to the video's tokens (tokenizing
    10,800 pad tokens per sample cost more than the rest of the encoding)."""

    def __init__(self, tok, corpus_root: Path, g: VisionGeometry, tokens_per_second: float, max_seq_len: int,
                 pixel_dtype=None, cache_bytes: int = 2 << 30):
        from collections import OrderedDict

        self.tok, self.root, self.g, self.tps, self.max_seq_len = tok, Path(corpus_root), g, tokens_per_second, max_seq_len
        self.pixel_dtype, self.cache_bytes = pixel_dtype, cache_bytes
        self._vision: OrderedDict = OrderedDict()
        self._bytes = 0
        self._prefix: dict[str, tuple[list[int], list[int]]] = {}
        self.end = tok.convert_tokens_to_ids("<|im_end|>")
        self.nl = tok("\n", add_special_tokens=False)["input_ids"]
        self.pad = tok.convert_tokens_to_ids(VIDEO_PAD)

    def vision(self, spec: SampleSpec):
        import torch

        key = tuple(spec.frames)
        if key in self._vision:
            self._vision.move_to_end(key)
            return self._vision[key]
        frames, fps = load_frames_for(self.root, spec)
        h, w = frames.shape[1:3]
        if h % self.g.factor or w % self.g.factor:
            raise StreamlearnError(f"{spec.key}: cached frames are {h}x{w}, not a multiple of {self.g.factor}; "
                                   "re-run `streamlearn frames --force` for this model")
        vis = video_inputs(frames, h, w, fps, self.g)
        pix = torch.from_numpy(vis["pixel_values_videos"])
        if self.pixel_dtype is not None:
            pix = pix.to(self.pixel_dtype)
        item = (pix, torch.from_numpy(vis["video_grid_thw"]), torch.from_numpy(vis["second_per_grid_ts"]),
                n_video_tokens(tuple(vis["video_grid_thw"][0]), self.g))
        size = pix.numel() * pix.element_size()
        if size <= self.cache_bytes:
            self._vision[key] = item
            self._bytes += size
            while self._bytes > self.cache_bytes:
                old = self._vision.popitem(last=False)[1]
                self._bytes -= old[0].numel() * old[0].element_size()
        return item

    def prefix(self, instruction: str) -> tuple[list[int], list[int]]:
        """The chat prefix's ids before and after its one video pad."""
        if instruction not in self._prefix:
            msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": instruction}]}]
            text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            at = ids.index(self.pad)
            self._prefix[instruction] = (ids[:at], ids[at + 1:])
        return self._prefix[instruction]

    def __call__(self, spec: SampleSpec) -> Encoded:
        import torch

        pix, grid, spg, n_vid = self.vision(spec)
        before, after = self.prefix(spec.instruction)
        p_ids = before + [self.pad] * n_vid + after
        t_ids = self.tok(spec.target, add_special_tokens=False)["input_ids"]
        ids = p_ids + t_ids + [self.end] + self.nl
        labels = [-100] * len(p_ids) + t_ids + [self.end] + [-100] * len(self.nl)
        if len(ids) > self.max_seq_len:
            raise StreamlearnError(f"{spec.key}: {len(ids)} tokens ({n_vid} vision + {len(t_ids)} target) exceed "
                                   f"max_seq_len {self.max_seq_len}; raise train.max_seq_len or lower the operating "
                                   "point")
        input_ids = torch.tensor([ids])
        return Encoded(spec.key, input_ids, torch.tensor([labels]),
                       rope_index(input_ids, grid, spg, self.g.merge_size, self.tps, self.pad),
                       pix, grid, spg, len(t_ids) + 1, n_vid)


def encode(spec: SampleSpec, tok, corpus_root: Path, g: VisionGeometry, tokens_per_second: float,
           max_seq_len: int) -> Encoded:
    """One sample encoded (no caching): `Encoder` for a run."""
    return Encoder(tok, corpus_root, g, tokens_per_second, max_seq_len, cache_bytes=0)(spec)
