"""How a chunk becomes vision tokens: frame count, frame size, temporal pairs, tokens.

The same arithmetic as transformers' Qwen2-VL video processor with `cap_pixels_per_frame=True`
(the qwen-vl-utils reference behaviour): frames sampled at `fps` (clamped to [min_frames,
max_frames], floored to a multiple of the temporal patch), each frame resized by the model's
`smart_resize` under a per-frame pixel cap of `max(min(frame_max, total * t // n), 1.05 * frame_min)`.
The planner, the frame cache and the training data path all call this module, so what
`streamlearn plan` prints is what training feeds the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from streamlearn.core.config import OperatingPoint

try:  # transformers >= 5.2x ships a torchvision-free copy of the model's resize rule
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
except ImportError:  # older transformers: the torchvision-backed module holds it
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize


@dataclass(frozen=True)
class VisionGeometry:
    """The model's patching: Qwen2/2.5-VL use 14 px patches merged 2x2 and 2-frame temporal patches."""

    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2
    min_frames: int = 4

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size


@dataclass(frozen=True)
class Plan:
    duration_s: float
    source_fps: float
    source_width: int
    source_height: int
    n_frames: int
    sample_fps: float  # frames actually sampled per second of video
    pairs: int  # temporal patches (grid_t)
    frame_width: int
    frame_height: int
    tokens_per_pair: int
    vision_tokens: int
    grid_thw: tuple[int, int, int]
    seconds_per_grid: float  # temporal_patch_size / sample_fps: what mRoPE's time axis needs

    def to_dict(self) -> dict:
        return asdict(self)


def n_frames(total_frames: int, source_fps: float, fps: float, max_frames: int, g: VisionGeometry) -> int:
    """Frames sampled from a clip (transformers' Qwen2-VL `sample_frames` with `fps`)."""
    t = g.temporal_patch_size
    cap = math.floor(min(max_frames, total_frames) / t) * t
    n = total_frames / source_fps * fps
    n = min(max(n, g.min_frames), cap, total_frames)
    return max(t, math.floor(n / t) * t)


def frame_indices(total_frames: int, n: int) -> list[int]:
    """Which source frames are sampled (uniform, as transformers does: arange(0, total, total / n))."""
    step = total_frames / n
    return [int(i * step) for i in range(n)]


def frame_pixel_cap(n: int, op: OperatingPoint, g: VisionGeometry) -> int:
    return max(min(op.frame_max_pixels, op.total_pixels * g.temporal_patch_size // n), int(op.frame_min_pixels * 1.05))


def frame_size(height: int, width: int, n: int, op: OperatingPoint, g: VisionGeometry) -> tuple[int, int]:
    """(height, width) each sampled frame is resized to."""
    return smart_resize(height, width, factor=g.factor, min_pixels=op.frame_min_pixels,
                        max_pixels=frame_pixel_cap(n, op, g))


def plan(duration_s: float, width: int, height: int, op: OperatingPoint, g: VisionGeometry = VisionGeometry(),
         source_fps: float = 30.0) -> Plan:
    total = max(1, int(round(duration_s * source_fps)))
    n = n_frames(total, source_fps, op.fps, op.max_frames, g)
    h, w = frame_size(height, width, n, op, g)
    pairs = n // g.temporal_patch_size
    gh, gw = h // g.patch_size, w // g.patch_size
    per_pair = (gh // g.merge_size) * (gw // g.merge_size)
    sample_fps = n / (total / source_fps)
    return Plan(duration_s=duration_s, source_fps=source_fps, source_width=width, source_height=height,
                n_frames=n, sample_fps=round(sample_fps, 6), pairs=pairs, frame_width=w, frame_height=h,
                tokens_per_pair=per_pair, vision_tokens=pairs * per_pair, grid_thw=(pairs, gh, gw),
                seconds_per_grid=round(g.temporal_patch_size / sample_fps, 6))


def rule_of_thumb(chunk_seconds: float, fps: float, budget_pixels: float = 25.2e6) -> dict:
    """The seed's back-of-envelope: pairs = chunk_s*fps/2, pixels per pair = 25.2M/pairs."""
    pairs = chunk_seconds * fps / 2
    per_pair = budget_pixels / pairs
    return {"pairs": pairs, "pixels_per_pair": per_pair, "frame_side": math.sqrt(per_pair),
            "vision_tokens_claimed": "12-14K"}


PRESET_GEOMETRY = {
    # Qwen2-VL and Qwen2.5-VL (3B/7B/32B/72B) share the same vision patching
    "qwen2.5-vl": VisionGeometry(14, 2, 2),
    "qwen2-vl": VisionGeometry(14, 2, 2),
    "qwen3-vl": VisionGeometry(16, 2, 2),
}


def geometry_from_config(vision_config: dict) -> VisionGeometry:
    return VisionGeometry(patch_size=int(vision_config.get("patch_size", 14)),
                          merge_size=int(vision_config.get("spatial_merge_size", 2)),
                          temporal_patch_size=int(vision_config.get("temporal_patch_size", 2)))
