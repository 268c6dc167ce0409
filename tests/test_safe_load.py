"""Nothing loaded from a checkpoint runs code (src/streamlearn/train/safe_load.py): a planted RNG pickle
or DCP metadata naming a function is refused in one line before torch reads it, and DCP's non-tensor
items are read weights-only; the RNG state round-trips through JSON.

Run: python -m pytest tests/test_safe_load.py -q
"""

from __future__ import annotations

import io
import os
import pickle
import random
import shutil

import numpy as np
import pytest
import torch
from trainkit import make_train_corpus

from streamlearn.core.errors import StreamlearnError
from streamlearn.train.safe_load import SafeLoadPlanner, rng_state, set_rng_state


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A run stopped after 2 steps with a periodic checkpoint (step-000002)."""
    from streamlearn.core.config import load_train_config
    from streamlearn.train.engine import train

    corpus = make_train_corpus(tmp_path_factory.mktemp("ck") / "c", days=1, chunks_per_day=4,
                               train={"lr": 1e-3, "warmup_steps": 1, "require_sealed_bank": False,
                                      "checkpoint_every": 1, "keep_last": 1})
    train(corpus, load_train_config(corpus.config.train), max_steps=2)
    ckpt = corpus.root / "runs/main/checkpoints/step-000002"
    assert (ckpt / "rng_rank0.json").exists() and not list(ckpt.glob("*.pt"))
    return corpus


@pytest.mark.parametrize("planted", ["rng_rank0.pt", ".metadata"])
def test_a_planted_pickle_is_refused_and_never_runs(checkpointed, tmp_path, run_cli, planted):
    root = tmp_path / "c"
    shutil.copytree(checkpointed.root, root)
    marker = tmp_path / "ran"
    ckpt = root / "runs/main/checkpoints/step-000002"
    (ckpt / planted).write_bytes(pickle.dumps(Evil(marker)))
    res = run_cli("train", root)
    assert res.exit_code == 1 and not marker.exists()
    assert res.stderr.startswith(f"error: checkpoint step-000002: {planted} ") and res.stderr.count("\n") == 1
    assert "was not written by streamlearn" in res.stderr


def test_dcp_items_are_read_weights_only(tmp_path):
    from torch.distributed.checkpoint.metadata import MetadataIndex
    from torch.distributed.checkpoint.planner import LoadItemType, ReadItem

    marker = tmp_path / "ran"
    item = ReadItem(LoadItemType.BYTE_IO, MetadataIndex("optim.param_groups.0.lr"), torch.Size([0]),
                    MetadataIndex("optim.param_groups.0.lr"), torch.Size([0]), torch.Size([0]))
    planner = SafeLoadPlanner(flatten_state_dict=False)
    planner.state_dict = {}
    evil = io.BytesIO()
    torch.save(Evil(marker), evil)
    evil.seek(0)
    with pytest.raises(StreamlearnError, match="checkpoint item optim.param_groups.0.lr is not plain data"):
        planner.load_bytes(item, evil)
    assert not marker.exists()
    good = io.BytesIO()
    torch.save({"lr": 1e-3, "betas": (0.9, 0.95)}, good)
    good.seek(0)
    planner.load_bytes(item, good)
    assert planner.state_dict["optim.param_groups.0.lr"] == {"lr": 1e-3, "betas": (0.9, 0.95)}


def test_rng_state_round_trips_through_json():
    import json

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    saved = json.loads(json.dumps(rng_state()))
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(saved)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
