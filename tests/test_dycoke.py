"""DyCoke TTM (SEATS_SPEC §10.7) under the same harness: the passes on hand-made frames, the retention mapping,
and the method end to end on the sample."""

from __future__ import annotations

import math

import pytest
import torch

from seats_cli.selection.dycoke import dycoke_keep_ratio, dycoke_ttm


def _frames(*grids):
    return torch.cat([torch.tensor(g, dtype=torch.float32) for g in grids])


def test_pass_one_keeps_the_tokens_least_like_the_previous_frame():
    e = torch.eye(4).tolist()
    f0 = e
    # frame 1 against frame 0 position by position: same (cos 1), opposite (-1), orthogonal (0), close (0.99)
    f1 = [e[0], [0, -1, 0, 0], e[3], [0.1, 0, 0, 0.99]]
    f2 = e
    f3 = [[0, 1, 0, 0], e[1], e[2], [0, 0, 0, -1]]  # cos to frame 2: 0, 1, 1, -1
    kept = dycoke_ttm(_frames(f0, f1, f2, f3), 4, 0.5).tolist()  # k = floor(0.5 * 4) = 2 per pruned frame
    assert kept == [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 15]


def test_pass_two_and_an_odd_last_frame():
    g = torch.randn(9 * 3, 5, generator=torch.Generator().manual_seed(0))
    kept = dycoke_ttm(g, 3, 0.34)  # k = floor(1.02) = 1
    per_frame = [int(((kept >= f * 3) & (kept < f * 3 + 3)).sum()) for f in range(9)]
    # pass 1 prunes frames 1, 3, 5, 7; pass 2 (i = 0, 4) re-prunes frames 2 and 6; frame 8 (odd F) stays whole
    assert per_frame == [3, 1, 1, 1, 3, 1, 1, 1, 3]


@pytest.mark.parametrize("frames, q, r", [(64, 0.3, 0.485), (64, 0.1, 0.3391), (64, 0.0, 0.265625), (16, 0.0, 0.3125)])
def test_retention_mapping(frames, q, r):
    # r(K) = [P(1 + q) - G(1 - q)] / F with P = F/2, G = |range(0, F-4, 4)|; the minimum at q = 0 is 1/4 + 1/F
    p, g = frames // 2, len(range(0, frames - 4, 4))
    assert (p * (1 + q) - g * (1 - q)) / frames == pytest.approx(r, abs=1e-3)
    assert dycoke_keep_ratio(r, frames) == pytest.approx(q, abs=2e-3)
    assert dycoke_keep_ratio(0.1, frames) == 0.0  # below the floor: the smallest reachable


@pytest.mark.parametrize("frames", [9, 15, 63])
def test_retention_mapping_counts_an_odd_last_frame(frames):
    """With F odd the last frame stays whole: the achieved retention, counted frame by frame on a real selection,
    is at most R_v and within one pruned frame's rounding of it (the even-F mapping overshot by 1/F)."""
    n, r_v = 16, 0.45
    q = dycoke_keep_ratio(r_v, frames)
    feats = torch.randn(frames * n, 8, generator=torch.Generator().manual_seed(frames))
    achieved = dycoke_ttm(feats, n, q).numel() / (frames * n)
    pruned = frames // 2 + len(range(0, frames - 4, 4))
    assert achieved <= r_v + 1e-12
    assert r_v - achieved < pruned / (frames * n)  # only the floor(q n) rounding is lost


def test_dycoke_end_to_end_on_the_sample(tiny_seats, sample_path):
    # 864 video (6 grids of 144) + 150 audio at --trr 0.5: table pair (0.4286, 0.9286); audio-intact reallocation
    # T = int(370.29 + 139.29) = 509 -> v = 359/864 = 0.41551, audio whole; P = 3, G = 1:
    # q = (0.41551 * 6 - 3 + 1) / 4 = 0.12326 -> floor(17.75) = 17 of 144 in frames 1, 3, 5 and 2
    r = tiny_seats.ask(sample_path, "What is moving?", method="dycoke", trr=0.5, max_new_tokens=1)
    assert (r.layers[0]["video"], r.layers[0]["audio"]) == (2 * 144 + 4 * 17, 150)
    assert all((row["video"], row["audio"]) == (356, 150) for row in r.layers)
    assert math.isclose(r.schedule["achieved_video_trr"], 356 / 864)
