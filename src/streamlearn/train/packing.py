"""Packing: several encoded samples in one padding-free forward, each attending only to itself.

A `Batch` is what one forward takes: the samples' tokens back to back (each keeps its own M-RoPE
positions and its own video grid; the vision tower already handles several videos per call), the
positions and ids of the target tokens (computed here on the host, so the loss needs no
device-to-host sync), and the segment lengths that `segment_attention` uses to keep each sample to
itself. On a GPU a batch's length is padded up to a multiple of `PAD_MULTIPLE` (pad tokens at the
end, never a target): the causal sample before them cannot see them, and a few lengths recur, so
compiled kernels and cuDNN plans are reused instead of rebuilt for every new length.

`plan_packs` fills batches in order up to `train.pack_tokens` tokens, so a step trains the same
samples in the same order whether packed or not: packing changes how a step is computed, not what
it trains on, and its loss and gradient equal the unpacked ones (tests/test_packing.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ATTENTION = "streamlearn_segments"  # the text model's attention implementation (registered below)
PAD_MULTIPLE = 128  # on a GPU; 1 on a CPU, where padding would only cost compute


class Segments:
    """One forward's segment layout (host lists, device tensors made once per device and reused by
    every layer): cu_seqlens for varlen kernels, and per length bucket the gather index of a
    right-padded batch for the SDPA fallback. A plain class, so FSDP's input casting passes it by."""

    def __init__(self, lengths: list[int]):
        self.lengths = list(lengths)
        self._device: dict = {}

    @property
    def max_len(self) -> int:
        return max(self.lengths)

    def cu_seqlens(self, device) -> torch.Tensor:
        key = ("cu", str(device))
        if key not in self._device:
            cu = [0]
            for n in self.lengths:
                cu.append(cu[-1] + n)
            self._device[key] = torch.tensor(cu, dtype=torch.int32).to(device, non_blocking=True)
        return self._device[key]

    def buckets(self, device) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """[(gather (n, L), real (k,) flat positions in n*L, dest (k,) positions in S)] per bucket of
        segments whose lengths are within 2x of each other (padding waste stays under half)."""
        key = ("buckets", str(device))
        if key in self._device:
            return self._device[key]
        starts, s = [], 0
        for n in self.lengths:
            starts.append(s)
            s += n
        order = sorted(range(len(self.lengths)), key=lambda i: self.lengths[i])
        groups, cur = [], []
        for i in order:
            if cur and self.lengths[i] > 2 * self.lengths[cur[0]]:
                groups.append(cur)
                cur = []
            cur.append(i)
        if cur:
            groups.append(cur)
        out = []
        for g in groups:
            width = max(self.lengths[i] for i in g)
            gather, real, dest = [], [], []
            for row, i in enumerate(g):
                n, st = self.lengths[i], starts[i]
                gather.append(list(range(st, st + n)) + [st] * (width - n))  # pads repeat a real token, unused
                real += range(row * width, row * width + n)
                dest += range(st, st + n)
            out.append(tuple(torch.tensor(x, dtype=torch.long).to(device, non_blocking=True)
                             for x in (gather, real, dest)))
        self._device[key] = out
        return out


@dataclass
class Batch:
    """One forward: a sample, or several packed. Tensors on the host until `tensors(device)`."""

    keys: list[str]
    input_ids: torch.Tensor  # (1, S)
    position_ids: torch.Tensor  # (3, 1, S)
    pixel_values_videos: torch.Tensor  # (patches, C*t*p*p)
    video_grid_thw: torch.Tensor  # (videos, 3)
    second_per_grid_ts: torch.Tensor  # (videos,)
    target_pos: torch.Tensor  # (T,) positions p whose hidden state predicts token p+1, a target
    target_ids: torch.Tensor  # (T,)
    target_sample: list[int]  # (T,) which sample each target belongs to
    segments: Segments | None  # None: one sample, plain causal attention
    n_target: int
    n_tokens: int  # real tokens (padding excluded)
    flops: float

    def pin(self) -> "Batch":
        for f in ("input_ids", "position_ids", "pixel_values_videos", "target_pos", "target_ids"):
            setattr(self, f, getattr(self, f).pin_memory())
        return self

    def tensors(self, device) -> dict:
        out = {k: getattr(self, k).to(device, non_blocking=True) for k in
               ("input_ids", "position_ids", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts",
                "target_pos", "target_ids")}
        if self.segments is not None:
            out["segments"] = self.segments
        return out


def plan_packs(lengths: list[int], pack_tokens: int) -> list[list[int]]:
    """Indices grouped in order into packs of at most `pack_tokens` tokens (a longer sample alone);
    `pack_tokens` 0: one sample per pack."""
    packs: list[list[int]] = []
    size = 0
    for i, n in enumerate(lengths):
        if packs and pack_tokens > 0 and size + n <= pack_tokens:
            packs[-1].append(i)
            size += n
        else:
            packs.append([i])
            size = n
    return packs


