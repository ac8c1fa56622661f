"""Tokens entering each layer for every baseline, from the request's layout alone (``seats profile --analytic``).

Each method's counts follow its definition (docs/METHOD.md §10) with the same (R_v, R_a) pair as SEATS. Where a
count depends on the content, the analytic value is labelled: OmniZip's video is an *estimate* (every chunk's
audio assumed to keep the same share), FastVID's an *upper bound* (no two grids alike: one grid per segment).
"""

from __future__ import annotations

import math

from seats_cli.config import ModelConfig
from seats_cli.methods.reach import (TOLERANCE, audio_cut_note, dycoke_whole_grids, dycoke_why, fastv_notes,
                                     fastvid_why, omnizip_audio_why, omnizip_unpaired_note, omnizip_video_why,
                                     reach_note, visionzip_why)
from seats_cli.schedule import (ModalityRatios, audio_intact_reallocate, fastv_keep_counts, fixed_windows,
                                random_keep_count)
from seats_cli.selection.dycoke import dycoke_keep_ratio
from seats_cli.selection.omnizip import group_ratios
from seats_cli.selection.visionzip import visionzip_counts

EXACT, ESTIMATE, UPPER = "exact", "estimate", "upper bound"
# the baselines that select or merge before layer 0 (FastV prunes inside the LLM; SEATS has its own plan)
PRE_LLM_BASELINES = ("random", "divprune", "dycoke", "visionzip", "visionzip-om", "omnizip", "fastvid")
HOW = {EXACT: "from the definition", ESTIMATE: "OmniZip's video with the same audio share kept in every chunk",
       UPPER: "FastVID's video with no two grids alike (one grid per segment)"}


def _intact_audio(n: int, a: float, rounding=round) -> int:
    return n if a >= 1 or n == 0 else min(n, max(int(rounding(a * n)), 1))


def _keep_count(n: int, ratio: float) -> int:
    return 0 if n == 0 else max(1, min(n, round(ratio * n)))


def _runs(video_windows, audio_windows) -> tuple[list[int], list[int]]:
    """Maximal same-modality runs of the sequence video_0, audio_0, video_1, audio_1, ... (empty parts vanish, so
    chunks without sound join their neighbours' video)."""
    out: list[list] = []
    for v, a in zip(video_windows, audio_windows):
        for mod, n in (("v", v), ("a", a)):
            if n:
                if out and out[-1][0] == mod:
                    out[-1][1] += n
                else:
                    out.append([mod, n])
    return [n for m, n in out if m == "v"], [n for m, n in out if m == "a"]


