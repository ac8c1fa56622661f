"""Baselines under the same harness: budgets by hand, determinism, and selection rules."""

from __future__ import annotations

import pytest
import torch

from seats_cli.request import frame_policy
from seats_cli.engine import prefill
from seats_cli.layout import AUDIO, TEXT, VIDEO
from seats_cli.media import decode_video
from seats_cli.methods import build_pruner
from seats_cli.selection import diversity_select


@pytest.fixture(scope="module")
def sample_run(tiny_seats, sample_path):
    ad = tiny_seats.adapter
    media = decode_video(sample_path, frame_policy(ad.config))
    request = ad.prepare(media, "What is moving?")
    encoded = ad.encode(request)
    return ad, request.layout, encoded


def _counts(layout, live):
    mod = layout.modality[live]
    return int((mod == VIDEO).sum()), int((mod == AUDIO).sum()), int((mod == TEXT).sum())


# sample: 864 video (3 windows x 288), 150 audio (3 x 50); --trr 0.2 -> table pair (0.15, 0.50)
# random keeps int(R N) (the authors' rule): int(129.6) = 129, int(75.0) = 75; DivPrune round(129.6) = 130
@pytest.mark.parametrize("method, want", [("random", (129, 75)), ("divprune", (130, 75))])
def test_before_llm_baselines_keep_the_resolved_budget_at_every_layer(sample_run, method, want):
    ad, layout, encoded = sample_run
    pruner, plan = build_pruner(method, ad.config, layout, trr=0.2)
    assert (plan.ratios.video, plan.ratios.audio) == (pytest.approx(0.15), pytest.approx(0.50))
    res = prefill(ad, encoded, layout, pruner)
    for live in res.layer_live:  # no late removal: the same set enters all 28 layers
        assert _counts(layout, live) == (*want, layout.n_text)


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


def test_fastv_drops_once_before_layer_2_with_the_audio_intact_budget(sample_run):
    ad, layout, encoded = sample_run
    # --trr 0.35 -> (0.30, 0.65) -> setting ratios s = (R*28 - 2)/26 = (0.246154, 0.623077);
    # audio-intact: T = int(864*0.246154 + 150*0.623077) = int(306.14) = 306, v = (306 - 150)/864 -> 156 video
    pruner, plan = build_pruner("fastv", ad.config, layout, trr=0.35)
    res = prefill(ad, encoded, layout, pruner)
    assert [_counts(layout, x) for x in res.layer_live[:3]] == [
        (864, 150, layout.n_text), (864, 150, layout.n_text), (156, 150, layout.n_text)]
    assert all(_counts(layout, x) == (156, 150, layout.n_text) for x in res.layer_live[2:])
    # the kept video tokens are the top-120 by the last token's attention in layer 1 (scores at layer 2's input)
    scores_seen = {}
    orig = ad.query_scores

    def spy(layer_idx, hidden, cos, sin, row):
        out = orig(layer_idx, hidden, cos, sin, row)
        scores_seen[layer_idx] = out
        return out

    ad.query_scores = spy
    try:
        res2 = prefill(ad, encoded, layout, build_pruner("fastv", ad.config, layout, trr=0.35)[0])
    finally:
        del ad.query_scores
    assert list(scores_seen) == [1]
    vpos = torch.nonzero(layout.modality == VIDEO).flatten()
    top = vpos[torch.argsort(scores_seen[1][vpos], descending=True, stable=True)[:156]].sort().values
    live2 = res2.layer_live[2]
    assert torch.equal(live2[layout.modality[live2] == VIDEO], top)


def test_fastv_clamped_at_the_video_floor_drops_audio_at_random(sample_run):
    ad, layout, encoded = sample_run
    # --trr 0.2 -> (0.15, 0.50) -> s = (0.084615, 0.461538); T = int(73.11 + 69.23) = 142 < 150 audio:
    # video floor 0.05 -> round(43.2) = 43 video; a = (142 - 43.2)/150 = 0.658667 -> round(98.8) = 99 audio
    runs = [prefill(ad, encoded, layout, build_pruner("fastv", ad.config, layout, trr=0.2, seed=s)[0])
            for s in (0, 0, 1)]
    assert all(_counts(layout, r.layer_live[2]) == (43, 99, layout.n_text) for r in runs)
    audio = [r.layer_live[2][layout.modality[r.layer_live[2]] == AUDIO] for r in runs]
    assert torch.equal(audio[0], audio[1]) and not torch.equal(audio[0], audio[2])  # seeded, random


