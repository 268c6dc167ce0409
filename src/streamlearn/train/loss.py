"""The training objective and its cost.

`TargetLossModel` runs the VLM's decoder to hidden states and applies the LM head only at the
positions whose next token is a target token: a 14K-token sample never materialises a
14K x 152K logit tensor (8 GB in fp32), and the loss equals transformers' `labels=` loss.

FLOPs per sample (documented in docs/training.md; recompute from activation checkpointing is not
counted, as in torchtitan's MFU):
    LLM      6 * N_llm * S  +  6 * L * d * S^2           (causal attention, fwd + bwd)
    LM head  6 * d * V * T                               (only the T target positions)
    vision   6 * N_vis * P  +  12 * P * d_v * (P_f * n_full + 64 * n_window)
with S tokens, P vision patches, P_f patches per frame pair (full-attention blocks attend within a
pair), 64 patches per 112-px window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TargetLossModel(nn.Module):
    """Wraps a Qwen2.5-VL for training: the sum of the target tokens' losses (or each one's).

    The target positions and ids come from the host (`packing.Batch`), so no boolean mask has to be
    read back from the device; `segments` keeps the samples of a packed batch apart."""

    def __init__(self, vlm: nn.Module):
        super().__init__()
        self.vlm = vlm

    def forward(self, input_ids, position_ids, pixel_values_videos, video_grid_thw, second_per_grid_ts,
                target_pos, target_ids, segments=None, per_token: bool = False):
        extra = {"segments": segments} if segments is not None else {}
        out = self.vlm.model(input_ids=input_ids, position_ids=position_ids, pixel_values_videos=pixel_values_videos,
                             video_grid_thw=video_grid_thw, second_per_grid_ts=second_per_grid_ts, use_cache=False,
                             **extra)
        hidden = out.last_hidden_state[0].index_select(0, target_pos)
        losses = F.cross_entropy(self.vlm.lm_head(hidden).float(), target_ids, reduction="none")
        return losses if per_token else losses.sum()


def targets_from_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, ids) of the target tokens of a (1, S) label row: the hidden state at p predicts p + 1."""
    nxt = labels[0, 1:]
    pos = (nxt != -100).nonzero().reshape(-1)
    return pos, nxt[pos]


def llm_matmul_params(tc) -> int:
    d, L, ffn = tc.hidden_size, tc.num_hidden_layers, tc.intermediate_size
    hd = getattr(tc, "head_dim", None) or d // tc.num_attention_heads
    kv = tc.num_key_value_heads
    return L * (d * tc.num_attention_heads * hd + 2 * d * kv * hd + tc.num_attention_heads * hd * d + 3 * d * ffn)


def vision_matmul_params(vc) -> int:
    dv, ffn = vc.hidden_size, vc.intermediate_size
    merged = dv * vc.spatial_merge_size ** 2
    per_patch = vc.depth * (4 * dv * dv + 3 * dv * ffn)
    return per_patch + (merged * merged + merged * vc.out_hidden_size) // vc.spatial_merge_size ** 2


def sample_flops(config, seq_len: int, n_target: int, grid_thw) -> float:
    tc, vc = config.text_config, config.vision_config
    t, h, w = (int(x) for x in grid_thw)
    patches = t * h * w
    per_pair = h * w
    n_full = len(vc.fullatt_block_indexes)
    window = (vc.window_size // vc.patch_size) ** 2
    llm = 6 * llm_matmul_params(tc) * seq_len + 6 * tc.num_hidden_layers * tc.hidden_size * seq_len ** 2
    head = 6 * tc.hidden_size * tc.vocab_size * n_target
    vis = 6 * vision_matmul_params(vc) * patches + 12 * patches * vc.hidden_size * (
        min(per_pair, patches) * n_full + min(window, per_pair) * (vc.depth - n_full))
    return float(llm + head + vis)


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


_MEASURED: dict[str, float] = {}


def peak_tflops(device: torch.device, configured: float = 0.0, dtype: torch.dtype = torch.bfloat16) -> float:
    """The one peak MFU is computed against, in `train` and in the benchmarks alike: `train.peak_tflops`
    when set (> 0), else this device's measured dense matrix-product rate in the compute dtype (8192^3
    on a GPU, measured once per process; an H200 here gives ~790 TFLOP/s bf16 against the datasheet's 989)."""
    if configured > 0:
        return configured
    key = f"{device}:{dtype}"
    if key not in _MEASURED:
        import time

        n, reps = (8192, 10) if device.type == "cuda" else (1024, 3)
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        _MEASURED[key] = 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12
        del a, b
    return _MEASURED[key]
