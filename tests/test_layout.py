"""Windows follow the processor's own interleaving, including its chunking quirk below 1 fps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seats_cli.layout import AUDIO, VIDEO, chunk_ranges


@pytest.mark.parametrize("seed", range(20))
def test_chunk_ranges_equal_the_processors(tiny_seats, seed):
    proc = tiny_seats.adapter.processor
    rng = np.random.default_rng(seed)
    spg = float(rng.choice([0.5, 1.0, 2 / 1.9, 4.0, 7.0]))
    grids, per_grid = int(rng.integers(1, 30)), int(rng.integers(1, 9))
    values = np.repeat(np.arange(grids), per_grid) * spg * 25
    assert chunk_ranges(values, 50) == proc.get_chunked_index(values, 50)
    audio = np.arange(int(rng.integers(1, 400)))
    assert chunk_ranges(audio, 50) == proc.get_chunked_index(audio, 50)


@pytest.mark.parametrize("told", ["sampled", "official"])
@pytest.mark.parametrize("fps, frames, seconds", [(2.0, 12, 6.0), (0.5, 20, 40.0), (0.25, 8, 32.0), (1.9, 10, 5.26),
                                                  (4.0, 16, 4.0)])
def test_layout_windows_are_the_processors_chunks(tiny_seats, fps, frames, seconds, told):
    """Below 1 fps a 2-frame grid spans more than a 2-s chunk; the processor then moves its cut by one chunk
    per token, so some windows hold a single video token. The layout must mirror that exactly. With
    ``--processor-fps official`` the processor is told no fps and assumes 2: its chunks stay 2 grids + 50 audio
    tokens (drifting from the real time), and the layout must mirror that too."""
    ad = tiny_seats.adapter
    media = SimpleNamespace(path="synthetic.mp4", frames=torch.zeros(frames, 3, 56, 56, dtype=torch.uint8),
                            audio=np.zeros(int(seconds * 16000), dtype=np.float32), sample_fps=fps,
                            duration_s=seconds, processor_fps=told)
    req = ad.prepare(media, "q")
    layout = req.layout
    ids = req.inputs["input_ids"][0]
    # expected windows straight from the processor's own chunking of this request
    spg = 2 / (fps if told == "sampled" else 2.0)
    assert float(req.inputs["video_second_per_grid"][0]) == pytest.approx(spg)
    n_audio = int((ids == ad.model.config.audio_token_id).sum())
    t, h, w = (int(x) for x in req.inputs["video_grid_thw"][0])
    v_chunks = ad.processor.get_chunked_index(np.repeat(np.arange(t), (h // 2) * (w // 2)) * spg * 25, 50)
    a_chunks = ad.processor.get_chunked_index(np.arange(n_audio), 50)
    n = max(len(v_chunks), len(a_chunks))
    want = [((v_chunks[j][1] - v_chunks[j][0]) if j < len(v_chunks) else 0,
             (a_chunks[j][1] - a_chunks[j][0]) if j < len(a_chunks) else 0) for j in range(n)]
    assert [(w.video_total, w.audio_total) for w in layout.windows] == want
    if told == "official" and fps == 0.5:  # 10 grids of 4 tokens, 1000 audio tokens: no fragments, audio surplus
        assert want == [(8, 50)] * 5 + [(0, 50)] * 15
    if told == "official" and fps == 4.0:  # 8 grids taken for 1 s each on a 4 s clip: the last chunk ends at 8 s
        assert [(w.start_s, w.end_s) for w in layout.windows] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    # and each window's runs are the interleaved runs of the sequence, in order
    for w in layout.windows:
        if w.video:
            assert bool((layout.modality[w.video[0]:w.video[1]] == VIDEO).all())
        if w.audio:
            assert bool((layout.modality[w.audio[0]:w.audio[1]] == AUDIO).all())
    assert sum(w.video_total for w in layout.windows) == layout.n_video
    assert sum(w.audio_total for w in layout.windows) == layout.n_audio


def test_time_interleaved_runs_of_qwen3():
    from seats_cli.layout import time_interleaved_runs

    # SEATS_SPEC §7.6: 4 s at fps 2 (8 frames, 4 grids of 144) + 52 audio tokens -> V144 A13 x 4
    assert time_interleaved_runs(4, 144, 1.0, 52, 13) == [(144, 13)] * 4
    # the processor's default fps 1 on the same clip (2 s per grid): V144 A26 V144 A26 V288
    assert time_interleaved_runs(4, 144, 2.0, 52, 13) == [(144, 26), (144, 26), (288, 0)]
    # 8 frames over 18.75 s (fps 0.4267): each grid 60.9375 time ids apart -> V144 A61 x 4 (244 audio tokens)
    assert time_interleaved_runs(4, 144, 2 / 0.4266666666666667, 244, 13) == [(144, 61)] * 4
    # no audio: one video run
    assert time_interleaved_runs(3, 4, 1.0, 0, 13) == [(12, 0)]


def test_a_video_only_run_is_reported_per_2_s():
    from seats_cli.layout import grids_per_window, split_video_run

    assert grids_per_window(2.0, 1.0) == 2 and grids_per_window(2.0, 2.0) == 1  # Qwen3 at 2 fps / at 1 fps
    assert grids_per_window(2.0, 2 / 0.4267) == 1  # grids longer than the window: one grid each
    assert split_video_run(5 * 144, 144, 2) == [288, 288, 144] and split_video_run(288, 144, 2) == [288]
