from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seats_cli.schedule import (
    ModalityRatios,
    achieved_retention,
    audio_intact_reallocate,
    fastv_keep_counts,
    fastv_setting_ratio,
    fixed_windows,
    random_keep_count,
    table_pair,
    token_weighted,
    modality_schedule,
    per_layer_counts,
    resolve_modality_ratios,
    schedule_mean,
    stage1_window_keep,
    step_keep,
)

TABLE_7B = [(0.35, 0.30, 0.65), (0.25, 0.20, 0.55), (0.15, 0.10, 0.45), (0.10, 0.06, 0.35)]
Q7 = dict(num_layers=28, prune_before=[16, 18, 20], text_only_from=23)
Q30 = dict(num_layers=48, prune_before=[27, 31, 35], text_only_from=39)


# ----------------------------------------------------------- ratio modes (§8)
@pytest.mark.parametrize("trr, pair", [
    (0.35, (0.30, 0.65)), (0.25, (0.20, 0.55)), (0.15, (0.10, 0.45)), (0.10, (0.06, 0.35)),  # the labels
    (0.20, (0.15, 0.50)), (0.12, (0.076, 0.39)),  # interpolated between rows
    (0.05, (0.03, 0.175)), (0.5, (0.30 / 0.35 * 0.5, 0.65 / 0.35 * 0.5)),  # scaled from the nearest row
    (0.6, (0.30 / 0.35 * 0.6, 1.0)),  # 0.65/0.35*0.6 = 1.114 capped at 1
    (1.0, (1.0, 1.0)),  # no pruning
])
def test_table_mode_pairs(trr, pair):
    got = table_pair(trr, TABLE_7B)
    assert (got.video, got.audio) == (pytest.approx(pair[0], abs=1e-12), pytest.approx(pair[1], abs=1e-12))
    # the request's counts do not matter in table mode, nor does the table's row order
    assert resolve_modality_ratios(trr, 9216, 7500, list(reversed(TABLE_7B))) == got
    assert resolve_modality_ratios(trr, 5000, 0, TABLE_7B) == got


# 128 frames of 16:9 (9216 video) with 300 s (7500) or 64 s (1600) of audio (issue 8 pins)
@pytest.mark.parametrize("trr, achieved_300, achieved_64, exact_300, exact_64", [
    (0.35, 0.4570, 0.3518, (0.2297, 0.4978), (0.2985, 0.6467)),
    (0.25, 0.3570, 0.2518, (0.1400, 0.3851), (0.1986, 0.5461)),
    (0.15, 0.2570, 0.1518, (0.0584, 0.2626), (0.0988, 0.4447)),
    (0.10, 0.1901, 0.1029, (0.0316, 0.1841), (0.0583, 0.3401)),
])
def test_table_and_exact_pins(trr, achieved_300, achieved_64, exact_300, exact_64):
    pair = resolve_modality_ratios(trr, 9216, 7500, TABLE_7B)
    assert token_weighted(pair.video, pair.audio, 9216, 7500) == pytest.approx(achieved_300, abs=5e-5)
    assert token_weighted(pair.video, pair.audio, 9216, 1600) == pytest.approx(achieved_64, abs=5e-5)
    for n_audio, want in ((7500, exact_300), (1600, exact_64)):
        r = resolve_modality_ratios(trr, 9216, n_audio, TABLE_7B, mode="exact")
        assert (r.video, r.audio) == (pytest.approx(want[0], abs=5e-5), pytest.approx(want[1], abs=5e-5))
        assert token_weighted(r.video, r.audio, 9216, n_audio) == pytest.approx(trr, rel=1e-12)


def test_exact_mode_never_starves_video_on_a_long_clip():
    # the old rule solved R_v from the counts: (0.15*16716 - 0.45*7500)/9216 < 0 -> one video token
    r = resolve_modality_ratios(0.15, 9216, 7500, TABLE_7B, mode="exact")
    assert r.video == pytest.approx(0.10 * 0.5836, abs=1e-4) and r.audio == pytest.approx(0.45 * 0.5836, abs=1e-4)


def test_exact_mode_caps_a_modality_and_resolves_the_other():
    # R = 0.6, nearest row 0.35 (0.30, 0.65) on 100 video + 1000 audio: alpha = 660/680 -> a = 0.6309 (no cap);
    # on 1000 video + 100 audio: alpha = 660/365 = 1.808 -> a = 1.175 > 1 -> a = 1, v = (660 - 100)/1000
    assert resolve_modality_ratios(0.6, 100, 1000, TABLE_7B, mode="exact").audio == pytest.approx(0.65 * 660 / 680)
    r = resolve_modality_ratios(0.6, 1000, 100, TABLE_7B, mode="exact")
    assert (r.video, r.audio) == (pytest.approx(0.56, abs=1e-12), 1.0)


