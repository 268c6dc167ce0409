"""Training on CPU with the tiny preset: label masking, M-RoPE time from the real fps, the
target-only loss against transformers' own, golden per-step losses, resume after SIGKILL equals an
uninterrupted run, a 2-process (gloo) sharded run, Day-N exports that load and generate, bad inputs.

Run: python -m pytest tests/test_train.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainkit import make_train_corpus

from streamlearn.core.errors import ConfigError, StreamlearnError
from streamlearn.models.loading import load_model
from streamlearn.models.tokenizer import build_tokenizer
from streamlearn.core.config import load_train_config
from streamlearn.train.engine import train
from streamlearn.corpus.targets import build_specs
from streamlearn.train.samples import encode
from streamlearn.media.vision_budget import VisionGeometry

GOLDEN = Path(__file__).parent / "assets" / "golden_losses_tiny.json"
FAST = {"lr": 1e-3, "warmup_steps": 1}
# two samples a step, packed into one forward (train.pack_tokens): the golden and resumed runs train packed
PACKED = {**FAST, "grad_accum": 2}


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "streamlearn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_labels_are_exactly_the_target(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1, train={"targets": ["description", "qa"]})
    cfg = load_train_config(corpus.config.train)
    specs, skipped = build_specs(corpus, cfg)
    assert not skipped and [s.kind for s in specs[1]] == ["description", "qa"]
    tok = build_tokenizer()
    for spec in specs[1]:
        e = encode(spec, tok, corpus.root, VisionGeometry(), 2.0, 4096)
        target_ids = e.labels[0][e.labels[0] != -100]
        assert tok.decode(target_ids) == spec.target + "<|im_end|>"
        # nothing before the assistant's answer carries loss: no vision, no prompt
        first = int((e.labels[0] != -100).nonzero()[0])
        assert tok.decode(e.input_ids[0, first - 3:first]) == "<|im_start|>assistant\n"
        assert (e.input_ids[0][: first] == 151656).sum() == e.n_vision > 0


def test_temporal_positions_follow_the_real_fps(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1, frames=8)  # 8 frames over 60 s
    spec = build_specs(corpus, load_train_config())[0][1][0]
    e = encode(spec, build_tokenizer(), corpus.root, VisionGeometry(), 2.0, 4096)
    assert float(e.second_per_grid_ts) == pytest.approx(2 / (8 / 60))  # 15 s per 2-frame pair
    vid = e.input_ids[0] == 151656
    t_ids = e.position_ids[0, 0][vid].unique().tolist()
    start = t_ids[0]
    assert [t - start for t in t_ids] == [0, 30, 60, 90]  # tokens_per_second 2 x 15 s per pair
    first_after = int(vid.nonzero()[-1]) + 1
    assert e.position_ids[0, 0, first_after] == max(t_ids) + 1  # text resumes after the largest id


def test_target_only_loss_equals_transformers_loss(tmp_path):
    from streamlearn.train.loss import TargetLossModel, targets_from_labels

    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1)
    spec = build_specs(corpus, load_train_config())[0][1][0]
    model, tok = load_model("tiny")
    e = encode(spec, tok, corpus.root, VisionGeometry(), 2.0, 4096)
    inputs = dict(input_ids=e.input_ids, position_ids=e.position_ids, pixel_values_videos=e.pixel_values_videos,
                  video_grid_thw=e.video_grid_thw, second_per_grid_ts=e.second_per_grid_ts)
    pos, ids = targets_from_labels(e.labels)
    with torch.no_grad():
        ref = model(**inputs, labels=e.labels).loss  # full logits over every position
        total = TargetLossModel(model)(target_pos=pos, target_ids=ids, **inputs)
    assert len(pos) == e.n_target
    assert float(total / len(pos)) == pytest.approx(float(ref), rel=1e-5)


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    corpus = make_train_corpus(tmp_path_factory.mktemp("golden") / "c", days=2, chunks_per_day=3, train=PACKED)
    progress = train(corpus, load_train_config(corpus.config.train))
    return corpus, progress


def test_golden_losses(golden_run):
    _, progress = golden_run
    if os.environ.get("STREAMLEARN_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"losses": progress.losses}, indent=1))
    golden = json.loads(GOLDEN.read_text())["losses"]
    assert progress.losses == pytest.approx(golden, rel=2e-3)
    assert progress.losses[-1] < progress.losses[0] - 0.5  # it learns
    assert progress.completed_days == [1, 2]


def test_run_outputs_and_day_exports_load(golden_run):
    corpus, progress = golden_run
    run = corpus.root / "runs" / "main"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 5))  # 3 chunks a day, 2 a step: 2 steps a day
    assert [(m["samples"], m["forwards"]) for m in metrics] == [(2, 1), (1, 1), (2, 1), (1, 1)]  # packed
    assert all(m["tflops"] > 0 and 0 < m["mfu"] < 1 and m["peak_mem_gib"] > 0 and m["tokens_per_s"] > 0
               for m in metrics)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    # by default only the newest day's training state is kept (enough to resume); every export stays
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["day-02"]
    assert sorted(p.name for p in (run / "export").iterdir()) == ["day-00", "day-01", "day-02"]
    # exports are for the group to read (safetensors writes its file 0600)
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in (run / "export" / "day-02").iterdir())
    # AutoProcessor needs torchvision, which streamlearn does not install: each export says so
    assert "needs torchvision" in (run / "export" / "day-02" / "README.md").read_text()
    from transformers import Qwen2_5_VLForConditionalGeneration

    from streamlearn.models.inference import VLM

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "export" / "day-00")
    day2 = Qwen2_5_VLForConditionalGeneration.from_pretrained(run / "export" / "day-02")
    tiny, _ = load_model("tiny")
    # Day-0 is the base model (exported in bf16); Day-2 has moved away from it
    w0 = base.lm_head.weight.float()
    assert torch.allclose(w0, tiny.lm_head.weight.to(torch.bfloat16).float())
    assert not torch.allclose(w0, day2.lm_head.weight.float())
    vlm = VLM(day2.float(), build_tokenizer())
    import numpy as np

    frames = np.load(corpus.root / "frames" / "vid01_c000.npy")
    text, n_in, n_out, _ = vlm.generate_text("Describe this part of the stream.", frames, 4 / 60, max_new_tokens=5)
    assert n_out == 5 and n_in > 20


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_losses(golden_run, tmp_path):
    _, reference = golden_run
    import torch

    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=3, train={**PACKED, "checkpoint_every": 1})
    # the reference ran in this process: the runs below use its thread count (float sums follow it)
    threads = {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-m", "streamlearn", "train", str(corpus.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **threads})
    ckpt = corpus.root / "runs" / "main" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpt / "day-01" / "progress.json").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = cli("train", corpus.root, env=threads)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "train: resuming from" in res.stdout
    progress = json.loads((ckpt / "day-02" / "progress.json").read_text())
    assert progress["losses"] == pytest.approx(reference.losses, rel=1e-6)
    res = cli("train", corpus.root)  # nothing left to do
    assert res.returncode == 0 and not [x for x in res.stdout.splitlines() if x.startswith("step ")]
    export = corpus.root / "runs" / "main" / "export" / "day-02"
    before = (export / "model.safetensors").read_bytes()
    shutil.rmtree(export)  # as if killed after the Day-2 checkpoint, before its export
    res = cli("train", corpus.root)
    assert res.returncode == 0 and not [x for x in res.stdout.splitlines() if x.startswith("step ")]
    assert (export / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_two_process_sharded_run_resumes(tmp_path):
    corpus = make_train_corpus(tmp_path / "c", days=2, chunks_per_day=6, train={**PACKED, "checkpoint_every": 1})
    res = cli("train", corpus.root, "--nproc", "2", "--days", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    run = corpus.root / "runs" / "main"
    first = json.loads((run / "checkpoints" / "day-01" / "progress.json").read_text())
    assert first["world_size"] == 2 and len(first["losses"]) == 2  # 6 chunks / (2 ranks x 2) = 2 steps, packed
    shards = list((run / "checkpoints" / "day-01").glob("*.distcp"))
    assert len(shards) == 2  # one shard file per rank
    res = cli("train", corpus.root, "--nproc", "2")  # continues with day 2
    assert res.returncode == 0, res.stderr[-3000:]
    final = json.loads((run / "checkpoints" / "day-02" / "progress.json").read_text())
    assert final["completed_days"] == [1, 2] and final["losses"][:2] == first["losses"] and len(final["losses"]) == 4
    # the same run in one go gives the same losses
    other = make_train_corpus(tmp_path / "d", days=2, chunks_per_day=6, train={**PACKED, "checkpoint_every": 1})
    res = cli("train", other.root, "--nproc", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((other.root / "runs/main/checkpoints/day-02/progress.json").read_text())
    assert again["losses"] == pytest.approx(final["losses"], rel=1e-6)


def test_bad_inputs(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=3, train=FAST)
    (corpus.root / "frames" / "vid01_c001.npy").unlink()
    (corpus.root / "descriptions" / "vid01_c002.json").write_text(json.dumps({"summary": ""}))
    specs, skipped = build_specs(corpus, load_train_config())
    assert [s.key for s in specs[1]] == ["vid01_c000/description"]
    assert skipped == {"vid01_c001": "no cached frames; run `streamlearn frames`",
                       "vid01_c002": "description vid01_c002.json fails the schema (schema must be "
                                     "'streamlearn.description/1'); re-describe the chunk: `streamlearn describe "
                                     "CORPUS --force --only vid01_c002`"}
    res = run_cli("train", corpus.root, "--model", str(tmp_path / "nope"))
    assert res.exit_code == 1 and f"{tmp_path / 'nope'}" in res.stderr and "neither a preset" in res.stderr
    res = run_cli("train", corpus.root, "--nproc", "64")
    assert res.exit_code == 1 and "--nproc 64 on a machine without GPUs" in res.stderr
    res = run_cli("train", corpus.root, "--days", "x-y")
    assert res.exit_code == 1 and "--days 'x-y' is not a day list" in res.stderr
    spec = specs[1][0]
    with pytest.raises(StreamlearnError, match="exceed max_seq_len 20; raise train.max_seq_len"):
        encode(spec, build_tokenizer(), corpus.root, VisionGeometry(), 2.0, 20)
    with pytest.raises(ConfigError, match="train config: unknown key 'lr_max'"):
        load_train_config({"lr_max": 1})
    with pytest.raises(ConfigError, match="train config: targets must be a non-empty list of"):
        load_train_config({"targets": ["captions"]})


def test_slurm_script(tmp_path, run_cli):
    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1)
    res = run_cli("train", corpus.root, "--model", "qwen2.5-vl-32b", "--slurm", "--nodes", "2",
                  "--gpus-per-node", "8", "--run", "big")
    assert res.exit_code == 0, res.output
    script = (corpus.root / "runs" / "big" / "train.sbatch").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "export NCCL_NVLS_ENABLE=0",
                 "--nnodes 2", "--nproc_per_node 8", '--rdzv_endpoint "$MASTER_ADDR:29500"',
                 "-m streamlearn.train", "--model qwen2.5-vl-32b", "--run big"):
        assert line in script, line
    bash = subprocess.run(["bash", "-n", str(corpus.root / "runs" / "big" / "train.sbatch")], capture_output=True)
    assert bash.returncode == 0
    assert f'#SBATCH --output="{corpus.root.resolve()}/runs/big/slurm-%j.out"' in script
    # a partition with a newline would have added its own line to the script
    res = run_cli("train", corpus.root, "--slurm", "--partition", "gpu\n#SBATCH --wrap=evil", "--run", "bad")
    assert res.exit_code == 1 and res.stderr.startswith("error: --partition 'gpu\\n#SBATCH --wrap=evil' is not a SLURM")
    assert not (corpus.root / "runs" / "bad" / "train.sbatch").exists()


def test_batched_vision_attention_is_the_same_math(tmp_path):
    from streamlearn.train import fast_vision
    from streamlearn.train.loss import TargetLossModel, targets_from_labels

    corpus = make_train_corpus(tmp_path / "c", days=1, chunks_per_day=1, frames=8, size=(84, 252))
    spec = build_specs(corpus, load_train_config())[0][1][0]
    model, tok = load_model("tiny")
    e = encode(spec, tok, corpus.root, VisionGeometry(), 2.0, 4096)
    pos, ids = targets_from_labels(e.labels)
    inputs = dict(input_ids=e.input_ids, target_pos=pos, target_ids=ids, position_ids=e.position_ids,
                  pixel_values_videos=e.pixel_values_videos, video_grid_thw=e.video_grid_thw,
                  second_per_grid_ts=e.second_per_grid_ts)
    wrapped = TargetLossModel(model)

    def loss_and_grads():
        model.zero_grad()
        loss = wrapped(**inputs)
        loss.backward()
        return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    ref_loss, ref_grads = loss_and_grads()
    assert fast_vision.enable(model) == 2  # both vision blocks
    loss, grads = loss_and_grads()
    fast_vision.disable(model)
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    for name, g in ref_grads.items():
        assert torch.allclose(grads[name], g, rtol=1e-4, atol=1e-6), name


def test_stream_replay_mixes_earlier_days_deterministically():
    from streamlearn.corpus.targets import SampleSpec
    from streamlearn.train.samples import earlier_days_pool, mix_replay

    by_day = {d: [SampleSpec(f"d{d}/{k}", "qa_text", d, [], f"t{d}{k}", "i") for k in range(4)] for d in (1, 2, 3)}
    pool = earlier_days_pool(by_day, 3, seed=0)
    assert sorted(s.key for s in pool) == sorted(s.key for d in (1, 2) for s in by_day[d])
    assert [s.key for s in pool] == [s.key for s in earlier_days_pool(by_day, 3, seed=0)]  # same on resume
    assert earlier_days_pool(by_day, 1, seed=0) == []  # nothing before the first day
    mixed, _ = mix_replay(by_day[3] * 2, pool, 0.5, 0)
    assert len(mixed) == 16 and sum(s.day < 3 for s in mixed) == 8
    assert all(s.day == 3 for s in mixed[0::2]) and all(s.day < 3 for s in mixed[1::2])  # interleaved


@pytest.mark.slow
def test_compiled_training_step_matches_eager(tmp_path):
    """compile = "on" (the GPU default) with activation checkpointing and bf16 compute: the first steps'
    losses equal the eager ones within bf16 tolerance (the vision blocks once saved bf16 rotary tables
    and recomputed fp32 ones under FSDP's input cast, and backward refused to run)."""
    losses = {}
    for mode in ("off", "on"):
        corpus = make_train_corpus(tmp_path / mode, days=1, chunks_per_day=2, frames=8, size=(56, 112),
                                   train={**FAST, "compile": mode, "run": f"c{mode}", "compute_dtype": "bfloat16"})
        losses[mode] = train(corpus, load_train_config(corpus.config.train), max_steps=2).losses
    assert len(losses["on"]) == 2 and losses["on"] == pytest.approx(losses["off"], rel=2e-2)
