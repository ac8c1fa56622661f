"""Stage II of SEATS: windows, per-window budgets and windowed top-k (docs/METHOD.md §7 steps 2-6).

Positions are sequence positions of the current (already pruned) hidden states.
Runs are half-open ``(start, end)`` intervals. All rounding is half to even
(Python ``round`` on float64 values, like the official ``torch.round``); the
softmax and split fractions are computed in float64 (the official code uses
float32, which can differ only on exact rounding boundaries).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

__all__ = [
    "RunPair",
    "Stage2Result",
    "find_runs",
    "pair_windows",
    "window_relevance",
    "allocate_budgets",
    "select_top_in_windows",
    "stage2_select",
]

Run = tuple[int, int]


@dataclass(frozen=True)
class RunPair:
    """One temporal window: its video run and audio run (half-open positions), either may be None."""

    video: Run | None
    audio: Run | None

    def size(self, modality: Literal["video", "audio"]) -> int:
        run = self.video if modality == "video" else self.audio
        return 0 if run is None else run[1] - run[0]


@dataclass(frozen=True)
class Stage2Result:
    """Outcome of one Stage II step: kept video+audio positions (ascending) and the budgets used."""

    kept_positions: torch.Tensor
    windows: tuple[RunPair, ...]
    video_budgets: tuple[int, ...]
    audio_budgets: tuple[int, ...]


def find_runs(positions_mask: torch.Tensor) -> list[Run]:
    """Maximal runs of True in a 1-D bool mask as half-open ``(start, end)`` pairs, in order."""
    m = positions_mask.reshape(-1).to(torch.int8).cpu()
    if m.numel() == 0:
        return []
    padded = torch.cat([torch.zeros(1, dtype=torch.int8), m, torch.zeros(1, dtype=torch.int8)])
    edges = torch.diff(padded)
    starts = (edges == 1).nonzero().flatten().tolist()
    ends = (edges == -1).nonzero().flatten().tolist()
    return list(zip(starts, ends))


def pair_windows(video_mask: torch.Tensor, audio_mask: torch.Tensor) -> list[RunPair]:
    """Pair the i-th video run with the i-th audio run (docs/METHOD.md §7).

    Order (as the official code): the paired windows, then the surplus video runs as
    video-only windows, then the surplus audio runs as audio-only windows.
    """
    v_runs, a_runs = find_runs(video_mask), find_runs(audio_mask)
    n = min(len(v_runs), len(a_runs))
    windows = [RunPair(v_runs[i], a_runs[i]) for i in range(n)]
    windows += [RunPair(r, None) for r in v_runs[n:]]
    windows += [RunPair(None, r) for r in a_runs[n:]]
    return windows


def window_relevance(scores: torch.Tensor, windows: Sequence[RunPair],
                     modality: Literal["video", "audio"]) -> torch.Tensor:
    """Mean score over each window's run of ``modality`` (0 where absent), float64 ``[W]``."""
    if modality not in ("video", "audio"):
        raise ValueError(f"modality must be 'video' or 'audio', got {modality!r}")
    s = scores.reshape(-1).double().cpu()
    csum = torch.cat([torch.zeros(1, dtype=torch.float64), s.cumsum(0)])
    out = torch.zeros(len(windows), dtype=torch.float64)
    runs = [(i, w.video if modality == "video" else w.audio) for i, w in enumerate(windows)]
    runs = [(i, run) for i, run in runs if run is not None and run[1] > run[0]]
    if runs:  # one vectorised gather instead of a tensor op per window (same float64 arithmetic)
        index, bounds = torch.tensor([i for i, _ in runs]), torch.tensor([run for _, run in runs])
        start, end = bounds[:, 0], bounds[:, 1]
        out[index] = (csum[end] - csum[start]) / (end - start).double()
    return out


def _fix_total(budget: list[int], caps: list[int], total: int) -> None:
    """Move sum(budget) to ``total`` one token at a time, in place (docs/METHOD.md §7).

    Over: take one from the largest budget > 1; under: give one to the smallest budget
    below its cap; ties go to the first index. Stops when no window is eligible.
    """
    diff = sum(budget) - total
    if diff > 0:
        heap = [(-b, i) for i, b in enumerate(budget) if b > 1]
        heapq.heapify(heap)
        while diff > 0 and heap:
            _, i = heapq.heappop(heap)
            budget[i] -= 1
            diff -= 1
            if budget[i] > 1:
                heapq.heappush(heap, (-budget[i], i))
    elif diff < 0:
        heap = [(b, i) for i, b in enumerate(budget) if b < caps[i]]
        heapq.heapify(heap)
        while diff < 0 and heap:
            _, i = heapq.heappop(heap)
            budget[i] += 1
            diff += 1
            if budget[i] < caps[i]:
                heapq.heappush(heap, (budget[i], i))


