"""Baselines of the paper under the same harness and budgets (SEATS_SPEC §10).

- ``random``: before the LLM, keep a uniform random subset of each modality (seeded), R_m·N_m tokens.
- ``divprune``: DivPrune-om: before the LLM, unweighted max–min diversity over each whole modality.
- ``fastv`` / ``fastv-om``: one drop before layer K = 2 by the last prompt token's attention in layer K−1,
  keeping s·N with s = (R·L − K)/(L − K) so that the layer-mean retention is R; FastV prunes video only
  (audio is kept whole), FastV-om prunes both modalities with the per-modality ratios of the config's table.
Per-modality targets (R_v, R_a) come from the same table resolution as SEATS (``--trr``/``--video-trr``/
``--audio-trr``). No late removal: these methods keep their tokens to the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seats_cli.layout import AUDIO, TEXT, VIDEO, TokenLayout
from seats_cli.schedule import ModalityRatios
from seats_cli.selection import diversity_select

FASTV_LAYER = 2


def _keep_count(n: int, ratio: float) -> int:
    return 0 if n == 0 else max(1, min(n, round(ratio * n)))


@dataclass(frozen=True)
class BaselinePlan:
    method: str
    trr: float
    ratios: ModalityRatios
    seed: int = 0

    def to_dict(self) -> dict:
        return {"method": self.method, "trr": self.trr, "video_trr": self.ratios.video,
                "audio_trr": self.ratios.audio}


class _BeforeLLM:
    """Shared shape of the methods that select once, before layer 0."""

    drop_layers: frozenset[int] = frozenset()

    def __init__(self, plan: BaselinePlan):
        self.plan = plan

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        keep = [torch.nonzero(layout.modality == TEXT).flatten()]
        for mod, ratio in ((VIDEO, self.plan.ratios.video), (AUDIO, self.plan.ratios.audio)):
            pos = torch.nonzero(layout.modality == mod).flatten()
            k = _keep_count(pos.numel(), ratio)
            if 0 < k < pos.numel():
                pos = pos[self.choose(encoded, pos, k, mod).cpu()]
            keep.append(pos)
        return torch.cat(keep).sort().values

    def at_layer(self, adapter, state):
        return None


class RandomPruner(_BeforeLLM):
    name = "random"

    def choose(self, encoded, pos, k, mod):
        gen = torch.Generator().manual_seed(self.plan.seed * 2 + (mod == AUDIO))
        return torch.randperm(pos.numel(), generator=gen)[:k].sort().values


class DivPrunePruner(_BeforeLLM):
    name = "divprune"

    def choose(self, encoded, pos, k, mod):
        feats = encoded.embeds[0, pos.to(encoded.embeds.device)].float()
        return diversity_select(feats, k)


class FastVPruner:
    """One drop before layer K by last-token attention (computed with layer K−1's projections)."""

    def __init__(self, plan: BaselinePlan, num_layers: int, *, omni: bool):
        self.plan = plan
        self.name = "fastv-om" if omni else "fastv"
        self.omni = omni
        self.num_layers = num_layers
        self.drop_layers = frozenset({FASTV_LAYER})

    def layer_ratio(self, r: float) -> float:
        k, L = FASTV_LAYER, self.num_layers
        return min(1.0, max(0.0, (r * L - k) / (L - k)))

    def before_llm(self, adapter, encoded, layout):
        return None

    def at_layer(self, adapter, state):
        mod = state.modality
        scores = adapter.query_scores(state.layer - 1, state.hidden, state.cos, state.sin, state.hidden.shape[1] - 1)
        keep = [torch.nonzero(mod == TEXT).flatten()]
        targets = ((VIDEO, self.plan.ratios.video), (AUDIO, self.plan.ratios.audio if self.omni else 1.0))
        for m, r in targets:
            rows = torch.nonzero(mod == m).flatten()
            k = _keep_count(rows.numel(), self.layer_ratio(r) if r < 1 else 1.0)
            if k < rows.numel():
                order = torch.argsort(scores[rows], descending=True, stable=True)
                rows = rows[order[:k]]
            keep.append(rows)
        return torch.cat(keep).sort().values