def test_exact_mode_tie_takes_the_row_with_the_larger_r():
    # 0.30 is 0.05 from both 0.35 and 0.25: the 0.35 row (0.30, 0.65) is scaled
    r = resolve_modality_ratios(0.30, 1000, 1000, TABLE_7B, mode="exact")
    assert r.video / r.audio == pytest.approx(0.30 / 0.65, rel=1e-12)


def test_exact_mode_with_one_modality_absent_gives_r_to_the_other():
    assert resolve_modality_ratios(0.2, 5000, 0, TABLE_7B, mode="exact") == ModalityRatios(0.2, 0.2)
    assert resolve_modality_ratios(0.2, 0, 700, TABLE_7B, mode="exact") == ModalityRatios(0.2, 0.2)


def test_overrides():
    assert resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, 0.06, 0.35) == ModalityRatios(0.06, 0.35)
    # table mode: one override replaces that component of the table pair
    assert resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, video_trr=0.2) == ModalityRatios(0.2, 0.35)
    assert resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, audio_trr=0.5) == ModalityRatios(0.06, 0.5)
    # exact mode: the other is solved from R: R_a = (0.1*10816 - 0.06*9216)/1600 = 528.64/1600
    r = resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, video_trr=0.06, mode="exact")
    assert r.video == 0.06 and r.audio == pytest.approx(528.64 / 1600, abs=1e-12)


@pytest.mark.parametrize("kw", [dict(trr=0.0), dict(trr=1.5), dict(trr=-0.1), dict(trr=float("nan")),
                                dict(trr=0.2, video_trr=0.0), dict(trr=0.2, audio_trr=1.01)])
def test_invalid_ratios_rejected(kw):
    trr = kw.pop("trr")
    with pytest.raises(ValueError, match="must satisfy 0 <"):
        resolve_modality_ratios(trr, 10, 10, TABLE_7B, **kw)


def test_empty_table_and_unknown_mode_rejected():
    with pytest.raises(ValueError, match="at least one"):
        resolve_modality_ratios(0.2, 10, 10, [])
    with pytest.raises(ValueError, match="table, exact"):
        resolve_modality_ratios(0.2, 10, 10, TABLE_7B, mode="solve")


@settings(max_examples=200, deadline=None)
@given(st.floats(0.02, 0.99), st.integers(1, 20000), st.integers(1, 20000))
def test_exact_mode_hits_r_and_starves_nothing(trr, nv, na):
    r = resolve_modality_ratios(trr, nv, na, TABLE_7B, mode="exact")
    assert 0.0 < r.video <= 1.0 and 0.0 < r.audio <= 1.0
    assert r.video * nv + r.audio * na == pytest.approx(trr * (nv + na), rel=1e-9)


# ----------------------------------------------------------- achieved retention, baselines' budgets
def test_achieved_retention_from_counts():
    # 4 layers: video 10, 10, 5, 0 of 10; audio 4, 4, 4, 0 of 4 -> video 25/40, audio 12/16, overall 37/56
    layers = [{"video": v, "audio": a, "text": 3} for v, a in ((10, 4), (10, 4), (5, 4), (0, 0))]
    got = achieved_retention(layers, 10, 4)
    assert got == {"overall": 37 / 56, "video": 25 / 40, "audio": 12 / 16}
    assert achieved_retention(layers[:1], 10, 0)["audio"] is None


def test_fastv_budget_pins():
    # R = 0.35 on 8640 video + 1500 audio: settings (0.246154, 0.623077), T = 3061, v = 1561/8640, audio whole
    assert fastv_setting_ratio(0.30, 28, 2) == pytest.approx(0.246154, abs=1e-6)
    v, a = audio_intact_reallocate(fastv_setting_ratio(0.30, 28, 2), fastv_setting_ratio(0.65, 28, 2), 8640, 1500)
    assert (v, a) == (pytest.approx(1561 / 8640, abs=1e-12), 1.0)
    assert fastv_keep_counts(0.30, 0.65, 8640, 1500, num_layers=28) == (1561, 1500, False)
    # clamp case, 9216 + 7500: T = 6941 < 7500 -> video floor 0.05 (461), audio 0.864027 at random (6480)
    assert fastv_keep_counts(0.30, 0.65, 9216, 7500, num_layers=28) == (461, 6480, True)
    # FastV-om: each modality's own top-n: round(0.246154*8640) = 2127, round(0.623077*1500) = 935
    assert fastv_keep_counts(0.30, 0.65, 8640, 1500, num_layers=28, omni=True) == (2127, 935, False)
    # a layer mean below K/L = 0.0714 keeps one token
    assert fastv_keep_counts(0.06, 0.35, 8640, 0, num_layers=28, omni=True)[0] == 1
    # VisionZip applies the reallocation to the raw pair: T = 3567, v = 0.239236
    assert audio_intact_reallocate(0.30, 0.65, 8640, 1500)[0] == pytest.approx(0.239236, abs=1e-6)


