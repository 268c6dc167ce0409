"""Write tests/assets/processor_golden.npz with transformers' own Qwen2-VL video processor.

Needs torchvision (the official video processor requires it), so run it in a separate venv:
    python -m venv /tmp/venv2 && /tmp/venv2/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==5.24.0
    /tmp/venv2/bin/python scripts/make_processor_golden.py
The frames are regenerated from their seeds by the test, so only the processor's outputs are stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.video_utils import VideoMetadata

CASES = [
    # name, seed, (frames, height, width), source fps, operating point, keep pixels
    ("exact", 1, (16, 56, 112), 4.0, dict(fps=2.0, max_frames=64, total_pixels=8 * 56 * 112 // 2,
                                          frame_min_pixels=3136, frame_max_pixels=56 * 112), True),
    ("resize", 2, (20, 90, 160), 5.0, dict(fps=1.0, max_frames=64, total_pixels=2 * 3136 * 4,
                                           frame_min_pixels=3136, frame_max_pixels=100000), True),
    ("cap", 3, (120, 36, 64), 1.0, dict(fps=1.0, max_frames=100, total_pixels=100 * 3136 // 2 * 3,
                                        frame_min_pixels=3136, frame_max_pixels=768 * 784), False),
    ("minframes", 4, (30, 60, 60), 30.0, dict(fps=1.0, max_frames=64, total_pixels=10 ** 7,
                                              frame_min_pixels=3136, frame_max_pixels=3136 * 2), True),
]


def frames_for(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    t, h, w = shape
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(t, h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    # smooth-ish content (4x nearest upsampling) so resize differences stay realistic
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)[:, :h, :w]


def main(out: Path) -> None:
    arrays, meta = {}, {"transformers": transformers.__version__, "torch": torch.__version__, "cases": []}
    for name, seed, shape, src_fps, op, keep in CASES:
        frames = frames_for(seed, shape)
        factor = 28
        max_video_tokens = op["total_pixels"] / (factor * factor * 0.9)
        proc = Qwen2VLVideoProcessor(size={"shortest_edge": op["frame_min_pixels"], "longest_edge": op["frame_max_pixels"]},
                                     cap_pixels_per_frame=True, max_video_tokens=max_video_tokens,
                                     do_sample_frames=True, max_frames=op["max_frames"])
        md = VideoMetadata(total_num_frames=shape[0], fps=src_fps, duration=shape[0] / src_fps,
                           frames_indices=list(range(shape[0])))
        out_ = proc(videos=[torch.from_numpy(frames)], video_metadata=[md], fps=op["fps"], return_tensors="np")
        grid = [int(x) for x in out_["video_grid_thw"][0]]
        meta["cases"].append({"name": name, "seed": seed, "shape": list(shape), "source_fps": src_fps, "op": op,
                              "grid": grid, "pixels": keep})
        if keep:
            arrays[f"{name}_pixels"] = out_["pixel_values_videos"].astype(np.float32)
        print(name, grid, out_["pixel_values_videos"].shape)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(out, **arrays)
    print("wrote", out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/assets/processor_golden.npz")
