"""`streamlearn.toml`: the corpus's typed configuration, validated when loaded.

Each section is a small dataclass checked in `__post_init__`; unknown keys and wrong types are
errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w

from streamlearn.core.errors import ConfigError

CONFIG_NAME = "streamlearn.toml"
SCHEMA_VERSION = 1


def _check(cond: bool, key: str, msg: str, where: str = CONFIG_NAME) -> None:
    if not cond:
        raise ConfigError(f"{where}: {key} {msg}")


def check_timezone(name: str, key: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{CONFIG_NAME}: {key} = {name!r} is not an IANA timezone; "
                          "use a name like 'America/New_York' or 'UTC'") from None


@dataclass
class CorpusSection:
    subject: str = "unnamed subject"
    timezone: str = "UTC"  # default IANA timezone of videos with none of their own
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        _check(bool(self.subject.strip()), "corpus.subject", "must not be empty")
        check_timezone(self.timezone, "corpus.timezone")
        _check(self.schema_version == SCHEMA_VERSION, "corpus.schema_version",
               f"is {self.schema_version}, this streamlearn reads {SCHEMA_VERSION}")


@dataclass
class OperatingPoint:
    """How a chunk becomes vision tokens. The defaults are the seed's 20 min / 1 fps point with
    the budget pinned explicitly (~14K vision tokens), not left to a library's defaults."""

    chunk_seconds: float = 1200.0
    fps: float = 1.0
    max_frames: int = 1200
    total_pixels: int = 14400 * 28 * 28  # whole-chunk pixel budget: total vision tokens x 28^2
    frame_min_pixels: int = 4 * 28 * 28
    frame_max_pixels: int = 768 * 28 * 28

    def __post_init__(self):
        _check(math.isfinite(self.chunk_seconds) and 0 < self.chunk_seconds <= 24 * 3600,
               "operating_point.chunk_seconds", "must be a number of seconds in (0, 86400]")
        _check(0 < self.fps <= 60, "operating_point.fps", "must be in (0, 60]")
        _check(self.max_frames >= 2, "operating_point.max_frames", "must be >= 2")
        _check(self.frame_min_pixels >= 4 * 28 * 28, "operating_point.frame_min_pixels",
               "must be >= 3136 (one 28x28 merged patch pair)")
        _check(self.frame_max_pixels >= self.frame_min_pixels, "operating_point.frame_max_pixels",
               "must be >= frame_min_pixels")
        _check(self.total_pixels >= self.frame_min_pixels, "operating_point.total_pixels",
               "must be >= frame_min_pixels")


@dataclass
class ModelsSection:
    asr: str = "tiny.en"  # a faster-whisper size/name, a local CTranslate2 folder, or "tiny.en" (bundled offline)
    asr_device: str = "auto"  # auto | cpu | cuda
    asr_compute_type: str = "default"
    asr_batch_size: int = 8  # 0 = sequential decoding; batched is ~1.7x faster on CPU
    asr_language: str = ""  # "" = detect (English-only models always use "en")
    asr_repair: bool = True  # batched: decode again, sequentially, speech the batched pipeline left without words
    asr_window_s: float = 600.0  # audio is transcribed in windows of this many seconds

    def __post_init__(self):
        _check(self.asr_device in ("auto", "cpu", "cuda"), "models.asr_device", "must be auto, cpu or cuda")
        _check(self.asr_batch_size >= 0, "models.asr_batch_size", "must be >= 0 (0 = sequential)")
        _check(self.asr_window_s >= 30, "models.asr_window_s", "must be >= 30")


@dataclass
class StorageSection:
    uri: str = ""  # chunk store; "" = <corpus>/store, or file://, s3://bucket/prefix, gs://bucket/prefix
    endpoint_url: str = ""  # S3-compatible servers (MinIO, moto...): their URL; credentials stay in the env

    def __post_init__(self):
        scheme = self.uri.split("://", 1)[0] if "://" in self.uri else ""
        _check(scheme in ("", "file", "s3", "gs", "gcs", "memory"), "storage.uri",
               f"has unsupported scheme {scheme!r}; use a local path, file://, s3:// or gs://")


