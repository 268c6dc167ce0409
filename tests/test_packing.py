"""Packing (src/streamlearn/train/packing.py): several samples in one forward give each sample's own
loss and the same gradient as one forward each (CPU, float32), keep their order, and a packed run
trains the same steps as an unpacked one.

Run: python -m pytest tests/test_packing.py -q
"""

from __future__ import annotations

import pytest
import torch
from trainkit import make_train_corpus

from streamlearn.core.config import load_train_config
from streamlearn.models.loading import load_model
from streamlearn.corpus.targets import build_specs
from streamlearn.train import fast_vision, packing
from streamlearn.train.loss import TargetLossModel, sample_flops
from streamlearn.train.packing import make_batch, plan_packs
from streamlearn.train.samples import Encoder
from streamlearn.media.vision_budget import VisionGeometry


def test_plan_keeps_order_and_budget():
    assert plan_packs([100, 200, 300, 50, 400, 1000, 10], 600) == [[0, 1, 2], [3, 4], [5], [6]]
    assert plan_packs([5, 5, 5], 0) == [[0], [1], [2]]
    packs = plan_packs([7, 3, 9, 1, 4, 4, 8, 2], 12)
    assert [i for p in packs for i in p] == list(range(8))  # the day's order, every sample once
    assert all(sum([7, 3, 9, 1, 4, 4, 8, 2][i] for i in p) <= 12 for p in packs)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Video samples (description, facts) and text-only ones (qa_text: the blank video), of several lengths."""
    corpus = make_train_corpus(tmp_path_factory.mktemp("pack") / "c", days=1, chunks_per_day=2, signs=2,
                               train={"targets": ["description", "facts", "qa_text"], "fact_variants": 1})
    specs = build_specs(corpus, load_train_config(corpus.config.train))[0][1]
    model, tok = load_model("tiny")
    enc = Encoder(tok, corpus.root, VisionGeometry(), 2.0, 4096)
    kinds = {s.kind for s in specs}
    assert kinds == {"description", "facts", "qa_text"} and len(specs) >= 6
    return model, tok, [enc(s) for s in specs]


def losses_and_grads(model, batches):
    """Per-sample loss sums, and the gradient of their total, over the given batches."""
    wrapped = TargetLossModel(model)
    model.zero_grad(set_to_none=True)
    per_sample: dict[str, float] = {}
    for b in batches:
        tokens = wrapped(per_token=True, **b.tensors("cpu"))
        for i, key in enumerate(b.keys):
            mine = torch.tensor([s == i for s in b.target_sample])
            per_sample[key] = float(tokens[mine].sum())
        tokens.sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    return per_sample, grads


def test_packed_forward_equals_one_forward_per_sample(samples):
    model, tok, encoded = samples
    model.model.language_model.config._attn_implementation = packing.register()
    fast_vision.enable(model)
    try:
        flops = [sample_flops(model.config, e.input_ids.shape[1], e.n_target, e.video_grid_thw[0].tolist())
                 for e in encoded]
        single = [make_batch([e], [f], tok.pad_token_id) for e, f in zip(encoded, flops)]
        packed = make_batch(encoded, flops, tok.pad_token_id)
        assert packed.segments is not None and len(packed.segments.lengths) == len(encoded)
        assert packed.n_target == sum(e.n_target for e in encoded) == len(packed.target_pos)
        ref_losses, ref_grads = losses_and_grads(model, single)
        losses, grads = losses_and_grads(model, [packed])
        assert losses.keys() == ref_losses.keys()
        for key, ref in ref_losses.items():
            assert losses[key] == pytest.approx(ref, rel=1e-5, abs=1e-5), key
        assert float((grads - ref_grads).norm() / ref_grads.norm()) < 1e-4
        # padded to a multiple (as on a GPU): the pad tokens are a segment of their own and never a target
        padded = make_batch(encoded, flops, tok.pad_token_id, pad_multiple=128)
        assert padded.input_ids.shape[1] % 128 == 0 and padded.n_tokens == packed.n_tokens
        pad_losses, _ = losses_and_grads(model, [padded])
        for key, ref in ref_losses.items():
            assert pad_losses[key] == pytest.approx(ref, rel=1e-5, abs=1e-5), key
    finally:
        fast_vision.disable(model)
        model.model.language_model.config._attn_implementation = "sdpa"


def test_a_packed_run_trains_the_same_steps(tmp_path):
    """grad_accum 4: packed (at most 2,048 tokens a forward) and unpacked give the same losses per step."""
    from streamlearn.train.engine import train

    base = {"lr": 1e-3, "warmup_steps": 1, "grad_accum": 4, "targets": ["description", "qa_text"]}
    runs = {}
    for name, pack in (("packed", 2048), ("unpacked", 0)):
        corpus = make_train_corpus(tmp_path / name, days=1, chunks_per_day=4, signs=1, train={**base, "pack_tokens": pack})
        runs[name] = train(corpus, load_train_config(corpus.config.train))
    assert len(runs["packed"].losses) == len(runs["unpacked"].losses) >= 2
    assert runs["packed"].losses == pytest.approx(runs["unpacked"].losses, rel=1e-4)
    metrics = [__import__("json").loads(x) for x in (tmp_path / "packed/runs/main/metrics.jsonl").read_text().splitlines()]
    assert all(m["forwards"] < m["samples"] for m in metrics[:-1])  # several samples per forward


def test_bucketed_attention_equals_one_call_per_segment():
    """The GPU fallback (right-padded buckets of similar lengths) is the per-segment math."""
    from streamlearn.train.packing import Segments, bucketed, per_segment

    torch.manual_seed(0)
    segments = Segments([5, 17, 3, 40, 9, 128])
    q, k, v = (torch.randn(4, sum(segments.lengths), 16) for _ in range(3))
    ref = per_segment(q, k, v, segments, 0.25)
    assert torch.allclose(bucketed(q, k, v, segments, 0.25), ref, atol=1e-6)
    assert len(segments.buckets("cpu")) > 1  # several buckets: lengths far apart are not padded together
