"""OmniZip (KD-TAO/OmniZip ``omnizip_core.py``, SEATS_SPEC §10.6), pure tensors: audio-guided token selection
before the LLM.

1. Audio: the top tokens by whole-clip audio attention stay; evenly spaced anchors among the rest each absorb
   their ``g`` best-scoring assigned tokens (score: the token's largest cosine similarity to any video token),
   weighted by a softmax of those scores; every other audio token goes.
2. Each time chunk's video pruning ratio follows how much of its audio survived (little audio kept -> more
   video kept), clipped to ``bounds``; with more than two chunks the ratios are renormalised once towards the
   overall video budget.
3. Per video chunk, grid by grid (ISTC): even grids keep their DPC-kNN cluster centres, odd grids the tokens least
   similar to the same position in the grid before. Video is pruned, never merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CONTEXTUAL_RATIO = 0.05
MERGE_TOP_G = 3
BOUNDS = (0.35, 0.75)  # guided video *pruning* ratios: retention in [0.25, 0.65]
DPC_NEIGHBOURS = 5


def _top(scores: torch.Tensor, k: int, *, largest: bool = True) -> torch.Tensor:
    """Indices of the ``k`` largest (smallest) scores, ties to the lower index (torch.topk leaves them open)."""
    return torch.argsort(scores, descending=largest, stable=True)[:k]


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows divided by (norm + 1e-6), as the authors' audio code."""
    x = x.float()
    return x / (x.norm(dim=-1, keepdim=True) + 1e-6)


@dataclass(frozen=True)
class AudioSelection:
    keep: torch.Tensor  # (N,) bool
    anchors: torch.Tensor  # local indices of the anchors that merged something
    merged: torch.Tensor  # their new embeddings (anchors.numel(), d), the input dtype


