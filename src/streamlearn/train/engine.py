"""The training engine: FSDP2 full sharding, the day-by-day loop, DCP checkpoints, Day-N exports.

- Parameters, gradients and AdamW state are sharded across all ranks (FSDP2 `fully_shard` per
  vision block, per decoder layer, then the root): fp32 master weights and fp32 optimizer state,
  bf16 compute (`MixedPrecisionPolicy`), fp32 gradient reduction. One process is a world of one,
  so every run takes the same code path.
- Weights are materialised sharded: the model is built with parameters on the meta device and
  rank 0's full state dict (a preset's seeded init, or a checkpoint) is broadcast into the shards.
- Each optimizer step takes world x grad_accum micro-batches of one chunk; a day's last step is
  filled with zero-weight repeats so every rank runs the vision tower and the collectives every
  step (an uneven step would hang a sharded run). Loss = mean over all target tokens of the step.
- Checkpoints (torch.distributed.checkpoint): model + optimizer shards, progress and RNG, every
  `checkpoint_every` steps and at the end of every day; `progress.json` is written last, so a
  checkpoint without it is incomplete and ignored. Day-N checkpoints are also exported in Hugging
  Face format (`export/day-NN`, safetensors + tokenizer + processor configs).
"""

from __future__ import annotations

import contextlib
import copy
import json
from concurrent.futures import ThreadPoolExecutor
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from streamlearn.core import console
from streamlearn.corpus.layout import Corpus
from streamlearn.core.errors import StreamlearnError
from streamlearn.corpus.heldout import Constraints
from streamlearn.core.files import atomic_write_text
from streamlearn.corpus.runrecord import read_heldout, start_heldout, write_day_targets
from streamlearn.core.config import TrainConfig
from streamlearn.train.loss import TargetLossModel, peak_memory_gib, peak_tflops, sample_flops
from streamlearn.corpus.targets import SampleSpec, build_specs, refuse_protected, sealed_constraints
from streamlearn.train.profile import StepProfiler
from streamlearn.train.safe_load import SafeLoadPlanner, check_checkpoint, read_rng, write_rng
from streamlearn.train import packing
from streamlearn.train.packing import PAD_MULTIPLE, Batch, make_batch, plan_packs
from streamlearn.train.samples import (Encoded, Encoder, day_epochs, earlier_days_pool, general_pool, general_specs,
                                      mix_replay, replay_specs)


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_dist() -> Dist:
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group("nccl" if cuda else "gloo")
        else:  # a world of one: same code path, no launcher needed
            dist.init_process_group("nccl" if cuda else "gloo", store=dist.HashStore(), rank=0, world_size=1)
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local, torch.device(f"cuda:{local}" if cuda else "cpu"))


