"""`seats profile`: the analytic layout, counts and FLOPs against SEATS_SPEC §9 and against what the engine
really does on the tiny model; measured mode prints its latency fields (values are not asserted)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from seats_cli.request import frame_policy
from seats_cli.cli import app
from seats_cli.config import ModelConfig
from seats_cli.measure import synthetic_request
from seats_cli.shape import audio_token_count, shape_from_frames, window_sizes

Q = "What is moving?"
FAST = ["--device", "cpu", "--dtype", "float32"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_json(*args) -> dict:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, (res.stdout, res.stderr)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1  # exactly one JSON object on stdout
    return json.loads(lines[0])


def stage_totals(layers) -> list[int]:
    out = [layers[0]["total"]]
    for r in layers[1:]:
        if r["total"] != out[-1]:
            out.append(r["total"])
    return out


def test_spec_section9_example():
    d = run_json("profile", "--config", "qwen2.5-omni-7b", "--analytic", "--json", "--frames", "128", "--aspect",
                 "16:9", "--audio-seconds", "64", "--text-tokens", "100", "--video-trr", "0.06", "--audio-trr", "0.35")
    assert d["input"]["tokens"] == {"video": 9216, "audio": 1600, "text": 100, "total": 10916}
    assert (d["input"]["height"], d["input"]["width"], d["input"]["tokens_per_grid"]) == (252, 448, 144)
    assert [(w["video"], w["audio"]) for w in d["input"]["windows"]] == [(288, 50)] * 32
    assert len(d["layers"]) == 28 and len(d["runs"]) == 1 and d["runs"][0]["flops"] == d["flops"]
    assert stage_totals(d["layers"]) == [1636, 1528, 1236, 440, 100]
    assert [r["total"] for r in d["layers"]] == [1636] * 16 + [1528] * 2 + [1236] * 2 + [440] * 3 + [100] * 5
    assert round(d["flops"]["full"] / 1e12, 2) == 101.09
    assert round(d["flops"]["pruned"] / 1e12, 2) == 8.23
    assert round(d["flops"]["reduction"], 1) == 12.3
    s = d["schedule"]
    assert (s["video_trr"], s["audio_trr"], s["prune_before"], s["text_only_from"]) == (0.06, 0.35, [16, 18, 20], 23)
    assert s["video"]["rho"] == pytest.approx(0.084) and s["audio"]["rho"] == pytest.approx(0.49)
    assert s["video"]["keep_ratios"] == pytest.approx([0.9298, 0.7949, 0.2986], abs=1e-4)
    assert d["trr"] == pytest.approx((0.06 * 9216 + 0.35 * 1600) / 10816)  # what the two ratios achieve
    assert d["input"]["text_source"] == "given"


def test_several_trrs_give_runs_and_human_output():
    args = ["profile", "--config", "qwen2.5-omni-7b", "--analytic", "--frames", "32", "--audio-seconds", "16",
            "--trr", "0.35", "--trr", "0.1"]
    d = run_json(*args, "--json")
    assert [r["trr"] for r in d["runs"]] == [0.35, 0.1] and "layers" not in d
    assert d["runs"][0]["flops"]["reduction"] < d["runs"][1]["flops"]["reduction"]
    assert d["input"]["text_source"] in ("estimate", "tokenizer")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "reduction" in res.stdout and "TRR 0.1" in res.stdout
    q3 = run_json("profile", "--config", "qwen3-omni-30b-a3b", "--analytic", "--json", "--frames", "128",
                  "--audio-seconds", "64", "--text-tokens", "100", "--trr", "0.1")
    assert q3["input"]["tokens"]["video"] == 64 * 144 and q3["input"]["tokens"]["audio"] == 64 * 13
    assert q3["input"]["audio_formula_exact"] and not any("approximate" in n for n in q3["notes"])


@pytest.mark.parametrize("args, mentions", [
    (["profile", "--analytic"], "give a VIDEO or --frames N"),  # neither input given
    (["profile", "--analytic", "--frames", "7"], "--frames must be a positive multiple of 2, got 7"),
    (["profile", "--analytic", "--frames", "8", "--trr", "1.5"], "--trr 1.5 is out of range"),
    (["profile", "--analytic", "--frames", "8", "--method", "all", "--method", "bogus"], "--method bogus: choose"),
    (["profile", "--model", "tiny", "--frames", "8", "--decode-tokens", "100000000"],
     "--decode-tokens 100000000 exceeds tiny's context of 32768 tokens"),
])
def test_usage_errors(args, mentions):
    from test_cli_ask import assert_one_error_line

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, (args, res.stderr)
    assert_one_error_line(res.stderr, mentions=mentions)


@pytest.mark.parametrize("samples", [16000, 16001, 12345, 96000, 1024000])
def test_audio_tokens_match_the_processor_arithmetic(samples):
    import numpy as np
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=300,
                                 n_fft=400, return_attention_mask=True)
    mask = fe([np.zeros(samples, np.float32)], sampling_rate=16000, padding="max_length",
              return_attention_mask=True)["attention_mask"]
    mel, tokens, exact = audio_token_count(samples, ModelConfig.from_name("qwen2.5-omni-7b"))
    assert exact and mel == int(mask.sum()) and tokens == int(_get_feat_extract_output_lengths(mask.sum(-1))[0])


@pytest.mark.parametrize("frames,audio_seconds", [(32, 16.0), (12, 6.0), (16, 3.0), (8, 12.5), (10, 0.0)])
def test_synthetic_request_layout_equals_window_formula(tiny_seats, frames, audio_seconds):
    """The analytic window formula equals the processor's own interleaving of blank frames and silence."""
    cfg = ModelConfig.from_name("qwen2.5-omni-7b")
    shape = shape_from_frames(cfg, frame_policy(cfg), frames=frames, audio_seconds=audio_seconds, n_text=50)
    _, layout = synthetic_request(tiny_seats.adapter, shape, cfg)
    assert (layout.n_video, layout.n_audio) == (shape.n_video, shape.n_audio)
    assert [w.video_total for w in layout.windows] == list(shape.video_windows)
    assert [w.audio_total for w in layout.windows] == list(shape.audio_windows)
    assert window_sizes(shape.grids, shape.tokens_per_grid, shape.seconds_per_grid, shape.n_audio, cfg) == (
        shape.video_windows, shape.audio_windows)