def audio_select(audio: torch.Tensor, video: torch.Tensor | None, saliency: torch.Tensor, rho_a: float,
                 c: float = CONTEXTUAL_RATIO, g: int = MERGE_TOP_G) -> AudioSelection:
    """Step 1 on the audio tokens' LLM embeddings ``audio`` (N, d); ``rho_a`` is the *merging* (dropped) ratio.

    dom = round((1 - rho_a) N) top tokens by ``saliency``; ctx = min(round(c N), #rest) anchors at local steps
    max(1, #rest // ctx) among the rest (index order); each other token joins its most cosine-similar anchor; an
    anchor merges its top-min(g, #joined) by score with w = softmax(scores):
    anchor := (anchor + sum w_i a_i) / (1 + sum w_i)."""
    n = audio.shape[0]
    keep = torch.zeros(n, dtype=torch.bool)
    empty = AudioSelection(keep, torch.zeros(0, dtype=torch.long), audio[:0])
    if n == 0:
        return empty
    dom = int(max(0, min(n, round((1.0 - rho_a) * n))))
    keep[_top(saliency.float().cpu(), dom)] = True
    rest = torch.nonzero(~keep).flatten()
    ctx = int(max(0, round(c * n)))
    if rest.numel() == 0 or ctx == 0 or g <= 0:
        return AudioSelection(keep, empty.anchors, empty.merged)
    ctx = min(ctx, rest.numel())
    step = max(1, rest.numel() // ctx)
    at = torch.arange(0, rest.numel(), step)[:ctx]
    anchors = rest[at]
    keep[anchors] = True
    pool_mask = torch.ones(rest.numel(), dtype=torch.bool)
    pool_mask[at] = False
    pool = rest[pool_mask]
    if pool.numel() == 0:
        return AudioSelection(keep, empty.anchors, empty.merged)
    dev = audio.device
    a = _unit(audio)
    sim = a[pool.to(dev)] @ a[anchors.to(dev)].T
    assign = sim.argmax(dim=1).cpu()  # first maximum on ties
    if video is not None and video.shape[0]:
        scores = (a[pool.to(dev)] @ _unit(video).T).max(dim=1).values.cpu()
    else:  # no video: the similarity to the own anchor
        scores = sim.max(dim=1).values.cpu()
    out_anchor, out_vec = [], []
    for j in range(anchors.numel()):
        members = torch.nonzero(assign == j).flatten()
        if members.numel() == 0:
            continue
        chosen = members[_top(scores[members], min(g, members.numel()))]
        w = torch.softmax(scores[chosen], dim=0).to(dev)
        total = (audio[pool[chosen].to(dev)].float() * w[:, None]).sum(dim=0)
        out_anchor.append(anchors[j])
        out_vec.append(((audio[anchors[j]].float() + total) / (1.0 + w.sum())).to(audio.dtype))
    if not out_anchor:
        return AudioSelection(keep, empty.anchors, empty.merged)
    return AudioSelection(keep, torch.stack(out_anchor), torch.stack(out_vec))


def group_ratios(video_sizes: list[int], audio_retention: list[float], rho_v: float,
                 bounds: tuple[float, float] = BOUNDS) -> list[float]:
    """Step 2: the video pruning ratio of every video chunk. The first G = len(audio_retention) chunks are
    guided: m_i = clip(hi + (lo - hi) r_i, lo, hi); the others use ``rho_v`` as is. With G > 2 the guided ratios
    are renormalised once towards D* = rho_v x (all video) - rho_v x (unguided video): the first argmin and
    argmax stay, the others are scaled and clipped, then shifted by the residual per token and clipped again."""
    lo, hi = bounds
    n_guided = len(audio_retention)
    base = [max(lo, min(hi, hi + (lo - hi) * r)) for r in audio_retention]
    sizes = video_sizes[:n_guided]
    out = list(base)
    guided_tokens = sum(sizes)
    target = rho_v * sum(video_sizes) - rho_v * sum(video_sizes[n_guided:])
    if n_guided > 2 and guided_tokens > 0:
        base_discard = sum(m * s for m, s in zip(base, sizes))
        if abs(base_discard - target) > 1e-3 and base_discard > 0:
            i_min, i_max = base.index(min(base)), base.index(max(base))
            fixed_idx = {i_min, i_max}  # one group when all ratios are equal (the authors' code counts it twice)
            others = [i for i in range(n_guided) if i not in fixed_idx]
            other_discard = sum(base[i] * sizes[i] for i in others)
            if others and other_discard > 0:
                fixed = sum(base[i] * sizes[i] for i in fixed_idx)
                scale = (target - fixed) / other_discard
                for i in others:
                    out[i] = max(lo, min(hi, base[i] * scale))
                diff = target - sum(m * s for m, s in zip(out, sizes))
                if abs(diff) > 1e-3:
                    per_token = diff / sum(sizes[i] for i in others)
                    for i in others:
                        out[i] = max(lo, min(hi, out[i] + per_token))
    return out + [rho_v] * (len(video_sizes) - n_guided)


def dpc_knn_centres(tokens: torch.Tensor, keep: int, k: int = DPC_NEIGHBOURS) -> torch.Tensor:
    """The ``keep`` tokens with the largest rho x delta (sorted): distance 1 - cos (diagonal infinite);
    rho = exp(-mean of the k nearest distances); delta = the distance to the nearest strictly denser token (the
    densest: its largest distance)."""
    n = tokens.shape[0]
    if keep >= n:
        return torch.arange(n)
    if keep <= 0:
        return torch.zeros(0, dtype=torch.long)
    k = min(k, n - 1)
    x = F.normalize(tokens.float(), dim=1)
    dist = 1 - x @ x.T
    dist.fill_diagonal_(float("inf"))
    rho = torch.exp(-torch.topk(dist, k, dim=1, largest=False).values.mean(dim=1))
    denser = rho[None, :] > rho[:, None]  # [i, j]: j is denser than i
    delta = torch.where(denser, dist, torch.full_like(dist, float("inf"))).min(dim=1).values
    peak = torch.isinf(delta)
    if peak.any():
        finite = dist.clone()
        finite.fill_diagonal_(0)
        delta[peak] = finite[peak].max(dim=1).values
    return _top((delta * rho).cpu(), keep).sort().values


def istc(video: torch.Tensor, tokens_per_grid: int, m: float) -> torch.Tensor:
    """Step 3 on one video chunk (L, d): kept local indices, ascending. frames = L // n (0: the chunk is kept
    whole; tokens past frames x n are dropped); each grid keeps int(n (1 - m)) tokens: even local grids their
    DPC-kNN centres, odd ones the tokens least cosine-similar to the same position in the previous grid."""
    n = tokens_per_grid
    frames = video.shape[0] // n
    if frames == 0:
        return torch.arange(video.shape[0])
    keep = int(n * (1.0 - m))
    out = []
    for t in range(frames):
        grid = video[t * n:(t + 1) * n]
        if keep >= n:
            idx = torch.arange(n)
        elif t % 2 == 0:
            idx = dpc_knn_centres(grid, keep)
        else:
            prev = video[(t - 1) * n:t * n]
            sim = F.cosine_similarity(F.normalize(grid.float(), dim=1), F.normalize(prev.float(), dim=1), dim=1)
            idx = _top(sim.cpu(), keep, largest=False).sort().values
        out.append(idx + t * n)
    return torch.cat(out)


def runs(positions: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal runs of consecutive sequence positions, as (start, end) offsets into ``positions``."""
    if positions.numel() == 0:
        return []
    cuts = (torch.nonzero(positions[1:] - positions[:-1] > 1).flatten() + 1).tolist()
    bounds = [0] + cuts + [positions.numel()]
    return list(zip(bounds[:-1], bounds[1:]))