@contextlib.contextmanager
def params_on_meta():
    """Build a module with parameters on the meta device and buffers (rotary tables) real."""
    original = torch.nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":  # a meta parameter is kept as is: tied
            module._parameters[name] = torch.nn.Parameter(module._parameters[name].to("meta"),  # weights stay tied
                                                          requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def model_config(model: str, layers: int = 0):
    from transformers import AutoConfig

    from streamlearn.models.loading import resolve
    from streamlearn.models.presets import ARCHITECTURES, preset_config

    target = resolve(model)
    if target in ARCHITECTURES:
        return target, preset_config(target, layers or None)
    if layers:
        raise StreamlearnError("train.preset_layers applies to architecture presets (qwen2.5-vl-7b, ...), "
                               f"not to {model!r}")
    return target, AutoConfig.from_pretrained(target)


def initial_state(target: str, config, seed: int, device: torch.device) -> dict:
    """Rank 0's full fp32 state dict: a checkpoint's weights, or a preset's seeded random init (made
    on the training device: billions of parameters initialise in seconds on a GPU, minutes on a CPU)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from streamlearn.models.presets import ARCHITECTURES

    if target in ARCHITECTURES:
        torch.manual_seed(seed)
        with torch.device(device):
            return Qwen2_5_VLForConditionalGeneration(config).state_dict()
    try:
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(target, dtype=torch.float32).state_dict()
    except OSError as exc:
        raise StreamlearnError(f"cannot load model {target!r}: {' '.join(str(exc).split())[:200]}") from None


def compute_dtype(cfg: TrainConfig, device) -> "torch.dtype":
    """The dtype layers compute in: `train.compute_dtype`, where auto is bfloat16 on a GPU, float32 on a CPU."""
    name = cfg.compute_dtype if cfg.compute_dtype != "auto" else "bfloat16" if device.type == "cuda" else "float32"
    return getattr(torch, name)


def build(cfg: TrainConfig, d: Dist):
    """The sharded training model (TargetLossModel around the VLM), its HF config and tokenizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from streamlearn.models.cache import quiet_transformers
    from streamlearn.models.presets import ARCHITECTURES
    from streamlearn.models.tokenizer import build_tokenizer

    quiet_transformers()
    target, config = model_config(cfg.model, cfg.preset_layers)
    with params_on_meta():
        vlm = Qwen2_5_VLForConditionalGeneration(config)
    buffers = {n: b.detach().clone() for n, b in vlm.named_buffers()}
    if cfg.activation_checkpointing:  # every vision block and decoder layer recomputes in backward
        if hasattr(vlm, "activation_checkpointing_enable"):  # transformers >= 5.2x
            vlm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            vlm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.freeze_vision:
        vlm.model.visual.requires_grad_(False)
    from streamlearn.train import fast_vision

    if cfg.fast_vision_attention:
        fast_vision.enable(vlm)
    if cfg.compile == "on" or (cfg.compile == "auto" and d.device.type == "cuda"):
        fast_vision.mark_vision(vlm)
        fast_vision.compile_pointwise(vlm, vision=True, text=True)
    # the text model attends through streamlearn's attention (train/packing.py): each sample of a packed
    # batch to itself only; a batch of one sample is plain SDPA, as before
    vlm.model.language_model.config._attn_implementation = packing.register()
    model = TargetLossModel(vlm)
    compute = compute_dtype(cfg, d.device)
    mp = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
    # a vision block's inputs are the bf16 hidden states and the fp32 rotary cos/sin: FSDP's input
    # cast would turn cos/sin into bf16 in the forward but not when activation checkpointing
    # recomputes the block, so saved and recomputed tensors differ in dtype (and the rotary loses
    # precision); the blocks take their inputs as they come
    vision_mp = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32, cast_forward_inputs=False)
    for block in vlm.model.visual.blocks:
        fully_shard(block, mp_policy=vision_mp)
    for layer in vlm.model.language_model.layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    model.to_empty(device=d.device)
    with torch.no_grad():
        for name, buf in model.vlm.named_buffers():
            buf.copy_(buffers[name].to(buf.device))
    full = {}
    if d.main:
        full = {f"vlm.{k}": v for k, v in initial_state(target, config, cfg.seed, d.device).items()}
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    tok = build_tokenizer() if target in ARCHITECTURES else AutoTokenizer.from_pretrained(target)
    return model, config, tok, target


def param_groups(model: TargetLossModel, cfg: TrainConfig) -> list[dict]:
    vision, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (vision if name.startswith("vlm.model.visual.") else rest).append(p)
    groups = [{"params": rest, "lr": cfg.lr, "base_lr": cfg.lr, "name": "llm"}]
    if vision:
        groups.append({"params": vision, "lr": cfg.vision_lr, "base_lr": cfg.vision_lr, "name": "vision"})
    return groups


def lr_factor(step: int, steps: int, cfg: TrainConfig) -> float:
    """Re-warm then cosine decay, over one day's steps (continual pretraining restarts per day)."""
    warm = min(cfg.warmup_steps, max(0, steps - 1))
    if step < warm:
        return (step + 1) / (warm + 1)
    progress = (step - warm) / max(1, steps - warm)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Progress:
    step: int = 0  # optimizer steps taken over the whole run
    day: int | None = None  # day in progress
    day_step: int = 0  # steps of that day already taken
    completed_days: list[int] = field(default_factory=list)
    replay_offset: int = 0
    losses: list[float] = field(default_factory=list)  # per step, the whole run