def test_analytic_counts_against_the_engine_on_the_sample(sample_path, tiny_dir):
    """Stage I counts and the first Stage II total are exact; later Stage II steps split K between video and
    audio by per-window rounding of the real query scores, so they may differ by a token or two."""
    d = run_json("profile", str(sample_path), "--config", "tiny", "--analytic", "--json", "--trr", "0.35",
                 "--trr", "0.1", "--question", Q)
    assert d["input"]["text_source"] == "tokenizer"
    for run in d["runs"]:
        ask = run_json("ask", str(sample_path), Q, "--model", "tiny", "--trr", str(run["trr"]), "--json",
                       "--max-new-tokens", "1", *FAST)
        assert ask["tokens"] == {k: d["input"]["tokens"][k] for k in ("video", "audio", "text")}
        assert run["flops"]["full"] == ask["flops"]["full"]
        for view in (run["layers"], run["engine_layers"]):
            got = [{k: r[k] for k in ("layer", "video", "audio", "text")} for r in view]
            assert got[:16] == ask["layers"][:16]  # Stage I, per window and modality
            assert view[16]["total"] == sum(ask["layers"][16][k] for k in ("video", "audio", "text"))
            for r, a in zip(got[17:], ask["layers"][17:]):
                assert abs(r["video"] - a["video"]) <= 2 and abs(r["audio"] - a["audio"]) <= 2, (r, a)
        assert run["engine_flops"]["reduction"] == pytest.approx(ask["flops"]["reduction"], rel=0.01)


