"""What a baseline could not reach, in one place: the notes a run gives (``methods.baselines``) and the analytic
profile gives for the same layout (``methods.counts.baseline_notes``), with the same words.

A note is due when a method's kept share of a modality misses its target by more than 0.02 (SEATS_SPEC §8.4), when
an audio-intact method had to cut audio at random, and when OmniZip kept an unpaired clip whole. Each ``*_why``
names the rule of the method that kept it off target.
"""

from __future__ import annotations

from seats_cli.schedule import audio_intact_reallocate, fastv_setting_ratio

TOLERANCE = 0.02


def reach_note(method: str, modality: str, target: float, kept: int, total: int, why: str) -> str | None:
    """A note when a method's kept share of a modality misses its target by more than 0.02 (SEATS_SPEC §8.4)."""
    if total == 0 or abs(kept / total - target) <= TOLERANCE:
        return None
    return (f"{method}: {modality} keeps {kept}/{total} = {kept / total:.3f} of the requested {target:.3f} "
            f"({why})")


def audio_cut_note(method: str, kept: int, total: int) -> str | None:
    """The audio-intact methods keep audio whole unless the reallocation put video at its 5 % floor: then say so."""
    if kept >= total:
        return None
    return (f"{method}: video is at the audio-intact reallocation's 5% floor, so audio keeps {kept}/{total} "
            f"= {kept / total:.3f}, chosen at random (seeded by --seed)")


def omnizip_unpaired_note(n_video: int, n_audio: int) -> str:
    missing = "sound" if n_audio == 0 else "video"
    return (f"omnizip: the clip has no {missing}, so OmniZip kept every token, as the authors' Thinker runs it only "
            f"on video with sound (baselines.omnizip_unpaired: core prunes it anyway)")


def visionzip_why(window: int, contextual: float) -> str:
    return (f"int((rho - c) w) dominant + round(c w) contextual tokens per {window}-token window, "
            f"c = {contextual:g}")


def dycoke_whole_grids(frames: int) -> int:
    """Grids DyCoke's TTM never prunes: the first of each pair, and the first of each group of four."""
    return frames - frames // 2 - len(range(0, frames - 4, 4))


def dycoke_why(frames: int, q: float) -> str:
    whole = dycoke_whole_grids(frames)
    if q > 0 and whole < frames:
        return "TTM keeps floor(q n) tokens per pruned grid"
    return f"TTM keeps {whole} of {frames} grids whole: at least {whole / frames:.3f}"


def omnizip_video_why(guided: int, bounds: tuple[float, float]) -> str:
    lo, hi = bounds
    if guided > 2:
        return (f"guided chunks keep {1 - hi:.2f}..{1 - lo:.2f} of their video, set by their audio's retention "
                f"(baselines.omnizip_bounds)")
    if guided:
        return "with 2 or fewer sound chunks the video budget is not used: each chunk's ratio follows its audio"
    return "int(n (1 - rho_v)) tokens per grid; tokens past the last whole grid of a chunk are dropped"


def omnizip_audio_why(contextual: float) -> str:
    return f"round((R_a - c) N) top tokens plus round(c N) anchors, c = {contextual:g}"


def fastvid_why(kept: int, ratio: float, total: int, tokens_per_grid: int) -> str:
    if kept <= ratio * total:
        return ("floor(n r) per grid, the n/2 context cap and one budgeted grid per static sub-segment keep it at or "
                "below r")
    return (f"floor(n r) = {int(tokens_per_grid * ratio)} tokens per grid: each segment still keeps one context "
            f"token")


def fastv_notes(name: str, video_trr: float, audio_trr: float, num_layers: int, layer: int, n_v: int, n_a: int,
                k_v: int, k_a: int, audio_random: bool) -> list[str]:
    """FastV's: a layer mean below K/L, where the setting ratio (after FastV's audio-intact reallocation) is <= 0 and
    one token stays (layers 0..K-1 see every token), and the audio cut at random when the reallocation put video at
    its floor."""
    L, K = num_layers, layer
    s_v, s_a = (fastv_setting_ratio(r, L, K) for r in (video_trr, audio_trr))
    if name == "fastv":
        s_v, s_a = audio_intact_reallocate(s_v, s_a, n_v, n_a)
    notes = []
    for mod, target, n, k, setting in (("video", video_trr, n_v, k_v, s_v), ("audio", audio_trr, n_a, k_a, s_a)):
        if n and setting <= 0 and not (mod == "audio" and audio_random):
            mean = (K * n + (L - K) * k) / (L * n)
            notes.append(f"{name}: {mod} keeps {mean:.3f} of its tokens on the layer mean, not the requested "
                         f"{target:.3f}: layers 0-{K - 1} see every token, so a layer mean below K/L = {K / L:.3f} "
                         f"is out of reach ({k}/{n} from layer {K})")
    if audio_random:
        notes.append(audio_cut_note(name, k_a, n_a))
    return notes