@dataclass
class AcquireSection:
    format: str = ""  # yt-dlp format selector; "" = the archival default (bv*+ba/b)
    format_sort: list[str] = field(default_factory=list)  # [] = res, fps, vcodec, acodec:opus
    merge_output_format: str = "mkv"
    sub_langs: list[str] = field(default_factory=lambda: ["en.*", "orig"])
    retries: int = 10
    retry_sleep: float = 1.0  # seconds; exponential backoff base with jitter
    video_attempts: int = 3  # whole-video attempts on transient errors
    socket_timeout: float = 30.0
    train_format: str = ""  # e.g. "bv*[height<=360]": also fetch the platform's low-res rendition for frames
    train_rendition_height: int = 0  # > 0 and no train_format: transcode a low-res copy locally

    def __post_init__(self):
        _check(self.retries >= 0, "acquire.retries", "must be >= 0")
        _check(self.retry_sleep >= 0, "acquire.retry_sleep", "must be >= 0")
        _check(self.video_attempts >= 1, "acquire.video_attempts", "must be >= 1")
        _check(self.train_rendition_height >= 0, "acquire.train_rendition_height", "must be >= 0")


@dataclass
class DiarizeSection:
    backend: str = "auto"  # auto | embedded | pyannote
    threshold: float = 0.3  # cosine distance for agglomerative clustering (embedded backend)
    window_s: float = 600.0
    token_env: str = "HF_TOKEN"  # environment variable holding the pyannote token (never stored)
    pyannote_model: str = "pyannote/speaker-diarization-community-1"
    link_threshold: float = 0.0  # centroid distance to join a known speaker; 0 = threshold + 0.1

    def __post_init__(self):
        _check(self.backend in ("auto", "embedded", "pyannote"), "diarize.backend",
               "must be auto, embedded or pyannote")
        _check(0 < self.threshold < 2, "diarize.threshold", "must be in (0, 2)")
        _check(self.window_s >= 30, "diarize.window_s", "must be >= 30")


@dataclass
class DescribeSection:
    backend: str = "signals"  # signals | openai | transformers | batch
    model: str = ""  # served model name (openai/batch) or a path / hub id / preset (transformers)
    device: str = "auto"  # transformers backend: auto (the GPU when there is one, bf16), cpu, cuda[:N]
    endpoint: str = ""  # OpenAI-compatible base URL, e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never stored
    n_frames: int = 16  # frames per chunk sent to a generator
    frame_width: int = 448
    max_tokens: int = 4096
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 2.0
    repairs: int = 2  # invalid output: ask again this many times with the problems listed
    price_prompt_per_mtok: float = 0.0  # USD per million tokens, for cost estimates
    price_completion_per_mtok: float = 0.0
    ocr_interval_s: float = 5.0  # signals backend
    ocr_width: int = 960
    ocr_max_frames: int = 400
    # a frame none of whose 64x36 grey thumbnail blocks moved this many 8-bit levels since the last frame
    # read is the same picture and keeps its text without another OCR pass; 0 reads every frame
    ocr_same_picture: float = 8.0

    def __post_init__(self):
        _check(self.backend in ("signals", "openai", "transformers", "batch"), "describe.backend",
               "must be signals, openai, transformers or batch")
        _check(self.n_frames >= 1, "describe.n_frames", "must be >= 1")
        _check(self.max_retries >= 0 and self.repairs >= 0, "describe.max_retries", "and repairs must be >= 0")
        _check(self.ocr_interval_s > 0, "describe.ocr_interval_s", "must be > 0")
        _check(self.ocr_same_picture >= 0, "describe.ocr_same_picture", "must be >= 0 (0 reads every frame)")


@dataclass
class EvalSection:
    bank: str = "main"
    run: str = "main"  # runs/<run>/export/day-NN are the checkpoints
    systems: list[str] = field(default_factory=lambda: ["weights", "video", "rag"])
    judges: list[str] = field(default_factory=list)  # "MODEL@URL", two or more, for open answers
    judge_api_key_env: str = "OPENAI_API_KEY"
    openai_model: str = ""  # the `openai` system: a frontier reference
    openai_endpoint: str = ""
    openai_api_key_env: str = "OPENAI_API_KEY"
    rag_top_k: int = 5  # description lines retrieved per question
    # local models' multiple choice: "calibrated" = log p(option | question) - log p(option | no question),
    # so an answer string the model saw often in training does not win every question; or "logprob"
    mc_scoring: str = "calibrated"
    device: str = "auto"  # local checkpoints: auto (the GPU when there is one, bf16), cpu, cuda[:N]
    bootstrap: int = 2000
    numeric_tolerance: float = 0.0  # relative
    # the held-out split, recorded with the bank when it is generated (docs/eval.md)
    heldout_fraction: float = 0.5  # of each chunk's facts: never a training target
    heldout_chunk_fraction: float = 0.25  # of each day's chunks: every fact held out
    split_seed: int = 0
    forgetting_margin: float = 0.10  # general-set loss may rise at most this much (relative) vs Day-0

    def __post_init__(self):
        bad = [s for s in self.systems if s not in ("weights", "video", "rag", "openai")]
        _check(not bad, "eval.systems", f"has unknown system {bad[0] if bad else ''!r}; use weights, video, rag, openai")
        _check(self.bootstrap >= 100, "eval.bootstrap", "must be >= 100")
        _check(self.rag_top_k >= 1, "eval.rag_top_k", "must be >= 1")
        _check(self.mc_scoring in ("calibrated", "logprob"), "eval.mc_scoring", "must be calibrated or logprob")
        _check(0 <= self.heldout_fraction <= 1 and 0 <= self.heldout_chunk_fraction <= 1, "eval.heldout_fraction",
               "and eval.heldout_chunk_fraction must be in [0, 1]")