def test_fastv_om_prunes_both_modalities(sample_run):
    ad, layout, encoded = sample_run
    pruner, plan = build_pruner("fastv-om", ad.config, layout, trr=0.2)
    res = prefill(ad, encoded, layout, pruner)
    # s = (0.084615, 0.461538): round(73.1) = 73 video, round(69.2) = 69 audio, each by attention
    assert _counts(layout, res.layer_live[2]) == (73, 69, layout.n_text)


def test_fastv_says_when_audio_is_cut_and_when_a_layer_mean_is_out_of_reach(sample_run):
    ad, layout, encoded = sample_run
    # the clamp case above: video at the 5 % floor, audio 99 of 150 at random
    pruner, _ = build_pruner("fastv", ad.config, layout, trr=0.2)
    prefill(ad, encoded, layout, pruner)
    assert pruner.notes == ["fastv: video is at the audio-intact reallocation's 5% floor, so audio keeps 99/150 "
                            "= 0.660, chosen at random (seeded by --seed)"]
    # FastV-om at video 0.05 < K/L = 2/28: s = (1.4 - 2)/26 < 0 -> 1 video token from layer 2; layer mean
    # (2 x 864 + 26 x 1) / (28 x 864) = 0.0725; audio 0.5 is in reach (s = 0.461538 -> 69 tokens)
    pruner, _ = build_pruner("fastv-om", ad.config, layout, video_trr=0.05, audio_trr=0.5)
    res = prefill(ad, encoded, layout, pruner)
    assert _counts(layout, res.layer_live[2]) == (1, 69, layout.n_text)
    assert pruner.notes == ["fastv-om: video keeps 0.073 of its tokens on the layer mean, not the requested 0.050: "
                            "layers 0-1 see every token, so a layer mean below K/L = 0.071 is out of reach (1/864 "
                            "from layer 2)"]


def test_video_only_methods_say_when_the_reallocation_cuts_audio(tiny_seats, sample_path):
    # video 0.01, audio 0.2 on 864 + 150: T = int(8.64 + 30) = 38 -> video at its floor 0.05, a = (38 - 43.2)/150
    # < 0 -> one audio token, at random
    for method in ("dycoke", "fastvid", "visionzip"):
        r = tiny_seats.ask(sample_path, "What is moving?", method=method, video_trr=0.01, audio_trr=0.2,
                           max_new_tokens=1)
        assert r.layers[0]["audio"] == 1
        assert f"{method}: video is at the audio-intact reallocation's 5% floor, so audio keeps 1/150 = 0.007, " \
               f"chosen at random (seeded by --seed)" in r.notes, r.notes


def test_fastv_names_k_over_l_only_where_one_token_stays():
    """The K/L reason belongs to a setting ratio <= 0 (one token kept); FastV's reallocation otherwise holds video
    at >= 5 % and audio whole, which its own note (or the overall one) explains."""
    from seats_cli.methods.baselines import BaselinePlan, FastVPruner
    from seats_cli.schedule import ModalityRatios

    def notes(method, pair, counts):
        return FastVPruner(BaselinePlan(method, 0.1, ModalityRatios(*pair)), 28, omni=method == "fastv-om"
                           ).reach_notes(*counts)

    # the 7B's official pair at 0.10 on 8640 + 1500: video at its floor (432), audio cut to 1 at random
    assert notes("fastv", (0.06, 0.35), (8640, 1500, 432, 1, True)) == [
        "fastv: video is at the audio-intact reallocation's 5% floor, so audio keeps 1/1500 = 0.001, chosen at "
        "random (seeded by --seed)"]
    assert notes("fastv", (0.5, 0.05), (8640, 1500, 4000, 1500, False)) == []  # audio kept whole by design
    # without sound the reallocation leaves the pair as it is: s_v = (1.4 - 2)/26 < 0 keeps one video token
    assert notes("fastv", (0.05, 0.5), (864, 0, 1, 0, False)) == [
        "fastv: video keeps 0.073 of its tokens on the layer mean, not the requested 0.050: layers 0-1 see every "
        "token, so a layer mean below K/L = 0.071 is out of reach (1/864 from layer 2)"]
