"""A newcomer's first minutes (issue 13): readable demo output, no download without weights, bad input reported
before any model loads, allowed values in --help and in every error, one validation for CLI, API and batch."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from seats_cli.cli import app
from seats_cli.config import ConfigError, ModelConfig
from seats_cli.models.tiny import readable_answer
from seats_cli.request import RequestOptions

UNLOADABLE = "Qwen/Qwen2.5-Omni-7B"  # not in the test machine's cache, and HF_HUB_OFFLINE=1: loading it fails


def run(*args, input=None):
    return CliRunner().invoke(app, [*map(str, args)], input=input)


def one_error(res, code: int) -> str:
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_readable_answer_of_random_bytes():
    # "Hi", a valid 3-byte UTF-8 character, a newline, an invalid byte, a bell, a special token id (dropped)
    assert readable_answer([72, 105, 0xE3, 0x81, 0x82, 10, 200, 7, 300]) == "Hiあ\\n\\xc8\\x07"


def test_the_readme_demo_is_short_and_readable(sample_path):
    res = run("ask", sample_path, "What is moving in this video?", "--model", "tiny")
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("Answer (random weights, meaningless): ")
    assert "\ufffd" not in res.stdout
    data = json.loads(run("ask", sample_path, "What is moving?", "--model", "tiny", "--json").stdout)
    assert data["generated_tokens"] <= 12  # the tiny preset's max_new_tokens
    assert data["notes"][0].startswith("tiny random-weight model: answers are meaningless")


def test_profile_without_weights_is_analytic_not_a_download():
    res = run("profile", "--frames", "128", "--trr", "0.1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["mode"] == "analytic" and data["config"] == "qwen2.5-omni-7b"
    assert data["input"]["tokens"]["video"] == 9216
    assert any("no --model given" in n for n in data["notes"])


@pytest.mark.parametrize("make", ["missing", "corrupt"])
def test_ask_reports_a_bad_file_before_loading_the_model(tmp_path, make):
    path = tmp_path / "bad.mp4"
    if make == "corrupt":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 200)
    line = one_error(run("ask", path, "q", "--model", UNLOADABLE), 2)
    assert "bad.mp4" in line and "cannot load" not in line


def test_batch_never_loads_a_model_when_every_row_is_bad(tmp_path, sample_path):
    shutil.copy(sample_path, tmp_path / "ok.mp4")
    rows = [{"id": 1, "video": "missing.mp4", "question": "q"},
            {"id": 2, "video": "ok.mp4", "question": "q", "method": "bogus"},
            {"id": 3, "video": "ok.mp4", "question": "q", "trr": 1.5}]
    src = tmp_path / "rows.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run("batch", src, "--model", UNLOADABLE, "--quiet")
    assert res.exit_code == 1, res.output  # rows failed; the unloadable model was never tried
    out = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [r["id"] for r in out] == [1, 2, 3] and all("error" in r for r in out)
    assert "no such file" in out[0]["error"]
    assert out[1]["error"] == ("--method 'bogus' is not one of: seats, full, random, divprune, fastv, fastv-om, dycoke, "
                               "visionzip, visionzip-om, omnizip, fastvid")
    assert out[2]["error"] == "--trr 1.5 is out of range: it must satisfy 0 < trr <= 1"
    assert "cannot load" not in res.stderr


def test_a_folder_that_is_not_a_checkpoint(tmp_path):
    line = one_error(run("ask", tmp_path, "q", "--model", tmp_path), 2)
    assert "a folder but not a checkpoint (it has no config.json)" in line


@pytest.mark.parametrize("option, value, allowed", [
    ("--method", "bogus", "seats, full, random, divprune, fastv, fastv-om, dycoke, visionzip, visionzip-om, "
                          "omnizip, fastvid"),
    ("--kv-policy", "all", "survivors, per_layer"),
    ("--score-layer", "last", "previous, next"),
    ("--ratio-mode", "solve", "table, exact"),
    ("--saliency-span", "grid", "official, encoder"),
    ("--frame-sizing", "small", "processor, preset"),
    ("--processor-fps", "2", "sampled, official"),
    ("--dtype", "fp8", "auto, float32, bfloat16, float16"),
    ("--attn-implementation", "flash", "sdpa, eager, flash_attention_2"),
    ("--device", "tpu", "auto, cpu, cuda, cuda:N"),
])
def test_errors_name_the_bad_value_and_the_allowed_ones(sample_path, option, value, allowed):
    line = one_error(run("ask", sample_path, "q", "--model", "tiny", option, value), 2)
    assert line == f"error: {option} {value!r} is not one of: {allowed}"


def test_help_lists_allowed_values_and_one_line_summaries():
    wide = {"COLUMNS": "240"}
    top = CliRunner().invoke(app, ["--help"], env=wide)
    flat = " ".join(top.stdout.split())
    for line in ("ask Answer a question about a video and report what it cost.",
                 "batch Answer JSONL rows of questions, loading the model once.",
                 "profile Per-layer tokens, schedule and FLOPs for a TRR; with --model, measured latency.",
                 "eval Accuracy of full, SEATS and the baselines on a benchmark (synthetic, or a local copy of a real one).",
                 "analyze Per layer: attention on video/audio/text and the answers with media dropped from that layer.",
                 "calibrate Fit a model's SEATS layer boundaries from that analysis and write a preset YAML."):
        assert line in flat
    ask = CliRunner().invoke(app, ["ask", "--help"], env=wide).stdout
    for metavar in ("[seats|full|random|divprune|fastv|fastv-om|dycoke|visionzip|visionzip-om|omnizip|fastvid]", "[survivors|per_layer]", "[previous|next]",
                    "[auto|float32|bfloat16|float16]", "[auto|cpu|cuda|cuda:N]", "[sdpa|eager|flash_attention_2]",
                    "[table|exact]", "[official|encoder]", "[processor|preset]", "[sampled|official]"):
        assert metavar in ask
    # an install hint stays whole: the help wraps at spaces only where the hint is (no hyphen to break it at)
    for command in ("batch", "eval"):
        text = " ".join(CliRunner().invoke(app, [command, "--help"], env=wide).stdout.split())
        assert "pip install 'seats_cli[distributed]'" in text
    # no help text is cut at a narrow terminal (rich's option panels elided cells with "…" at 80 columns)
    for command in (["ask"], ["batch"], ["profile"], ["eval"], ["eval", "report"], ["eval", "export-lmms"],
                    ["analyze"], ["calibrate"], []):
        for columns in ("60", "80"):
            out = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": columns}).stdout
            assert "Usage:" in out and "…" not in out, (command, columns)


def test_one_validation_for_cli_api_and_rows(tiny_seats, sample_path):
    cfg = ModelConfig.from_name("tiny")
    with pytest.raises(ConfigError, match=r"^--ratio-mode 'solve' is not one of: table, exact$"):
        RequestOptions(ratio_mode="solve").check(cfg)
    with pytest.raises(ConfigError, match=r"^--max-new-tokens 0 must be a whole number >= 1$"):
        RequestOptions(max_new_tokens=0).check(cfg)
    with pytest.raises(ConfigError, match=r"^--max-frames must be at least 4 \(got 2\)$"):
        RequestOptions(max_frames=2).check(cfg)
    # the library API raises the same one-line errors, and refuses options it does not know
    with pytest.raises(ConfigError, match=r"^--ratio-mode 'solve' is not one of: table, exact$"):
        tiny_seats.ask(sample_path, "q", ratio_mode="solve")
    with pytest.raises(ConfigError, match="unknown option"):
        tiny_seats.ask(sample_path, "q", trr_video=0.2)


def test_the_library_raises_its_exported_errors_with_one_line(tiny_seats, sample_path):
    """What Seats raises is exported from the package: ConfigError for any bad option (the load options too, as
    the CLI checks them), MediaError for a file; decode takes ask's keyword options."""
    import seats_cli
    from seats_cli import ConfigError, ContextTooLong, MediaError, ModelLoadError, Seats

    assert {"ConfigError", "ContextTooLong", "MediaError", "ModelLoadError"} <= set(seats_cli.__all__)
    assert issubclass(ContextTooLong, ConfigError) and issubclass(ModelLoadError, RuntimeError)
    with pytest.raises(ConfigError, match=r"^--device 'bogus' is not one of: auto, cpu, cuda, cuda:N$"):
        Seats("tiny", device="bogus")
    with pytest.raises(ConfigError, match=r"^--max-new-tokens 1000000000000 is more than tiny can read "
                                          r"\(32768 tokens of context\)$"):
        tiny_seats.ask(sample_path, "q", max_new_tokens=10**12)
    assert len(tiny_seats.decode(sample_path, max_frames=4).frame_indices) == 4
    with pytest.raises(ConfigError, match="^unknown option"):
        tiny_seats.decode(sample_path, frames=4)
    with pytest.raises(MediaError):
        tiny_seats.decode(sample_path.parent / "missing.mp4")
    # media decoded by the caller: used as sampled, unless the request's own sampling options say otherwise
    media = tiny_seats.decode(sample_path, max_frames=4)
    assert tiny_seats.ask(media, "q", max_new_tokens=1).media["frames"] == 4
    with pytest.raises(ConfigError, match=r"^the media were decoded otherwise than this request asks \(fps 2.0 vs "
                                          r"1\): decode with this model"):
        tiny_seats.ask(media, "q", fps=1, max_new_tokens=1)


