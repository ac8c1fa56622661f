"""FastVID (LunarShen/FastVID, Qwen2.5-VL fork; SEATS_SPEC §10.8), pure tensors: video tokens selected and merged
before the LLM.

1. DySeg: grids are cut into segments where adjacent grids' mean embeddings differ most (the c - 1 least similar
   transitions, and every transition below tau).
2. Each segment gets floor(n r) tokens per grid, a share d of them contextual; inside a segment only the last grid
   of each static sub-segment (cut where similarity < tau_ign) keeps tokens.
3. STPrune on a budgeted grid: its salient tokens by the frame-query attention, then context centres by DPC-kNN
   over the grid's other tokens.
4. DTM: every other token of the segment is averaged into its most similar centre (centre weight
   max(1 / (count + 1), beta)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# defaults of the authors' eval.sh (r is replaced by the request's video ratio)
SEGMENTS_C = 8
TAU = 0.84
TAU_IGNORE = 0.95
CONTEXT_SHARE_D = 0.4
CONTEXT_EVERY_P = 4
CENTRE_WEIGHT_BETA = 0.6
DPC_NEIGHBOURS = 4


def _top(scores: torch.Tensor, k: int, *, largest: bool = True) -> torch.Tensor:
    return torch.argsort(scores, descending=largest, stable=True)[:k]


def _sizes(cuts: list[int], frames: int) -> list[int]:
    """Segment lengths when a segment ends after each (sorted, unique) grid index in ``cuts``."""
    ends = [c + 1 for c in cuts] + [frames]
    return [e - s for s, e in zip([0] + ends[:-1], ends)]


def transitions(grid_means: torch.Tensor) -> torch.Tensor:
    """s_t = g_t . g_{t+1} of the grids' normalised mean embeddings (F, D) -> (F - 1,)."""
    g = grid_means.float()
    g = g / g.norm(dim=-1, keepdim=True)
    return (g[:-1] * g[1:]).sum(dim=-1)


def dyseg(sims: torch.Tensor, c: int = SEGMENTS_C, tau: float = TAU) -> list[int]:
    """Segment lengths from the F - 1 transition similarities: cuts after the min(c - 1, F - 1) least similar
    transitions (ties: the lower index) and after every one below ``tau``."""
    frames = sims.numel() + 1
    cuts = set(_top(sims.cpu(), min(c - 1, frames - 1), largest=False).tolist())
    cuts |= set(torch.nonzero(sims.cpu() < tau).flatten().tolist())
    return _sizes(sorted(cuts), frames)


