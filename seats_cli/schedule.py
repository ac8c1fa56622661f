"""Retention-ratio arithmetic of SEATS (SEATS_SPEC §2, §3, §8).

Everything here is plain numbers in, plain numbers out: resolving an overall
token retention ratio (TRR) into per-modality targets, the block-wise decay
schedule that Stage II applies inside the LLM, and the integer token counts the
schedule produces for a concrete request.

Rounding is Python's built-in :func:`round` (half to even) everywhere, which is
what the official code's ``round``/``torch.round`` do; e.g. ``round(0.49 * 50)``
is 24, not 25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "ModalityRatios",
    "ModalitySchedule",
    "resolve_modality_ratios",
    "modality_schedule",
    "schedule_mean",
    "stage1_window_keep",
    "step_keep",
    "per_layer_counts",
    "validate_boundaries",
]


def _check_ratio(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must satisfy 0 < {name} <= 1, got {value!r}")
    return value


# --------------------------------------------------------------------------- §8
@dataclass(frozen=True)
class ModalityRatios:
    """Per-modality retention targets (R_v, R_a)."""

    video: float
    audio: float


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation of (xs, ys) at x, clamped at both ends (xs sorted)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            if x1 == x0:
                return y1
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _solve_other(trr: float, n_known: int, r_known: float, n_other: int) -> float:
    """Ratio of the other modality such that r_known*n_known + r*n_other = trr*(n_known+n_other)."""
    return (trr * (n_known + n_other) - r_known * n_known) / n_other


def resolve_modality_ratios(
    trr: float,
    n_video: int,
    n_audio: int,
    table: Sequence[tuple[float, float, float]],
    video_trr: float | None = None,
    audio_trr: float | None = None,
) -> ModalityRatios:
    """Split an overall TRR into per-modality targets (R_v, R_a) for one request.

    ``table`` rows are ``(R, R_v, R_a)`` in any order (the model's official pairs).
    R_a is the table's R_a linearly interpolated in R (clamped at the table's ends);
    R_v is then solved from the real token counts so that
    ``R_v*n_video + R_a*n_audio == trr*(n_video + n_audio)``.

    Clamping (spec: "clamp to (0, 1] and re-solve R_a"): the lower floor of a solved
    ratio is ``1/n`` of that modality (one token's worth, capped at 1). If the
    solved R_v leaves ``[1/n_video, 1]`` it is clamped there and R_a re-solved and
    clamped to ``[1/n_audio, 1]``; only in that double-clamp case can the overall
    ratio differ from ``trr`` (e.g. when ``trr*(n_v+n_a) < 2``).

    Special cases: ``n_audio == 0`` → R_v = trr, R_a = table value (irrelevant);
    ``n_video == 0`` → R_a = trr, R_v = table value; both 0 → both = trr.
    Overrides: ``video_trr``/``audio_trr`` are used as given; if only one is given
    the other is solved from ``trr`` as above (clamped, explicit value untouched).
    """
    trr = _check_ratio("trr", trr)
    if video_trr is not None:
        video_trr = _check_ratio("video_trr", video_trr)
    if audio_trr is not None:
        audio_trr = _check_ratio("audio_trr", audio_trr)
    if n_video < 0 or n_audio < 0:
        raise ValueError(f"token counts must be >= 0, got n_video={n_video}, n_audio={n_audio}")
    rows = sorted((float(r), float(rv), float(ra)) for r, rv, ra in table)
    if not rows:
        raise ValueError("ratio table must have at least one (R, R_v, R_a) row")
    for row in rows:
        for name, v in zip(("R", "R_v", "R_a"), row):
            _check_ratio(f"table {name}", v)
    xs = [r for r, _, _ in rows]
    table_v = _interp(trr, xs, [rv for _, rv, _ in rows])
    table_a = _interp(trr, xs, [ra for _, _, ra in rows])

    def floor(n: int) -> float:  # one token's worth of the modality
        return min(1.0, 1.0 / n)

    def clamp(x: float, n: int) -> float:
        return min(1.0, max(floor(n), x))

    if video_trr is not None and audio_trr is not None:
        return ModalityRatios(video_trr, audio_trr)
    if n_video == 0 and n_audio == 0:
        return ModalityRatios(video_trr or trr, audio_trr or trr)
    if video_trr is not None:
        if n_audio == 0:
            return ModalityRatios(video_trr, table_a)
        return ModalityRatios(video_trr, clamp(_solve_other(trr, n_video, video_trr, n_audio), n_audio))
    if audio_trr is not None:
        if n_video == 0:
            return ModalityRatios(table_v, audio_trr)
        return ModalityRatios(clamp(_solve_other(trr, n_audio, audio_trr, n_video), n_video), audio_trr)
    if n_audio == 0:
        return ModalityRatios(trr, table_a)
    if n_video == 0:
        return ModalityRatios(table_v, trr)
    r_a = table_a
    r_v = _solve_other(trr, n_audio, r_a, n_video)
    if not (floor(n_video) <= r_v <= 1.0):
        r_v = clamp(r_v, n_video)
        r_a = clamp(_solve_other(trr, n_video, r_v, n_audio), n_audio)
    return ModalityRatios(r_v, r_a)


# --------------------------------------------------------------------------- §3
def validate_boundaries(num_layers: int, prune_before: Sequence[int], text_only_from: int) -> None:
    """Raise ValueError unless 0 < prune_before[0] < ... < text_only_from <= num_layers."""
    pb = list(prune_before)
    if num_layers <= 0:
        raise ValueError(f"num_layers must be positive, got {num_layers}")
    if not (0 < text_only_from <= num_layers):
        raise ValueError(f"text_only_from must be in (0, num_layers={num_layers}], got {text_only_from}")
    if pb and pb[0] <= 0:
        raise ValueError(f"prune_before must start after layer 0, got {pb}")
    if any(b <= a for a, b in zip(pb, pb[1:])):
        raise ValueError(f"prune_before must be strictly increasing, got {pb}")
    if pb and pb[-1] >= text_only_from:
        raise ValueError(f"prune_before {pb} must all be < text_only_from={text_only_from}")


def schedule_mean(levels: Sequence[float], *, num_layers: int, prune_before: Sequence[int], text_only_from: int) -> float:
    """Layer-mean of a level sequence: level i holds on [bound_i, bound_{i+1}), 0 from text_only_from."""
    bounds = [0, *prune_before, text_only_from]
    if len(levels) != len(bounds) - 1:
        raise ValueError(f"need {len(bounds) - 1} levels, got {len(levels)}")
    total = sum(lv * (bounds[i + 1] - bounds[i]) for i, lv in enumerate(levels))
    return total / num_layers


@dataclass(frozen=True)
class ModalitySchedule:
    """Block-wise decay schedule of one modality (fractions of its original token count).

    ``levels[i]`` is the fraction present in block i (``levels[0] == rho`` is the
    Stage I ratio), ``keep_ratios[i] = levels[i+1]/levels[i]`` (0 when
    ``levels[i] == 0``) is applied at ``prune_before[i]``, and ``mean_retention``
    is the achieved layer-mean of ``levels`` (equals ``target`` unless the target
    is unreachable, see :func:`modality_schedule`).
    """

    target: float
    rho: float
    delta: float
    levels: tuple[float, ...]
    keep_ratios: tuple[float, ...]
    mean_retention: float


def _levels(rho: float, delta: float, n_steps: int, growth: float, clamp: bool) -> list[float]:
    levels = [rho]
    for i in range(n_steps):
        nxt = levels[-1] - delta * growth**i
        levels.append(max(0.0, nxt) if clamp else nxt)
    return levels


def modality_schedule(
    r_m: float,
    *,
    num_layers: int,
    prune_before: Sequence[int],
    text_only_from: int,
    encoder_ratio_scale: float = 1.4,
    growth: float = math.e,
) -> ModalitySchedule:
    """Solve the block-wise TRR decay schedule of one modality (SEATS_SPEC §3).

    rho = min(1, encoder_ratio_scale*r_m); N_0 = rho, N_{i+1} = N_i - delta*growth**i,
    and delta solves ``T*N_0 - delta*C = r_m*L`` with
    ``C = sum_i growth**i * (T - prune_before[i])`` (T = text_only_from, L = num_layers);
    uncapped this is delta = r_m*(lambda*T - L)/C.

    Edge cases (choices where the spec is silent, following the official scheduler):
    - if the closed form makes a level negative, levels are clamped at 0 (cumulatively)
      and delta is found by bisection so the clamped layer-mean equals r_m (|err| < 1e-9);
    - if r_m is not reachable without growing levels (rho*T/L < r_m, e.g. r_m > T/L
      when rho = 1), delta = 0 and ``mean_retention`` reports the achieved rho*T/L;
    - if r_m is below what clamping can reach (rho*prune_before[0]/L), delta = rho
      (all later levels 0) and ``mean_retention`` reports that value;
    - an empty prune_before gives levels (rho,), no keep ratios.
    """
    r_m = _check_ratio("r_m", r_m)
    if not encoder_ratio_scale > 0 or not growth > 0:
        raise ValueError("encoder_ratio_scale and growth must be positive")
    validate_boundaries(num_layers, prune_before, text_only_from)
    pb, n, L, T = list(prune_before), len(prune_before), num_layers, text_only_from
    rho = min(1.0, encoder_ratio_scale * r_m)

    def mean(levels: Sequence[float]) -> float:
        return schedule_mean(levels, num_layers=L, prune_before=pb, text_only_from=T)

    c = sum(growth**i * (T - b) for i, b in enumerate(pb))
    delta = max(0.0, (T * rho - r_m * L) / c) if n else 0.0
    levels = _levels(rho, delta, n, growth, clamp=False)
    if min(levels) < 0.0:
        lo, hi = 0.0, rho  # at delta = rho, N_1 = 0 and everything after it is 0
        if mean(_levels(rho, hi, n, growth, clamp=True)) >= r_m:
            delta = hi
        else:
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mean(_levels(rho, mid, n, growth, clamp=True)) > r_m:
                    lo = mid
                else:
                    hi = mid
                if hi - lo < 1e-15:
                    break
            delta = 0.5 * (lo + hi)
        levels = _levels(rho, delta, n, growth, clamp=True)
    keep = [levels[i + 1] / levels[i] if levels[i] > 0.0 else 0.0 for i in range(n)]
    return ModalitySchedule(target=r_m, rho=rho, delta=delta, levels=tuple(levels),
                            keep_ratios=tuple(keep), mean_retention=mean(levels))


# ------------------------------------------------------------------ integer counts
def stage1_window_keep(w: int, rho: float) -> int:
    """Tokens Stage I keeps of a window of ``w`` tokens: max(1, min(w, round(rho*w))); 0 if w == 0."""
    if w < 0:
        raise ValueError(f"window size must be >= 0, got {w}")
    if w == 0:
        return 0
    return max(1, min(w, round(rho * w)))


def step_keep(n_current: int, keep_ratio: float) -> int:
    """Tokens kept at one Stage II step: max(1, round(keep_ratio*n_current)); 0 if n_current <= 0."""
    if n_current <= 0:
        return 0
    return max(1, round(keep_ratio * n_current))


def per_layer_counts(
    n_stage1: int,
    keep_ratios: Sequence[float],
    *,
    num_layers: int,
    prune_before: Sequence[int],
    text_only_from: int,
) -> list[int]:
    """Count of one modality entering each layer (length num_layers).

    Starts at ``n_stage1``, applies :func:`step_keep` with ``keep_ratios[i]`` at layer
    ``prune_before[i]`` and is 0 from ``text_only_from`` on.
    """
    validate_boundaries(num_layers, prune_before, text_only_from)
    if len(keep_ratios) != len(prune_before):
        raise ValueError(f"need {len(prune_before)} keep ratios, got {len(keep_ratios)}")
    steps = dict(zip(prune_before, keep_ratios))
    counts: list[int] = []
    n = int(n_stage1)
    for layer in range(num_layers):
        if layer >= text_only_from:
            n = 0
        elif layer in steps:
            n = step_keep(n, steps[layer])
        counts.append(n)
    return counts
