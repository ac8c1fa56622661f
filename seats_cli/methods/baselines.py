"""Baselines of the paper under the same harness and budgets (docs/METHOD.md §10).

- ``random``: before the LLM, keep a uniform random subset of each modality (seeded),
  min(N, max(int(R_m·N_m), 1)) tokens.
- ``divprune``: DivPrune-om: before the LLM, unweighted max–min diversity over each whole modality,
  max(1, round(R_m·N_m)) tokens.
- ``fastv`` / ``fastv-om``: one drop before layer K = 2 by the last prompt token's attention computed with
  layer K−1's projections; each layer-mean ratio becomes the setting ratio s = (R·L − K)/(L − K). FastV
  reallocates the setting pair audio-intact (audio whole, video gets the rest, 5 % video floor) as the authors'
  code does; FastV-om keeps each modality's own top max(1, round(s·N)).
Per-modality targets (R_v, R_a) come from the same resolution as SEATS (``--trr``, ``--ratio-mode``,
``--video-trr``/``--audio-trr``). No late removal: these methods keep their tokens to the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seats_cli.layout import AUDIO, TEXT, VIDEO, TokenLayout
from seats_cli.schedule import ModalityRatios, fastv_keep_counts, random_keep_count
from seats_cli.selection import diversity_select

FASTV_LAYER = 2


def _keep_count(n: int, ratio: float) -> int:
    return 0 if n == 0 else max(1, min(n, round(ratio * n)))


def _random_subset(n: int, k: int, seed: int, mod: int) -> torch.Tensor:
    """k of n indices, uniformly at random, from one generator per (seed, modality); sorted."""
    gen = torch.Generator().manual_seed(seed * 2 + (mod == AUDIO))
    return torch.randperm(n, generator=gen)[:k].sort().values


@dataclass(frozen=True)
class BaselinePlan:
    method: str
    trr: float
    ratios: ModalityRatios
    seed: int = 0
    ratio_mode: str = "table"
    saliency_span: str | None = None  # the encoder statistic a method needs (VisionZip), else None
    video_span_grids: int | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "trr": self.trr, "ratio_mode": self.ratio_mode,
                "video_trr": self.ratios.video, "audio_trr": self.ratios.audio}


class _BeforeLLM:
    """Shared shape of the methods that select once, before layer 0."""

    drop_layers: frozenset[int] = frozenset()

    def __init__(self, plan: BaselinePlan):
        self.plan = plan

    def keep_count(self, n: int, ratio: float) -> int:
        return _keep_count(n, ratio)

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        keep = [torch.nonzero(layout.modality == TEXT).flatten()]
        for mod, ratio in ((VIDEO, self.plan.ratios.video), (AUDIO, self.plan.ratios.audio)):
            pos = torch.nonzero(layout.modality == mod).flatten()
            k = self.keep_count(pos.numel(), ratio)
            if 0 < k < pos.numel():
                pos = pos[self.choose(encoded, pos, k, mod).cpu()]
            keep.append(pos)
        return torch.cat(keep).sort().values

    def at_layer(self, adapter, state):
        return None


class RandomPruner(_BeforeLLM):
    name = "random"

    def keep_count(self, n: int, ratio: float) -> int:
        return random_keep_count(n, ratio)

    def choose(self, encoded, pos, k, mod):
        return _random_subset(pos.numel(), k, self.plan.seed, mod)


class DivPrunePruner(_BeforeLLM):
    name = "divprune"

    def choose(self, encoded, pos, k, mod):
        feats = encoded.embeds[0, pos.to(encoded.embeds.device)].float()
        return diversity_select(feats, k)


class VisionZipPruner:
    """VisionZip before the LLM (SEATS_SPEC §10.4): per window (video: 1 grid, audio: 50 tokens) the dominant
    tokens by encoder attention plus contextual anchors that absorb the rest. ``visionzip``: video only, audio
    intact by the authors' reallocation of the raw pair (audio cut at random when video hits its floor);
    ``visionzip-om``: both modalities with the pair as given."""

    drop_layers: frozenset[int] = frozenset()

    def __init__(self, plan: BaselinePlan, *, omni: bool, audio_window: int = 50):
        self.plan = plan
        self.omni = omni
        self.name = "visionzip-om" if omni else "visionzip"
        self.audio_window = audio_window

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.schedule import audio_intact_reallocate, fixed_windows
        from seats_cli.selection.visionzip import visionzip_window

        vpos = torch.nonzero(layout.modality == VIDEO).flatten()
        apos = torch.nonzero(layout.modality == AUDIO).flatten()
        v, a = self.plan.ratios.video, self.plan.ratios.audio
        if not self.omni:
            v, a = audio_intact_reallocate(v, a, vpos.numel(), apos.numel())
        keep = [torch.nonzero(layout.modality == TEXT).flatten()]
        anchor_pos, anchor_vec = [], []
        jobs = [(vpos, v, encoded.video_saliency, encoded.video_keys, max(1, layout.tokens_per_grid))]
        if self.omni:
            jobs.append((apos, a, encoded.audio_saliency, encoded.audio_keys, self.audio_window))
        else:
            k_a = apos.numel() if a >= 1 else min(apos.numel(), max(int(a * apos.numel()), 1))
            keep.append(apos if k_a == apos.numel() else
                        apos[_random_subset(apos.numel(), k_a, self.plan.seed, AUDIO)])
        for pos, rho, sal, keys, window in jobs:
            if pos.numel() == 0:
                continue
            if rho >= 1 or sal is None or keys is None:
                keep.append(pos)
                continue
            embeds = encoded.embeds[0, pos.to(encoded.embeds.device)]
            start = 0
            for w in fixed_windows(pos.numel(), window):
                kept, anchors, merged = visionzip_window(embeds[start:start + w], keys[start:start + w],
                                                         sal[start:start + w], rho)
                keep.append(pos[(kept + start).cpu()])
                anchor_pos.append(pos[(anchors + start).cpu()])
                anchor_vec.append(merged)
                start += w
        keep_all = torch.cat(keep).sort().values
        if not anchor_pos:
            return keep_all
        return keep_all, torch.cat(anchor_pos), torch.cat(anchor_vec)

    def at_layer(self, adapter, state):
        return None


class DyCokePruner:
    """DyCoke TTM before the LLM on video (audio intact by the authors' reallocation, audio cut at random only
    when video hits its floor): q from the reallocated video ratio, ``selection.dycoke.dycoke_ttm``."""

    name = "dycoke"
    drop_layers: frozenset[int] = frozenset()

    def __init__(self, plan: BaselinePlan):
        self.plan = plan

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.schedule import audio_intact_reallocate
        from seats_cli.selection.dycoke import dycoke_keep_ratio, dycoke_ttm

        vpos = torch.nonzero(layout.modality == VIDEO).flatten()
        apos = torch.nonzero(layout.modality == AUDIO).flatten()
        v, a = audio_intact_reallocate(self.plan.ratios.video, self.plan.ratios.audio, vpos.numel(), apos.numel())
        keep = [torch.nonzero(layout.modality == TEXT).flatten()]
        n = layout.tokens_per_grid
        if vpos.numel() and n:
            q = dycoke_keep_ratio(v, vpos.numel() // n)
            feats = encoded.embeds[0, vpos.to(encoded.embeds.device)]
            keep.append(vpos[dycoke_ttm(feats, n, q).cpu()])
        k_a = apos.numel() if a >= 1 else min(apos.numel(), max(1, round(a * apos.numel())))
        keep.append(apos if k_a == apos.numel() else apos[_random_subset(apos.numel(), k_a, self.plan.seed, AUDIO)])
        return torch.cat(keep).sort().values

    def at_layer(self, adapter, state):
        return None


class FastVPruner:
    """One drop before layer K by last-token attention (computed with layer K−1's projections)."""

    def __init__(self, plan: BaselinePlan, num_layers: int, *, omni: bool):
        self.plan = plan
        self.name = "fastv-om" if omni else "fastv"
        self.omni = omni
        self.num_layers = num_layers
        self.drop_layers = frozenset({FASTV_LAYER})

    def before_llm(self, adapter, encoded, layout):
        return None

    def at_layer(self, adapter, state):
        mod = state.modality
        rows_v, rows_a = torch.nonzero(mod == VIDEO).flatten(), torch.nonzero(mod == AUDIO).flatten()
        k_v, k_a, audio_random = fastv_keep_counts(self.plan.ratios.video, self.plan.ratios.audio, rows_v.numel(),
                                                   rows_a.numel(), num_layers=self.num_layers, k=FASTV_LAYER,
                                                   omni=self.omni)
        if (k_v, k_a) == (rows_v.numel(), rows_a.numel()):
            return None
        scores = adapter.query_scores(state.layer - 1, state.hidden, state.cos, state.sin, state.hidden.shape[1] - 1)
        keep = [torch.nonzero(mod == TEXT).flatten()]
        for rows, k, at_random, m in ((rows_v, k_v, False, VIDEO), (rows_a, k_a, audio_random, AUDIO)):
            if k < rows.numel():
                if at_random:
                    rows = rows[_random_subset(rows.numel(), k, self.plan.seed, m).to(rows.device)]
                else:
                    order = torch.argsort(scores[rows], descending=True, stable=True)
                    rows = rows[order[:k]]
            keep.append(rows)
        return torch.cat(keep).sort().values


class MediaCut:
    """Diagnostic, not a baseline: every video and audio token is dropped before layer ``layer`` (0: the LLM sees
    text only). How late a model still reads the media bounds what any pruning schedule may drop."""

    def __init__(self, layer: int):
        self.layer = layer
        self.name = f"media-cut:{layer}"
        self.drop_layers = frozenset({layer}) if layer > 0 else frozenset()

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        return torch.nonzero(layout.modality == TEXT).flatten() if self.layer == 0 else None

    def at_layer(self, adapter, state):
        return torch.nonzero(state.modality == TEXT).flatten()
