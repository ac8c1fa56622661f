"""Encoder saliency for Stage I: the attention each token *receives* in an encoder's last layer.

Pure tensor math (docs/METHOD.md §5): per attention span (the layer's own ``cu_seqlens`` segments), the mean over
heads of softmax(q·kᵀ·scale), summed over the queries (column sums). Queries are taken 512 at a time, so
memory stays O(heads · 512 · span) even for one span over a whole clip's audio (OmniZip).

``frame_query_attention`` is FastVID's per-grid signal: each temporal grid's mean query attends to that grid's
merge-unit keys.
"""

from __future__ import annotations

import torch

QUERY_BLOCK = 512


def received_attention(q: torch.Tensor, k: torch.Tensor, cu_seqlens: torch.Tensor, scale: float) -> torch.Tensor:
    """q, k: (heads, N, d) after any rotary; cu_seqlens: (n_spans + 1,) boundaries. Returns (N,) float32."""
    bounds = [int(x) for x in cu_seqlens.tolist()]
    out = torch.zeros(q.shape[1], dtype=torch.float32, device=q.device)
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e <= s:
            continue
        keys = k[:, s:e].float().transpose(-1, -2)
        for qs in range(s, e, QUERY_BLOCK):
            logits = torch.matmul(q[:, qs:min(qs + QUERY_BLOCK, e)].float(), keys) * scale
            out[s:e] += logits.softmax(dim=-1).mean(dim=0).sum(dim=0)
    return out


def frame_query_attention(q: torch.Tensor, k: torch.Tensor, patches_per_grid: int, unit: int,
                          scale: float) -> torch.Tensor:
    """FastVID's saliency (SEATS_SPEC §10.8). q, k: (N, heads, d) after rotary, grid-major (N = grids x
    ``patches_per_grid``, merge units of ``unit`` consecutive patches). Per grid: the mean query over the grid's
    patches attends (softmax, fp32) to the grid's merge-unit-mean keys; mean over heads. Returns (N / unit,)."""
    n, heads, d = q.shape
    grids = n // patches_per_grid
    q_bar = q.float().reshape(grids, patches_per_grid, heads, d).mean(dim=1)  # (T, H, d)
    k_bar = k.float().reshape(grids, patches_per_grid // unit, unit, heads, d).mean(dim=2)  # (T, U, H, d)
    logits = torch.einsum("thd,tuhd->thu", q_bar, k_bar) * scale
    return logits.softmax(dim=-1).mean(dim=1).reshape(-1)


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