def pre_llm_counts(method: str, config: ModelConfig, ratios: ModalityRatios, n_video: int, n_audio: int,
                   tokens_per_grid: int, video_windows=(), audio_windows=()) -> tuple[int, int, str]:
    """(video, audio, how exact) kept before layer 0 by a pre-LLM baseline."""
    v, a = ratios.video, ratios.audio
    n = max(1, tokens_per_grid)
    b = config.baselines
    if method == "random":
        return random_keep_count(n_video, v), random_keep_count(n_audio, a), EXACT
    if method == "divprune":
        return _keep_count(n_video, v), _keep_count(n_audio, a), EXACT
    if method in ("visionzip", "visionzip-om"):
        if v >= 1 and a >= 1:  # the authors skip VisionZip only when both ratios are 1; one alone keeps dom + ctx
            return n_video, n_audio, EXACT
        if method == "visionzip":
            v, a = audio_intact_reallocate(v, a, n_video, n_audio)
            k_a = _intact_audio(n_audio, a, int)
        else:
            k_a = sum(sum(visionzip_counts(w, a)) for w in fixed_windows(n_audio, 50))
        k_v = sum(sum(visionzip_counts(w, v)) for w in fixed_windows(n_video, n))
        return k_v, k_a, EXACT
    if method == "dycoke":
        v, a = audio_intact_reallocate(v, a, n_video, n_audio)
        frames = n_video // n
        pruned = frames - dycoke_whole_grids(frames)
        k_v = (frames - pruned) * n + pruned * math.floor(dycoke_keep_ratio(v, frames) * n) if frames else n_video
        return k_v, _intact_audio(n_audio, a), EXACT
    if method == "fastvid":
        v, a = audio_intact_reallocate(v, a, n_video, n_audio)
        # one grid per segment is the most FastVID keeps: floor(n r) per grid, at least 1 (a context token)
        k_v = n_video if v >= 1 else (n_video // n) * max(int(n * v), 1)
        return k_v, _intact_audio(n_audio, a), UPPER
    if method == "omnizip":
        if (n_video == 0 or n_audio == 0) and b.omnizip_unpaired == "skip":
            return n_video, n_audio, EXACT  # the authors' Thinker runs OmniZip only on video with sound
        c = b.omnizip_contextual
        dom = int(max(0, min(n_audio, round((1.0 - (1 + c - a)) * n_audio))))
        rest = n_audio - dom
        k_a = dom + (min(round(c * n_audio), rest) if rest and b.omnizip_merge_top > 0 else 0)
        v_runs, a_runs = _runs(video_windows, audio_windows)
        guided = min(len(v_runs), len(a_runs))
        share = k_a / n_audio if n_audio else 0.0
        k_v = 0
        for size, m in zip(v_runs, group_ratios(v_runs, [share] * guided, 1 - v, b.omnizip_bounds)):
            frames = size // n
            k_v += size if frames == 0 else frames * int(n * (1.0 - m))
        return k_v, k_a, ESTIMATE if guided else EXACT
    raise ValueError(f"{method} is not a pre-LLM baseline")


def baseline_notes(method: str, config: ModelConfig, ratios: ModalityRatios, n_video: int, n_audio: int,
                   tokens_per_grid: int, video_windows=(), audio_windows=()) -> list[str]:
    """The reach notes a run of ``method`` gives on this layout (``methods.reach``), from the counts alone. A note
    on an estimated count says so; an upper bound (FastVID's video) is noted only where even it falls short."""
    from seats_cli.methods.baselines import FASTV_LAYER
    from seats_cli.selection.visionzip import CONTEXTUAL_RATIO

    v, a = ratios.video, ratios.audio
    n = max(1, tokens_per_grid)
    if method in ("fastv", "fastv-om"):
        k_v, k_a, audio_random = fastv_keep_counts(v, a, n_video, n_audio, num_layers=config.architecture.num_layers,
                                                   k=FASTV_LAYER, omni=method == "fastv-om")
        return fastv_notes(method, v, a, config.architecture.num_layers, FASTV_LAYER, n_video, n_audio, k_v, k_a,
                           audio_random)
    if method not in ("visionzip", "visionzip-om", "dycoke", "omnizip", "fastvid"):
        return []  # Random and DivPrune keep their count from the ratio itself
    k_v, k_a, how = pre_llm_counts(method, config, ratios, n_video, n_audio, tokens_per_grid, video_windows,
                                   audio_windows)
    b = config.baselines
    if method == "omnizip":
        if (n_video == 0 or n_audio == 0) and b.omnizip_unpaired == "skip":
            return [omnizip_unpaired_note(n_video, n_audio)] if n_video + n_audio else []
        v_runs, a_runs = _runs(video_windows, audio_windows)
        why = omnizip_video_why(min(len(v_runs), len(a_runs)), b.omnizip_bounds)
        if how == ESTIMATE:
            why += f"; the count is an {ESTIMATE}: {HOW[ESTIMATE]}"
        notes = [reach_note("omnizip", "video", v, k_v, n_video, why),
                 reach_note("omnizip", "audio", a, k_a, n_audio, omnizip_audio_why(b.omnizip_contextual))]
        return [x for x in notes if x]
    if method == "visionzip-om":
        if v >= 1 and a >= 1:
            return []
        notes = [reach_note(method, "video", v, k_v, n_video, visionzip_why(n, CONTEXTUAL_RATIO)),
                 reach_note(method, "audio", a, k_a, n_audio, visionzip_why(50, CONTEXTUAL_RATIO))]
        return [x for x in notes if x]
    # the audio-intact methods: video at the reallocated ratio, audio whole unless video is at its floor
    if method == "visionzip" and v >= 1 and a >= 1:
        return []
    v, a = audio_intact_reallocate(v, a, n_video, n_audio)
    video = None
    if n_video and method == "visionzip":
        video = reach_note(method, "video", v, k_v, n_video, visionzip_why(n, CONTEXTUAL_RATIO))
    elif n_video and tokens_per_grid and method == "dycoke":
        frames = n_video // n
        video = reach_note(method, "video", v, k_v, n_video, dycoke_why(frames, dycoke_keep_ratio(v, frames)))
    elif n_video and tokens_per_grid and method == "fastvid" and v < 1 and k_v < (v - TOLERANCE) * n_video:
        video = reach_note(method, "video", v, k_v, n_video,
                           f"{fastvid_why(k_v, v, n_video, n)}; the count is an {UPPER}: {HOW[UPPER]}")
    notes = [video, audio_cut_note(method, k_a, n_audio)]
    return [x for x in notes if x]


def baseline_layers(method: str, config: ModelConfig, ratios: ModalityRatios, n_video: int, n_audio: int,
                    n_text: int, tokens_per_grid: int, video_windows=(), audio_windows=()) -> tuple[list[dict], str]:
    """Per-layer rows {layer, video, audio, text, total} of a baseline, and how exact they are."""
    layers = config.architecture.num_layers
    if method in ("fastv", "fastv-om"):
        from seats_cli.methods.baselines import FASTV_LAYER

        k_v, k_a, _ = fastv_keep_counts(ratios.video, ratios.audio, n_video, n_audio, num_layers=layers,
                                        k=FASTV_LAYER, omni=method == "fastv-om")
        counts = [(n_video, n_audio) if i < FASTV_LAYER else (k_v, k_a) for i in range(layers)]
        how = EXACT
    else:
        k_v, k_a, how = pre_llm_counts(method, config, ratios, n_video, n_audio, tokens_per_grid, video_windows,
                                       audio_windows)
        counts = [(k_v, k_a)] * layers
    return [{"layer": i, "video": v, "audio": a, "text": n_text, "total": v + a + n_text}
            for i, (v, a) in enumerate(counts)], how
