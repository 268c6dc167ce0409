"""Where models are built and written: the build cache ($STREAMLEARN_CACHE) that presets and the tokenizer are
saved into once, publishing a finished folder (the first of racing processes wins), the processor files written
beside a checkpoint's weights, and transformers' per-shard progress bars turned off."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

CACHE_LOCK = threading.RLock()


def quiet_transformers() -> None:
    """No per-shard progress bars from transformers: our own output is one line per step."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def cache_dir() -> Path:
    path = Path(os.environ.get("STREAMLEARN_CACHE", Path.home() / ".cache" / "streamlearn"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def publish(tmp: Path, out: Path) -> None:
    """Move a finished folder into place; if another process won the race, keep theirs."""
    import shutil

    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def write_processor_files(folder: Path, template: str, min_pixels: int = 4 * 28 * 28,
                          max_pixels: int = 768 * 28 * 28) -> None:
    """Processor configs so `AutoProcessor.from_pretrained(folder)` works where torchvision is installed
    (streamlearn itself preprocesses with NumPy, see media/video_pixels.py)."""
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
    (folder / "chat_template.jinja").write_text(template)
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
