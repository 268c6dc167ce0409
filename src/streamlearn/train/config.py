"""Training settings: `[train]` in streamlearn.toml, overridden by `--config train.toml`."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streamlearn.errors import ConfigError

TARGETS = ("description", "qa", "qa_text", "paraphrase", "facts", "day_summary")


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"train config: {key} {msg}")


@dataclass
class TrainConfig:
    model: str = "tiny"  # preset, local folder or hub id
    preset_layers: int = 0  # > 0: a random-weight preset with this many decoder layers (benchmarks, dry runs)
    run: str = "main"  # runs/<run>/
    lr: float = 1e-5  # language model and merger
    vision_lr: float = 1e-6  # vision tower (ignored when frozen)
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 10  # re-warmed at the start of every day (continual pretraining)
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    grad_accum: int = 1  # micro-batches (one chunk each) per optimizer step and rank
    epochs_per_day: int = 1
    max_seq_len: int = 32768  # samples longer than this are skipped and listed
    targets: list[str] = field(default_factory=lambda: ["description"])
    instruction: str = "Describe this part of the stream."
    fact_variants: int = 2  # "facts" target: augmented renderings of each description (wording, order)
    checkpoint_every: int = 0  # steps; 0 = only at the end of each day
    keep_last: int = 2  # periodic checkpoints kept
    keep_days: int = 0  # Day-N training states kept (newest first; 0 = all); Day-N exports are always kept
    freeze_vision: bool = False
    activation_checkpointing: bool = True
    fast_vision_attention: bool = True  # batched window attention in the vision tower (same math)
    compile: str = "auto"  # torch.compile of norms/MLPs/rotary: auto (on GPUs) | on | off
    seed: int = 0
    # refuse to train until a sealed question bank fixes which facts are held out (docs/eval.md)
    require_sealed_bank: bool = True
    replay_dir: str = ""  # general video-caption pairs (export format) mixed in against forgetting
    replay_ratio: float = 0.0
    stream_replay: float = 0.0  # fraction of each day's samples drawn from earlier stream days (against forgetting)
    export_dtype: str = "bfloat16"  # Day-N Hugging Face exports: bfloat16 | float32
    peak_tflops: float = 0.0  # per device, for MFU; 0 = measure the device's bf16 matmul rate (train/loss.py)
    compute_dtype: str = "bfloat16"

    def __post_init__(self):
        _check(self.lr > 0 and self.vision_lr >= 0, "lr", "must be > 0 (vision_lr >= 0)")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        _check(self.grad_accum >= 1 and self.epochs_per_day >= 1, "grad_accum", "and epochs_per_day must be >= 1")
        _check(bool(self.targets) and all(t in TARGETS for t in self.targets), "targets",
               f"must be a non-empty list of {', '.join(TARGETS)}")
        _check(0 <= self.replay_ratio < 1, "replay_ratio", "must be in [0, 1)")
        _check(0 <= self.stream_replay < 1, "stream_replay", "must be in [0, 1)")
        _check(self.export_dtype in ("bfloat16", "float32"), "export_dtype", "must be bfloat16 or float32")
        _check(self.compute_dtype in ("bfloat16", "float32"), "compute_dtype", "must be bfloat16 or float32")
        _check(self.compile in ("auto", "on", "off"), "compile", "must be auto, on or off")
        _check(len(self.betas) == 2, "betas", "must be [beta1, beta2]")
        _check(self.max_seq_len > 0, "max_seq_len", "must be > 0")
        _check(self.peak_tflops >= 0, "peak_tflops", "must be >= 0 (0: measured on the device)")
        _check(self.fact_variants >= 1, "fact_variants", "must be >= 1")
        _check(self.keep_last >= 0 and self.keep_days >= 0, "keep_last", "and keep_days must be >= 0")
        _check(self.run.replace("-", "").replace("_", "").isalnum(), "run", "must be letters, digits, - or _")


def load_train_config(base: dict | None = None, path: Path | None = None, **overrides) -> TrainConfig:
    data = dict(base or {})
    if path:
        try:
            extra = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        data.update(extra.get("train", extra))
    data.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"train config: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(sorted(names))}")
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"train config: {exc}") from None
