"""The synthetic benchmark (issue 15): deterministic items with balanced letters whose answer lives in one window,
clips that decode to what the generator drew, the benchmark written for `seats batch`, and the committed trained
weights refused when the recipe changed."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from seats_cli.synthetic import (COLOURS, HELD_OUT_SEED, KINDS, TONES, Window, items, make_item, parse_letter,
                                 question_text, render, write_clip)


def test_items_are_deterministic_and_letters_balanced():
    a, b = items(HELD_OUT_SEED, 8), items(HELD_OUT_SEED, 8)
    assert a == b and len(a) == 32
    assert Counter((i.kind, i.answer) for i in a) == Counter({(k, x): 2 for k in KINDS for x in "ABCD"})
    # a pinned item: seed 1000000, kind colour, answer C (blue) in window 1 of 4, the other windows empty
    it = make_item(1_000_000, "colour", 2)
    assert it.windows == (Window(None, 2, 3), Window(2, 2, 0), Window(None, 1, 0), Window(None, 2, 2))
    assert (it.target, it.answer) == (1, "C")
    assert question_text("colour") == "What colour is the square? A. red B. green C. blue D. yellow"


@pytest.mark.parametrize("kind", KINDS)
def test_the_answer_needs_the_right_window(kind):
    for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + 40):
        it = make_item(seed, kind, seed % 4)
        ws, t = it.windows, it.target
        if kind == "colour":
            assert [w.colour is not None for w in ws].count(True) == 1 and ws[t].colour == seed % 4
        elif kind == "tone":
            assert [w.tone is not None for w in ws].count(True) == 1 and ws[t].tone == seed % 4
        elif kind == "tone_while_square":  # one square; every window a different tone
            assert [w.colour is not None for w in ws].count(True) == 1 and ws[t].colour is not None
            assert ws[t].tone == seed % 4 and len({w.tone for w in ws}) == len(ws)
        else:  # one tone; every window a different colour
            assert [w.tone is not None for w in ws].count(True) == 1 and ws[t].tone is not None
            assert ws[t].colour == seed % 4 and len({w.colour for w in ws}) == len(ws)


def test_render_draws_the_square_and_plays_the_tone():
    it = make_item(1_000_000, "colour", 2)  # blue square in the top-left corner of window 1
    frames, audio = render(it)
    assert frames.shape == (16, 56, 56, 3) and audio.shape == (128000,)
    assert frames[4, 10, 10].tolist() == list(COLOURS[2][1]) and frames[4, 40, 40].max() < 40
    assert frames[0, 10, 10].max() < 40  # window 0 is empty
    spectrum = np.abs(np.fft.rfft(audio[32000:64000]))  # window 1 plays tone 2 (1200 Hz); 2 s -> 0.5 Hz bins
    assert np.argmax(spectrum) / 2 == TONES[2][1]


def test_written_clip_decodes_to_the_model_input(tmp_path, tiny_seats):
    from seats_cli.config import ModelConfig
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy

    it = make_item(1_000_003, "tone_while_square", 1)
    media = decode_video(write_clip(it, tmp_path / "c.mp4"), frame_policy(ModelConfig.from_name("synthetic")))
    assert (media.height, media.width, len(media.frame_indices)) == (56, 56, 4 * len(it.windows))
    assert media.audio.shape[0] == pytest.approx(it.seconds * 16000, abs=800)
    w = it.windows[it.target]
    y, x = (w.corner // 2) * 28 + 14, (w.corner % 2) * 28 + 14
    got = media.frames[4 * it.target + 1, :, y, x].int().tolist()
    assert max(abs(g - e) for g, e in zip(got, COLOURS[w.colour][1])) < 30  # H.264 keeps the colour


def test_parse_letter():
    assert [parse_letter(x) for x in ("B", " c. blue", "(D)", "E", "", "blue")] == ["B", "C", "D", None, None, None]


def test_write_benchmark_for_batch(tmp_path):
    from seats_cli.evaluate import synthetic_items, write_benchmark

    path = write_benchmark(synthetic_items(HELD_OUT_SEED, 1), tmp_path)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["kind"] for r in rows] == list(KINDS)
    assert all((tmp_path / r["video"]).is_file() and r["answer"] in "ABCD" for r in rows)
    with pytest.raises(ValueError, match="training seed"):
        synthetic_items(5, 1)


def test_stale_weights_are_refused(monkeypatch, tmp_path):
    from seats_cli.models import synthetic
    from seats_cli.models.loading import ModelLoadError

    model = synthetic.new_thinker()
    path = synthetic.save_weights(model, tmp_path / "w.safetensors", steps=0)
    assert synthetic.load_trained(path)[1]["recipe"] == synthetic.recipe_key()
    monkeypatch.setattr(synthetic, "TRAIN_VERSION", "changed")
    with pytest.raises(ModelLoadError, match="re-run `python scripts/train_tiny.py`"):
        synthetic.load_trained(path)