def test_engine_replay_equals_the_pruner_with_uniform_scores(tiny_seats):
    """``engine_counts`` replays the real SeatsPruner (Stage I per window, Stage II budgets, Stage III) exactly
    when every live token gets the same query score."""
    from seats_cli.engine import PruneState
    from seats_cli.methods import build_pruner
    from seats_cli.profile import engine_counts

    class UniformScores:
        def query_scores(self, layer_idx, hidden, cos, sin, query_row):
            return torch.full((hidden.shape[1],), 1.0 / hidden.shape[1])

    cfg = ModelConfig.from_name("qwen2.5-omni-7b")
    for frames, audio_seconds, trr in [(32, 16.0, 0.1), (32, 16.0, 0.35), (12, 6.0, 0.25), (16, 3.0, 0.15),
                                       (8, 12.5, 0.1), (10, 0.0, 0.2), (40, 20.0, 0.6)]:
        shape = shape_from_frames(cfg, frame_policy(cfg), frames=frames, audio_seconds=audio_seconds, n_text=40)
        encoded, layout = synthetic_request(tiny_seats.adapter, shape, cfg)
        pruner, plan = build_pruner("seats", cfg, layout, trr=trr)
        s = layout.seq_len
        keep = pruner.before_llm(None, encoded, layout)
        live = torch.arange(s) if keep is None else keep
        rows = []
        for layer in range(plan.num_layers):
            if layer in pruner.drop_layers:
                state = PruneState(layer, torch.zeros(1, live.numel(), 1), None, None, layout.modality[live])
                kept = pruner.at_layer(UniformScores(), state)
                if kept is not None and kept.numel() < live.numel():
                    live = live[kept]
            rows.append({"layer": layer, **layout.modality_counts(live)})
        replay = engine_counts(plan, shape.video_windows, shape.audio_windows, layout.n_text, cfg.seats.temperature)
        assert [{k: r[k] for k in ("layer", "video", "audio", "text")} for r in replay] == rows, (frames, trr)


def test_measured_mode_on_tiny(sample_path, tiny_dir):
    d = run_json("profile", str(sample_path), "--model", "tiny", "--trr", "0.1", "--json", "--repeats", "2",
                 "--warmup", "1", "--decode-tokens", "3", "--question", Q, *FAST)
    assert d["mode"] == "measured" and d["input"]["text_source"] == "processor"
    lat = d["latency"]
    for side in ("full", "seats"):
        p = lat[side]["prefill_ms"]
        assert p["n"] == 2 and 0 < p["min"] <= p["median"] <= p["max"]
        assert lat[side]["decode_tokens_per_s"] > 0 and lat[side]["decode_steps"] == 2
        assert "RSS" in lat[side]["peak_memory"]["kind"] and lat[side]["peak_memory"]["mib"] > 0
    assert lat["prefill_speedup"] > 0 and lat["speedup_over_flops_reduction"] > 0 and lat["decode_speedup"] > 0
    assert d["machine"]["device"] == "cpu" and d["flops"]["reduction"] > 1
    assert [r["total"] for r in d["layers"]][-1] == d["input"]["tokens"]["text"]
    # with a file: whole requests too, full vs SEATS, every part of the time and the total's speedup
    req = d["requests"]
    assert [(r["method"], r["trr"]) for r in req] == [("full", None), ("seats", 0.1)] and req[0]["speedup_total"] == 1
    assert req[0]["speedup_first_token"] == 1
    for r in req:
        m = r["median_ms"]
        assert all(m[k] > 0 for k in ("media", "prepare", "encode", "prefill", "total"))
        assert sum(m[k] for k in ("media", "prepare", "encode", "prefill", "decode")) <= m["total"] * 1.05
        assert 1 <= r["generated_tokens"] <= 3  # --decode-tokens 3 (an end token may come first)
        first = req[0]["median_ms"]["total"] - req[0]["median_ms"]["decode"]
        assert r["speedup_first_token"] == pytest.approx(first / (m["total"] - m["decode"]))
    syn = run_json("profile", "--frames", "8", "--audio-seconds", "4", "--model", "tiny", "--json", "--repeats", "1",
                   "--warmup", "0", "--decode-tokens", "2", *FAST)
    assert syn["input"]["tokens"]["video"] == 4 * 144 and syn["input"]["tokens"]["audio"] == 100
    assert syn["latency"]["seats"]["prefill_ms"]["n"] == 1
    assert any("synthetic" in n for n in syn["notes"])
    assert "requests" not in syn  # a synthetic layout has no file to time


@pytest.mark.parametrize("args, line", [
    (["--audio-seconds", "nan"], "error: --audio-seconds must be a finite number >= 0 (got nan)"),
    (["--audio-seconds", "inf"], "error: --audio-seconds must be a finite number >= 0 (got inf)"),
    (["--source-height", "0"], "error: --source-height must be at least 1 (got 0)"),
    (["--decode-tokens", "0"], "error: --decode-tokens must be at least 1 (got 0)"),
    (["--warmup", "-1"], "error: --warmup must be at least 0 (got -1)"),
    (["--seed", "99999999999999999999"], "error: --seed 99999999999999999999 must be a whole number in -2^63..2^63-1"),
])
def test_profile_options_name_themselves_when_out_of_range(args, line):
    res = CliRunner().invoke(app, ["profile", "--analytic", "--frames", "8", *args])
    assert res.exit_code == 2 and res.stderr.strip() == line