def allocate_budgets(
    rel_video: torch.Tensor,
    rel_audio: torch.Tensor,
    n_video: Sequence[int],
    n_audio: Sequence[int],
    k_video: int,
    k_audio: int,
    tau: float,
    *,
    rebalance: bool = False,
) -> tuple[list[int], list[int]]:
    """Per-window (video, audio) budgets, docs/METHOD.md §7 steps 3-5.

    p^m = softmax over all W windows of ``rel_m / tau`` (windows lacking modality m
    take part with relevance 0, as in the official code); K = k_video + k_audio;
    B_w = max(1, round(K*(p^v_w + p^a_w)/2)) capped at |V_w|+|A_w|, then the total is
    fixed to K one token at a time; split f_w = p^v K_v / (p^v K_v + p^a K_a) (if the
    denominator is 0: |V_w|/(|V_w|+|A_w|)), vb = min(round(B_w f_w), |V_w|),
    ab = min(B_w - vb, |A_w|), leftover to video then audio; a present modality with
    0 tokens gets 1, taken from the other modality when it has > 1 (official rule).

    That last rule can leave a window with B_w = 1 and both modalities at 2 tokens.
    With ``rebalance=True`` (option ``stage2_rebalance``, beyond the official code) each such surplus token
    is taken back from the window with the largest total having a modality > 1 (first
    index on ties; from its larger modality, video on ties), so the total is exactly K
    whenever #(window, present modality) pairs <= K <= total tokens.
    ``rebalance=False`` (default) reproduces the official arithmetic.
    """
    W = len(n_video)
    if len(n_audio) != W or rel_video.numel() != W or rel_audio.numel() != W:
        raise ValueError("rel_video, rel_audio, n_video and n_audio must all have one entry per window")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if k_video < 0 or k_audio < 0:
        raise ValueError(f"budgets must be >= 0, got k_video={k_video}, k_audio={k_audio}")
    if W == 0:
        return [], []
    nv = [int(x) for x in n_video]
    na = [int(x) for x in n_audio]
    p_v = torch.softmax(rel_video.reshape(-1).double().cpu() / tau, dim=0).tolist()
    p_a = torch.softmax(rel_audio.reshape(-1).double().cpu() / tau, dim=0).tolist()
    K = k_video + k_audio
    caps = [v + a for v, a in zip(nv, na)]
    budget = [min(max(1, round(K * (p_v[w] + p_a[w]) / 2)), caps[w]) for w in range(W)]
    _fix_total(budget, caps, K)

    vb, ab = [0] * W, [0] * W
    for w in range(W):
        b = budget[w]
        den = p_v[w] * k_video + p_a[w] * k_audio
        f = p_v[w] * k_video / den if den > 0 else (nv[w] / caps[w] if caps[w] else 0.0)
        v = min(round(b * f), nv[w])
        a = min(max(b - v, 0), na[w])
        rem = b - v - a
        extra_v = min(max(rem, 0), nv[w] - v)
        v += extra_v
        a += min(max(rem - extra_v, 0), na[w] - a)
        if nv[w] > 0 and v < 1:
            v = 1
            if a > 1:
                a = max(1, min(na[w], b - v))
        if na[w] > 0 and a < 1:
            a = 1
            if v > 1:
                v = max(1, min(nv[w], b - a))
        vb[w], ab[w] = v, a

    if rebalance:
        surplus = sum(vb) + sum(ab) - K
        while surplus > 0:
            best = -1
            for w in range(W):
                if (vb[w] > 1 or ab[w] > 1) and (best < 0 or vb[w] + ab[w] > vb[best] + ab[best]):
                    best = w
            if best < 0:
                break
            if vb[best] >= ab[best]:
                vb[best] -= 1
            else:
                ab[best] -= 1
            surplus -= 1
    return vb, ab