TARGETS = ("description", "qa", "qa_text", "paraphrase", "facts", "rewrites", "day_summary")
ORDERS = ("stream", "qa_first", "shuffled")


@dataclass
class TrainConfig:
    """[train]: full-parameter continual pretraining (streamlearn train); `--config train.toml` and
    command-line options override it for one run."""

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
    grad_accum: int = 1  # samples per optimizer step and rank
    # a step's samples go through the model packed in order, up to this many tokens per forward
    # (each sample attends only to itself; 0: one sample per forward); the same step either way
    pack_tokens: int = 16384
    epochs_per_day: int = 1
    # within a day: "stream" (each chunk's samples in stream order), "qa_first" (the day's QA-trained pairs
    # before its documents, Jiang et al. 2024), "shuffled" (seeded, anew each epoch)
    order: str = "stream"
    lr_day_decay: float = 1.0  # the k-th trained day of a run peaks at lr * lr_day_decay**k (later days gentler)
    # against forgetting: after each step, every weight moves this fraction of the lr back toward the run's
    # starting weights (decoupled L2 toward the start, "L2-SP"); 0 = off
    anchor_decay: float = 0.0
    max_seq_len: int = 32768  # samples longer than this are skipped and listed
    targets: list[str] = field(default_factory=lambda: ["description"])
    instruction: str = "Describe this part of the stream."
    fact_variants: int = 2  # "facts" target: augmented renderings of each description (wording, order)
    rewrites_max: int = 0  # "rewrites" target: at most this many rewrites of each chunk (0: all that were made)
    checkpoint_every: int = 0  # steps; 0 = only at the end of each day
    keep_last: int = 2  # periodic checkpoints kept
    # Day-N training states kept, newest first (0 = all). Resuming needs only the newest and evaluation only the
    # exports, which are always kept; a 7B state is ~100 GB, so 35 days of them would be ~3.5 TB
    keep_days: int = 1
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
    # fraction of each day's samples drawn from a general question-answer set (against forgetting): general_set,
    # a JSONL of {"question", "answer"} lines, or "" for the packaged set, which shares no question template
    # with eval's forgetting check (data/general_rehearsal.jsonl)
    general_replay: float = 0.0
    general_set: str = ""
    export_dtype: str = "bfloat16"  # Day-N Hugging Face exports: bfloat16 | float32
    peak_tflops: float = 0.0  # per device, for MFU; 0 = measure the device's bf16 matmul rate (train/loss.py)
    # auto: bfloat16 on a GPU, float32 on a CPU (a CPU without native bf16 arithmetic, AVX512-BF16 or
    # AMX, runs bf16 matrix products ~200x slower than float32)
    compute_dtype: str = "auto"
    # a folder: torch.profiler (CPU + CUDA) records steps 3-5 of the run there (trace + tables)
    profile_dir: str = ""

    def __post_init__(self):
        def check(cond: bool, key: str, msg: str) -> None:
            _check(cond, key, msg, where="train config")

        check(self.lr > 0 and self.vision_lr >= 0, "lr", "must be > 0 (vision_lr >= 0)")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        check(self.grad_accum >= 1 and self.epochs_per_day >= 1, "grad_accum", "and epochs_per_day must be >= 1")
        check(bool(self.targets) and all(t in TARGETS for t in self.targets), "targets",
              f"must be a non-empty list of {', '.join(TARGETS)}")
        check(0 <= self.replay_ratio < 1, "replay_ratio", "must be in [0, 1)")
        check(0 <= self.stream_replay < 1, "stream_replay", "must be in [0, 1)")
        check(0 <= self.general_replay < 1, "general_replay", "must be in [0, 1)")
        check(self.export_dtype in ("bfloat16", "float32"), "export_dtype", "must be bfloat16 or float32")
        check(self.compute_dtype in ("auto", "bfloat16", "float32"), "compute_dtype", "must be auto, bfloat16 or float32")
        check(self.compile in ("auto", "on", "off"), "compile", "must be auto, on or off")
        check(len(self.betas) == 2, "betas", "must be [beta1, beta2]")
        check(self.max_seq_len > 0, "max_seq_len", "must be > 0")
        check(self.pack_tokens >= 0, "pack_tokens", "must be >= 0 (0: one sample per forward)")
        check(self.order in ORDERS, "order", f"must be one of {', '.join(ORDERS)}")
        check(0 < self.lr_day_decay <= 1, "lr_day_decay", "must be in (0, 1]")
        check(self.anchor_decay >= 0, "anchor_decay", "must be >= 0 (0: off)")
        check(self.peak_tflops >= 0, "peak_tflops", "must be >= 0 (0: measured on the device)")
        check(self.fact_variants >= 1, "fact_variants", "must be >= 1")
        check(self.rewrites_max >= 0, "rewrites_max", "must be >= 0 (0: all)")
        check(self.keep_last >= 0 and self.keep_days >= 0, "keep_last", "and keep_days must be >= 0")
        check(self.run.replace("-", "").replace("_", "").isalnum(), "run", "must be letters, digits, - or _")


