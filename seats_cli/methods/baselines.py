"""Baselines of the paper under the same harness and budgets (docs/METHOD.md §10).

- ``random``: before the LLM, keep a uniform random subset of each modality (seeded),
  min(N, max(int(R_m·N_m), 1)) tokens.
- ``divprune``: DivPrune-om: before the LLM, unweighted max–min diversity over each whole modality,
  max(1, round(R_m·N_m)) tokens.
- ``fastv`` / ``fastv-om``: one drop before layer K = 2 by the last prompt token's attention computed with
  layer K−1's projections; each layer-mean ratio becomes the setting ratio s = (R·L − K)/(L − K). FastV
  reallocates the setting pair audio-intact (audio whole, video gets the rest, 5 % video floor) as the authors'
  code does; FastV-om keeps each modality's own top max(1, round(s·N)).
- ``visionzip`` / ``visionzip-om``, ``dycoke``, ``omnizip``, ``fastvid``: before the LLM (SEATS_SPEC §10.4, 10.6–10.8);
  VisionZip, OmniZip and FastVID also merge, writing new vectors into kept slots (``engine.Merge``).
Per-modality targets (R_v, R_a) come from the same resolution as SEATS (``--trr``, ``--ratio-mode``,
``--video-trr``/``--audio-trr``). No late removal: these methods keep their tokens to the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seats_cli.engine import Merge
from seats_cli.layout import AUDIO, TEXT, VIDEO, TokenLayout
from seats_cli.methods.reach import (audio_cut_note, dycoke_why, fastv_notes, fastvid_why, omnizip_audio_why,
                                     omnizip_unpaired_note, omnizip_video_why, reach_note, visionzip_why)
from seats_cli.schedule import ModalityRatios, fastv_keep_counts, random_keep_count
from seats_cli.selection import diversity_select_whole

FASTV_LAYER = 2


def _keep_count(n: int, ratio: float) -> int:
    return 0 if n == 0 else max(1, min(n, round(ratio * n)))


def _random_subset(n: int, k: int, seed: int, mod: int) -> torch.Tensor:
    """k of n indices, uniformly at random, from one generator per (seed, modality); sorted."""
    gen = torch.Generator().manual_seed(seed * 2 + (mod == AUDIO))
    return torch.randperm(n, generator=gen)[:k].sort().values


def _intact_audio(apos: torch.Tensor, a: float, seed: int, *, rounding=round) -> torch.Tensor:
    """The audio positions a video-only method keeps after the audio-intact reallocation: all of them, or (a < 1,
    video at its floor) max(1, rounding(a N_a)) chosen uniformly at random (VisionZip's code: int; the others:
    round, as FastV's)."""
    n = apos.numel()
    if a >= 1 or n == 0:
        return apos
    k = min(n, max(int(rounding(a * n)), 1))
    return apos if k == n else apos[_random_subset(n, k, seed, AUDIO)]


@dataclass(frozen=True)
class BaselinePlan:
    method: str
    trr: float
    ratios: ModalityRatios
    seed: int = 0
    ratio_mode: str = "table"
    saliency_span: str | None = None  # the encoder statistic a method needs (VisionZip), else None
    video_span_grids: int | None = None
    signals: frozenset[str] = frozenset()  # further encoder signals (models.signals.ENCODER_SIGNALS)

    def to_dict(self) -> dict:
        return {"method": self.method, "trr": self.trr, "ratio_mode": self.ratio_mode,
                "video_trr": self.ratios.video, "audio_trr": self.ratios.audio}


def _positions(layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(text, video, audio) sequence positions, ascending."""
    return tuple(torch.nonzero(layout.modality == m).flatten() for m in (TEXT, VIDEO, AUDIO))


class _PreLLM:
    """What every method that selects once, before layer 0, shares: its plan, the baselines' hyperparameters, the
    reach notes of its last request, no drop inside the LLM."""

    drop_layers: frozenset[int] = frozenset()

    def __init__(self, plan: BaselinePlan, settings=None):
        self.plan = plan
        self.settings = settings
        self.notes: list[str] = []

    def intact_audio(self, apos: torch.Tensor, a: float, notes: list, *, rounding=round) -> torch.Tensor:
        """The audio an audio-intact method keeps (``_intact_audio``); a random cut is named in ``notes``."""
        kept = _intact_audio(apos, a, self.plan.seed, rounding=rounding)
        notes.append(audio_cut_note(self.name, kept.numel(), apos.numel()))
        return kept


class _BeforeLLM(_PreLLM):
    """Random and DivPrune: per modality, a count from the ratio and a choice of that many."""

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
        return diversity_select_whole(feats, k)  # by rows when the N x N matrix does not fit (SEATS_SPEC §10.5)


class VisionZipPruner(_PreLLM):
    """VisionZip before the LLM (SEATS_SPEC §10.4): per window (video: 1 grid, audio: 50 tokens) the dominant
    tokens by encoder attention plus contextual anchors that absorb the rest. ``visionzip``: video only, audio
    intact by the authors' reallocation of the raw pair (audio cut at random when video hits its floor);
    ``visionzip-om``: both modalities with the pair as given."""

    def __init__(self, plan: BaselinePlan, *, omni: bool, audio_window: int = 50):
        super().__init__(plan)
        self.omni = omni
        self.name = "visionzip-om" if omni else "visionzip"
        self.audio_window = audio_window

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.schedule import audio_intact_reallocate, fixed_windows
        from seats_cli.selection.visionzip import CONTEXTUAL_RATIO, visionzip_window

        tpos, vpos, apos = _positions(layout)
        v, a = self.plan.ratios.video, self.plan.ratios.audio
        if v >= 1 and a >= 1:  # the authors' only shortcut: a modality at ratio 1 alone still keeps dom + ctx
            return None
        if not self.omni:
            v, a = audio_intact_reallocate(v, a, vpos.numel(), apos.numel())
        keep = [tpos]
        anchor_pos, anchor_vec = [], []
        notes = []
        jobs = [("video", vpos, v, encoded.video_saliency, encoded.video_keys, max(1, layout.tokens_per_grid))]
        if self.omni:
            jobs.append(("audio", apos, a, encoded.audio_saliency, encoded.audio_keys, self.audio_window))
        audio_notes = []  # after the video's, as every audio-intact method orders them (methods.counts too)
        if not self.omni:
            keep.append(self.intact_audio(apos, a, audio_notes, rounding=int))
        for mod, pos, rho, sal, keys, window in jobs:
            if pos.numel() == 0:
                continue
            if sal is None or keys is None:
                raise RuntimeError(f"{self.name} needs the encoders' statistic and keys (encode with the plan's "
                                   f"saliency span)")
            embeds = encoded.embeds[0, pos.to(encoded.embeds.device)]
            start, n_kept = 0, 0
            for w in fixed_windows(pos.numel(), window):
                kept, anchors, merged = visionzip_window(embeds[start:start + w], keys[start:start + w],
                                                         sal[start:start + w], rho)
                keep.append(pos[(kept + start).cpu()])
                anchor_pos.append(pos[(anchors + start).cpu()])
                anchor_vec.append(merged)
                start += w
                n_kept += kept.numel()
            notes.append(reach_note(self.name, mod, rho, n_kept, pos.numel(), visionzip_why(window, CONTEXTUAL_RATIO)))
        self.notes = [x for x in notes + audio_notes if x]
        return Merge.of(torch.cat(keep).sort().values, anchor_pos, anchor_vec)


class DyCokePruner(_PreLLM):
    """DyCoke TTM before the LLM on video (audio intact by the authors' reallocation, audio cut at random only
    when video hits its floor): q from the reallocated video ratio, ``selection.dycoke.dycoke_ttm``."""

    name = "dycoke"

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.schedule import audio_intact_reallocate
        from seats_cli.selection.dycoke import dycoke_keep_ratio, dycoke_ttm

        tpos, vpos, apos = _positions(layout)
        v, a = audio_intact_reallocate(self.plan.ratios.video, self.plan.ratios.audio, vpos.numel(), apos.numel())
        keep = [tpos]
        self.notes = []
        n = layout.tokens_per_grid
        if vpos.numel() and n:
            frames = vpos.numel() // n
            q = dycoke_keep_ratio(v, frames)
            feats = encoded.embeds[0, vpos.to(encoded.embeds.device)]
            kept = dycoke_ttm(feats, n, q)
            keep.append(vpos[kept.cpu()])
            self.notes.append(reach_note("dycoke", "video", v, kept.numel(), vpos.numel(), dycoke_why(frames, q)))
        keep.append(self.intact_audio(apos, a, self.notes))
        self.notes = [x for x in self.notes if x]
        return torch.cat(keep).sort().values


class OmniZipPruner(_PreLLM):
    """OmniZip before the LLM (SEATS_SPEC §10.6): audio kept by whole-clip audio attention plus merged anchors;
    each time chunk's video pruning follows its audio's retention (ISTC). Budget mapping: merging ratios
    rho_a = 1 + c - R_a, rho_v = 1 - R_v. A clip with video or audio only is kept whole, as the authors' Thinker
    does (``baselines.omnizip_unpaired: core``: every video chunk unguided at rho_v, audio merged alone)."""

    name = "omnizip"

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.selection import omnizip as oz

        st = self.settings
        c, lo, hi = st.omnizip_contextual, *st.omnizip_bounds
        r_v, r_a = self.plan.ratios.video, self.plan.ratios.audio
        tpos, vpos, apos = _positions(layout)
        if (vpos.numel() == 0 or apos.numel() == 0) and st.omnizip_unpaired == "skip":
            self.notes = [omnizip_unpaired_note(vpos.numel(), apos.numel())]
            return None
        emb = encoded.embeds[0]
        video = emb[vpos.to(emb.device)]
        keep = [tpos]
        anchors, vectors = [], []
        audio_keep = torch.ones(apos.numel(), dtype=torch.bool)
        if apos.numel():
            if encoded.audio_whole is None:
                raise RuntimeError("omnizip needs the whole-clip audio attention (encode with extra={'audio_whole'})")
            sel = oz.audio_select(emb[apos.to(emb.device)], video if vpos.numel() else None, encoded.audio_whole,
                                  1 + c - r_a, c, st.omnizip_merge_top)
            audio_keep = sel.keep
            keep.append(apos[sel.keep])
            if sel.anchors.numel():
                anchors.append(apos[sel.anchors])
                vectors.append(sel.merged)
        v_runs, a_runs = oz.runs(vpos), oz.runs(apos)
        guided = min(len(v_runs), len(a_runs))
        retention = [audio_keep[s:e].float().mean().item() for s, e in a_runs[:guided]]
        ratios = oz.group_ratios([e - s for s, e in v_runs], retention, 1 - r_v, (lo, hi))
        n = max(1, layout.tokens_per_grid)
        kept_v = 0
        for (s, e), m in zip(v_runs, ratios):
            local = oz.istc(video[s:e], n, m)
            keep.append(vpos[s + local.cpu()])
            kept_v += local.numel()
        notes = [reach_note("omnizip", "video", r_v, kept_v, vpos.numel(), omnizip_video_why(guided, (lo, hi))),
                 reach_note("omnizip", "audio", r_a, int(audio_keep.sum()), apos.numel(), omnizip_audio_why(c))]
        self.notes = [x for x in notes if x]
        return Merge.of(torch.cat(keep).sort().values, anchors, vectors)


class FastVIDPruner(_PreLLM):
    """FastVID before the LLM on video (SEATS_SPEC §10.8), r = the reallocated video ratio; audio intact by the
    authors' reallocation (cut at random only when video hits its floor)."""

    name = "fastvid"

    def before_llm(self, adapter, encoded, layout: TokenLayout):
        from seats_cli.schedule import audio_intact_reallocate
        from seats_cli.selection.fastvid import fastvid

        st = self.settings
        tpos, vpos, apos = _positions(layout)
        v, a = audio_intact_reallocate(self.plan.ratios.video, self.plan.ratios.audio, vpos.numel(), apos.numel())
        notes = []
        keep = [tpos, self.intact_audio(apos, a, notes)]
        anchors, vectors = [], []
        n = layout.tokens_per_grid
        if vpos.numel() and n and v < 1:
            if encoded.video_frame_query is None:
                raise RuntimeError("fastvid needs the frame-query attention (encode with extra={'video_frame_query'})")
            res = fastvid(encoded.embeds[0, vpos.to(encoded.embeds.device)], encoded.video_frame_query, n, v,
                          seed=self.plan.seed, c=st.fastvid_segments, tau=st.fastvid_tau,
                          tau_ignore=st.fastvid_tau_ignore, d=st.fastvid_context_share, p=st.fastvid_context_every,
                          beta=st.fastvid_centre_weight)
            keep.append(vpos[res.keep.cpu()])
            if res.anchors.numel():
                anchors.append(vpos[res.anchors.cpu()])
                vectors.append(res.merged)
            notes.insert(0, reach_note("fastvid", "video", v, res.keep.numel(), vpos.numel(),
                                       fastvid_why(res.keep.numel(), v, vpos.numel(), n)))
        else:
            keep.append(vpos)
        self.notes = [x for x in notes if x]
        return Merge.of(torch.cat(keep).sort().values, anchors, vectors)


class FastVPruner:
    """One drop before layer K by last-token attention (computed with layer K−1's projections)."""

    def __init__(self, plan: BaselinePlan, num_layers: int, *, omni: bool):
        self.plan = plan
        self.name = "fastv-om" if omni else "fastv"
        self.omni = omni
        self.num_layers = num_layers
        self.drop_layers = frozenset({FASTV_LAYER})
        self.notes: list[str] = []

    def reach_notes(self, n_v: int, n_a: int, k_v: int, k_a: int, audio_random: bool) -> list[str]:
        """What the drop could not reach (``methods.reach.fastv_notes``)."""
        return fastv_notes(self.name, self.plan.ratios.video, self.plan.ratios.audio, self.num_layers, FASTV_LAYER,
                           n_v, n_a, k_v, k_a, audio_random)

    def before_llm(self, adapter, encoded, layout):
        return None

    def at_layer(self, adapter, state):
        mod = state.modality
        rows_v, rows_a = torch.nonzero(mod == VIDEO).flatten(), torch.nonzero(mod == AUDIO).flatten()
        k_v, k_a, audio_random = fastv_keep_counts(self.plan.ratios.video, self.plan.ratios.audio, rows_v.numel(),
                                                   rows_a.numel(), num_layers=self.num_layers, k=FASTV_LAYER,
                                                   omni=self.omni)
        self.notes = self.reach_notes(rows_v.numel(), rows_a.numel(), k_v, k_a, audio_random)
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
