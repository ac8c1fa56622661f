"""Encoder saliency for Stage I: the attention each token *receives* in an encoder's last layer.

Pure tensor math (docs/METHOD.md §5): per attention span (the layer's own ``cu_seqlens`` segments), the mean over
heads of softmax(q·kᵀ·scale), summed over the queries (column sums). Only one span's attention matrix is
held at a time, so memory stays O(heads · span²).
"""

from __future__ import annotations

import torch


def received_attention(q: torch.Tensor, k: torch.Tensor, cu_seqlens: torch.Tensor, scale: float) -> torch.Tensor:
    """q, k: (heads, N, d) after any rotary; cu_seqlens: (n_spans + 1,) boundaries. Returns (N,) float32."""
    bounds = [int(x) for x in cu_seqlens.tolist()]
    out = torch.empty(q.shape[1], dtype=torch.float32, device=q.device)
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e <= s:
            continue
        logits = torch.matmul(q[:, s:e].float(), k[:, s:e].float().transpose(-1, -2)) * scale
        out[s:e] = logits.softmax(dim=-1).mean(dim=0).sum(dim=0)
    return out


def merge_unit_mean(per_patch: torch.Tensor, unit: int) -> torch.Tensor:
    """Average consecutive groups of ``unit`` patches (the 2x2 spatial merge of the vision encoder)."""
    return per_patch.reshape(-1, unit).mean(dim=1)


def pair_mean(per_frame: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Average pairs (first[i], first[i] + 1): the audio encoder's stride-2 pooling to 25 tokens/s."""
    return (per_frame[first] + per_frame[first + 1]) / 2


def span_bounds(n: int, span: int) -> torch.Tensor:
    """``cu_seqlens``-style boundaries of consecutive spans of ``span`` tokens over ``n`` (the last shorter)."""
    if span < 1:
        raise ValueError(f"span must be >= 1, got {span}")
    return torch.tensor(list(range(0, n, span)) + [n], dtype=torch.int32)
