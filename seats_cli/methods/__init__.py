"""Token-reduction methods behind one interface (see ``seats_cli.engine.Pruner``)."""

from __future__ import annotations

from seats_cli.choices import METHODS
from seats_cli.request import media_cut_layer
from seats_cli.config import ModelConfig
from seats_cli.engine import NoPruning
from seats_cli.layout import TokenLayout
from seats_cli.methods.baselines import (BaselinePlan, DivPrunePruner, DyCokePruner, FastVIDPruner, FastVPruner,
                                        MediaCut, OmniZipPruner, RandomPruner, VisionZipPruner)
from seats_cli.methods.seats import SeatsPlan, SeatsPruner
from seats_cli.schedule import resolve_modality_ratios



def build_pruner(method: str, config: ModelConfig, layout: TokenLayout, *, trr: float | None = None,
                 video_trr: float | None = None, audio_trr: float | None = None, score_layer: str | None = None,
                 seed: int = 0, ratio_mode: str | None = None, saliency_span: str | None = None):
    """The pruner for one request, and its plan (None for ``full``)."""
    if method == "full":
        return NoPruning(), None
    cut = media_cut_layer(method)
    if cut is not None:
        if not 0 <= cut < config.architecture.num_layers:
            raise ValueError(f"media-cut layer must be in 0..{config.architecture.num_layers - 1}, got {cut}")
        return MediaCut(cut), None
    if trr is None and video_trr is not None and audio_trr is not None and layout.n_video + layout.n_audio:
        # the explicit pair's own overall ratio on this request, not the preset's default
        trr = min(1.0, (video_trr * layout.n_video + audio_trr * layout.n_audio) / (layout.n_video + layout.n_audio))
    trr = config.seats.default_trr if trr is None else trr
    mode = ratio_mode or config.seats.ratio_mode
    if method == "seats":
        plan = SeatsPlan.build(config, trr, layout.n_video, layout.n_audio, layout.tokens_per_grid, video_trr,
                               audio_trr, ratio_mode=mode, saliency_span=saliency_span)
        return SeatsPruner(config, plan, score_layer=score_layer), plan
    if method in METHODS:
        ratios = resolve_modality_ratios(trr, layout.n_video, layout.n_audio, config.seats.ratio_table,
                                         video_trr, audio_trr, mode=mode)
        needs_stat = method in ("visionzip", "visionzip-om")  # the 1-grid vision statistic and the encoder keys
        signals = {"omnizip": frozenset({"audio_whole"}), "fastvid": frozenset({"video_frame_query"})}
        plan = BaselinePlan(method, trr, ratios, seed, mode, "official" if needs_stat else None,
                            1 if needs_stat else None, signals.get(method, frozenset()))
        if method == "random":
            return RandomPruner(plan), plan
        if method == "divprune":
            return DivPrunePruner(plan), plan
        if method == "dycoke":
            return DyCokePruner(plan), plan
        if method == "omnizip":
            return OmniZipPruner(plan, config.baselines), plan
        if method == "fastvid":
            return FastVIDPruner(plan, config.baselines), plan
        if method in ("visionzip", "visionzip-om"):
            return VisionZipPruner(plan, omni=method == "visionzip-om"), plan
        return FastVPruner(plan, config.architecture.num_layers, omni=method == "fastv-om"), plan
    raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")


def encoder_signals(plan) -> tuple[str | None, int | None, frozenset[str]]:
    """What the encoders must record for ``plan`` (``encode_media``'s saliency, video_span_grids and extra): SEATS
    its saliency span when it prunes; VisionZip its one-grid statistic; OmniZip and FastVID their extra signals;
    None for a plan that reads none (full, media cuts)."""
    if isinstance(plan, SeatsPlan):
        return (plan.saliency_span if plan.prunes else None), None, frozenset()
    return (getattr(plan, "saliency_span", None), getattr(plan, "video_span_grids", None),
            frozenset(getattr(plan, "signals", frozenset())))


__all__ = ["METHODS", "BaselinePlan", "SeatsPlan", "SeatsPruner", "build_pruner", "encoder_signals"]