def make_batch(encoded: list, flops: list[float], pad_id: int, pad_multiple: int = 1) -> Batch:
    """Concatenate encoded samples (`samples.Encoded`) into one forward's batch."""
    ids = torch.cat([e.input_ids for e in encoded], dim=1)
    labels = torch.cat([e.labels for e in encoded], dim=1)
    pos = torch.cat([e.position_ids for e in encoded], dim=2)
    lengths = [e.input_ids.shape[1] for e in encoded]
    real = ids.shape[1]
    pad = (-real) % pad_multiple
    if pad:
        ids = torch.cat([ids, torch.full((1, pad), pad_id, dtype=ids.dtype)], dim=1)
        labels = torch.cat([labels, torch.full((1, pad), -100, dtype=labels.dtype)], dim=1)
        nxt = int(pos[:, :, -1].max()) + 1
        pos = torch.cat([pos, (torch.arange(pad) + nxt).view(1, 1, -1).expand(3, 1, -1)], dim=2)
        if len(encoded) > 1:
            lengths.append(pad)  # its own segment: pad tokens attend to nothing of the samples'
    # the hidden state at p predicts the token at p + 1: targets are the labels shifted by one
    nxt_labels = labels[0, 1:]
    target_pos = (nxt_labels != -100).nonzero().reshape(-1)
    sample_of = torch.repeat_interleave(torch.arange(len(encoded)),
                                        torch.tensor([e.input_ids.shape[1] for e in encoded]))
    return Batch(keys=[e.key for e in encoded], input_ids=ids, position_ids=pos,
                 pixel_values_videos=torch.cat([e.pixel_values_videos for e in encoded]),
                 video_grid_thw=torch.cat([e.video_grid_thw for e in encoded]),
                 second_per_grid_ts=torch.cat([e.second_per_grid_ts.reshape(-1) for e in encoded]),
                 target_pos=target_pos, target_ids=nxt_labels[target_pos],
                 target_sample=sample_of[target_pos + 1].tolist(),
                 segments=Segments(lengths) if len(encoded) > 1 else None,
                 n_target=sum(e.n_target for e in encoded), n_tokens=real, flops=float(sum(flops)))


_VARLEN: dict = {}


def _varlen():
    """torch's varlen flash attention (torch >= 2.9 on CUDA), or None (then, or after it once fails on
    this torch, the bucketed SDPA below does the same math)."""
    if "fn" not in _VARLEN:
        try:
            from torch.nn.attention.varlen import varlen_attn
        except ImportError:
            varlen_attn = None
        _VARLEN["fn"] = varlen_attn
    return _VARLEN["fn"]


def _call_varlen(varlen, qs, ks, vs, segments: Segments, scale):
    cu = segments.cu_seqlens(qs.device)
    try:
        return varlen(qs, ks, vs, cu, cu, segments.max_len, segments.max_len, is_causal=True, scale=scale)
    except TypeError:  # newer torch: causal attention is a window
        return varlen(qs, ks, vs, cu, cu, segments.max_len, segments.max_len, window_size=(-1, 0), scale=scale)


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      segments: Segments | None = None, **kwargs):
    """The text model's attention. With `segments` (a packed batch), each segment attends causally to
    itself only: varlen flash attention on a GPU (else one SDPA call per bucket of similar lengths over
    right-padded segments: a causal row never sees the padding after it), one SDPA call per segment on
    a CPU. Without, transformers' SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    q, k, v = query[0], key[0], value[0]  # (heads, S, d)
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)
    varlen = _varlen() if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) else None
    if varlen is not None:
        qs, ks, vs = (t.transpose(0, 1).contiguous() for t in (q, k, v))  # (S, heads, d)
        try:
            return _call_varlen(varlen, qs, ks, vs, segments, scaling).unsqueeze(0), None  # (1, S, heads, d)
        except (RuntimeError, TypeError, ValueError) as exc:
            import logging

            logging.getLogger("streamlearn").warning("varlen attention unavailable (%s); using bucketed SDPA",
                                                     " ".join(str(exc).split())[:160])
            _VARLEN["fn"] = None
    if not q.is_cuda:  # a CPU has no launch cost to save: each segment on its own, no padding or gathering
        return per_segment(q, k, v, segments, scaling).transpose(0, 1).unsqueeze(0), None
    return bucketed(q, k, v, segments, scaling).transpose(0, 1).unsqueeze(0), None  # (1, S, heads, d)


def per_segment(q, k, v, segments: Segments, scale) -> torch.Tensor:
    """Causal attention of each segment to itself, one SDPA call each; (heads, S, d) in and out."""
    out = torch.empty_like(q)
    start = 0
    for n in segments.lengths:
        sl = slice(start, start + n)
        out[:, sl] = F.scaled_dot_product_attention(q[:, sl], k[:, sl], v[:, sl], is_causal=True, scale=scale)
        start += n
    return out


def bucketed(q, k, v, segments: Segments, scale) -> torch.Tensor:
    """The same, one SDPA call per bucket of similar lengths over right-padded segments (few launches)."""
    out = torch.empty_like(q)
    for gather, real, dest in segments.buckets(q.device):
        n, width = gather.shape
        qb, kb, vb = (t[:, gather].transpose(0, 1) for t in (q, k, v))  # (n, heads, width, d)
        ob = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, scale=scale)
        ob = ob.transpose(1, 2).reshape(n * width, q.shape[0], -1)  # (n*width, heads, d)
        out[:, dest] = ob[real].transpose(0, 1)
    return out


def register() -> str:
    """Make `segment_attention` a transformers attention implementation (idempotent); its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, segment_attention)
    return ATTENTION