def test_an_analytic_request_over_the_context_says_so():
    d = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "1024", "--max-frames", "1024",
                 "--audio-seconds", "300", "--text-tokens", "100", "--trr", "0.1", "--json")
    n = d["input"]["tokens"]
    assert n["total"] == 81328 > 32768
    first = sum(d["layers"][0][k] for k in ("video", "audio", "text"))
    assert f"the request is 81328 tokens, over qwen2.5-omni-7b's context of 32768; the LLM input after pre-LLM " \
           f"pruning is SEATS@0.1: {first} (`seats ask` refuses what is over, unless --allow-long-context)" in d["notes"]
    small = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "8", "--json")
    assert not any("context" in note for note in small["notes"])


def test_an_analytic_request_whose_time_ids_pass_the_context_says_so():
    """An hour of video in 128 frames fits in tokens, but its temporal ids (25 per second) do not: `ask` refuses it
    on the largest position id, and the analytic profile says so: (64 - 1) grids x 56.34 s x 25 = 88732, + 100."""
    d = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "128", "--fps", "0.0355",
                 "--audio-seconds", "300", "--text-tokens", "100", "--json")
    assert d["input"]["tokens"]["total"] < 32768
    assert d["notes"] == [  # 300 s of sound beside 128 frames: the official pair keeps more than 0.35 overall
        "requested TRR 0.35, achieved 0.454 (the official (R_v, R_a) pair weighted by this clip's audio share; "
        "--ratio-mode exact targets R)",
        "the largest position id is about 88832 (time ids of 64 grids over 3605.63 s), over qwen2.5-omni-7b's "
        "context of 32768: `seats ask` refuses it unless --allow-long-context"]


def test_a_trr_overridden_by_both_ratios_says_it_was_not_used():
    d = run_json("profile", "--analytic", "--frames", "8", "--audio-seconds", "4", "--trr", "0.3", "--video-trr",
                 "0.5", "--audio-trr", "0.2", "--json")
    assert ("--trr 0.3 not used: --video-trr and --audio-trr set both ratios (the runs' TRR label is only their "
            "name)") in d["notes"]
    assert (d["schedule"]["video_trr"], d["schedule"]["audio_trr"]) == (0.5, 0.2)


def test_analytic_methods_side_by_side_note_what_a_baseline_cannot_reach():
    """`--method all` names, per TRR, the baselines that miss their pair (the notes their runs give; the exact ones
    are checked against the engine in test_omnizip_fastvid). 128 frames of 144 tokens + 64 s: DyCoke's TTM keeps 17
    of 64 grids whole (0.266 at least), above the pair's video ratio at both TRRs."""
    d = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "128", "--audio-seconds", "64",
                 "--text-tokens", "100", "--method", "all", "--trr", "0.05", "--trr", "0.35", "--json")
    dycoke = {r["trr"]: r["method_notes"] for r in d["runs"] if r["method"] == "dycoke"}
    assert dycoke[0.35] == ["dycoke: video keeps 2448/9216 = 0.266 of the requested 0.239 (TTM keeps 17 of 64 grids "
                            "whole: at least 0.266)"]
    assert "TRR 0.35: " + dycoke[0.35][0] in d["notes"]
    assert "TRR 0.05: visionzip: video is at the audio-intact reallocation's 5% floor, so audio keeps 95/1600 = " \
           "0.059, chosen at random (seeded by --seed)" in d["notes"]
    assert not [r for r in d["runs"] if r["method"] in ("random", "divprune") and r["method_notes"]]


