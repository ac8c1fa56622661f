"""VisionZip's dominant + contextual selection in one window (SEATS_SPEC §10.4), pure tensors.

Dominant tokens: the top ``dom`` by the encoder's received attention. Contextual anchors: evenly spaced among the
remaining tokens in index order; every other remaining token is merged into the anchor whose encoder key it
resembles most (cosine, eps 1e-6): anchor := anchor + mean(assigned), the sum form of the authors' code.
"""

from __future__ import annotations

import torch

CONTEXTUAL_RATIO = 0.05


def visionzip_counts(w: int, rho: float, c: float = CONTEXTUAL_RATIO) -> tuple[int, int]:
    """(dominant, contextual) tokens kept of a window of ``w``: dom = max(int((rho - c) w), 1) if rho > c else 0
    (the product in float32, as the authors' 0-d tensor), capped at w; ctx = min(max(round(c w), 1), w - dom)."""
    if w <= 0:
        return 0, 0
    dom = 0
    if rho > c:
        dom = max(int((torch.tensor(rho - c, dtype=torch.float32) * w).item()), 1)
    dom = min(dom, w)
    ctx = min(max(round(c * w), 1), w - dom)
    return dom, ctx


def visionzip_window(embeds: torch.Tensor, keys: torch.Tensor, saliency: torch.Tensor, rho: float,
                     c: float = CONTEXTUAL_RATIO) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One window: (kept local indices ascending, anchor local indices, the anchors' merged embeddings)."""
    w = embeds.shape[0]
    dom, ctx = visionzip_counts(w, rho, c)
    order = torch.argsort(saliency.float(), descending=True, stable=True)  # ties: the lower index
    dominant = order[:dom]
    mask = torch.ones(w, dtype=torch.bool)
    mask[dominant.cpu()] = False
    rest = torch.nonzero(mask).flatten().to(embeds.device)  # non-dominant, index order
    if ctx == 0 or rest.numel() == 0:
        return dominant.sort().values, rest[:0], embeds[:0]
    step = max(1, rest.numel() // ctx)
    anchor_at = torch.arange(0, rest.numel(), step, device=embeds.device)[:ctx]
    anchors = rest[anchor_at]
    is_anchor = torch.zeros(rest.numel(), dtype=torch.bool, device=embeds.device)
    is_anchor[anchor_at] = True
    others = rest[~is_anchor]
    merged = embeds[anchors].clone()
    if others.numel():
        k = keys.float()
        k = k / (k.norm(dim=-1, keepdim=True) + 1e-6)  # the authors' eps (SEATS_SPEC §10.4)
        best = torch.argmax(k[others] @ k[anchors].T, dim=-1)  # most similar anchor, first on ties
        total = torch.zeros_like(merged, dtype=torch.float32).index_add_(0, best, embeds[others].float())
        count = torch.bincount(best, minlength=anchors.numel()).to(torch.float32)
        has = count > 0
        merged[has] = (embeds[anchors][has].float() + total[has] / count[has, None]).to(embeds.dtype)
    kept = torch.cat([dominant, anchors]).sort().values
    return kept, anchors, merged
