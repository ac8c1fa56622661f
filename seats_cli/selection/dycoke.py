"""DyCoke's temporal token merging stage (TTM), pruning only (SEATS_SPEC §10.7; the decode-time KV pruning is not
used). Pure tensors: LLM video embeddings in, kept indices out."""

from __future__ import annotations

import math

import torch


def dycoke_keep_ratio(r_video: float, frames: int) -> float:
    """q = 1 - K such that the layer-mean video retention is ``r_video`` (clipped to [0, 1]; below the
    method's floor the smallest reachable value is used): the F - P - G frames never pruned stay whole and the
    P + G pruned ones keep q, so q = (R_v F - (F - P) + G) / (P + G), with P = floor(F/2) pruned frames in pass 1
    and G = |range(0, F-4, 4)| re-pruned frames in pass 2. For even F this is the spec's (R_v F - P + G)/(P + G);
    an odd last frame, kept whole, counts as the extra 1/F the spec's retention formula adds for it."""
    p, g = frames // 2, len(range(0, frames - 4, 4))
    if p + g == 0:
        return 1.0
    return min(1.0, max(0.0, (r_video * frames - (frames - p) + g) / (p + g)))


def _least_similar(frame: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (sorted) of the ``k`` tokens of ``frame`` least cosine-similar to the same position in ``ref``;
    ties go to the lower index."""
    sim = torch.nn.functional.cosine_similarity(frame.float(), ref.float(), dim=-1)
    order = torch.argsort(sim, stable=True)  # ascending: least similar first, stable on ties
    return order[:k].sort().values


def dycoke_ttm(features: torch.Tensor, tokens_per_grid: int, q: float) -> torch.Tensor:
    """Kept indices (ascending) of ``features`` [F * n, d] (F temporal grids of n tokens, grid-major).

    Pass 1: in each pair (i, i+1), i even, frame i stays whole and frame i+1 keeps its floor(q n) tokens least
    similar to frame i. Pass 2: for i in range(0, F-4, 4), frame i+2 keeps its floor(q n) tokens least similar to
    frame i. An odd last frame stays whole (the authors' code drops it)."""
    n = int(tokens_per_grid)
    if n < 1 or features.shape[0] % n:
        raise ValueError(f"{features.shape[0]} video tokens are not whole grids of {n}")
    frames = features.shape[0] // n
    k = math.floor(q * n)
    grids = features.reshape(frames, n, -1)
    kept: dict[int, torch.Tensor] = {f: torch.arange(n) for f in range(frames)}
    for i in range(0, frames - 1, 2):
        kept[i + 1] = _least_similar(grids[i + 1], grids[i], k)
    for i in range(0, frames - 4, 4):
        kept[i + 2] = _least_similar(grids[i + 2], grids[i], k)
    return torch.cat([kept[f].to(features.device) + f * n for f in range(frames)])