@pytest.mark.parametrize("columns", ["80", "100", "60", "40"])
def test_tables_print_every_cell_whole_in_a_narrow_terminal(columns):
    """Rich cut cells at 80 columns (`384/3…`, `visio…`); the tables drop their lines, then wrap cells at their
    spaces, then print each row as a block of `header: value` lines: never eliding, never breaking a number, within
    the width."""
    res = CliRunner(env={"COLUMNS": columns}).invoke(app, [
        "profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "128", "--audio-seconds", "64",
        "--text-tokens", "100", "--method", "all", "--trr", "0.05"])
    assert res.exit_code == 0, res.stderr
    table = res.stdout.split("Methods side by side")[1].split("full:")[0]
    assert "…" not in table
    assert max(len(line) for line in table.splitlines()) <= int(columns)
    words = {w for line in table.splitlines() for w in line.split()}
    for row in ("0.05 visionzip-om pre-LLM 448/256 448/256 0.0651 5.81 17.39x exact",
                "0.05 fastvid pre-LLM 448/95 448/95 0.0502 4.63 21.84x upper bound"):
        assert set(row.split()) <= words, row  # every number and name whole on some line
    one_line = {" ".join(line.split()) for line in table.splitlines()}
    narrow = columns in ("40", "60")  # no column layout keeps every word whole: one block per row
    assert ("0.05 visionzip-om pre-LLM 448/256 448/256 0.0651 5.81 17.39x exact" in one_line) != narrow
    assert ("  layer 0 v/a: 448/256" in table.splitlines()) == narrow


def test_a_measured_request_whose_time_ids_pass_the_context_says_so_as_the_analytic_one():
    """The measured profile gave no word of a request `seats ask` would refuse. 8 frames at 0.001 fps: 4 grids of
    2000 s, temporal ids (25 per second) up to 3 x 2000 x 25 = 150000, + the text tokens: the same note as the
    analytic profile of the same request (the tiny preset's context: 32768)."""
    args = ["--frames", "8", "--fps", "0.001", "--text-tokens", "212", "--json"]
    measured = run_json("profile", "--model", "tiny", *FAST, "--repeats", "1", "--warmup", "0", "--decode-tokens", "1",
                        *args)
    analytic = run_json("profile", "--analytic", "--config", "tiny", *args)
    note = ("the largest position id is about 150212 (time ids of 4 grids over 8000 s), over tiny's context of "
            "32768: `seats ask` refuses it unless --allow-long-context")
    assert note in measured["notes"] and note in analytic["notes"]
    assert "tiny: SEATS layer boundaries are uncalibrated" in measured["notes"]
    ordinary = run_json("profile", "--model", "tiny", *FAST, "--repeats", "1", "--warmup", "0", "--decode-tokens",
                        "1", "--frames", "8", "--json")
    assert not any("context" in n for n in ordinary["notes"])


def test_profile_notes_a_retention_that_misses_the_request_as_ask_does():
    """`seats ask`'s retention note (achieved vs requested TRR beyond 0.02) now also in the profile, analytic and
    measured; a baseline with a reach note of its own gets only that one."""
    d = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "128", "--audio-seconds", "64",
                 "--text-tokens", "100", "--trr", "0.6", "--trr", "0.35", "--json")
    assert [r["schedule"]["achieved_trr"] > 0.55 for r in d["runs"]] == [True, False]
    assert [n for n in d["notes"] if "requested TRR" in n] == [
        "TRR 0.6: requested TRR 0.6, achieved 0.559 (the official (R_v, R_a) pair weighted by this clip's audio "
        "share; --ratio-mode exact targets R)"]  # 0.35 achieves 0.3508: no note
    both = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "128", "--audio-seconds",
                    "300", "--text-tokens", "100", "--trr", "0.15", "--method", "seats", "--method", "dycoke",
                    "--json")
    assert [n.split(":")[0] for n in both["notes"] if n.startswith(("seats:", "dycoke:"))] == [
        "dycoke", "dycoke", "seats"]  # DyCoke's two reach notes, SEATS' retention note
    measured = run_json("profile", "--model", "tiny", *FAST, "--repeats", "1", "--warmup", "0", "--decode-tokens",
                        "1", "--frames", "8", "--json")
    assert ("requested TRR 0.35, achieved 0.300 (this clip has no sound, so only the official pair's video ratio "
            "R_v applies; --ratio-mode exact targets R)") in measured["notes"]