def test_tables_sent_to_a_file_keep_every_cell(tmp_path):
    """Written to a pipe or a file (not a terminal, no COLUMNS), a table is not cut to 80 columns."""
    rows = [{"benchmark": "custom", "id": "q1", "method": m, "trr": t, "correct": True,
             "record": {"flops": {"reduction": 2.5}, "latency_ms": {"prefill": 12.0}}}
            for m, t in (("full", None), ("random", 0.25), ("random", 0.125))]
    f = tmp_path / "r.jsonl"
    f.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    out = CliRunner().invoke(app, ["eval", "report", str(f)], env={"COLUMNS": None}).stdout
    assert "random@0.25" in out and "random@0.125" in out and "…" not in out


@pytest.mark.parametrize("installed, ok", [("5.24.0", True), ("5.0.0.dev0", True), ("4.57.1", False),
                                           ("6.0.0", False)])
def test_transformers_version_is_checked_with_a_clear_message(installed, ok):
    from seats_cli._versions import check_transformers

    if ok:
        check_transformers(installed)
    else:
        with pytest.raises(ImportError, match=rf"^seats needs transformers >=5.0,<6 \(tested with 5.24.0\); "
                                              rf"found {installed}"):
            check_transformers(installed)


def test_media_cut_layer_is_checked_and_an_explicit_pair_sets_the_trr(tiny_seats, sample_path):
    cfg = ModelConfig.from_name("tiny")
    with pytest.raises(ConfigError, match=r"^--method 'media-cut:28': the layer must be in 0\.\.27$"):
        RequestOptions(method="media-cut:28").check(cfg)
    RequestOptions(method="media-cut:23").check(cfg)
    # --video-trr 0.1 --audio-trr 0.1 on 864 video + 150 audio: the request's TRR is 0.1, not the preset's 0.35
    r = tiny_seats.ask(sample_path, "q", video_trr=0.1, audio_trr=0.1, max_new_tokens=1)
    assert r.trr == pytest.approx(0.1) and r.schedule["video_trr"] == r.schedule["audio_trr"] == 0.1
    # TRR 0.9 in table mode -> (0.771, 1.0) -> rho (1, 1): nothing is pruned, and the note says why
    full = tiny_seats.ask(sample_path, "q", trr=0.9, max_new_tokens=1)
    assert full.schedule["achieved_trr"] == 1.0
    assert any("nothing is pruned" in n for n in full.notes)


def test_version_names_seats_and_what_it_runs_on():
    """`seats --version`: the package's version as pyproject states it, and the installed torch, transformers, PyAV
    and Python, what a bug report needs; no model is loaded."""
    import platform
    import re
    from importlib.metadata import version
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    stated = re.search(r'^version = "([^"]+)"$', pyproject, re.M).group(1)  # tomllib is 3.11+; we support 3.10
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout == (f"seats {stated} (torch {version('torch')}, transformers "
                          f"{version('transformers')}, av {version('av')}, Python {platform.python_version()})\n")
