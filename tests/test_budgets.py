from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seats_cli.selection import (
    RunPair,
    allocate_budgets,
    find_runs,
    pair_windows,
    select_top_in_windows,
    stage2_select,
    window_relevance,
)

LN3 = math.log(3.0)


def mask(s: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in s])


def masks_from_layout(layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """'t' text, 'v' video, 'a' audio."""
    return torch.tensor([c == "v" for c in layout]), torch.tensor([c == "a" for c in layout])


# ------------------------------------------------------------------- runs and windows
def test_find_runs():
    assert find_runs(mask("0110011101")) == [(1, 3), (5, 8), (9, 10)]
    assert find_runs(mask("1111")) == [(0, 4)]
    assert find_runs(mask("000")) == []
    assert find_runs(torch.zeros(0, dtype=torch.bool)) == []


def test_pair_windows_interleaved_and_surplus():
    v, a = masks_from_layout("ttvvaavvvaattvvt")
    assert pair_windows(v, a) == [RunPair((2, 4), (4, 6)), RunPair((6, 9), (9, 11)), RunPair((13, 15), None)]
    v, a = masks_from_layout("tvaaatatat")
    assert pair_windows(v, a) == [RunPair((1, 2), (2, 5)), RunPair(None, (6, 7)), RunPair(None, (8, 9))]
    v, a = masks_from_layout("ttvvvt")
    assert pair_windows(v, a) == [RunPair((2, 5), None)]


def test_window_relevance():
    scores = torch.tensor([9.0, 1.0, 3.0, 5.0, 2.0, 4.0, 9.0])
    wins = [RunPair((1, 3), (3, 4)), RunPair((4, 6), None), RunPair(None, (6, 7))]
    assert window_relevance(scores, wins, "video").tolist() == [2.0, 3.0, 0.0]
    assert window_relevance(scores, wins, "audio").tolist() == [5.0, 0.0, 9.0]
    with pytest.raises(ValueError):
        window_relevance(scores, wins, "text")  # type: ignore[arg-type]


# ------------------------------------------------------------------ allocate_budgets
def test_uniform_relevance():
    # p^v = p^a = [1/2, 1/2]; K = 4 + 2 = 6; B_w = round(6 * 1 / 2) = 3 each (caps 6).
    # f = (0.5*4)/(0.5*4 + 0.5*2) = 2/3; vb = round(3 * 2/3) = 2, ab = 3 - 2 = 1.
    vb, ab = allocate_budgets(torch.zeros(2), torch.zeros(2), [4, 4], [2, 2], 4, 2, 0.1)
    assert (vb, ab) == ([2, 2], [1, 1])


def test_split_with_minimum_one_per_modality():
    # rel/tau = [0, ln3] -> p^v = [1/4, 3/4]; [ln3, 0] -> p^a = [3/4, 1/4]. K = 6 + 2 = 8.
    # B_w = round(8 * 1 / 2) = 4 each (caps 9).
    # w0: f = (1/4*6)/(1/4*6 + 3/4*2) = 1/2 -> vb = 2, ab = 2.
    # w1: f = (3/4*6)/(3/4*6 + 1/4*2) = 0.9 -> vb = round(3.6) = 4, ab = 0;
    #     audio is present -> ab = 1 and vb = min(6, 4 - 1) = 3.
    vb, ab = allocate_budgets(torch.tensor([0.0, 0.1 * LN3]), torch.tensor([0.1 * LN3, 0.0]),
                              [6, 6], [3, 3], 6, 2, 0.1)
    assert (vb, ab) == ([2, 3], [2, 1])


def test_under_fill_one_token_at_a_time():
    # rel = [1, 0, 0] with tau 0.1 -> p ~ [0.99991, 4.54e-5, 4.54e-5] for both modalities
    # (windows 1, 2 have no audio but take part with relevance 0). K = 9 + 1 = 10.
    # B = [min(10, cap 2), max(1, round(4.5e-4)), 1] = [2, 1, 1]; sum 4, 6 short:
    # smallest below cap, first index: w1->2, w2->2, w1->3, w2->3, w1->4, w2->4 -> [2, 4, 4].
    # w0: f = 0.9 -> vb = min(round(1.8), 1) = 1, ab = 1. w1, w2: f = 0.9 -> vb = round(3.6) = 4.
    rel = torch.tensor([1.0, 0.0, 0.0])
    vb, ab = allocate_budgets(rel, rel, [1, 10, 10], [1, 0, 0], 9, 1, 0.1)
    assert (vb, ab) == ([1, 4, 4], [1, 0, 0])


def test_round_half_to_even_and_fix_total():
    # p = 1/4 everywhere, K = 6 + 4 = 10: B_w = round(10 * 0.25) = round(2.5) = 2 (half to even),
    # sum 8, 2 short -> w0 -> 3, w1 -> 3: B = [3, 3, 2, 2].   (half-up would give [2, 2, 3, 3])
    # f = (0.25*6)/(0.25*6 + 0.25*4) = 0.6; B=3: vb = round(1.8) = 2, ab = 1; B=2: vb = round(1.2) = 1, ab = 1.
    vb, ab = allocate_budgets(torch.zeros(4), torch.zeros(4), [3] * 4, [1] * 4, 6, 4, 0.1)
    assert (vb, ab) == ([2, 2, 1, 1], [1, 1, 1, 1])


def test_over_fill_and_rebalance():
    # rel = [0, 1, 1], tau 0.1 -> p ~ [2.27e-5, 0.49999, 0.49999] (same for both modalities).
    # K = 6 + 2 = 8. B = [max(1, round(1.8e-4)), round(3.9998), 4] = [1, 4, 4]; sum 9, one over:
    # largest B > 1, first index -> w1: B = [1, 3, 4].  f = 6/8 = 0.75 everywhere.
    # w0: vb = round(0.75) = 1, ab = 0 -> audio minimum -> ab = 1 (vb not > 1): 2 tokens for B = 1.
    # w1: vb = round(2.25) = 2, ab = 1.   w2: vb = round(3.0) = 3, ab = 1.   Total 9.
    rel = torch.tensor([0.0, 1.0, 1.0])
    official = allocate_budgets(rel, rel, [2, 4, 4], [2, 2, 2], 6, 2, 0.1, rebalance=False)
    assert official == ([1, 2, 3], [1, 1, 1])
    # rebalance: take the surplus token from the largest window total (w2: 3+1), its larger modality.
    assert allocate_budgets(rel, rel, [2, 4, 4], [2, 2, 2], 6, 2, 0.1, rebalance=True) == ([1, 2, 2], [1, 1, 1])


def test_minimums_win_when_k_below_pairs():
    # 4 windows, p = 1/4, K = 4 + 2 = 6: B = round(1.5) = 2 each, sum 8 -> take from w0, w1: [1, 1, 2, 2].
    # f = 2/3: B=1 -> vb = 1, ab = 0 -> ab = 1; B=2 -> vb = round(1.33) = 1, ab = 1.
    # K = 6 < 8 (window, modality) pairs: every present modality keeps 1, total 8.
    vb, ab = allocate_budgets(torch.zeros(4), torch.zeros(4), [2] * 4, [1] * 4, 4, 2, 0.1)
    assert (vb, ab) == ([1, 1, 1, 1], [1, 1, 1, 1])


def test_allocate_validation():
    with pytest.raises(ValueError, match="one entry per window"):
        allocate_budgets(torch.zeros(2), torch.zeros(3), [1, 1], [1, 1], 1, 1, 0.1)
    with pytest.raises(ValueError, match="tau"):
        allocate_budgets(torch.zeros(2), torch.zeros(2), [1, 1], [1, 1], 1, 1, 0.0)
    assert allocate_budgets(torch.zeros(0), torch.zeros(0), [], [], 3, 3, 0.1) == ([], [])


@st.composite
def budget_problems(draw):
    W = draw(st.integers(1, 8))
    nv, na = [], []
    for _ in range(W):
        v = draw(st.integers(0, 7))
        a = draw(st.integers(0 if v else 1, 7))
        nv.append(v)
        na.append(a)
    rel = st.floats(0.0, 1.0, allow_nan=False)
    rv = [draw(rel) if v else 0.0 for v in nv]
    ra = [draw(rel) if a else 0.0 for a in na]
    kv = draw(st.integers(0, sum(nv)))
    ka = draw(st.integers(0, sum(na)))
    tau = draw(st.sampled_from([0.01, 0.1, 0.3, 1.0]))
    return torch.tensor(rv), torch.tensor(ra), nv, na, kv, ka, tau


@settings(max_examples=300, deadline=None)
@given(budget_problems(), st.booleans())
def test_budget_invariants(problem, rebalance):
    rv, ra, nv, na, kv, ka, tau = problem
    vb, ab = allocate_budgets(rv, ra, nv, na, kv, ka, tau, rebalance=rebalance)
    assert (vb, ab) == allocate_budgets(rv, ra, nv, na, kv, ka, tau, rebalance=rebalance)
    for w in range(len(nv)):
        assert 0 <= vb[w] <= nv[w] and 0 <= ab[w] <= na[w]
        assert (vb[w] >= 1) == (nv[w] >= 1)
        assert (ab[w] >= 1) == (na[w] >= 1)
    pairs = sum(v > 0 for v in nv) + sum(a > 0 for a in na)
    K = kv + ka
    if rebalance and pairs <= K <= sum(nv) + sum(na):
        assert sum(vb) + sum(ab) == K


# ------------------------------------------------------------ select_top_in_windows
def reference_top(scores: list[float], windows, vbs, abs_) -> list[int]:
    kept = []
    for win, bv, ba in zip(windows, vbs, abs_):
        for run, b in ((win.video, bv), (win.audio, ba)):
            if run is None:
                continue
            ranked = sorted(range(run[0], run[1]), key=lambda p: (-scores[p], p))
            kept += ranked[:b]
    return sorted(kept)


@st.composite
def layouts(draw):
    layout = draw(st.text(alphabet="tva", min_size=1, max_size=40))
    scores = draw(st.lists(st.integers(0, 4), min_size=len(layout), max_size=len(layout)))
    return layout, torch.tensor(scores, dtype=torch.float32)


@settings(max_examples=200, deadline=None)
@given(layouts(), st.data())
def test_select_top_matches_plain_loop(problem, data):
    layout, scores = problem
    v, a = masks_from_layout(layout)
    wins = pair_windows(v, a)
    vbs = [data.draw(st.integers(0, w.size("video") + 1)) for w in wins]
    abs_ = [data.draw(st.integers(0, w.size("audio") + 1)) for w in wins]
    got = select_top_in_windows(scores, wins, vbs, abs_)
    assert got.tolist() == reference_top(scores.tolist(), wins, vbs, abs_)
    assert got.dtype == torch.long


def test_select_top_hand_case():
    scores = torch.tensor([0.0, 0.5, 0.9, 0.5, 0.1, 0.7, 0.7, 0.2, 0.0])
    wins = [RunPair((1, 4), (4, 7)), RunPair((7, 9), None)]
    # video 1-3: top 2 by score -> 2 (0.9), then tie 0.5 at 1 and 3 -> 1; audio 4-6: top 1 -> tie 5, 6 -> 5
    # second window video 7-8: top 1 -> 7
    assert select_top_in_windows(scores, wins, [2, 1], [1, 0]).tolist() == [1, 2, 5, 7]


# ---------------------------------------------------------------------- stage2_select
@settings(max_examples=200, deadline=None)
@given(layouts(), st.data())
def test_stage2_consistency(problem, data):
    layout, scores = problem
    v, a = masks_from_layout(layout)
    kv = data.draw(st.integers(0, int(v.sum())))
    ka = data.draw(st.integers(0, int(a.sum())))
    res = stage2_select(scores, v, a, kv, ka, 0.1)
    again = stage2_select(scores, v, a, kv, ka, 0.1)
    assert torch.equal(res.kept_positions, again.kept_positions)
    kept = res.kept_positions.tolist()
    assert kept == sorted(set(kept))
    assert all(layout[p] in "va" for p in kept)
    assert kept == reference_top(scores.tolist(), res.windows, res.video_budgets, res.audio_budgets)
    windowed = len(res.windows) > 1 and bool(v.any()) and bool(a.any())
    if not windowed:  # global top-k per modality
        assert sum(layout[p] == "v" for p in kept) == kv
        assert sum(layout[p] == "a" for p in kept) == ka


def test_stage2_single_window_is_global_topk():
    v, a = masks_from_layout("tvvvvaaat")
    scores = torch.tensor([0.0, 0.1, 0.4, 0.3, 0.4, 0.2, 0.9, 0.2, 0.0])
    res = stage2_select(scores, v, a, 2, 2, 0.1)
    # video top-2: 2 (0.4) and 4 (0.4); audio top-2: 6 (0.9), then tie 5/7 -> 5
    assert res.kept_positions.tolist() == [2, 4, 5, 6]
    assert res.video_budgets == (2,) and res.audio_budgets == (2,)


def test_stage2_video_only_is_global_topk():
    v, a = masks_from_layout("tvvtvvtvv")
    scores = torch.tensor([0.0, 0.1, 0.2, 0.0, 0.9, 0.8, 0.0, 0.3, 0.05])
    res = stage2_select(scores, v, a, 3, 0, 0.1)
    assert res.kept_positions.tolist() == [4, 5, 7]
    assert res.video_budgets == (0, 2, 1) and res.audio_budgets == (0, 0, 0)


def test_stage2_windowed_uses_budgets():
    # two windows of 4 video + 2 audio, uniform relevance (equal scores per window mean):
    # same arithmetic as test_uniform_relevance -> video budgets [2, 2], audio [1, 1].
    layout = "tvvvvaavvvvaat"
    v, a = masks_from_layout(layout)
    scores = torch.tensor([0.0, 0.4, 0.1, 0.1, 0.4, 0.3, 0.2, 0.1, 0.4, 0.4, 0.1, 0.2, 0.3, 0.0])
    res = stage2_select(scores, v, a, 4, 2, 0.1)
    assert res.video_budgets == (2, 2) and res.audio_budgets == (1, 1)
    assert res.kept_positions.tolist() == [1, 4, 5, 8, 9, 12]


def test_stage2_validation():
    v, a = masks_from_layout("tvat")
    with pytest.raises(ValueError, match="same length"):
        stage2_select(torch.zeros(3), v, a, 1, 1, 0.1)
    with pytest.raises(ValueError, match="both video and audio"):
        stage2_select(torch.zeros(4), v, v, 1, 1, 0.1)
