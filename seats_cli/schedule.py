"""Retention-ratio arithmetic of SEATS (docs/METHOD.md §4–6).

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

from seats_cli.choices import RATIO_MODES

__all__ = [
    "ModalityRatios",
    "ModalitySchedule",
    "RATIO_MODES",
    "resolve_modality_ratios",
    "table_pair",
    "exact_pair",
    "token_weighted",
    "achieved_retention",
    "fixed_windows",
    "audio_intact_reallocate",
    "fastv_setting_ratio",
    "fastv_keep_counts",
    "random_keep_count",
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




def _table_rows(table: Sequence[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The table's ``(R, R_v, R_a)`` rows, checked, ordered by decreasing nominal R."""
    rows = sorted(((float(r), float(rv), float(ra)) for r, rv, ra in table), reverse=True)
    if not rows:
        raise ValueError("ratio table must have at least one (R, R_v, R_a) row")
    for row in rows:
        for name, v in zip(("R", "R_v", "R_a"), row):
            _check_ratio(f"table {name}", v)
    if len({r for r, _, _ in rows}) != len(rows):
        raise ValueError("ratio table has two rows with the same R")
    return rows


def table_pair(trr: float, table: Sequence[tuple[float, float, float]]) -> ModalityRatios:
    """The official pair for an overall R (``ratio_mode: table``).

    A row's label gives its pair; between two rows both components are interpolated linearly in R; above
    the first row (below the last) the nearest row is scaled by R/R_row, each component capped at 1.
    R = 1 means no pruning: (1, 1).
    """
    trr = _check_ratio("trr", trr)
    if trr >= 1.0:
        return ModalityRatios(1.0, 1.0)
    rows = _table_rows(table)
    for (r_hi, v_hi, a_hi), (r_lo, v_lo, a_lo) in zip(rows, rows[1:]):
        if r_lo <= trr <= r_hi:
            t = (trr - r_lo) / (r_hi - r_lo)
            return ModalityRatios(v_lo + t * (v_hi - v_lo), a_lo + t * (a_hi - a_lo))
    r0, v0, a0 = rows[0] if trr > rows[0][0] else rows[-1]
    return ModalityRatios(min(1.0, v0 * trr / r0), min(1.0, a0 * trr / r0))


def exact_pair(trr: float, n_video: int, n_audio: int,
               table: Sequence[tuple[float, float, float]]) -> ModalityRatios:
    """A pair whose token-weighted retention is exactly R on this request (``ratio_mode: exact``).

    The nearest row (v0, a0) (ties: the row with the larger R) is scaled by one factor
    alpha = R(N_v+N_a)/(v0 N_v + a0 N_a); a component above 1 is set to 1 and the other re-solved from R,
    so neither modality is starved. With one modality absent, the present one gets R.
    """
    trr = _check_ratio("trr", trr)
    if n_video < 0 or n_audio < 0:
        raise ValueError(f"token counts must be >= 0, got n_video={n_video}, n_audio={n_audio}")
    if trr >= 1.0:
        return ModalityRatios(1.0, 1.0)
    if n_video == 0 or n_audio == 0:
        return ModalityRatios(trr, trr)
    rows = _table_rows(table)
    _, v0, a0 = min(rows, key=lambda row: (abs(row[0] - trr), -row[0]))
    total = trr * (n_video + n_audio)
    alpha = total / (v0 * n_video + a0 * n_audio)
    r_v, r_a = alpha * v0, alpha * a0
    if r_a > 1.0:
        r_v, r_a = min(1.0, (total - n_audio) / n_video), 1.0
    elif r_v > 1.0:
        r_v, r_a = 1.0, min(1.0, (total - n_video) / n_audio)
    return ModalityRatios(r_v, r_a)


def resolve_modality_ratios(
    trr: float,
    n_video: int,
    n_audio: int,
    table: Sequence[tuple[float, float, float]],
    video_trr: float | None = None,
    audio_trr: float | None = None,
    *,
    mode: str = "table",
) -> ModalityRatios:
    """Per-modality targets (R_v, R_a) for an overall R on one request.

    ``mode="table"`` (default, the paper's settings): :func:`table_pair`; ``"exact"``: :func:`exact_pair`.
    ``video_trr``/``audio_trr`` given together set the pair; one given alone replaces that component of the
    mode's pair (in ``exact`` mode the other component is re-solved from R, capped to (0, 1]).
    """
    trr = _check_ratio("trr", trr)
    if mode not in RATIO_MODES:
        raise ValueError(f"ratio mode must be one of {', '.join(RATIO_MODES)}, got {mode!r}")
    if video_trr is not None:
        video_trr = _check_ratio("video_trr", video_trr)
    if audio_trr is not None:
        audio_trr = _check_ratio("audio_trr", audio_trr)
    if n_video < 0 or n_audio < 0:
        raise ValueError(f"token counts must be >= 0, got n_video={n_video}, n_audio={n_audio}")
    _table_rows(table)
    if video_trr is not None and audio_trr is not None:
        return ModalityRatios(video_trr, audio_trr)
    pair = table_pair(trr, table) if mode == "table" else exact_pair(trr, n_video, n_audio, table)
    if video_trr is None and audio_trr is None:
        return pair
    total = trr * (n_video + n_audio)

    def solve(given: float, n_given: int, n_other: int, fallback: float) -> float:
        if mode == "table" or n_other == 0:
            return fallback
        return min(1.0, max(1.0 / n_other, (total - given * n_given) / n_other))

    if video_trr is not None:
        return ModalityRatios(video_trr, solve(video_trr, n_video, n_audio, pair.audio))
    return ModalityRatios(solve(audio_trr, n_audio, n_video, pair.video), audio_trr)