def test_random_keep_count_truncates():
    assert random_keep_count(864, 0.15) == 129  # int(129.6)
    assert random_keep_count(10, 0.01) == 1 and random_keep_count(10, 1.0) == 10 and random_keep_count(0, 0.5) == 0


def test_fixed_windows():
    assert fixed_windows(700, 288) == [288, 288, 124]
    assert fixed_windows(576, 288) == [288, 288] and fixed_windows(0, 50) == []


# ----------------------------------------------------------------- modality_schedule
def test_reference_numbers_7b():
    c = 7 + 5 * math.e + 3 * math.e**2
    assert c == pytest.approx(42.7586, abs=1e-4)
    s = modality_schedule(0.3, **Q7)
    assert s.rho == pytest.approx(0.42)
    assert s.delta == pytest.approx(0.3 * (1.4 * 23 - 28) / c, abs=1e-12)
    assert s.delta == pytest.approx(0.02947, abs=1e-5)
    assert s.levels == pytest.approx((0.420, 0.3905, 0.3104, 0.0927), abs=1e-4)
    assert s.keep_ratios == (0.9298, 0.7949, 0.2986)  # rounded to 4 decimals, as the official scheduler
    assert s.mean_retention == pytest.approx(0.3, abs=1e-12)


def test_reference_keep_ratios_qwen3():
    s = modality_schedule(0.3, **Q30)
    assert s.keep_ratios == (0.9255, 0.7813, 0.2390)
    assert s.mean_retention == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("r", [0.02, 0.06, 0.1, 0.35, 0.5, 0.7])
def test_keep_ratios_independent_of_r_while_uncapped(r):
    ref = modality_schedule(0.3, **Q7).keep_ratios
    s = modality_schedule(r, **Q7)
    assert s.rho < 1.0
    assert s.keep_ratios == pytest.approx(ref, abs=1e-12)
    assert s.mean_retention == pytest.approx(r, abs=1e-12)


def test_capped_rho_closed_form():
    # rho = 1; delta = (23 - 0.75*28)/C = 2/C
    s = modality_schedule(0.75, **Q7)
    c = 7 + 5 * math.e + 3 * math.e**2
    assert s.rho == 1.0
    assert s.delta == pytest.approx(2 / c, abs=1e-12)
    assert s.levels[0] == 1.0 and min(s.levels) > 0
    assert s.mean_retention == pytest.approx(0.75, abs=1e-12)


def test_unreachable_target_reports_achieved_mean():
    s = modality_schedule(0.9, **Q7)  # 0.9 > T/L = 23/28
    assert s.delta == 0.0 and s.levels == (1.0, 1.0, 1.0, 1.0) and s.keep_ratios == (1.0, 1.0, 1.0)
    assert s.mean_retention == pytest.approx(23 / 28)
    # lambda*T < L: rho*T/L < R even without decay -> delta 0 (official behaviour)
    s = modality_schedule(0.3, num_layers=28, prune_before=[5], text_only_from=10)
    assert s.delta == 0.0 and s.mean_retention == pytest.approx(0.42 * 10 / 28)


def test_clamped_levels_solved_by_bisection():
    # L=T=10, prune_before [1, 9], growth 10, R=0.3 -> rho=0.42, closed form delta=1.2/19
    # makes N2 negative; with N2 clamped at 0: (0.42*1 + (0.42-d)*8)/10 = 0.3 -> d = 0.0975
    s = modality_schedule(0.3, num_layers=10, prune_before=[1, 9], text_only_from=10, growth=10.0)
    assert s.delta == pytest.approx(0.0975, abs=1e-9)
    assert s.levels == pytest.approx((0.42, 0.3225, 0.0), abs=1e-9)
    assert s.keep_ratios == (0.7679, 0.0)  # 0.3225 / 0.42 = 0.767857... to 4 decimals
    assert s.mean_retention == pytest.approx(0.3, abs=1e-9)


def test_target_below_clamped_reach():
    # L=T=10, prune_before [8]: the lowest reachable mean is rho*8/10 = 0.336 > 0.3
    s = modality_schedule(0.3, num_layers=10, prune_before=[8], text_only_from=10)
    assert s.delta == pytest.approx(0.42)
    assert s.levels == pytest.approx((0.42, 0.0)) and s.keep_ratios == (0.0,)
    assert s.mean_retention == pytest.approx(0.336)