@pytest.mark.parametrize("model", ["synthetic", "tiny-qwen3"])
def test_analytic_tokens_of_the_offline_models_equal_their_processor(sample_path, model):
    """The project's own models count their text with their own tokenizer offline (synthetic was estimated at 100
    for 71 real tokens): the analytic profile's three counts equal what `ask` gives the model."""
    d = run_json("profile", str(sample_path), "--config", model, "--analytic", "--json", "--question", Q)
    assert d["input"]["text_source"] == "tokenizer"
    ask = run_json("ask", str(sample_path), Q, "--model", model, "--json", "--max-new-tokens", "1", *FAST)
    assert ask["tokens"] == {k: d["input"]["tokens"][k] for k in ("video", "audio", "text")}
    assert ask["tokens"]["text"] == {"synthetic": 71, "tiny-qwen3": 76}[model]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give a VIDEO or --frames N (not both)"),  # was a TypeError comparing None with an int
    ({"frames": 8, "audio_seconds": float("nan")}, "--audio-seconds must be a finite number >= 0 (got nan)"),
    ({"frames": 8, "source_height": 0}, "--source-height must be at least 1 (got 0)"),  # was a MediaError on 1x0
    ({"frames": 8, "text_tokens": 0}, "--text-tokens must be at least 1"),
    ({"frames": 8, "trrs": (0.0,)}, "--trr 0.0 is out of range: it must satisfy 0 < trr <= 1"),
    ({"frames": 8, "methods": ("bogus",)}, "--method bogus: choose seats, all, or a baseline: random, divprune, "
                                           "fastv, fastv-om, dycoke, visionzip, visionzip-om, omnizip, fastvid"),
    ({"frames": 8, "methods": ()}, "no --method to profile"),
])
def test_the_library_checks_a_profile_request_as_the_cli_does(kwargs, message):
    """`ProfileRequest.check` is the one check of a profile request: `run_analytic` calls it, so a Python caller
    gets the CLI's words instead of a TypeError or a NaN conversion deep inside."""
    from seats_cli import profile as prof

    cfg = ModelConfig.from_name("qwen2.5-omni-7b")
    with pytest.raises(ValueError) as e:
        prof.run_analytic(cfg, prof.ProfileRequest(**kwargs))
    assert str(e.value).startswith(message)


def test_a_measured_profile_refuses_bad_counts_before_loading(tmp_path):
    from seats_cli import measure
    from seats_cli import profile as prof

    cfg = ModelConfig.from_name("tiny")
    missing = str(tmp_path / "no-such-model")  # reached only if a check let the request through
    with pytest.raises(ValueError, match=r"^--warmup must be at least 0 \(got -1\)"):
        measure.run_measured(cfg, prof.ProfileRequest(frames=8), missing, warmup=-1)
    with pytest.raises(ValueError, match=r"^--method full: choose seats, all, or a baseline"):
        measure.run_measured(cfg, prof.ProfileRequest(frames=8, methods=["seats", "full"]), missing)


def test_a_measured_profile_times_each_method_against_full(sample_path, tiny_dir):
    """`seats profile --model M --method ...` times full against each method, prefill and whole request (it timed
    SEATS only): each run's per-layer counts are what `ask` with that method keeps, its reach notes are `ask`'s,
    its latency holds `full` and the method's own statistics, and the whole request has a row per method."""
    methods = ["seats", "fastv", "visionzip", "omnizip"]
    d = run_json("profile", str(sample_path), "--model", "tiny", *[x for m in methods for x in ("--method", m)],
                 "--trr", "0.1", "--json", "--repeats", "1", "--warmup", "0", "--decode-tokens", "2", "--question", Q,
                 *FAST)
    assert [r["method"] for r in d["runs"]] == methods
    for run in d["runs"]:
        ask = run_json("ask", str(sample_path), Q, "--model", "tiny", "--method", run["method"], "--trr", "0.1",
                       "--json", "--max-new-tokens", "1", *FAST)
        assert [(r["video"], r["audio"]) for r in run["layers"]] == [(r["video"], r["audio"]) for r in ask["layers"]]
        assert run["latency"][run["method"]]["prefill_ms"]["n"] == 1 and "full" in run["latency"]
        assert run.get("method_notes", []) == [n for n in ask["notes"] if n.startswith(run["method"] + ":")]
    assert any(r.get("method_notes") for r in d["runs"])  # FastV's random audio cut, VisionZip's, OmniZip's reach
    assert [(r["method"], r["trr"]) for r in d["requests"]] == [("full", None)] + [(m, 0.1) for m in methods]
    unequal = len({r["generated_tokens"] for r in d["requests"]}) > 1  # JSON says it too, not only the text
    assert any(n.startswith("the whole-request runs generated different numbers of tokens") for n in d["notes"]) \
        == unequal


