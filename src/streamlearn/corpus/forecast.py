"""What a run will write, before it starts (`streamlearn plan CORPUS --forecast`, and the checks at the start
of `streamlearn frames` and `streamlearn train`): the frame cache, the training states and Day-N exports, the vision tokens to train
and the evaluation's passes, against the free space of the corpus's filesystem.

Estimates, from the manifests and the configuration alone (nothing is decoded or loaded):
- frame cache: per chunk, the operating point's frames at the size `vision_budget.plan` gives, uint8 RGB;
- a training state: 12 bytes a parameter (float32 weights and AdamW's two moments, DCP), `keep_days` of
  them plus `keep_last` periodic ones when `checkpoint_every` is set;
- a Day-N export: 2 bytes a parameter in bfloat16 (4 in float32), one per trained day and Day-0;
- parameters: the model's configuration built on the meta device (no weights are read).
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

from streamlearn.core.config import TrainConfig
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.media.vision_budget import VisionGeometry, plan

STATE_BYTES_PER_PARAM = 12
NPY_HEADER = 128
ANSWER_BYTES = 600  # one evaluation answer as a JSON line, with its scores


@lru_cache(maxsize=8)
def model_parameters(model: str) -> tuple[int, int]:
    """(parameters, tied) of a preset, folder or hub id, counted on the meta device: `tied` are the input
    embeddings an export writes a second time as the output layer (a Hugging Face export unties them)."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from streamlearn.models.cache import quiet_transformers
    from streamlearn.models.loading import resolve
    from streamlearn.models.presets import ARCHITECTURES, preset_config

    quiet_transformers()
    config = preset_config(model) if model == "tiny" or model in ARCHITECTURES else AutoConfig.from_pretrained(
        resolve(model))
    with torch.device("meta"):
        m = Qwen2_5_VLForConditionalGeneration(config)
    tied = m.get_input_embeddings().weight is m.get_output_embeddings().weight
    return sum(p.numel() for p in m.parameters()), m.get_input_embeddings().weight.numel() if tied else 0


def frame_cache_bytes(corpus: Corpus, chunks: list[dict]) -> tuple[int, int]:
    """(bytes, vision tokens) of these chunks' cached frames at the corpus's operating point."""
    op = corpus.config.operating_point
    videos = corpus.videos.rows_by_key()
    total = tokens = 0
    for c in chunks:
        v = videos.get(c["video_id"]) or {}
        w, h = int(v.get("width") or 1920), int(v.get("height") or 1080)
        p = plan(float(c.get("duration_s") or op.chunk_seconds), w, h, op, VisionGeometry(),
                 source_fps=float(v.get("fps") or 30.0))
        total += p.n_frames * p.frame_height * p.frame_width * 3 + NPY_HEADER
        tokens += p.vision_tokens
    return total, tokens


def training_days(chunks: list[dict]) -> list[int]:
    return sorted({int(c["day_index"]) for c in chunks if c.get("day_index")})


def training_bytes(counted: tuple[int, int], cfg: TrainConfig, n_days: int) -> dict:
    params, tied = counted
    kept = n_days if cfg.keep_days == 0 else min(cfg.keep_days, n_days)
    periodic = cfg.keep_last if cfg.checkpoint_every else 0
    per_export = (params + tied) * (2 if cfg.export_dtype == "bfloat16" else 4)
    return {"params": params, "states": (kept + periodic) * params * STATE_BYTES_PER_PARAM, "states_kept": kept,
            "periodic_kept": periodic, "exports": (n_days + 1) * per_export, "export_each": per_export}


def forecast(corpus: Corpus, cfg: TrainConfig | None = None, systems: list[str] | None = None) -> dict:
    """The whole run's bytes and sizes: frames, training, evaluation, and the free space."""
    from streamlearn.corpus import questionbank as QB

    cfg = cfg or corpus.config.train
    chunks = corpus.chunks.read()
    days = training_days(chunks)
    frames, vision = frame_cache_bytes(corpus, chunks)
    train = training_bytes(model_parameters(cfg.model), cfg, len(days))
    systems = systems or list(corpus.config.eval.systems)
    bank = QB.bank_path(corpus, corpus.config.eval.bank)
    items = sum(1 for line in bank.read_text(encoding="utf-8").splitlines() if line.strip()) if bank.exists() else 0
    passes = eval_passes(systems, days)
    return {"chunks": len(chunks), "days": len(days), "model": cfg.model, "frames": frames,
            "vision_tokens": vision, "vision_tokens_to_train": vision * cfg.epochs_per_day, **train,
            "eval_systems": systems, "eval_passes": passes, "eval_items": items,
            "eval_answers": passes * items * ANSWER_BYTES,
            "total": frames + train["states"] + train["exports"] + passes * items * ANSWER_BYTES,
            "free": shutil.disk_usage(corpus.root).free}


