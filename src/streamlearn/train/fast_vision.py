"""Batched attention for the Qwen2.5-VL vision tower: the same math, far fewer kernel launches.

Without flash-attn, transformers' vision attention loops in Python over every attention segment
(every 112-px window in 28 of the 32 blocks, every frame pair in the other 4): a 20-minute chunk
at 600 frame pairs makes ~1,200 tiny SDPA calls per block, forward and again in backward. Here the
segments are grouped by length and each group is one batched SDPA call (segments of one length
gathered into a (n, heads, L, d) batch). Queries, keys, values, rotary embedding, scaling and the
output projection are the model's own; only the loop changes.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


_GROUPS: dict[tuple, list] = {}  # this forward's segment groups, by the cu_seqlens tensor they came from


def _groups(cu_seqlens: torch.Tensor) -> list[torch.Tensor]:
    """The (n, L) token index of each distinct segment length L. Worked out once per cu_seqlens tensor
    of a forward (one device-to-host read) and reused by every block and by activation checkpointing's
    recompute: read per block, it was a host sync in each of 32 blocks, twice a step."""
    key = (cu_seqlens.data_ptr(), cu_seqlens.numel(), str(cu_seqlens.device))
    if key not in _GROUPS:
        cu = cu_seqlens.tolist()
        by_len: dict[int, list[int]] = {}
        for a, b in zip(cu[:-1], cu[1:]):
            if b > a:
                by_len.setdefault(b - a, []).append(a)
        _GROUPS[key] = [(torch.tensor(st, dtype=torch.long)[:, None] + torch.arange(n)[None]).to(
            cu_seqlens.device, non_blocking=True) for n, st in sorted(by_len.items())]
    return _GROUPS[key]


def _new_forward(module, args, kwargs) -> None:
    """A new vision forward: earlier forwards' groups are no longer needed (their tensors may be gone)."""
    _GROUPS.clear()


def batched_forward(self, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor, position_embeddings=None,
                    max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
    """Drop-in for Qwen2_5_VLVisionAttention.forward (non-flash path)."""
    seq = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = self._sl_rotary(q, k, cos, sin)  # (seq, heads, d)
    out = torch.empty_like(q)
    for idx in _groups(cu_seqlens):  # (n, L)
        qb, kb, vb = (t[idx].transpose(1, 2) for t in (q, k, v))  # (n, heads, L, d)
        ob = F.scaled_dot_product_attention(qb, kb, vb, scale=self.scaling)
        out[idx] = ob.transpose(1, 2)
    return self.proj(out.reshape(seq, -1))


def enable(model: torch.nn.Module) -> int:
    """Switch every vision attention module of a Qwen2.5-VL to the batched forward (unless it uses
    flash-attn varlen, which is already one call). Returns how many modules were switched."""
    n = 0
    visual = getattr(getattr(model, "model", model), "visual", None)
    if visual is not None and not hasattr(visual, "_sl_groups_hook"):
        visual._sl_groups_hook = visual.register_forward_pre_hook(_new_forward, with_kwargs=True)
    for module in model.modules():
        if type(module).__name__ != "Qwen2_5_VLVisionAttention":
            continue
        impl = getattr(module.config, "_attn_implementation", "sdpa") or "sdpa"
        if "flash" in impl:
            continue
        import sys

        module._sl_rotary = sys.modules[type(module).__module__].apply_rotary_pos_emb_vision
        module._sl_original_forward = module.forward
        module.forward = types.MethodType(batched_forward, module)
        n += 1
    return n


def compile_pointwise(model: torch.nn.Module, vision: bool = True, text: bool = False) -> int:
    """torch.compile the pointwise-heavy pieces (RMSNorms, gated MLPs, the vision rotary embedding):
    fuses the fp32 up-casts, multiplies and activations into few kernels. Attention and the data-
    dependent grouping stay eager. Returns how many modules were compiled."""
    n = 0
    for module in model.modules():
        name = type(module).__name__
        in_vision = getattr(module, "_sl_vision", False)
        wanted = (vision and in_vision and name in ("Qwen2_5_VLMLP", "Qwen2_5_VLRMSNorm")) or \
                 (text and not in_vision and name in ("Qwen2MLP", "Qwen2_5_VLRMSNorm"))
        if wanted and not hasattr(module, "_sl_compiled"):
            module._sl_compiled = True
            module.forward = torch.compile(module.forward, dynamic=True)
            n += 1
        if vision and name == "Qwen2_5_VLVisionAttention" and hasattr(module, "_sl_rotary"):
            module._sl_rotary = torch.compile(module._sl_rotary, dynamic=True)
    return n


def mark_vision(model: torch.nn.Module) -> None:
    """Tag the vision tower's submodules (some module classes are shared with the language model)."""
    for block in model.model.visual.modules():
        block._sl_vision = True


def disable(model: torch.nn.Module) -> None:
    visual = getattr(getattr(model, "model", model), "visual", None)
    if visual is not None and hasattr(visual, "_sl_groups_hook"):
        visual._sl_groups_hook.remove()
        del visual._sl_groups_hook
    for module in model.modules():
        if hasattr(module, "_sl_original_forward"):
            module.forward = module._sl_original_forward
            del module._sl_original_forward
