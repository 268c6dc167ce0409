"""Frames → the model's `pixel_values_videos` and `video_grid_thw`, in NumPy.

Does what transformers' Qwen2-VL video processor does (resize to the planned size, rescale,
CLIP normalisation, the 10-D patchify permutation) without needing torchvision, whose only wheels
here are a 5.5 GB CUDA build. Equality with the official processor is pinned by a golden-file
test (`tests/assets/processor_golden.npz`, made by `scripts/make_processor_golden.py`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from streamlearn.media.vision_budget import VisionGeometry

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, height, width, 3) uint8, bicubic; a no-op at the target size."""
    if frames.shape[1:3] == (height, width):
        return np.asarray(frames)
    return np.stack([np.asarray(Image.fromarray(np.asarray(f)).resize((width, height), Image.BICUBIC))
                     for f in frames])


def patchify(frames: np.ndarray, g: VisionGeometry = VisionGeometry()) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(T, H, W, 3) uint8 at a size divisible by patch*merge → (patches, D) float32 and (t, h, w)."""
    frames = np.asarray(frames)
    t, h, w, c = frames.shape
    if h % g.factor or w % g.factor:
        raise ValueError(f"frame size {h}x{w} is not a multiple of {g.factor}; resize with vision_budget first")
    if pad := -t % g.temporal_patch_size:  # repeat the last frame, as the official processor does
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        t += pad
    x = (frames.astype(np.float32) * np.float32(1 / 255) - CLIP_MEAN) / CLIP_STD  # (T, H, W, C)
    x = x.transpose(0, 3, 1, 2)  # (T, C, H, W)
    gt, gh, gw = t // g.temporal_patch_size, h // g.patch_size, w // g.patch_size
    m, p, tp = g.merge_size, g.patch_size, g.temporal_patch_size
    x = x.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # gt, gh/m, gw/m, m, m, C, tp, p, p
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * tp * p * p)), (gt, gh, gw)


def video_inputs(frames: np.ndarray, height: int, width: int, sample_fps: float,
                 g: VisionGeometry = VisionGeometry()) -> dict:
    """pixel_values_videos, video_grid_thw and second_per_grid_ts for one video."""
    pixels, grid = patchify(resize_frames(frames, height, width), g)
    return {"pixel_values_videos": pixels, "video_grid_thw": np.array([grid], dtype=np.int64),
            "second_per_grid_ts": np.array([g.temporal_patch_size / sample_fps], dtype=np.float32)}


def n_video_tokens(grid: tuple[int, int, int], g: VisionGeometry = VisionGeometry()) -> int:
    """How many <|video_pad|> tokens stand for this video in the text."""
    t, h, w = grid
    return t * h * w // (g.merge_size ** 2)
