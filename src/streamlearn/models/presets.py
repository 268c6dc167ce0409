"""The model presets, each with its one vision geometry: `tiny` (a random-weight Qwen2.5-VL of the real
architecture, small enough for a CPU), `smol` (SmolLM2-135M-Instruct as the language model of a Qwen2.5-VL
with a small random vision tower, models/gguf.py) and the architecture presets `qwen2.5-vl-3b/7b/32b/72b`
(random weights of the real shapes: benchmarks, dry runs). Anything else is a local folder or a hub id."""

from __future__ import annotations

from streamlearn.core.errors import StreamlearnError
from streamlearn.media.vision_budget import PRESET_GEOMETRY, VisionGeometry

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
SMOL_VISION = dict(TINY_VISION, out_hidden_size=576)
PRESETS = ("tiny", "smol", *ARCHITECTURES)


def preset_geometry(name: str) -> VisionGeometry:
    """The vision geometry of a preset: every preset's tower is Qwen2.5-VL's (patch 14, merge 2, temporal 2)."""
    if name not in PRESETS:
        raise StreamlearnError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESET_GEOMETRY["qwen2.5-vl"]


def vl_config(text: dict, vision: dict):
    from transformers import Qwen2_5_VLConfig

    rope = {"rope_type": "default", "rope_theta": 1000000.0,
            "mrope_section": [16, 24, 24] if text["hidden_size"] // text["num_attention_heads"] == 128 else
            mrope_section(text["hidden_size"] // text["num_attention_heads"])}
    return Qwen2_5_VLConfig(text_config=dict(vocab_size=151936, max_position_embeddings=128000, rms_norm_eps=1e-6,
                                             rope_parameters=rope, **text),
                            vision_config=vision, image_token_id=151655, video_token_id=151656,
                            vision_start_token_id=151652, vision_end_token_id=151653)


def mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]


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
