"""Loading checkpoints: a preset, a local folder or a hub id resolved to something `from_pretrained` loads
(`tiny` saved once as a regular checkpoint), the device (`auto`: the GPU when there is one) and the
inference dtype."""

from __future__ import annotations

import os
from pathlib import Path

from streamlearn.core.errors import StreamlearnError
from streamlearn.models.cache import CACHE_LOCK, cache_dir, publish, quiet_transformers, write_processor_files
from streamlearn.models.gguf import smol_path
from streamlearn.models.presets import ARCHITECTURES, preset_config
from streamlearn.models.tokenizer import CHAT_TEMPLATE, build_tokenizer

def tiny_path(seed: int = 0) -> Path:
    """The tiny preset, saved once as a regular checkpoint (weights + tokenizer)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = cache_dir() / "models" / f"tiny-seed{seed}"
    with CACHE_LOCK:
        if not (out / "config.json").exists():
            torch.manual_seed(seed)
            model = Qwen2_5_VLForConditionalGeneration(preset_config("tiny"))
            tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
            model.save_pretrained(tmp)
            build_tokenizer().save_pretrained(tmp)
            write_processor_files(tmp, CHAT_TEMPLATE)
            publish(tmp, out)
    return out


def resolve(model: str) -> str:
    """A preset name, a local folder or a hub id → something `from_pretrained` can load."""
    if model == "tiny":
        return str(tiny_path())
    if model == "smol":
        return str(smol_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise StreamlearnError(f"{path} has no config.json; pass a model folder saved with save_pretrained")
        return str(path)
    if model in ARCHITECTURES:
        return model
    if model.startswith(("/", ".", "~")) or model.count("/") != 1:
        raise StreamlearnError(f"model {model!r} is neither a preset (tiny, smol, {', '.join(ARCHITECTURES)}), "
                               "an existing folder, nor a hub id like Qwen/Qwen2.5-VL-7B-Instruct; fix --model")
    return model


def pick_device(want: str = "auto") -> str:
    """`auto`: the GPU when there is one, else the CPU; `cuda`/`cpu` as asked (a missing GPU is an error)."""
    import torch

    if want not in ("auto", "cuda", "cpu") and not want.startswith("cuda:"):
        raise StreamlearnError(f"device {want!r} is not auto, cpu or cuda[:N]; fix eval.device / describe.device")
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise StreamlearnError(f"device {want!r} asked for, but torch sees no GPU; set the device to auto or cpu")
    return want


def load_model(model: str, dtype=None, device: str | None = None):
    """(model, tokenizer) for a preset, folder or hub id. Presets other than tiny get random weights."""
    import torch
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    quiet_transformers()
    target = resolve(model)
    if target in ARCHITECTURES:  # random weights, made where they will run, in the dtype they run in
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype or torch.float32)
        try:
            with torch.device(device or "cpu"):
                m = Qwen2_5_VLForConditionalGeneration(preset_config(target))
        finally:
            torch.set_default_dtype(prev)
        tok = build_tokenizer()
    else:
        try:
            m = Qwen2_5_VLForConditionalGeneration.from_pretrained(target, dtype=dtype or torch.float32,
                                                                   device_map=device if device else None)
            tok = AutoTokenizer.from_pretrained(target)
        except OSError as exc:
            raise StreamlearnError(f"cannot load model {model!r}: {' '.join(str(exc).split())[:200]}") from None
    if device:
        m = m.to(device)
    return m, tok


def inference_dtype(device: str):
    """bf16 on a GPU and on CPUs with native bf16 matrix units (AVX512-BF16/AMX: ~3x fp32 on the 2-core
    machines here), else fp32."""
    import torch

    if device.startswith("cuda") or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32
