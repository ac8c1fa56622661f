"""Long clips and frame sizes end to end (issues 8 and 19): generated clips through `seats ask --model tiny`
and `seats profile --analytic` on the same file, checked against hand-derived numbers and against each other.

Hand derivations (tiny preset = the 7B's SEATS settings; `--trr 0.15` -> table pair (0.10, 0.45), so Stage I keeps
rho_v = 0.14 and rho_a = 0.63): a full 288-token video window keeps round(40.32) = 40, a 50-token audio window
round(31.5) = 32 (half to even), a 25-token one round(15.75) = 16. Clips are 2 fps sources, so a clip of T s gives
2T frames, at most 128 (then subsampled below 2 fps), 144 tokens per grid of 2 frames at 252x448, and
25 audio tokens per second.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from media_factory import make_clip
from seats_cli.cli import app

CLIPS: dict[str, Path] = {}


def clip(tmp_path_factory, name: str, **kwargs) -> Path:
    if name not in CLIPS:
        CLIPS[name] = make_clip(tmp_path_factory.mktemp("long") / f"{name}.mp4", fps=2, **kwargs)
    return CLIPS[name]


def run(*args) -> dict:
    res = CliRunner().invoke(app, [*map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def ask(path, *extra) -> dict:
    return run("ask", path, "What happens?", "--model", "tiny", "--device", "cpu", "--max-new-tokens", "2", *extra)


def analytic(path, *extra) -> dict:
    return run("profile", path, "--analytic", "--config", "tiny", "--question", "What happens?", *extra)


# seconds, with sound, video tokens, audio tokens, audio Stage I windows (sizes), video/audio kept by Stage I
LONG = [
    (30, True, 4320, 750, [50] * 15, 15 * 40, 15 * 32),  # 60 frames at 2 fps: 15 windows of 2 grids
    (65, True, 9216, 1625, [50] * 32 + [25], 32 * 40, 32 * 32 + 16),  # 130 frames -> 128 (1.97 fps)
    (130, True, 9216, 3250, [50] * 65, 32 * 40, 65 * 32),  # 0.98 fps: the processor's chunks fragment
    (300, True, 9216, 7500, [50] * 150, 32 * 40, 150 * 32),  # 0.43 fps, 300 s of audio
    (300, False, 9216, 0, [], 32 * 40, 0),  # no sound track
]


@pytest.mark.parametrize("seconds, sound, n_v, n_a, audio_windows, kept_v, kept_a", LONG,
                         ids=[f"{s}s" + ("" if a else "-silent") for s, a, *_ in LONG])
def test_long_clip_through_ask_and_analytic_profile(tmp_path_factory, seconds, sound, n_v, n_a, audio_windows,
                                                    kept_v, kept_a):
    path = clip(tmp_path_factory, f"c{seconds}{'' if sound else 'm'}", width=96, height=54, seconds=seconds,
                audio_rate=16000 if sound else None)
    got = ask(path, "--trr", "0.15")
    prof = analytic(path, "--trr", "0.15")
    assert (got["media"]["height"], got["media"]["width"]) == (252, 448) == (prof["input"]["height"],
                                                                            prof["input"]["width"])
    assert (got["tokens"]["video"], got["tokens"]["audio"]) == (n_v, n_a)
    assert prof["input"]["tokens"] | {"total": 0} == got["tokens"] | {"total": 0}

    # Stage I: fixed windows whatever the clip length (2 grids = 288 video tokens, 50 audio tokens)
    s1 = got["stage1_windows"]
    assert s1["video"]["window"] == 288 and s1["video"]["totals"] == [288] * (n_v // 288)
    assert s1["video"]["kept"] == [40] * (n_v // 288)
    assert s1["audio"]["window"] == 50 and s1["audio"]["totals"] == audio_windows
    assert sum(s1["audio"]["kept"]) == kept_a
    layer0 = got["layers"][0]
    assert (layer0["video"], layer0["audio"]) == (kept_v, kept_a)
    assert (prof["layers"][0]["video"], prof["layers"][0]["audio"]) == (kept_v, kept_a)

    # the time-chunk report (Stage II's windows) is truthful: its counts sum to the layer counts at every stage
    stages = [k["layer"] for k in got["windows"][0]["kept"]]
    assert stages[0] == 0 and set(stages[1:]) <= {16, 18, 20, 23}
    for i, layer in enumerate(stages):
        v = sum(w["kept"][i]["video"] for w in got["windows"])
        a = sum(w["kept"][i]["audio"] for w in got["windows"])
        assert (v, a) == (got["layers"][layer]["video"], got["layers"][layer]["audio"])
    assert sum(w["video_total"] for w in got["windows"]) == n_v
    assert sum(w["audio_total"] for w in got["windows"]) == n_a
    # text only from layer 23; the engine's per-layer totals match the analytic replay within a few tokens
    assert all(r["video"] == r["audio"] == 0 for r in got["layers"][23:])
    for r, e in zip(got["layers"], prof["engine_layers"]):
        assert abs((r["video"] + r["audio"]) - (e["video"] + e["audio"])) <= 3

    # achieved retention: reported, measured from the counts, and the analytic one agrees
    sched = got["schedule"]
    assert (sched["ratio_mode"], sched["video_trr"], sched["audio_trr"]) == ("table", 0.1, 0.45)
    live = sum(r["video"] + r["audio"] for r in got["layers"])
    assert sched["achieved_trr"] == pytest.approx(live / (28 * (n_v + n_a)), rel=1e-12)
    assert sched["achieved_trr"] == pytest.approx(prof["schedule"]["achieved_trr"], abs=0.005)
    want = (0.10 * n_v + 0.45 * n_a) / (n_v + n_a)  # table mode: the pair at this clip's audio share
    assert sched["achieved_trr"] == pytest.approx(want, abs=0.01)
    noted = any(n.startswith("requested TRR 0.15, achieved") for n in got["notes"])
    assert noted == (abs(sched["achieved_trr"] - 0.15) > 0.02)


def test_exact_ratio_mode_hits_the_requested_trr_on_a_long_clip(tmp_path_factory):
    path = clip(tmp_path_factory, "c300", width=96, height=54, seconds=300)
    got = ask(path, "--trr", "0.15", "--ratio-mode", "exact")
    sched = got["schedule"]
    # nearest row (0.10, 0.45) scaled by alpha = 0.15*16716/(921.6 + 3375) = 0.5836: (0.0584, 0.2626)
    assert sched["ratio_mode"] == "exact"
    assert (sched["video_trr"], sched["audio_trr"]) == (pytest.approx(0.05836, abs=1e-4),
                                                         pytest.approx(0.26261, abs=1e-4))
    assert sched["achieved_trr"] == pytest.approx(0.15, abs=0.01)
    assert not any(n.startswith("requested TRR") for n in got["notes"])
    # Stage I: rho_v = 1.4 * 0.05836 = 0.0817 -> round(23.5) = 24 of each 288 (never one token in all)
    assert got["stage1_windows"]["video"]["kept"] == [24] * 32


# ------------------------------------------------------------------------------------- frame size (issue 19)
# source size -> (frames at 128, size the model gets) and (frames at 768, qwen-omni-utils' size, final size)
ASPECTS = {
    "16:9": ((96, 54), (252, 448, 144), (448, 252), (224, 420), (252, 448, 144)),
    "4:3": ((96, 72), (280, 392, 140), (448, 336), (280, 364), (280, 364, 130)),
    "portrait": ((54, 96), (448, 252, 144), (252, 448), (420, 224), (448, 252, 144)),
}


def _compare(got: dict, prof: dict) -> None:
    """What `profile --analytic` says the model receives equals what `ask` fed it."""
    inp = prof["input"]
    assert (got["media"]["height"], got["media"]["width"]) == (inp["height"], inp["width"])
    assert got["tokens"] == {k: inp["tokens"][k] for k in ("video", "audio", "text")}
    assert [(w["video_total"], w["audio_total"]) for w in got["windows"]] == \
        [(w["video"], w["audio"]) for w in inp["windows"]]
    assert got["flops"]["full"] == prof["flops"]["full"]


@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_analytic_profile_describes_what_ask_feeds_the_model_at_128_frames(tmp_path_factory, aspect):
    (w, h), (fh, fw, per_grid), *_ = ASPECTS[aspect]
    path = clip(tmp_path_factory, f"s70_{aspect.replace(':', '')}", width=w, height=h, seconds=70)
    got, prof = ask(path, "--trr", "0.25"), analytic(path, "--trr", "0.25")
    _compare(got, prof)
    assert (got["media"]["frames"], got["media"]["height"], got["media"]["width"]) == (128, fh, fw)
    assert prof["input"]["tokens_per_grid"] == per_grid and got["tokens"]["video"] == 64 * per_grid


@pytest.mark.slow
@pytest.mark.parametrize("aspect", list(ASPECTS))
def test_analytic_profile_describes_what_ask_feeds_the_model_at_768_frames(tmp_path_factory, aspect):
    """At 768 frames qwen-omni-utils' shared pixel budget shrinks the frames (224x420 for 16:9); the stock
    processor's bounds bring them back to 252x448 in the official pipeline, and so in ours, resized once."""
    *_, (w, h), (ph, pw), (fh, fw, per_grid) = ASPECTS[aspect]
    path = clip(tmp_path_factory, f"s400_{aspect.replace(':', '')}", width=w, height=h, seconds=400)
    got = ask(path, "--trr", "0.1", "--max-frames", "768")
    prof = analytic(path, "--trr", "0.1", "--max-frames", "768")
    _compare(got, prof)
    assert (got["media"]["frames"], got["media"]["height"], got["media"]["width"]) == (768, fh, fw)
    assert got["tokens"]["video"] == 384 * per_grid
    # the "as sized by qwen-omni-utils" variant is a named option
    preset = analytic(path, "--trr", "0.1", "--max-frames", "768", "--frame-sizing", "preset")
    assert (preset["input"]["height"], preset["input"]["width"]) == (ph, pw)
    assert preset["input"]["tokens_per_grid"] == (ph // 28) * (pw // 28)


def test_a_preset_with_small_frames_is_honoured(tmp_path, tmp_path_factory):
    """A preset's own pixel bounds reach the model: 56x56 frames give a 4x4 patch grid (2x2 = 4 LLM tokens per
    grid), not the 336x336 the processor's default bounds would make of them."""
    import yaml

    from seats_cli import Seats
    from seats_cli.request import frame_policy
    from seats_cli.config import configs_dir
    from seats_cli.media import decode_video

    square = clip(tmp_path_factory, "square6", width=64, height=64, seconds=6)  # 12 frames -> 6 grids

    raw = yaml.safe_load((configs_dir() / "tiny.yaml").read_text())
    raw["name"] = "tiny-56"
    raw["media"].update(min_pixels=3136, max_pixels=3136, processor_min_pixels=3136, processor_max_pixels=3136)
    cfg_path = tmp_path / "tiny56.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    s = Seats("tiny", config=str(cfg_path), device="cpu", dtype="float32")
    r = s.ask(square, "What is moving?", max_new_tokens=1)
    assert (r.media["height"], r.media["width"]) == (56, 56)
    assert r.tokens["video"] == 6 * 4  # 6 grids of (56/28)^2 = 4 tokens
    request = s.adapter.prepare(decode_video(square, frame_policy(s.config)), "q")
    assert request.inputs["video_grid_thw"][0].tolist() == [6, 4, 4]
    # with frame_sizing "preset" the processor bounds are not applied either
    raw["media"].update(processor_min_pixels=100352, processor_max_pixels=602112, frame_sizing="preset")
    cfg_path.write_text(yaml.safe_dump(raw))
    r2 = Seats("tiny", config=str(cfg_path), device="cpu", dtype="float32").ask(square, "q", max_new_tokens=1)
    assert (r2.media["height"], r2.media["width"]) == (56, 56)
