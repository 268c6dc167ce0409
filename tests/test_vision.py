"""The vision path against transformers' own Qwen2-VL video processor (golden outputs made with
torchvision by scripts/make_processor_golden.py): frame sampling, frame size, grid and pixels.

Run: python -m pytest tests/test_vision.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streamlearn.core.config import OperatingPoint
from streamlearn.media.video_pixels import patchify, resize_frames
from streamlearn.media.vision_budget import frame_indices, plan

GOLDEN = Path(__file__).parent / "assets" / "processor_golden.npz"


def frames_for(seed, shape):  # the same generator as scripts/make_processor_golden.py
    t, h, w = shape
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(t, h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)[:, :h, :w]


def cases():
    data = np.load(GOLDEN)
    meta = json.loads(bytes(data["meta"]).decode())
    return [(c, data.get(f"{c['name']}_pixels")) for c in meta["cases"]]


@pytest.mark.parametrize("case,pixels", cases(), ids=lambda x: x["name"] if isinstance(x, dict) else "")
def test_plan_and_pixels_match_the_official_processor(case, pixels):
    t, h, w = case["shape"]
    op = OperatingPoint(chunk_seconds=t / case["source_fps"], **case["op"])
    p = plan(t / case["source_fps"], w, h, op, source_fps=case["source_fps"])
    assert list(p.grid_thw) == case["grid"]
    assert p.vision_tokens == case["grid"][0] * case["grid"][1] * case["grid"][2] // 4
    if pixels is None:
        return
    frames = frames_for(case["seed"], case["shape"])[frame_indices(t, p.n_frames)]
    ours, grid = patchify(resize_frames(frames, p.frame_height, p.frame_width))
    assert list(grid) == case["grid"] and ours.shape == pixels.shape
    diff = np.abs(ours - pixels)
    if (h, w) == (p.frame_height, p.frame_width):
        assert diff.max() < 1e-5  # no resize: identical up to float rounding
    else:  # PIL bicubic vs torchvision bicubic: small differences in normalised units
        assert diff.mean() < 1e-3 and diff.max() < 0.05  # measured: mean 5e-5, max 0.029


def test_patchify_pads_odd_frame_counts_like_the_processor():
    frames = frames_for(9, (3, 28, 56))
    padded, grid = patchify(frames)
    same, _ = patchify(np.concatenate([frames, frames[-1:]]))
    assert grid == (2, 2, 4) and np.array_equal(padded, same)

