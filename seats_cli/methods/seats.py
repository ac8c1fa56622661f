"""SEATS: Stage I winDivPrune before the LLM, Stage II top-down selection at ``prune_before`` layers,
Stage III removal of every video/audio token at ``text_only_from`` (docs/METHOD.md §5–8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seats_cli.config import ModelConfig
from seats_cli.layout import AUDIO, TEXT, VIDEO, TokenLayout
from seats_cli.schedule import (
    ModalityRatios,
    ModalitySchedule,
    fixed_windows,
    modality_schedule,
    per_layer_counts,
    resolve_modality_ratios,
    stage1_window_keep,
    step_keep,
)
from seats_cli.selection import stage2_select, win_div_prune
from seats_cli.transfer import to_device, to_host


@dataclass(frozen=True)
class SeatsPlan:
    """The per-request schedule: ratios per modality, each modality's block-wise levels, and the Stage I
    window sizes (tokens) of each modality."""

    trr: float
    ratio_mode: str
    ratios: ModalityRatios
    video: ModalitySchedule
    audio: ModalitySchedule
    prune_before: tuple[int, ...]
    text_only_from: int | None  # None when Stage III is switched off
    num_layers: int
    video_window: int  # Stage I video window: stage1_video_grids x tokens per grid
    audio_window: int  # Stage I audio window: stage1_audio_tokens
    rebalance: bool = False
    saliency_span: str = "official"  # Stage I saliency span: the Stage I window ("official") or "encoder"

    @classmethod
    def build(cls, config: ModelConfig, trr: float, n_video: int, n_audio: int, tokens_per_grid: int,
              video_trr: float | None = None, audio_trr: float | None = None,
              ratio_mode: str | None = None, saliency_span: str | None = None) -> "SeatsPlan":
        s, a = config.seats, config.architecture
        mode = ratio_mode or s.ratio_mode
        ratios = resolve_modality_ratios(trr, n_video, n_audio, s.ratio_table, video_trr, audio_trr, mode=mode)
        common = dict(num_layers=a.num_layers, prune_before=s.prune_before, text_only_from=s.text_only_from,
                      encoder_ratio_scale=s.encoder_ratio_scale)
        return cls(
            trr=trr, ratio_mode=mode, ratios=ratios, video=modality_schedule(ratios.video, **common),
            audio=modality_schedule(ratios.audio, **common), prune_before=tuple(s.prune_before),
            text_only_from=s.text_only_from if s.late_removal else None, num_layers=a.num_layers,
            video_window=max(1, s.stage1_video_grids * tokens_per_grid), audio_window=s.stage1_audio_tokens,
            rebalance=s.stage2_rebalance, saliency_span=saliency_span or s.saliency_span,
        )

    @property
    def prunes(self) -> bool:
        """Stage I runs only if a modality keeps less than all of it; otherwise nothing is pruned at all."""
        return self.video.rho < 1 or self.audio.rho < 1

    def stage1_kept(self, n_video: int, n_audio: int) -> tuple[int, int]:
        """Tokens of each modality Stage I keeps over its fixed windows."""
        def kept(n, window, rho):
            return n if rho >= 1 else sum(stage1_window_keep(w, rho) for w in fixed_windows(n, window))

        if not self.prunes:
            return n_video, n_audio
        return kept(n_video, self.video_window, self.video.rho), kept(n_audio, self.audio_window, self.audio.rho)

    def counts(self, n_video: int, n_audio: int, n_text: int) -> list[dict[str, int]]:
        """Analytic tokens entering each layer, assuming each step keeps exactly K_v video and K_a audio
        (``schedule.per_layer_counts`` per modality, from Stage I's counts)."""
        v, a = self.stage1_kept(n_video, n_audio)
        if not self.prunes:
            return [{"layer": i, "video": v, "audio": a, "text": n_text} for i in range(self.num_layers)]
        bounds = dict(num_layers=self.num_layers, prune_before=self.prune_before,
                      text_only_from=self.num_layers if self.text_only_from is None else self.text_only_from)
        vs = per_layer_counts(v, self.video.keep_ratios, **bounds)
        as_ = per_layer_counts(a, self.audio.keep_ratios, **bounds)
        return [{"layer": i, "video": x, "audio": y, "text": n_text} for i, (x, y) in enumerate(zip(vs, as_))]

    def to_dict(self) -> dict:
        def sched(m: ModalitySchedule) -> dict:
            return {"target": m.target, "rho": m.rho, "delta": m.delta, "levels": list(m.levels),
                    "keep_ratios": list(m.keep_ratios), "mean_retention": m.mean_retention}

        return {"trr": self.trr, "ratio_mode": self.ratio_mode, "video_trr": self.ratios.video,
                "audio_trr": self.ratios.audio, "prune_before": list(self.prune_before),
                "text_only_from": self.text_only_from, "stage1_windows": {"video": self.video_window,
                                                                          "audio": self.audio_window},
                "saliency_span": self.saliency_span, "stage2_rebalance": self.rebalance,
                "video": sched(self.video), "audio": sched(self.audio)}


class SeatsPruner:
    name = "seats"

    def __init__(self, config: ModelConfig, plan: SeatsPlan, *, score_layer: str | None = None,
                 temperature: float | None = None):
        self.config = config
        self.plan = plan
        self.score_layer = score_layer or config.seats.score_layer
        if self.score_layer not in ("previous", "next"):
            raise ValueError(f"score_layer must be 'previous' or 'next', got {self.score_layer!r}")
        self.tau = temperature or config.seats.temperature
        layers = set(plan.prune_before)
        if plan.text_only_from is not None and plan.text_only_from < plan.num_layers:
            layers.add(plan.text_only_from)
        self.drop_layers = frozenset(layers) if plan.prunes else frozenset()

    # Stage I ------------------------------------------------------------------------------------
    def before_llm(self, adapter, encoded, layout: TokenLayout):
        """The kept positions, on the model's device: chosen there, they never make the host wait for it (the
        engine copies them to the host while the first layers run)."""
        rho_v, rho_a = self.plan.video.rho, self.plan.audio.rho
        if not self.plan.prunes:
            return None
        dev = encoded.embeds.device
        keep = [to_device(torch.nonzero(layout.modality == TEXT).flatten(), dev)]
        for mod, rho, sal, window in ((VIDEO, rho_v, encoded.video_saliency, self.plan.video_window),
                                      (AUDIO, rho_a, encoded.audio_saliency, self.plan.audio_window)):
            host_pos = torch.nonzero(layout.modality == mod).flatten()
            if host_pos.numel() == 0:
                continue
            pos = to_device(host_pos, dev)
            if rho >= 1:
                keep.append(pos)
                continue
            feats = encoded.embeds[0, pos].float()
            windows = fixed_windows(host_pos.numel(), window)
            local = win_div_prune(feats, None if sal is None else sal.float(), windows, rho)
            keep.append(pos[local])
        return torch.cat(keep).sort().values

    # Stage II and III ------------------------------------------------------------------------------
    def at_layer(self, adapter, state):
        # planned on the CPU: the modality of the live tokens is known there; the one device-to-host transfer is
        # the query's scores (stage2_select)
        mod = to_host(state.modality) if state.host_modality is None else state.host_modality
        text_rows = torch.nonzero(mod == TEXT).flatten()
        if self.plan.text_only_from is not None and state.layer >= self.plan.text_only_from:
            return text_rows
        i = self.plan.prune_before.index(state.layer)
        is_v, is_a = mod == VIDEO, mod == AUDIO
        n_v, n_a = int(is_v.sum()), int(is_a.sum())
        if n_v + n_a == 0:
            return None
        k_v = step_keep(n_v, self.plan.video.keep_ratios[i])
        k_a = step_keep(n_a, self.plan.audio.keep_ratios[i])
        if k_v == n_v and k_a == n_a:
            return None
        score_idx = state.layer - 1 if self.score_layer == "previous" else state.layer
        scores = adapter.query_scores(score_idx, state.hidden, state.cos, state.sin, state.hidden.shape[1] - 1)
        res = stage2_select(to_host(scores), is_v, is_a, k_v, k_a, self.tau, rebalance=self.plan.rebalance)
        return torch.cat([text_rows, res.kept_positions]).sort().values