def segment_budgets(sims: torch.Tensor, n: int, r: float, d: float = CONTEXT_SHARE_D, p: int = CONTEXT_EVERY_P,
                    tau_ignore: float = TAU_IGNORE) -> tuple[list[int], list[int]]:
    """(salient, context) counts per grid of one segment of S = sims.numel() + 1 grids (``sims``: its inner
    transitions). R_seg = floor(n r) S; ctx = max(int(R_seg d), 1); sal = R_seg - ctx (at least 0).
    S = 1: the grid gets both. Else V sub-segments (cut where s < tau_ignore): sal spread evenly (the first get
    +1), ctx spread over ceil(V / p) slots given to every p-th sub-segment counted from the end (each capped at
    n // 2); only each sub-segment's last grid keeps tokens, salient capped at n - its context."""
    size = sims.numel() + 1
    retain = int(n * r) * size
    ctx = max(int(retain * d), 1)
    sal = max(retain - ctx, 0)
    if size == 1:
        return [min(sal, n)], [min(ctx, n)]
    sub = _sizes(sorted(torch.nonzero(sims.cpu() < tau_ignore).flatten().tolist()), size)
    v = len(sub)
    sal_each = [sal // v + (1 if i < sal % v else 0) for i in range(v)]
    slots = (v + p - 1) // p
    ctx_each = [ctx // slots + (1 if i < ctx % slots else 0) for i in range(slots)]
    ctx_sub, slot = [], 0
    for i in range(v):
        if i % p == 0:
            ctx_sub.append(min(ctx_each[slot], n // 2))
            slot += 1
        else:
            ctx_sub.append(0)
    ctx_sub.reverse()
    sal_out, ctx_out = [], []
    for i, length in enumerate(sub):
        sal_out += [0] * (length - 1)
        ctx_out += [0] * (length - 1)
        k_ctx = min(ctx_sub[i], n // 2)
        ctx_out.append(k_ctx)
        sal_out.append(min(sal_each[i], n - k_ctx))
    return sal_out, ctx_out


def context_centres(tokens: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """STPrune's DPC-kNN (local indices, sorted): Euclidean distance / sqrt(D) in fp32; density = exp(-mean
    squared distance to the 4 nearest, self included) + U(0, 1e-6) from ``generator``; delta = the distance to
    the nearest denser token, else the largest distance in the set; the top ``k`` by delta x density."""
    m, dim = tokens.shape
    if k >= m:
        return torch.arange(m)
    x = tokens.float()
    dist = torch.cdist(x[None], x[None])[0] / math.sqrt(dim)
    near = torch.topk(dist, min(DPC_NEIGHBOURS, m), dim=-1, largest=False).values
    density = torch.exp(-(near ** 2).mean(dim=-1))
    density = density + torch.rand(m, generator=generator).to(density.device, density.dtype) * 1e-6
    denser = density[None, :] > density[:, None]
    delta = torch.where(denser, dist, dist.max()).min(dim=-1).values
    return _top((delta * density).cpu(), k).sort().values


@dataclass(frozen=True)
class FastVIDResult:
    keep: torch.Tensor  # local indices kept, ascending
    anchors: torch.Tensor  # context centres (local indices), their merged embeddings below
    merged: torch.Tensor


def fastvid(video: torch.Tensor, saliency: torch.Tensor, tokens_per_grid: int, r: float, *, seed: int = 0,
            c: int = SEGMENTS_C, tau: float = TAU, tau_ignore: float = TAU_IGNORE, d: float = CONTEXT_SHARE_D,
            p: int = CONTEXT_EVERY_P, beta: float = CENTRE_WEIGHT_BETA) -> FastVIDResult:
    """FastVID on the video tokens' LLM embeddings (F x n, D), grid-major, with per-token ``saliency``."""
    n = int(tokens_per_grid)
    if n < 1 or video.shape[0] % n:
        raise ValueError(f"{video.shape[0]} video tokens are not whole grids of {n}")
    frames = video.shape[0] // n
    dev = video.device
    gen = torch.Generator().manual_seed(seed)
    sims = transitions(video.reshape(frames, n, -1).float().mean(dim=1))
    sal = saliency.float().cpu().reshape(frames, n)
    keep, anchors, merged = [], [], []
    start = 0
    for length in dyseg(sims, c, tau):
        k_sal, k_ctx = segment_budgets(sims[start:start + length - 1], n, r, d, p, tau_ignore)
        salient, centres = [], []
        for f in range(length):
            t = start + f
            top = _top(sal[t], k_sal[f]) if k_sal[f] > 0 else torch.zeros(0, dtype=torch.long)
            salient.append(top + t * n)
            if k_ctx[f] > 0:
                rest_mask = torch.ones(n, dtype=torch.bool)
                rest_mask[top] = False
                rest = torch.nonzero(rest_mask).flatten()
                pick = context_centres(video[(t * n + rest).to(dev)], k_ctx[f], gen)
                centres.append(rest[pick] + t * n)
        seg = torch.arange(start * n, (start + length) * n)
        seg_salient = torch.cat(salient)
        x = video[seg.to(dev)].float()
        unit = x / x.norm(dim=-1, keepdim=True)
        for cen in centres:
            taken = torch.zeros(seg.numel(), dtype=torch.bool)
            taken[seg_salient - start * n] = True
            taken[cen - start * n] = True
            pool = torch.nonzero(~taken).flatten()
            cen_local = cen - start * n
            target = video[cen.to(dev)].float()
            if pool.numel():
                best = (unit[pool.to(dev)] @ unit[cen_local.to(dev)].T).argmax(dim=1)  # first maximum on ties
                count = torch.bincount(best, minlength=cen.numel()).to(x.dtype)
                total = torch.zeros_like(target).index_add_(0, best, x[pool.to(dev)])
                w = (1.0 / (count + 1)).clamp(min=beta)[:, None]
                target = w * target + (1 - w) * total / count.clamp(min=1)[:, None]
            anchors.append(cen)
            merged.append(target.to(video.dtype))
        keep += [seg_salient] + centres
        start += length
    kept = torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)
    if not anchors:
        return FastVIDResult(kept, torch.zeros(0, dtype=torch.long), video[:0])
    return FastVIDResult(kept, torch.cat(anchors), torch.cat(merged))