def select_top_in_windows(
    scores: torch.Tensor,
    windows: Sequence[RunPair],
    video_budgets: Sequence[int],
    audio_budgets: Sequence[int],
) -> torch.Tensor:
    """Keep, per window, the top-``vb`` video and top-``ab`` audio positions by score.

    Ties in score go to the lower position (stable sort). Returns the kept positions
    (video and audio only), ascending. Vectorised: one group id per run, a stable sort
    by score then by group, and the rank inside each group compared with its budget.
    """
    if len(video_budgets) != len(windows) or len(audio_budgets) != len(windows):
        raise ValueError("need one video and one audio budget per window")
    s = scores.reshape(-1)
    device = s.device
    starts, lengths, group_budget = [], [], []
    for w, (win, bv, ba) in enumerate(zip(windows, video_budgets, audio_budgets)):
        for run, b in ((win.video, bv), (win.audio, ba)):
            if run is not None and run[1] > run[0]:
                starts.append(run[0])
                lengths.append(run[1] - run[0])
                group_budget.append(int(b))
    if not starts:
        return torch.zeros(0, dtype=torch.long, device=device)
    lengths_t = torch.tensor(lengths, dtype=torch.long, device=device)
    n_groups = len(starts)
    group_of = torch.repeat_interleave(torch.arange(n_groups, device=device), lengths_t)
    group_start = torch.cumsum(lengths_t, 0) - lengths_t  # offset of each group in the flat list
    offset_in_group = torch.arange(group_of.numel(), device=device) - group_start[group_of]
    positions = torch.tensor(starts, dtype=torch.long, device=device)[group_of] + offset_in_group

    by_score = torch.argsort(s[positions], descending=True, stable=True)
    by_group = torch.argsort(group_of[by_score], stable=True)
    order = by_score[by_group]  # grouped, each group sorted by score desc
    rank = torch.arange(order.numel(), device=device) - group_start[group_of[order]]
    budgets_t = torch.tensor(group_budget, dtype=torch.long, device=device)
    keep = rank < budgets_t[group_of[order]]
    return positions[order[keep]].sort().values


def _global_top(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the top-``k`` scores among ``mask`` (ties → lower position), unsorted."""
    pos = mask.nonzero().flatten()
    order = torch.argsort(scores.reshape(-1)[pos], descending=True, stable=True)
    return pos[order[: max(0, min(k, pos.numel()))]]


def stage2_select(
    scores: torch.Tensor,
    video_mask: torch.Tensor,
    audio_mask: torch.Tensor,
    k_video: int,
    k_audio: int,
    tau: float,
    *,
    rebalance: bool = False,
) -> Stage2Result:
    """One Stage II selection step (docs/METHOD.md §7 steps 2-6).

    With more than one window and both modalities present, budgets come from
    :func:`allocate_budgets` on the window relevances; otherwise the global top
    ``k_video`` video / ``k_audio`` audio positions are kept (clipped to the counts) and
    the budgets reported are the numbers kept per window. Deterministic: score ties go
    to the lower position.
    """
    v_mask = video_mask.reshape(-1).bool()
    a_mask = audio_mask.reshape(-1).bool()
    if not (scores.numel() == v_mask.numel() == a_mask.numel()):
        raise ValueError("scores, video_mask and audio_mask must have the same length")
    if bool((v_mask & a_mask).any()):
        raise ValueError("a position cannot be both video and audio")
    windows = pair_windows(v_mask, a_mask)
    n_v = [w.size("video") for w in windows]
    n_a = [w.size("audio") for w in windows]
    if len(windows) > 1 and sum(n_v) > 0 and sum(n_a) > 0:
        vb, ab = allocate_budgets(
            window_relevance(scores, windows, "video"), window_relevance(scores, windows, "audio"),
            n_v, n_a, k_video, k_audio, tau, rebalance=rebalance,
        )
        kept = select_top_in_windows(scores, windows, vb, ab)
    else:
        if k_video < 0 or k_audio < 0:
            raise ValueError(f"budgets must be >= 0, got k_video={k_video}, k_audio={k_audio}")
        kv = _global_top(scores, v_mask, k_video)
        ka = _global_top(scores, a_mask, k_audio)
        kept = torch.cat([kv, ka]).sort().values
        kept_cpu = kept.cpu()
        vb = [int(((kept_cpu >= w.video[0]) & (kept_cpu < w.video[1])).sum()) if w.video else 0 for w in windows]
        ab = [int(((kept_cpu >= w.audio[0]) & (kept_cpu < w.audio[1])).sum()) if w.audio else 0 for w in windows]
    return Stage2Result(kept, tuple(windows), tuple(vb), tuple(ab))
