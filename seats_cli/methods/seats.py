"""SEATS: Stage I winDivPrune before the LLM, Stage II top-down selection at ``prune_before`` layers,
Stage III removal of every video/audio token at ``text_only_from`` (SEATS_SPEC §2–§6)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seats_cli.config import ModelConfig
from seats_cli.layout import AUDIO, TEXT, VIDEO, TokenLayout
from seats_cli.schedule import (
    ModalityRatios,
    ModalitySchedule,
    modality_schedule,
    resolve_modality_ratios,
    stage1_window_keep,
    step_keep,
)
from seats_cli.selection import stage2_select, winDivPrune


@dataclass(frozen=True)
class SeatsPlan:
    """The per-request schedule: ratios per modality and each modality's block-wise levels."""

    trr: float
    ratios: ModalityRatios
    video: ModalitySchedule
    audio: ModalitySchedule
    prune_before: tuple[int, ...]
    text_only_from: int | None  # None when Stage III is switched off
    num_layers: int

    @classmethod
    def build(cls, config: ModelConfig, trr: float, n_video: int, n_audio: int,
              video_trr: float | None = None, audio_trr: float | None = None) -> "SeatsPlan":
        s, a = config.seats, config.architecture
        ratios = resolve_modality_ratios(trr, n_video, n_audio, s.ratio_table, video_trr, audio_trr)
        common = dict(num_layers=a.num_layers, prune_before=s.prune_before, text_only_from=s.text_only_from,
                      encoder_ratio_scale=s.encoder_ratio_scale)
        return cls(
            trr=trr, ratios=ratios, video=modality_schedule(ratios.video, **common),
            audio=modality_schedule(ratios.audio, **common), prune_before=tuple(s.prune_before),
            text_only_from=s.text_only_from if s.late_removal else None, num_layers=a.num_layers,
        )

    def counts(self, video_windows: list[int], audio_windows: list[int], n_text: int) -> list[dict[str, int]]:
        """Analytic tokens entering each layer, assuming each step keeps exactly K_v video and K_a audio."""
        v = sum(stage1_window_keep(w, self.video.rho) for w in video_windows)
        a = sum(stage1_window_keep(w, self.audio.rho) for w in audio_windows)
        rows = []
        for layer in range(self.num_layers):
            if layer in self.prune_before:
                i = self.prune_before.index(layer)
                v, a = step_keep(v, self.video.keep_ratios[i]), step_keep(a, self.audio.keep_ratios[i])
            if self.text_only_from is not None and layer >= self.text_only_from:
                v = a = 0
            rows.append({"layer": layer, "video": v, "audio": a, "text": n_text})
        return rows

    def achieved_trr(self, n_video: int, n_audio: int) -> float:
        """Token-weighted layer-mean retention the schedule actually reaches (< trr when unreachable)."""
        total = n_video + n_audio
        if total == 0:
            return self.trr
        return (self.video.mean_retention * n_video + self.audio.mean_retention * n_audio) / total

    def to_dict(self) -> dict:
        def sched(m: ModalitySchedule) -> dict:
            return {"target": m.target, "rho": m.rho, "delta": m.delta, "levels": list(m.levels),
                    "keep_ratios": list(m.keep_ratios), "mean_retention": m.mean_retention}

        return {"trr": self.trr, "video_trr": self.ratios.video, "audio_trr": self.ratios.audio,
                "prune_before": list(self.prune_before), "text_only_from": self.text_only_from,
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
        self.drop_layers = frozenset(layers)

    # Stage I ------------------------------------------------------------------------------------
    def before_llm(self, adapter, encoded, layout: TokenLayout):
        rho_v, rho_a = self.plan.video.rho, self.plan.audio.rho
        if rho_v >= 1 and rho_a >= 1:
            return None
        keep = [torch.nonzero(layout.modality == TEXT).flatten()]
        for mod, rho, sal, key in ((VIDEO, rho_v, encoded.video_saliency, "video_total"),
                                   (AUDIO, rho_a, encoded.audio_saliency, "audio_total")):
            pos = torch.nonzero(layout.modality == mod).flatten()
            if pos.numel() == 0:
                continue
            if rho >= 1:
                keep.append(pos)
                continue
            feats = encoded.embeds[0, pos.to(encoded.embeds.device)].float()
            sizes = [getattr(w, key) for w in layout.windows]
            local = winDivPrune(feats, None if sal is None else sal.float(), sizes, rho)
            keep.append(pos[local.cpu()])
        return torch.cat(keep).sort().values

    # Stage II and III ------------------------------------------------------------------------------
    def at_layer(self, adapter, state):
        mod = state.modality
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
        res = stage2_select(scores, is_v, is_a, k_v, k_a, self.tau)
        return torch.cat([text_rows, res.kept_positions.to(text_rows.device)]).sort().values