def test_a_measured_single_baseline_is_labelled_by_its_name(tiny_dir):
    res = CliRunner(env={"COLUMNS": "250"}).invoke(app, [
        "profile", "--model", "tiny", *FAST, "--frames", "8", "--method", "fastv", "--trr", "0.35", "--repeats",
        "1", "--warmup", "0", "--decode-tokens", "2"])
    assert res.exit_code == 0, res.stderr
    assert "fastv at TRR 0.35 (pair video 0.3000, audio 0.6500; counts measured)" in res.stdout
    assert "prefill fastv" in res.stdout and "KV after prefill full/fastv" in res.stdout
    assert "SEATS" not in res.stdout.split("Measured on")[1].split("\n")[2]  # the latency header


def test_dycoke_on_one_grid_says_every_grid_is_kept_whole():
    """One temporal grid: TTM prunes no grid (q = 1), so the note names the whole grids, not floor(q n)."""
    d = run_json("profile", "--analytic", "--config", "qwen2.5-omni-7b", "--frames", "2", "--text-tokens", "50",
                 "--method", "dycoke", "--json")
    assert d["method_notes"] == ["dycoke: video keeps 144/144 = 1.000 of the requested 0.300 (TTM keeps 1 of 1 "
                                 "grids whole: at least 1.000)"]


def test_a_profile_request_is_normalised():
    """`methods=('all',)` is SEATS and every baseline (the CLI's word, offered by the error); repeated TRRs and
    methods run once; wrong types are one clear ValueError each."""
    from seats_cli import profile as prof
    from seats_cli.choices import METHODS

    req = prof.ProfileRequest(frames=8, trrs=[0.2, 0.2, 0.1], methods=["fastv", "all", "fastv"]).check()
    assert req.trrs == (0.2, 0.1) and req.methods == ("fastv", *(m for m in METHODS if m not in ("full", "fastv")))
    cfg = ModelConfig.from_name("qwen2.5-omni-7b")
    runs = prof.run_analytic(cfg, prof.ProfileRequest(frames=8, methods=("all",), trrs=(0.1, 0.1))).runs
    assert [r.method for r in runs] == [m for m in METHODS if m != "full"]
    for kwargs, message in [({"frames": "8"}, "--frames must be a whole number (got '8')"),
                            ({"frames": 8, "text_tokens": 2.5}, "--text-tokens must be a whole number (got 2.5)"),
                            ({"frames": 8, "source_height": "1080"}, "--source-height must be a whole number"),
                            ({"frames": 8, "trrs": 0.3}, "trrs must be a list of ratios (got 0.3)"),
                            ({"frames": 8, "methods": "fastv"}, "methods must be a list of names"),
                            ({"frames": 8, "methods": None}, "methods must be a list of names"),
                            ({"frames": 8, "options": None}, "options must be a RequestOptions (got NoneType)"),
                            ({"video": ""}, "the video must be a file path (got '')")]:
        with pytest.raises(ValueError) as e:
            prof.ProfileRequest(**kwargs).check()
        assert str(e.value).startswith(message), (kwargs, str(e.value))


@pytest.mark.parametrize("method", ["visionzip", "visionzip-om", "dycoke"])
def test_analytic_reach_notes_equal_the_pruners_in_order(seats_cache, method):
    """Where a method gives two notes (VisionZip: its video reach and the random audio cut), the analytic ones come
    in the engine's order. 20 frames of 56x56 (4 tokens per grid) + 8 s of sound, pair (0.05, 0.3): the
    audio-intact reallocation puts video at its 5 % floor (audio cut at random to 60/200) and 4-token windows keep
    one token each (10/40 = 0.25)."""
    from seats_cli.methods import build_pruner
    from seats_cli.methods.counts import baseline_notes
    from seats_cli.models import load_model
    from seats_cli.schedule import ModalityRatios

    adapter = load_model("synthetic", device="cpu", dtype="float32", cache_dir=seats_cache)  # 56x56 frames
    cfg = adapter.config
    shape = shape_from_frames(cfg, frame_policy(cfg), frames=20, aspect="1:1", source_height=56, audio_seconds=8.0,
                              n_text=40)
    encoded, layout = synthetic_request(adapter, shape, cfg)
    assert (layout.n_video, layout.n_audio, layout.tokens_per_grid) == (40, 200, 4)
    pruner, plan = build_pruner(method, cfg, layout, video_trr=0.05, audio_trr=0.3)
    pruner.before_llm(adapter, encoded, layout)
    analytic = baseline_notes(method, cfg, ModalityRatios(0.05, 0.3), 40, 200, 4, shape.video_windows,
                              shape.audio_windows)
    assert analytic == pruner.notes and analytic
    if method == "visionzip":
        assert [n.split(" keeps ")[0] for n in analytic] == ["visionzip: video", "visionzip: video is at the "
                                                             "audio-intact reallocation's 5% floor, so audio"]