EXPENSIVE = ("video",)  # a pass re-reads every item's video: ~2.4 items/s for a 7B on an H200 (docs/benchmarks.md)
EVERY_DAY_UP_TO = 6  # runs with at most this many Day-N exports evaluate every system at every one


def expensive_days(days: list[int]) -> list[int]:
    """The checkpoints an expensive system runs at when --checkpoints is not given: every one for a short run;
    for a long one Day-0, the last, and log-spaced ones between (the 1st, 2nd, 4th, 8th, ... trained day), so
    a 35-day run asks the video system at 8 checkpoints, not 36, while the cheap systems keep every day."""
    trained = [d for d in days if d > 0]
    if len(trained) <= EVERY_DAY_UP_TO:
        return list(days)
    keep = {days[0], trained[-1]} | {trained[(1 << k) - 1] for k in range(len(trained).bit_length())}
    return [d for d in days if d in keep]


def eval_passes(systems: list[str], days: list[int]) -> int:
    """Checkpoint passes `eval` makes by default: openai answers once, an expensive system (video) runs at
    log-spaced checkpoints of a long run (`expensive_days`), the others at Day-0 and every Day-N."""
    every = [0, *days]
    return sum(1 if s == "openai" else len(expensive_days(every)) if s in EXPENSIVE else len(every) for s in systems)


def gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def format_forecast(f: dict) -> str:
    return "\n".join([
        f"forecast for {f['chunks']} chunks over {f['days']} days, model {f['model']} ({f['params'] / 1e6:,.0f} M "
        "parameters):",
        f"  frame cache      {gb(f['frames']):>12}  ({f['vision_tokens']:,} vision tokens; "
        f"{f['vision_tokens_to_train']:,} a pass of epochs_per_day over the descriptions)",
        f"  training states  {gb(f['states']):>12}  ({f['states_kept']} day state(s) kept by train.keep_days"
        + (f", {f['periodic_kept']} periodic" if f["periodic_kept"] else "") + ", 12 B a parameter)",
        f"  Day-N exports    {gb(f['exports']):>12}  ({f['days'] + 1} of {gb(f['export_each'])})",
        f"  eval answers     {gb(f['eval_answers']):>12}  ({f['eval_passes']} passes: {', '.join(f['eval_systems'])} "
        f"x {f['days'] + 1} checkpoints, {f['eval_items']} items each)",
        f"  total            {gb(f['total']):>12}  of {gb(f['free'])} free here",
    ])


def check_frames_room(corpus: Corpus, rows: list[dict]) -> int:
    """Before `frames`: the bytes of the chunk `rows` it would cache (the runner's selection: those not cached
    yet, every one with --force), against the free space of the corpus's filesystem; refused at once with the
    settings that shrink it."""
    need, _ = frame_cache_bytes(corpus, rows)
    free = shutil.disk_usage(Path(corpus.root)).free
    if need > free:
        raise StreamlearnError(
            f"frames would cache ~{gb(need)} for {len(rows)} chunks but {gb(free)} are free on the corpus's "
            "filesystem; lower the operating point (operating_point.fps, max_frames or total_pixels in "
            "streamlearn.toml), cache fewer chunks (--only), or free space")
    return need


def check_room(corpus: Corpus, cfg: TrainConfig, n_days: int, force: bool = False) -> dict:
    """Before training: the states and exports it will write, against the free space; refused at once
    (one line naming the setting that makes it fit) unless `force`."""
    need = training_bytes(model_parameters(cfg.model), cfg, n_days)
    total = need["states"] + need["exports"]
    free = shutil.disk_usage(Path(corpus.root)).free
    if total > free and not force:
        raise StreamlearnError(
            f"train would write ~{gb(total)} ({gb(need['states'])} of training states for {need['states_kept']} "
            f"day(s), {gb(need['exports'])} of Day-N exports) but {gb(free)} are free on the corpus's filesystem; "
            "lower train.keep_days (1 keeps only the newest state), train fewer --days, export in bfloat16, or "
            "free space (--force starts anyway)")
    return need
