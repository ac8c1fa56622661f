from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seats_cli.schedule import (
    ModalityRatios,
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


# ----------------------------------------------------------- resolve_modality_ratios
def test_interpolated_audio_and_solved_video():
    # R = 0.2 lies halfway between rows 0.15 and 0.25: R_a = (0.45 + 0.55)/2 = 0.50;
    # R_v = (0.2*10000 - 0.5*1000)/9000 = 1500/9000.
    r = resolve_modality_ratios(0.2, 9000, 1000, TABLE_7B)
    assert r.audio == pytest.approx(0.50, abs=1e-12)
    assert r.video == pytest.approx(1500 / 9000, abs=1e-12)


def test_table_order_does_not_matter():
    a = resolve_modality_ratios(0.12, 9216, 1600, TABLE_7B)
    b = resolve_modality_ratios(0.12, 9216, 1600, list(reversed(TABLE_7B)))
    assert a == b
    assert a.audio == pytest.approx(0.35 + 0.10 * 0.02 / 0.05, abs=1e-12)  # 0.39


def test_clamped_at_table_ends():
    assert resolve_modality_ratios(0.5, 9000, 1000, TABLE_7B).audio == pytest.approx(0.65)
    assert resolve_modality_ratios(0.05, 9000, 1000, TABLE_7B).audio == pytest.approx(0.35)


def test_worked_example_ratio():
    # 9216 video + 1600 audio at R = 0.1: R_a = 0.35, R_v = (1081.6 - 560)/9216
    r = resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B)
    assert r == ModalityRatios(pytest.approx((1081.6 - 560) / 9216), pytest.approx(0.35))


def test_video_clamped_to_one_and_audio_resolved():
    # R_v = (0.9*1100 - 0.65*1000)/100 = 3.4 -> 1; R_a = (990 - 100)/1000 = 0.89
    r = resolve_modality_ratios(0.9, 100, 1000, TABLE_7B)
    assert r.video == 1.0
    assert r.audio == pytest.approx(0.89, abs=1e-12)


def test_video_floor_and_audio_resolved():
    # R_v = (0.1*1100 - 0.35*1000)/100 < 0 -> floor 1/100; R_a = (110 - 1)/1000
    r = resolve_modality_ratios(0.1, 100, 1000, TABLE_7B)
    assert r.video == pytest.approx(0.01, abs=1e-15)
    assert r.audio == pytest.approx(0.109, abs=1e-12)


def test_missing_modalities():
    assert resolve_modality_ratios(0.2, 5000, 0, TABLE_7B) == ModalityRatios(0.2, pytest.approx(0.5))
    assert resolve_modality_ratios(0.2, 0, 700, TABLE_7B) == ModalityRatios(pytest.approx(0.15), 0.2)
    assert resolve_modality_ratios(0.2, 0, 0, TABLE_7B) == ModalityRatios(0.2, 0.2)


def test_overrides():
    assert resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, 0.06, 0.35) == ModalityRatios(0.06, 0.35)
    # only video given: R_a = (0.1*10816 - 0.06*9216)/1600 = 528.64/1600
    r = resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, video_trr=0.06)
    assert r.video == 0.06 and r.audio == pytest.approx(528.64 / 1600, abs=1e-12)
    # only audio given: R_v = (1081.6 - 0.5*1600)/9216
    r = resolve_modality_ratios(0.1, 9216, 1600, TABLE_7B, audio_trr=0.5)
    assert r.audio == 0.5 and r.video == pytest.approx(281.6 / 9216, abs=1e-12)


@pytest.mark.parametrize("kw", [dict(trr=0.0), dict(trr=1.5), dict(trr=-0.1), dict(trr=float("nan")),
                                dict(trr=0.2, video_trr=0.0), dict(trr=0.2, audio_trr=1.01)])
def test_invalid_ratios_rejected(kw):
    trr = kw.pop("trr")
    with pytest.raises(ValueError, match="must satisfy 0 <"):
        resolve_modality_ratios(trr, 10, 10, TABLE_7B, **kw)


def test_empty_table_rejected():
    with pytest.raises(ValueError, match="at least one"):
        resolve_modality_ratios(0.2, 10, 10, [])


@settings(max_examples=200, deadline=None)
@given(st.floats(0.02, 1.0), st.integers(1, 20000), st.integers(1, 20000))
def test_overall_ratio_is_exact_when_unclamped(trr, nv, na):
    r = resolve_modality_ratios(trr, nv, na, TABLE_7B)
    assert 0.0 < r.video <= 1.0 and 0.0 < r.audio <= 1.0
    if 1.0 / nv < r.video < 1.0:
        assert r.video * nv + r.audio * na == pytest.approx(trr * (nv + na), rel=1e-9)


# ----------------------------------------------------------------- modality_schedule
def test_reference_numbers_7b():
    c = 7 + 5 * math.e + 3 * math.e**2
    assert c == pytest.approx(42.7586, abs=1e-4)
    s = modality_schedule(0.3, **Q7)
    assert s.rho == pytest.approx(0.42)
    assert s.delta == pytest.approx(0.3 * (1.4 * 23 - 28) / c, abs=1e-12)
    assert s.delta == pytest.approx(0.02947, abs=1e-5)
    assert s.levels == pytest.approx((0.420, 0.3905, 0.3104, 0.0927), abs=1e-4)
    assert s.keep_ratios == pytest.approx((0.9298, 0.7949, 0.2986), abs=1e-4)
    assert s.mean_retention == pytest.approx(0.3, abs=1e-12)


def test_reference_keep_ratios_qwen3():
    s = modality_schedule(0.3, **Q30)
    assert s.keep_ratios == pytest.approx((0.9255, 0.7813, 0.2390), abs=1e-4)
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
    assert s.keep_ratios == pytest.approx((0.3225 / 0.42, 0.0), abs=1e-9)
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
