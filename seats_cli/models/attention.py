"""Encoder attention over packed windows, one batched call per window length.

The stock Qwen2.5-Omni / Qwen3-Omni vision attention hands its packed windows (``cu_seqlens``) to the attention
function in one call when the implementation is a flash-attention one, and otherwise loops in Python: one sdpa call
per window — 768 windows per layer for a 128-frame 448x252 request on the 7B, which took 1.6 s of a 3.5 s request on
an H200 without flash-attn (benchmarks/RESULTS.md). ``varlen_sdpa`` is registered with transformers'
``AttentionInterface`` under a name that contains "flash" (transformers routes ``cu_seq_lens_q`` to any such
implementation, as it does for the hub's flash kernels) and answers that call with stock sdpa: the windows of each
length are gathered into one batch, so a layer makes a few sdpa calls instead of hundreds. Each window still attends
only within itself, non-causally: the same arithmetic as the stock loop. The audio tower's windows (one sdpa call
per window in the stock loop; Qwen2.5-Omni: 2 s chunks of 100 tokens, 32 per layer for 64 s) go the same way. Set
on the encoders' configs only (``use_for_encoders``), where the stock implementation is sdpa; the thinker keeps its
own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seats_cli.transfer import to_device

VARLEN_ATTENTION = "seats_sdpa_as_flash_varlen"


def window_bounds(cu_seqlens: torch.Tensor) -> list[int]:
    """The window boundaries on the host: read once per boundary tensor (a tower passes the same one to each of its
    layers) and kept on it, so on a GPU the encoders wait for the device once per tensor, not once per layer."""
    bounds = getattr(cu_seqlens, "_seats_bounds", None)
    if bounds is None:
        bounds = cu_seqlens.tolist()
        cu_seqlens._seats_bounds = bounds
    return bounds


def varlen_sdpa(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, is_causal=False,
                cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    """``query``/``key``/``value`` (1, heads, N, d) holding the windows back to back, ``cu_seq_lens_q`` their (W + 1)
    boundaries (the same for the keys). Returns (1, N, heads, d), as the flash functions do, and no weights."""
    if cu_seq_lens_q is None or query.shape[0] != 1 or attention_mask is not None or is_causal:
        raise ValueError("varlen_sdpa answers the packed, non-causal, unmasked encoder call only")
    if cu_seq_lens_k is not None and cu_seq_lens_k is not cu_seq_lens_q and not torch.equal(cu_seq_lens_k,
                                                                                           cu_seq_lens_q):
        raise ValueError("varlen_sdpa needs the same windows for queries and keys")
    bounds = window_bounds(cu_seq_lens_q)
    by_length: dict[int, list[int]] = {}
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start:
            by_length.setdefault(end - start, []).append(start)
    heads, n = query.shape[1], query.shape[2]
    out = query.new_empty(heads, n, value.shape[-1])
    q, k, v = query[0], key[0], value[0]
    dev = query.device
    for length, starts in by_length.items():
        if len(starts) * length == n:  # one length covers everything: a view, no gather
            rows = None
            qb, kb, vb = (t.reshape(heads, len(starts), length, -1).transpose(0, 1) for t in (q, k, v))
        else:
            rows = (to_device(torch.tensor(starts), dev)[:, None] + torch.arange(length, device=dev)).reshape(-1)
            qb, kb, vb = (t[:, rows].reshape(heads, len(starts), length, -1).transpose(0, 1) for t in (q, k, v))
        ob = F.scaled_dot_product_attention(qb, kb, vb, dropout_p=dropout, scale=scaling)  # (W_L, heads, L, d)
        ob = ob.transpose(0, 1).reshape(heads, len(starts) * length, -1)
        if rows is None:
            out = ob
        else:
            out[:, rows] = ob
    return out.transpose(0, 1).unsqueeze(0), None


def use_for_encoders(model) -> tuple[str, ...]:
    """Route the encoders' packed windows (the vision tower's windows, the audio tower's chunks: the same stock
    per-window loop under sdpa) through ``varlen_sdpa`` for each tower that runs on sdpa. Returns the towers set."""
    from transformers import AttentionInterface

    inner = getattr(model, "model", None)
    towers = []
    for name, attr in (("vision", "visual"), ("audio", "audio_tower")):
        cfg = getattr(getattr(inner, attr, None), "config", None)
        if cfg is None or getattr(cfg, "_attn_implementation", None) != "sdpa":
            continue
        AttentionInterface.register(VARLEN_ATTENTION, varlen_sdpa)
        cfg._attn_implementation = VARLEN_ATTENTION
        towers.append(name)
    return tuple(towers)