def test_full_beside_all_is_refused():
    """'all' is SEATS and every baseline; a name beside it that 'all' does not hold is still refused."""
    res = CliRunner().invoke(app, ["profile", "--analytic", "--frames", "8", "--method", "all", "--method", "full"])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: --method full: choose seats, all, or a "
                                                               "baseline")


def test_a_table_printed_again_fits_again():
    """A table keeps no fitting from an earlier print: wide, narrow, wide again prints the first output again, and
    each stays within its width without eliding; an empty column takes one cell."""
    from rich.console import Console

    from seats_cli.tables import Table

    t = Table(title="side by side")
    for col in ("TRR", "method", "layer 0 v/a", "counts", "empty"):
        t.add_column(col, justify="right")
    t.add_row("0.05", "visionzip-om", "9216/1600", "upper bound", "")
    outs = []
    for width in (200, 30, 12, 200):
        console = Console(width=width)
        with console.capture() as cap:
            console.print(t)
        outs.append(cap.get())
        assert max(len(line) for line in outs[-1].splitlines()) <= width and "…" not in outs[-1]
    assert outs[0] == outs[-1] and "visionzip-om" in outs[0] and "9216/1600" in outs[0]


def test_long_header_words_break_before_rows_turn_into_blocks():
    """The eval report's headers are long single words (colour_while_tone): where the cells fit but those words do
    not, a header breaks inside its word (at most 4 lines) and each row stays on one line; narrower still, each row
    is a block of `header: value` lines."""
    from rich.console import Console

    from seats_cli.tables import MAX_HEADER_LINES, Table

    t = Table(title="synthetic · 8 questions")
    heads = ["run", "n", "accuracy", "colour", "colour_while_tone", "tone", "tone_while_square", "unparsable"]
    for col in heads:
        t.add_column(col, justify="right")
    t.add_row("media-cut:16", "8", "0.625", "1.000", "0.000", "0.500", "1.000", "0")

    def printed(width):
        console = Console(width=width)
        with console.capture() as cap:
            console.print(t)
        return cap.get().splitlines()

    wide = printed(64)  # the cells fit in 53 columns (two spaces apart), the header words need 83
    assert "media-cut:16 8 0.625 1.000 0.000 0.500 1.000 0" in {" ".join(line.split()) for line in wide}
    assert max(map(len, wide)) <= 64 and len(wide) - 3 <= MAX_HEADER_LINES  # title, rule, row, header lines
    narrow = printed(40)
    assert narrow[1:] == ["run media-cut:16", "  n: 8", "  accuracy: 0.625", "  colour: 1.000",
                          "  colour_while_tone: 0.000", "  tone: 0.500", "  tone_while_square: 1.000",
                          "  unparsable: 0"]


def test_an_unreachable_modality_target_is_noted_with_the_reached_value(tiny_seats, sample_path):
    """docs/METHOD.md §4: per modality, a target above text_only_from / L (7B: 23/28) cannot be reached; with both
    ratios given (no overall TRR to compare) the note said nothing of it. The analytic profile and ask both say
    it, with the reached value."""
    out = run_json("profile", "--analytic", "--frames", "128", "--audio-seconds", "64", "--text-tokens", "100",
                   "--video-trr", "0.9", "--audio-trr", "0.5", "--json")
    assert out["notes"] == ["video retention 0.9 is unreachable: Stage III removes every video token from layer 23 "
                            "on, so at most 23/28 = 0.821 of them live per layer on average; achieved 0.821"]
    r = tiny_seats.ask(sample_path, "What?", video_trr=0.9, audio_trr=0.5, max_new_tokens=1)
    got = r.schedule["achieved_video_trr"]
    assert got <= 23 / 28 + 1e-9
    assert f"video retention 0.9 is unreachable: Stage III removes every video token from layer 23 on, so at most " \
           f"23/28 = 0.821 of them live per layer on average; achieved {got:.3f}" in r.notes
    assert not any("unreachable" in n for n in tiny_seats.ask(sample_path, "What?", video_trr=0.8, audio_trr=0.5,
                                                              max_new_tokens=1).notes)