def load_train_config(base: "TrainConfig | dict | None" = None, path: Path | None = None, **overrides) -> TrainConfig:
    """[train] (a section or a dict), then a --config file's [train], then command-line overrides."""
    data = dataclasses.asdict(base) if isinstance(base, TrainConfig) else dict(base or {})
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


@dataclass
class Config:
    corpus: CorpusSection = field(default_factory=CorpusSection)
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)
    models: ModelsSection = field(default_factory=ModelsSection)
    storage: StorageSection = field(default_factory=StorageSection)
    acquire: AcquireSection = field(default_factory=AcquireSection)
    diarize: DiarizeSection = field(default_factory=DiarizeSection)
    describe: DescribeSection = field(default_factory=DescribeSection)
    eval: EvalSection = field(default_factory=EvalSection)
    train: TrainConfig = field(default_factory=lambda: TrainConfig())

    def __post_init__(self):
        if not isinstance(self.train, TrainConfig):  # a dict of [train] keys: checked now, naming a bad key
            self.train = load_train_config(self.train)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value, typ, key: str):
    origin = typing.get_origin(typ)
    if typ is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key,
               f"must be a number, got {value!r}")
        return float(value)
    if typ is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"must be an integer, got {value!r}")
        return value
    if typ is bool:
        _check(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if typ is str:
        _check(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if typ is dict:
        _check(isinstance(value, dict), key, "must be a table")
        return value
    if origin is list:
        (item_type,) = typing.get_args(typ)
        _check(isinstance(value, list), key, f"must be a list, got {value!r}")
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    raise AssertionError(f"unsupported config type {typ}")


def _build(cls, data: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"{CONFIG_NAME}: unknown key {where!r}; known keys here: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        key = f"{prefix}.{name}" if prefix else name
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            _check(isinstance(data[name], dict), key, "must be a table ([section])")
            kwargs[name] = _build(typ, data[name], key)
        else:
            kwargs[name] = _coerce(data[name], typ, key)
    return cls(**kwargs)


# keys older streamlearn versions wrote into every new config and nothing read: dropped on reading
# (with the live key named), so an existing corpus still opens
# (section, key): (the live key, the value every config was written with)
RETIRED = {("models", "train"): ("train.model", "tiny"), ("models", "describe"): ("describe.backend", "signals")}


def config_from_dict(data: dict) -> Config:
    for (section, key), (live, written) in RETIRED.items():
        if key in (data.get(section) or {}):
            value = data[section].pop(key)
            if value != written:
                from streamlearn.core import console

                console.warn(f"{CONFIG_NAME}: {section}.{key} = {value!r} is not read; the setting is {live}")
    return _build(Config, data, "")


def load_config(path: Path) -> Config:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{CONFIG_NAME}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_NAME}: not valid TOML ({exc}); fix the syntax") from None
    return config_from_dict(data)


def save_config(path: Path, config: Config) -> None:
    from streamlearn.core.files import atomic_write_bytes

    body = tomli_w.dumps(config.to_dict())
    atomic_write_bytes(Path(path), (HEADER + body).encode("utf-8"))


HEADER = """\
# streamlearn corpus configuration. Every key is optional; `streamlearn status` validates it.
# corpus.timezone: IANA name used for videos without their own; per-video overrides live in videos.csv.
# operating_point: how a chunk becomes vision tokens; `streamlearn plan` shows what it yields.
# storage.uri: the chunk store ("" = <corpus>/store; s3://bucket/prefix or gs://bucket/prefix with extras).

"""