def token_weighted(r_video: float, r_audio: float, n_video: int, n_audio: int) -> float:
    """(R_v N_v + R_a N_a)/(N_v + N_a): the overall retention a pair gives on a request (R_v if no tokens)."""
    total = n_video + n_audio
    return (r_video * n_video + r_audio * n_audio) / total if total else r_video


def achieved_retention(layers: Sequence[dict], n_video: int, n_audio: int) -> dict[str, float | None]:
    """Achieved layer-mean retention from the real per-layer counts (``[{video, audio, ...}]``, one row per
    layer): sum over layers of the live tokens / (L x the request's tokens), overall and per modality
    (None for an absent modality)."""
    L = len(layers)
    if L == 0:
        raise ValueError("need one row per layer")
    v = sum(int(r["video"]) for r in layers)
    a = sum(int(r["audio"]) for r in layers)
    return {
        "overall": (v + a) / (L * (n_video + n_audio)) if n_video + n_audio else None,
        "video": v / (L * n_video) if n_video else None,
        "audio": a / (L * n_audio) if n_audio else None,
    }


# ------------------------------------------------------------------- baselines' budgets
def audio_intact_reallocate(v: float, a: float, n_video: int, n_audio: int,
                            v_min: float = 0.05) -> tuple[float, float]:
    """The authors' audio-intact reallocation for video-only baselines: the pair's token budget
    T = int(N_v v + N_a a) goes to audio first (a = 1, v = (T - N_a)/N_v); if that leaves video below
    ``v_min``, video gets ``v_min`` and audio the rest (a < 1: dropped uniformly at random by the caller).
    Ratios are not rounded and ``a`` has no lower bound."""
    if n_audio == 0:
        return v, a
    total = int(n_video * v + n_audio * a)
    if n_video == 0:
        return v, min(1.0, total / n_audio)
    v2 = (total - n_audio) / n_video
    if v2 < v_min:
        v, a = v_min, (total - n_video * v_min) / n_audio
    else:
        v, a = v2, 1.0
    if v > 1:
        v, a = 1.0, (total - n_video) / n_audio
        if a > 1:
            v, a = (total - n_audio) / n_video, 1.0
    return v, a


def fastv_setting_ratio(layer_mean: float, num_layers: int, k: int) -> float:
    """FastV's ratio at its drop layer K so that the layer mean is ``layer_mean``: (avg L - K)/(L - K)
    (negative below K/L: the caller keeps at least one token)."""
    return (layer_mean * num_layers - k) / (num_layers - k)


def fastv_keep_counts(r_video: float, r_audio: float, n_video: int, n_audio: int, *, num_layers: int,
                      k: int = 2, omni: bool = False) -> tuple[int, int, bool]:
    """(video kept, audio kept, audio chosen at random) at FastV's drop before layer ``k``.

    Both layer-mean ratios become setting ratios; a modality with a setting ratio < 1 keeps
    max(1, round(s N)) by attention. FastV (``omni=False``) first reallocates the setting pair audio-intact,
    so audio is kept whole unless video hits the 5 % floor, when audio is cut at random.
    FastV-om (``omni=True``) keeps each modality's own top-n.
    """
    s_v = fastv_setting_ratio(r_video, num_layers, k)
    s_a = fastv_setting_ratio(r_audio, num_layers, k)
    if not omni:
        s_v, s_a = audio_intact_reallocate(s_v, s_a, n_video, n_audio)

    def kept(n: int, s: float) -> int:
        return n if s >= 1 or n == 0 else min(n, max(1, round(s * n)))

    return kept(n_video, s_v), kept(n_audio, s_a), (not omni and kept(n_audio, s_a) < n_audio)


def random_keep_count(n: int, ratio: float) -> int:
    """The Random baseline's count: min(N, max(int(ratio N), 1)), all when ratio >= 1, 0 for no tokens."""
    if n == 0 or ratio >= 1:
        return n
    return min(n, max(int(ratio * n), 1))


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
    Stage I ratio), ``keep_ratios[i] = round(levels[i+1]/levels[i], 4)`` (0 when
    ``levels[i] == 0``; 4 decimals as the official scheduler) is applied at ``prune_before[i]``, and ``mean_retention``
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
    """Solve the block-wise TRR decay schedule of one modality (docs/METHOD.md §6).

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
    Keep ratios are N_{i+1}/N_i rounded to 4 decimals, as the official scheduler passes them on.
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
    # the official scheduler hands each step its keep ratio rounded to 4 decimals (round(k_i, 4)); the counts of
    # a step (round(k_i n)) follow that rounded ratio
    keep = [round(levels[i + 1] / levels[i], 4) if levels[i] > 0.0 else 0.0 for i in range(n)]
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


def fixed_windows(n: int, window: int) -> list[int]:
    """Stage I window sizes of one modality: consecutive windows of ``window`` tokens, the last one shorter
    (SEATS' fixed per-modality windows, whatever the clip length)."""
    if n < 0 or window < 1:
        raise ValueError(f"need n >= 0 and window >= 1, got n={n}, window={window}")
    return [window] * (n // window) + ([n % window] if n % window else [])


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