def test_empty_prune_before():
    s = modality_schedule(0.3, num_layers=28, prune_before=[], text_only_from=23)
    assert s.levels == (pytest.approx(0.42),) and s.keep_ratios == () and s.delta == 0.0


@pytest.mark.parametrize("pb,t,L,msg", [
    ([18, 16, 20], 23, 28, "strictly increasing"),
    ([16, 16, 20], 23, 28, "strictly increasing"),
    ([0, 18, 20], 23, 28, "after layer 0"),
    ([16, 18, 23], 23, 28, "< text_only_from"),
    ([16, 18, 20], 29, 28, "text_only_from"),
    ([16, 18, 20], 0, 28, "text_only_from"),
])
def test_boundary_validation(pb, t, L, msg):
    with pytest.raises(ValueError, match=msg):
        modality_schedule(0.3, num_layers=L, prune_before=pb, text_only_from=t)


def test_ratio_validation():
    for bad in (0.0, 1.2, -1.0):
        with pytest.raises(ValueError):
            modality_schedule(bad, **Q7)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.005, 1.0))
def test_schedule_properties(r):
    s = modality_schedule(r, **Q7)
    assert all(a >= b >= 0 for a, b in zip(s.levels, s.levels[1:]))
    assert s.mean_retention == pytest.approx(
        schedule_mean(s.levels, num_layers=28, prune_before=[16, 18, 20], text_only_from=23))
    assert s.mean_retention == pytest.approx(min(r, 23 / 28), abs=1e-9)
    assert all(0.0 <= k <= 1.0 for k in s.keep_ratios)


# -------------------------------------------------------------------- integer counts
def test_stage1_window_keep_rounding():
    assert stage1_window_keep(50, 0.49) == 24  # round(24.5) -> 24 (half to even)
    assert stage1_window_keep(7, 0.5) == 4  # round(3.5) -> 4
    assert stage1_window_keep(5, 0.5) == 2  # round(2.5) -> 2
    assert stage1_window_keep(50, 0.001) == 1
    assert stage1_window_keep(50, 1.0) == 50 and stage1_window_keep(50, 2.0) == 50
    assert stage1_window_keep(0, 0.5) == 0
    assert stage1_window_keep(288, 0.084) == 24  # round(24.192)


def test_step_keep():
    assert step_keep(768, 0.9298386387) == 714
    assert step_keep(5, 0.5) == 2  # round(2.5) -> 2
    assert step_keep(3, 0.5) == 2  # round(1.5) -> 2
    assert step_keep(10, 0.0) == 1
    assert step_keep(0, 0.9) == 0 and step_keep(-3, 0.9) == 0


def test_worked_example_layer_totals():
    # 128 frames 16:9: 32 windows of 288 video + 32 windows of 50 audio; (R_v, R_a) = (0.06, 0.35)
    sv = modality_schedule(0.06, **Q7)
    sa = modality_schedule(0.35, **Q7)
    nv = sum(stage1_window_keep(288, sv.rho) for _ in range(32))
    na = sum(stage1_window_keep(50, sa.rho) for _ in range(32))
    assert (nv, na) == (768, 768)
    cv = per_layer_counts(nv, sv.keep_ratios, **Q7)
    ca = per_layer_counts(na, sa.keep_ratios, **Q7)
    totals = [v + a + 100 for v, a in zip(cv, ca)]
    assert totals == [1636] * 16 + [1528] * 2 + [1236] * 2 + [440] * 3 + [100] * 5
    assert cv[16:21:2] == [714, 568, 170]


def test_per_layer_counts_validation():
    with pytest.raises(ValueError, match="keep ratios"):
        per_layer_counts(10, [0.5, 0.5], **Q7)
    with pytest.raises(ValueError, match="strictly increasing"):
        per_layer_counts(10, [0.5, 0.5], num_layers=28, prune_before=[5, 5], text_only_from=9)
    assert per_layer_counts(10, [0.5], num_layers=4, prune_before=[1], text_only_from=4) == [10, 5, 5, 5]


def test_a_step_counts_with_the_4_decimal_ratio_as_the_official_scheduler():
    """The official scheduler passes round(k_i, 4) on, and a step keeps round(k_i n): on 520 video tokens (26
    grids after Stage I at R 0.15 on the 7B) that is round(0.9298 x 520) = 483, where the unrounded
    0.929839 would give 484 (483.496 vs 483.516 before rounding)."""
    k = modality_schedule(0.10, **Q7).keep_ratios
    assert k == (0.9298, 0.7949, 0.2986)
    assert step_keep(520, k[0]) == 483
    assert step_keep(520, 0.9298386387088362) == 484
