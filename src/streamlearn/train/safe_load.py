"""Loading a training checkpoint without running code from it.

A checkpoint folder is data in the corpus that anyone with write access could plant or edit, and
pickle runs whatever a file asks for. So:

- the RNG state is JSON (`rng_rank<r>.json`), never a pickle; an `rng_rank*.pt` (what streamlearn
  wrote before) is refused, not read;
- DCP's `.metadata` is a pickle that torch loads with plain `pickle.load`: it is first read here by an
  unpickler that only knows the classes a DCP checkpoint's metadata consists of, and refused if it
  names anything else;
- DCP's non-tensor items (optimizer hyperparameters) are loaded with `torch.load(weights_only=True)`
  (`SafeLoadPlanner`), where torch's default planner uses `weights_only=False`.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch.distributed.checkpoint import DefaultLoadPlanner

from streamlearn.core.errors import StreamlearnError

METADATA_MODULES = ("torch.distributed.checkpoint.metadata",)
METADATA_CLASSES = {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
                    ("torch.serialization", "_get_layout"), ("collections", "OrderedDict"),
                    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"), ("pathlib", "WindowsPath"),
                    ("pathlib", "PureWindowsPath"), ("builtins", "set"), ("builtins", "frozenset")}


def _refuse(path: Path, what: str) -> StreamlearnError:
    return StreamlearnError(f"checkpoint {path.parent.name}: {path.name} {what}; it was not written by streamlearn: "
                            f"delete {path.parent} (training resumes from the checkpoint before it) or restore it")


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in METADATA_MODULES or (module, name) in METADATA_CLASSES or \
                (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def check_checkpoint(folder: Path, rank: int) -> None:
    """Refuse, in one line and before torch reads anything, a checkpoint that holds a pickle streamlearn
    does not read or whose DCP metadata names anything but DCP's own classes."""
    for legacy in sorted(Path(folder).glob("rng_rank*.pt")):
        raise _refuse(legacy, "is a pickle (it could run code when loaded), which streamlearn does not read")
    meta = Path(folder) / ".metadata"
    if meta.exists():
        try:
            _MetadataUnpickler(io.BytesIO(meta.read_bytes())).load()
        except pickle.UnpicklingError as exc:
            raise _refuse(meta, f"asks for {exc}, which a checkpoint's metadata never holds") from None
        except Exception as exc:  # noqa: BLE001 - truncated or not a pickle at all
            raise _refuse(meta, f"is not readable checkpoint metadata ({type(exc).__name__})") from None


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, with non-tensor items read by torch's weights-only unpickler."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        data = value.read()
        try:  # what loads under weights_only holds nothing that runs: the default planner may then read it
            torch.load(io.BytesIO(data), weights_only=True)
        except pickle.UnpicklingError as exc:
            raise StreamlearnError(f"checkpoint item {read_item.dest_index.fqn} is not plain data "
                                   f"({' '.join(str(exc).split())[:120]}); the checkpoint was not written by "
                                   "streamlearn: delete it or restore it") from None
        super().load_bytes(read_item, io.BytesIO(data))


def rng_state() -> dict:
    """torch, NumPy and Python RNG states as JSON-able lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state().tolist(),
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def write_rng(folder: Path, rank: int) -> None:
    (Path(folder) / f"rng_rank{rank}.json").write_text(json.dumps(rng_state()))


def read_rng(folder: Path, rank: int) -> None:
    path = Path(folder) / f"rng_rank{rank}.json"
    if path.exists():
        try:
            set_rng_state(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise _refuse(path, f"is not an RNG state ({type(exc).__name__})") from None