class Trainer:
    def __init__(self, corpus: Corpus, cfg: TrainConfig, d: Dist):
        self.corpus, self.cfg, self.d = corpus, cfg, d
        self.run_dir = corpus.run_dir(cfg.run)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.export_dir = self.run_dir / "export"
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model, self.config, self.tok, self.target = build(cfg, d)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg), lr=cfg.lr, betas=tuple(cfg.betas),
                                     weight_decay=cfg.weight_decay, fused=True)
        # the weights the run starts from (before any resume), for train.anchor_decay: 4 bytes a parameter
        self.anchors = [[p.detach().clone() for p in g["params"]] for g in self.opt.param_groups] \
            if cfg.anchor_decay > 0 else None
        self.day_scale = 1.0
        from streamlearn.media.vision_budget import geometry_from_config

        geometry = geometry_from_config(self.config.vision_config.to_dict())
        # GPU: pixels travel in the compute dtype (half the bytes); a CPU keeps them as computed
        pixel_dtype = compute_dtype(cfg, d.device) if d.device.type == "cuda" else torch.float32
        self.encoder = Encoder(self.tok, corpus.root, geometry, float(self.config.vision_config.tokens_per_second),
                               cfg.max_seq_len, pixel_dtype)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self.pad_multiple = PAD_MULTIPLE if d.device.type == "cuda" else 1
        self.peak = peak_tflops(d.device, cfg.peak_tflops, compute_dtype(cfg, d.device))
        self.progress = Progress()
        self.writer = None
        if d.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.json", json.dumps(
                {"train": asdict(cfg), "model": self.target, "world_size": d.world,
                 "operating_point": corpus.config.operating_point.__dict__}, indent=1))
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                self.writer = None

    # ------------------------------------------------------------------ checkpoints
    def _state(self):
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.opt)
        return {"model": model_sd, "optim": optim_sd}

    def save(self, name: str) -> Path:
        import torch.distributed.checkpoint as dcp

        path = self.ckpt_dir / name
        if self.d.main and path.exists():
            shutil.rmtree(path)
        dist.barrier()
        dcp.save(self._state(), checkpoint_id=str(path))
        write_rng(path, self.d.rank)  # JSON: nothing in a checkpoint is a pickle of ours (train/safe_load.py)
        dist.barrier()
        if self.d.main:  # written last: its presence marks a complete checkpoint
            atomic_write_text(path / "progress.json", json.dumps({**asdict(self.progress), "world_size": self.d.world}))
            self._prune()
        dist.barrier()
        return path

    def _prune(self) -> None:
        periodic = sorted(p for p in self.ckpt_dir.glob("step-*") if (p / "progress.json").exists())
        for old in periodic[:-self.cfg.keep_last] if self.cfg.keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        # Day-N exports stay; a day's full training state (weights + AdamW: 12 B/parameter) is only
        # needed to resume, so all but the newest `keep_days` may go (0 keeps every day)
        days = sorted(p for p in self.ckpt_dir.glob("day-*") if (p / "progress.json").exists())
        for old in days[:-self.cfg.keep_days] if self.cfg.keep_days > 0 else []:
            freed = sum(f.stat().st_size for f in old.rglob("*") if f.is_file())
            shutil.rmtree(old, ignore_errors=True)
            if self.d.main:
                console.info(f"train: pruned the training state {old.name} ({freed / 1e9:.2f} GB freed; the Day-N "
                             f"export stays; train.keep_days = {self.cfg.keep_days} keeps the newest)")

    def latest(self) -> Path | None:
        done = [p for p in self.ckpt_dir.glob("*") if (p / "progress.json").exists()]
        if not done:
            return None
        return max(done, key=lambda p: json.loads((p / "progress.json").read_text())["step"])

    def load(self, path: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        check_checkpoint(path, self.d.rank)  # before torch unpickles anything of it
        state = self._state()
        dcp.load(state, checkpoint_id=str(path), planner=SafeLoadPlanner())
        set_state_dict(self.model, self.opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
        data = json.loads((path / "progress.json").read_text())
        data.pop("world_size", None)
        self.progress = Progress(**data)
        read_rng(path, self.d.rank)

    def export(self, name: str) -> Path:
        """Day-N in Hugging Face format: loads with from_pretrained anywhere, no streamlearn needed."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from transformers import Qwen2_5_VLForConditionalGeneration

        from streamlearn.models.cache import write_processor_files

        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        out = self.export_dir / name
        if self.d.main:
            dtype = torch.bfloat16 if self.cfg.export_dtype == "bfloat16" else torch.float32
            sd = {k[len("vlm."):]: v.to(dtype) for k, v in full.items()}
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            config = copy.deepcopy(self.config)
            config.text_config._attn_implementation = "sdpa"  # the export loads anywhere, no streamlearn needed
            with params_on_meta():
                hf = Qwen2_5_VLForConditionalGeneration(config)
            hf.config.dtype = dtype
            hf.save_pretrained(tmp, state_dict=sd)
            self.tok.save_pretrained(tmp)
            op = self.corpus.config.operating_point
            write_processor_files(tmp, self.tok.chat_template, op.frame_min_pixels, op.frame_max_pixels)
            # safetensors writes through a private temp file (mode 0600): an export is for the group to read
            umask = os.umask(0)
            os.umask(umask)
            for f in tmp.iterdir():
                f.chmod(0o666 & ~umask)
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        dist.barrier()
        return out

    # ------------------------------------------------------------------ steps
    def micro_batches(self, specs: list[SampleSpec], step: int) -> list[tuple[SampleSpec, float]]:
        per_step = self.d.world * self.cfg.grad_accum
        out = []
        for m in range(self.cfg.grad_accum):
            i = step * per_step + m * self.d.world + self.d.rank
            out.append((specs[i], 1.0) if i < len(specs) else (specs[-1], 0.0))  # zero-weight filler
        return out

    def prepare(self, specs: list[SampleSpec], step: int) -> list[tuple[Batch, float]]:
        """A step's forwards: its samples encoded (frames -> pixels, M-RoPE ids), packed in order into
        batches of at most `train.pack_tokens` tokens (0: one sample each), pinned for an asynchronous
        copy on a GPU. Runs in the background while the previous step computes. A rank with no sample
        left (the day's last step) runs one zero-weight forward, so every rank joins the collectives."""
        micros = self.micro_batches(specs, step)
        real = [self.encoder(s) for s, w in micros if w > 0]
        out: list[tuple[Batch, float]] = []
        for idx in plan_packs([e.input_ids.shape[1] for e in real], self.cfg.pack_tokens):
            out.append((self._batch([real[i] for i in idx]), 1.0))
        if not out:
            out.append((self._batch([self.encoder(micros[0][0])]), 0.0))
        if self.d.device.type == "cuda":
            for b, _ in out:
                b.pin()
        return out

    def _batch(self, encoded: list[Encoded]) -> Batch:
        return make_batch(encoded, [self._flops(e) for e in encoded], self.pad_id, self.pad_multiple)

    def step(self, batches: list[tuple[Batch, float]], step: int, day_steps: int, t0: float) -> dict:
        """One optimizer step over prepared batches; `t0` is when the step began waiting for them.
        Nothing here reads the device back before the end-of-step sync (the token counts are the host's,
        the grad norm is read after the sync)."""
        cfg, d = self.cfg, self.d
        factor = lr_factor(step, day_steps, cfg) * self.day_scale
        for group in self.opt.param_groups:
            group["lr"] = group["base_lr"] * factor
        mark = torch.profiler.record_function
        with mark("sl.counts"):
            counts = [sum(w * b.n_target for b, w in batches), sum(w * b.n_tokens for b, w in batches),
                      sum(w * b.flops for b, w in batches), len(batches)]
            if d.world > 1:  # every rank needs the step's totals, and the same number of forwards (FSDP)
                local = torch.tensor(counts[:3], dtype=torch.float64, device=d.device)
                dist.all_reduce(local)
                most = torch.tensor([counts[3]], device=d.device)
                dist.all_reduce(most, op=dist.ReduceOp.MAX)
                counts = [float(x) for x in local] + [int(most)]
                batches = batches + [(batches[-1][0], 0.0)] * (counts[3] - len(batches))
            n_target, n_tokens, flops = counts[:3]
        loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)
        for k, (b, w) in enumerate(batches):
            self.model.set_requires_gradient_sync(k == len(batches) - 1)
            with mark("sl.forward"):
                loss = self.model(**b.tensors(d.device))
            with mark("sl.backward"):
                # FSDP averages gradients over ranks; scale so the step's loss is the mean over all its target tokens
                (loss * (w * d.world / n_target)).backward()
            loss_sum += loss.detach().double() * w
        with mark("sl.clip"):
            grad_norm = torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                                       cfg.grad_clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        with mark("sl.optimizer"):
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            if self.anchors is not None:  # decoupled pull toward the starting weights (train.anchor_decay)
                with torch.no_grad():
                    for group, anchor in zip(self.opt.param_groups, self.anchors):
                        torch._foreach_lerp_(group["params"], anchor, group["lr"] * cfg.anchor_decay)
        with mark("sl.sync"):
            if d.world > 1:
                dist.all_reduce(loss_sum)
            if d.device.type == "cuda":
                torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tflops = flops / dt / 1e12
        return {"loss": float(loss_sum) / n_target, "lr": self.opt.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                "tokens": int(n_tokens), "target_tokens": int(n_target), "samples": sum(len(b.keys) for b, w in batches
                                                                                       if w > 0),
                "forwards": len(batches), "seconds": dt, "tokens_per_s": n_tokens / dt, "tflops": tflops,
                "mfu": tflops / (self.peak * d.world), "peak_mem_gib": peak_memory_gib(d.device)}

    def _flops(self, e: Encoded) -> float:
        return sample_flops(self.config, e.input_ids.shape[1], e.n_target, e.video_grid_thw[0].tolist())

    # ------------------------------------------------------------------ the run
    def constraints(self) -> Constraints | None:
        """The sealed banks' held-out split; the run records the banks it honours when it starts and
        refuses to go on if one of them changed since."""
        c = sealed_constraints(self.corpus, self.cfg.require_sealed_bank, "training",
                               "set train.require_sealed_bank = false to train without a held-out split")
        if c is None:
            return None
        record = read_heldout(self.run_dir) or {"banks": c.banks}
        now = {b["name"]: b for b in c.banks}
        for b in record["banks"]:
            cur = now.get(b["name"])
            if cur is None or (cur["sha256"], cur.get("split_sha256")) != (b["sha256"], b.get("split_sha256")):
                raise StreamlearnError(f"question bank {b['name']!r} changed or was unsealed after run "
                                       f"{self.cfg.run!r} started training on its split; restore the bank, or "
                                       "start a new run (train.run = NEW)")
        return c

    def plan(self, days: list[int] | None) -> tuple[dict[int, list[SampleSpec]], dict]:
        constraints = self.constraints()
        by_day, skipped = build_specs(self.corpus, self.cfg, days, constraints)
        if not by_day:
            raise StreamlearnError("nothing to train on: no described chunks with cached frames"
                                   + (f" in days {days}" if days else "") + "; run describe and frames first")
        if constraints is not None:
            refuse_protected(constraints, [s for specs in by_day.values() for s in specs], "train would train on",
                             "then train; nothing was trained")
            if self.d.main:
                start_heldout(self.run_dir, constraints.banks)
                n_qa = sum(1 for specs in by_day.values() for s in specs if s.kind in ("qa", "qa_text"))
                console.info(f"train: held-out split of sealed bank(s) {', '.join(b['name'] for b in constraints.banks)}"
                             f": {len(constraints.trained)} QA-trained facts, {len(constraints.heldout)} held out "
                             f"({n_qa} QA samples)")
        self.constraints_used = constraints
        return by_day, skipped

    def run(self, days: list[int] | None = None, max_steps: int | None = None) -> Progress:
        cfg, d = self.cfg, self.d
        by_day, skipped = self.plan(days)
        general = general_specs(cfg.general_set) if cfg.general_replay > 0 else []  # read before any work
        if general and self.constraints_used is not None:
            refuse_protected(self.constraints_used, general, "train would train on", "then train; nothing was trained")
        if d.main and skipped:
            console.warn(f"train: skipping {len(skipped)} items: " + "; ".join(
                f"{k}: {v}" for k, v in list(skipped.items())[:5]) + (" ..." if len(skipped) > 5 else ""))
            atomic_write_text(self.run_dir / "skipped.json", json.dumps(skipped, indent=1))
        latest = self.latest()
        if latest is not None:
            self.load(latest)
            if d.main:
                console.info(f"train: resuming from {latest.name} (step {self.progress.step})")
            done_days = self.progress.completed_days
            last = f"day-{done_days[-1]:02d}" if done_days else None
            if last == latest.name and not (self.export_dir / last).exists():  # killed between save and export
                self.export(last)
        elif not (self.export_dir / "day-00").exists():
            self.export("day-00")  # the base model, for Day-0 evaluation
        replay = replay_specs(Path(cfg.replay_dir)) if cfg.replay_dir and cfg.replay_ratio > 0 else []
        metrics_path = self.run_dir / "metrics.jsonl"
        taken = 0
        profiler = StepProfiler(cfg.profile_dir if d.main else None, d.device)
        every_day = None
        for day, day_specs in by_day.items():
            if day in self.progress.completed_days:
                continue
            specs = day_epochs(day_specs, cfg.epochs_per_day, cfg.order, cfg.seed, day)
            # the k-th day this run trains peaks lower when lr_day_decay < 1 (k counts finished days)
            self.day_scale = cfg.lr_day_decay ** len(self.progress.completed_days)
            if cfg.stream_replay > 0:
                if every_day is None:  # --days may have narrowed the plan; the pool is every earlier day
                    every_day = by_day if days is None else build_specs(self.corpus, cfg, None,
                                                                         self.constraints_used)[0]
                specs, _ = mix_replay(specs, earlier_days_pool(every_day, day, cfg.seed), cfg.stream_replay, 0)
            if general:
                specs, _ = mix_replay(specs, general_pool(general, day, cfg.seed), cfg.general_replay, 0)
            specs, end_offset = mix_replay(specs, replay, cfg.replay_ratio, self.progress.replay_offset)
            steps = math.ceil(len(specs) / (d.world * cfg.grad_accum))
            if d.main:
                write_day_targets(self.run_dir, day, specs)
            first = self.progress.day_step if self.progress.day == day else 0
            self.progress.day = day
            with ThreadPoolExecutor(max_workers=1) as loader:  # the next step's data, while this one computes
                ahead = loader.submit(self.prepare, specs, first) if first < steps else None
                for s in range(first, steps):
                    if max_steps is not None and taken >= max_steps:
                        profiler.finish()
                        return self.progress
                    profiler.before(taken)
                    t0 = time.perf_counter()
                    with torch.profiler.record_function("sl.wait_data"):
                        micros = ahead.result()
                    ahead = loader.submit(self.prepare, specs, s + 1) if s + 1 < steps else None
                    m = self.step(micros, s, steps, t0)
                    taken += 1
                    profiler.after(taken)
                    self.progress.step += 1
                    self.progress.day_step = s + 1
                    self.progress.losses.append(round(m["loss"], 6))
                    if d.main:
                        self._log(day, s, steps, m, metrics_path)
                    if cfg.checkpoint_every and self.progress.step % cfg.checkpoint_every == 0 and s + 1 < steps:
                        self.save(f"step-{self.progress.step:06d}")
            self.progress.completed_days.append(day)
            self.progress.day, self.progress.day_step, self.progress.replay_offset = None, 0, end_offset
            self.save(f"day-{day:02d}")
            path = self.export(f"day-{day:02d}")
            if d.main:
                console.info(f"train: day {day} done ({steps} steps); Day-{day} checkpoint exported to "
                             f"{self.corpus.rel(path)}")
        profiler.finish()
        return self.progress

    def _log(self, day: int, s: int, steps: int, m: dict, path: Path) -> None:
        rec = {"step": self.progress.step, "day": day, "day_step": s + 1, "day_steps": steps, **m}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self.writer:
            for k in ("loss", "lr", "grad_norm", "tokens_per_s", "tflops", "mfu", "peak_mem_gib"):
                self.writer.add_scalar(f"train/{k}", m[k], self.progress.step)
            self.writer.flush()
        console.info(f"step {self.progress.step:5d} day {day} {s + 1}/{steps} | loss {m['loss']:.4f} | "
                     f"lr {m['lr']:.2e} | gnorm {m['grad_norm']:.2f} | {m['tokens_per_s']:,.0f} tok/s | "
                     f"{m['tflops']:.2f} TFLOP/s | MFU {m['mfu']:.1%} | mem {m['peak_mem_gib']:.1f} GiB | "
                     f"{m['seconds']:.2f}s")

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def train(corpus: Corpus, cfg: TrainConfig, days: list[int] | None = None, max_steps: int | None = None) -> Progress:
    d = setup_dist()
    trainer = Trainer(corpus, cfg, d)
    try:
        return trainer.run(days, max_steps)
    finally:
        trainer.close()
