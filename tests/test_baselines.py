"""Baselines under the same harness: budgets by hand, determinism, and selection rules."""

from __future__ import annotations

import pytest
import torch

from seats_cli.api import frame_policy
from seats_cli.engine import prefill
from seats_cli.layout import AUDIO, TEXT, VIDEO
from seats_cli.media import decode_video
from seats_cli.methods import build_pruner
from seats_cli.schedule import resolve_modality_ratios
from seats_cli.selection import diversity_select


@pytest.fixture(scope="module")
def sample_run(tiny_seats, sample_path):
    ad = tiny_seats.adapter
    media = decode_video(sample_path, frame_policy(ad.config))
    request = ad.prepare(media, "What is moving?")
    encoded = ad.encode(request, saliency=False)
    return ad, request.layout, encoded


def _counts(layout, live):
    mod = layout.modality[live]
    return int((mod == VIDEO).sum()), int((mod == AUDIO).sum()), int((mod == TEXT).sum())


@pytest.mark.parametrize("method", ["random", "divprune"])
def test_before_llm_baselines_keep_the_resolved_budget_at_every_layer(sample_run, method):
    ad, layout, encoded = sample_run
    # sample: 864 video (3 windows x 288), 150 audio (3 x 50)
    ratios = resolve_modality_ratios(0.2, 864, 150, ad.config.seats.ratio_table)
    pruner, plan = build_pruner(method, ad.config, layout, trr=0.2)
    assert plan.ratios == ratios
    res = prefill(ad, encoded, layout, pruner)
    want_v, want_a = round(ratios.video * 864), round(ratios.audio * 150)
    for live in res.layer_live:  # no late removal: the same set enters all 28 layers
        assert _counts(layout, live) == (want_v, want_a, layout.n_text)


def test_random_is_seeded(sample_run):
    ad, layout, encoded = sample_run
    a = build_pruner("random", ad.config, layout, trr=0.2, seed=1)[0].before_llm(ad, encoded, layout)
    b = build_pruner("random", ad.config, layout, trr=0.2, seed=1)[0].before_llm(ad, encoded, layout)
    c = build_pruner("random", ad.config, layout, trr=0.2, seed=2)[0].before_llm(ad, encoded, layout)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_divprune_is_unweighted_max_min_over_the_whole_modality(sample_run):
    ad, layout, encoded = sample_run
    kept = build_pruner("divprune", ad.config, layout, trr=0.2)[0].before_llm(ad, encoded, layout)
    vpos = torch.nonzero(layout.modality == VIDEO).flatten()
    k = int((layout.modality[kept] == VIDEO).sum())
    expect = vpos[diversity_select(encoded.embeds[0, vpos].float(), k)]
    assert torch.equal(kept[layout.modality[kept] == VIDEO], expect)


def test_fastv_drops_once_before_layer_2_with_the_mean_preserving_ratio(sample_run):
    ad, layout, encoded = sample_run
    # s = (R*L - K) / (L - K) = (0.2*28 - 2) / 26 = 0.138462; round(0.138462 * 864) = round(119.63) = 120
    pruner, plan = build_pruner("fastv", ad.config, layout, trr=0.2)
    res = prefill(ad, encoded, layout, pruner)
    assert [_counts(layout, x) for x in res.layer_live[:3]] == [
        (864, 150, layout.n_text), (864, 150, layout.n_text), (120, 150, layout.n_text)]
    assert all(_counts(layout, x) == (120, 150, layout.n_text) for x in res.layer_live[2:])
    # the kept video tokens are the top-120 by the last token's attention in layer 1 (scores at layer 2's input)
    scores_seen = {}
    orig = ad.query_scores

    def spy(layer_idx, hidden, cos, sin, row):
        out = orig(layer_idx, hidden, cos, sin, row)
        scores_seen[layer_idx] = out
        return out

    ad.query_scores = spy
    try:
        res2 = prefill(ad, encoded, layout, build_pruner("fastv", ad.config, layout, trr=0.2)[0])
    finally:
        del ad.query_scores
    assert list(scores_seen) == [1]
    vpos = torch.nonzero(layout.modality == VIDEO).flatten()
    top = vpos[torch.argsort(scores_seen[1][vpos], descending=True, stable=True)[:120]].sort().values
    live2 = res2.layer_live[2]
    assert torch.equal(live2[layout.modality[live2] == VIDEO], top)


def test_fastv_om_prunes_both_modalities(sample_run):
    ad, layout, encoded = sample_run
    pruner, plan = build_pruner("fastv-om", ad.config, layout, trr=0.2)
    res = prefill(ad, encoded, layout, pruner)
    s_v = (plan.ratios.video * 28 - 2) / 26
    s_a = (plan.ratios.audio * 28 - 2) / 26
    assert _counts(layout, res.layer_live[2]) == (round(s_v * 864), round(s_a * 150), layout.n_text)
