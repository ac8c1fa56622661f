"""Token-reduction methods behind one interface (see ``seats_cli.engine.Pruner``)."""

from __future__ import annotations

from seats_cli.config import ModelConfig
from seats_cli.engine import NoPruning
from seats_cli.layout import TokenLayout
from seats_cli.methods.seats import SeatsPlan, SeatsPruner

METHODS = ("seats", "full")


def build_pruner(method: str, config: ModelConfig, layout: TokenLayout, *, trr: float | None = None,
                 video_trr: float | None = None, audio_trr: float | None = None, score_layer: str | None = None):
    """The pruner for one request, and its plan (None for ``full``)."""
    if method == "full":
        return NoPruning(), None
    if method == "seats":
        plan = SeatsPlan.build(config, config.seats.default_trr if trr is None else trr, layout.n_video,
                               layout.n_audio, video_trr, audio_trr)
        return SeatsPruner(config, plan, score_layer=score_layer), plan
    raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")


__all__ = ["METHODS", "SeatsPlan", "SeatsPruner", "build_pruner"]
