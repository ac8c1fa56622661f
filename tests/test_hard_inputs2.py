"""Hard inputs, round two (issue 16), through the installed CLI as a subprocess: undecodable text, a request
longer than the model's context, sound that outlasts the picture, phone rotation, several audio streams,
still images renamed .mp4 — each gives its exit status and one `error:` line (or a note), and batch answers
every other row."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_factory import disposition, make_clip

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "tiny", "--device", "cpu", "--max-new-tokens", "1"]


def seats(*args, input: bytes | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "seats"
    cmd = [str(exe)] if exe.is_file() else [shutil.which("seats") or "seats"]
    args = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([*cmd, *args], input=input, capture_output=True, timeout=600,
                          env=os.environ | {"COLUMNS": "200"})


def one_error(proc, code: int = 2) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_question_argument_with_bytes_that_are_not_utf8(sample_path):
    line = one_error(seats("ask", sample_path, b"what is \xff there?", *FAST))
    assert line == "error: the QUESTION argument is not valid UTF-8 text (byte 0xff at character 8)"


def test_question_on_stdin_with_bytes_that_are_not_utf8(sample_path):
    line = one_error(seats("ask", sample_path, "-", *FAST, input=b"caf\xe9?"))
    assert line == "error: standard input is not valid UTF-8 text (byte 0xe9 at offset 3)"


def test_any_unicode_question_is_accepted(sample_path):
    proc = seats("ask", sample_path, "-", *FAST, "--json", input="¿Qué suena? 音は何？ 🎵".encode())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens"]["text"] > 0


def test_batch_row_with_an_undecodable_question_is_an_error_row(tmp_path, sample_path):
    shutil.copy(sample_path, tmp_path / "clip.mp4")
    src = tmp_path / "rows.jsonl"
    src.write_text('{"id": 1, "video": "clip.mp4", "question": "bad \\udcff byte"}\n'
                   '{"id": 2, "video": "clip.mp4", "question": "fine?"}\n')
    proc = seats("batch", src, *FAST, "--quiet")
    assert proc.returncode == 1, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert rows[0] == {"id": 1, "line": 1,
                       "error": "the question is not valid UTF-8 text (byte 0xff at character 4)"}
    assert rows[1]["id"] == 2 and "answer" in rows[1]


def test_python_api_refuses_undecodable_text(tiny_seats, sample_path):
    from seats_cli.config import ConfigError

    with pytest.raises(ConfigError, match=r"^the question is not valid UTF-8 text \(byte 0xff at character 0\)$"):
        tiny_seats.ask(sample_path, "\udcff?")


def test_a_request_longer_than_the_context_is_refused_with_the_numbers(sample_path):
    # "why " x 9000, stripped: 35,999 byte tokens; with the clip's 864 + 150 media tokens and the template's 194
    # other text tokens the LLM input is 37,207, over the tiny model's 32,768
    question = "why " * 9000
    line = one_error(seats("ask", sample_path, question, *FAST, "--method", "full"))
    assert line.startswith("error: the LLM input is 37207 tokens (largest position id 36340) ")
    assert "but the model reads at most 32768; use fewer frames (--max-frames, now 12), a lower --fps, " \
           "--method seats (Stage I prunes before the LLM), a shorter question, or --allow-long-context" in line


def test_context_check_uses_what_the_llm_receives_and_can_be_overridden(tiny_seats, sample_path, monkeypatch):
    from seats_cli.api import ContextTooLong

    monkeypatch.setattr(tiny_seats.adapter.text_config, "max_position_embeddings", 1000)
    # the sample is 1223 tokens: full is over 1000, SEATS at TRR 0.1 hands the LLM 72 + 72 + 209 = 353
    with pytest.raises(ContextTooLong, match=r"^the LLM input is 1223 tokens"):
        tiny_seats.ask(sample_path, "What is moving?", method="full")
    r = tiny_seats.ask(sample_path, "What is moving?", trr=0.1, max_new_tokens=1)
    assert r.context["tokens"] == 353 and r.context["tokens_before_pruning"] == 1223 and r.context["limit"] == 1000
    forced = tiny_seats.ask(sample_path, "What is moving?", method="full", allow_long_context=True, max_new_tokens=1)
    assert forced.context["tokens"] == 1223


@pytest.mark.parametrize("method, before, want", [("dycoke", 647, 647), ("omnizip", 1156, 628),
                                                  ("visionzip", 461, 461), ("visionzip-om", 458, 458),
                                                  ("fastvid", 461, 461), ("random", 463, 463),
                                                  ("divprune", 464, 464)])
def test_pre_llm_baselines_are_checked_on_what_they_hand_the_llm(tiny_seats, sample_path, monkeypatch, method,
                                                                 before, want):
    """A baseline that selects or merges before layer 0 hands the LLM fewer tokens than the request: the context
    check counts those before the run (methods.counts: exact, FastVID's an upper bound; OmniZip's video depends on
    the content, so the check counts all of it), and the record reports what layer 0 received (TRR 0.25 on the
    sample: 1223 tokens)."""
    import seats_cli.api as api

    checked = []
    real = api.check_context
    monkeypatch.setattr(api, "check_context", lambda ctx, *a: checked.append(dict(ctx)) or real(ctx, *a))
    monkeypatch.setattr(tiny_seats.adapter.text_config, "max_position_embeddings", 1200)  # full (1223) is over
    r = tiny_seats.ask(sample_path, "What is moving?", method=method, trr=0.25, max_new_tokens=1)
    assert (checked[0]["tokens"], r.context["tokens"]) == (before, want)
    assert want == sum(r.layers[0][k] for k in ("video", "audio", "text"))


def test_notes_say_what_the_request_asked_for(tiny_seats, sample_path, tmp_path):
    """Both per-modality ratios are the request (no note about a TRR nobody asked for), one is said with the TRR
    that set the other; a clip without sound is told why table mode misses R; `full` says it used no ratio; an fps
    above the file's says what was sampled."""
    from media_factory import make_clip

    ask = tiny_seats.ask
    r = ask(sample_path, "What is moving?", video_trr=0.5, audio_trr=0.2, max_new_tokens=1)
    assert [n for n in r.notes if "requested" in n] == [
        f"requested --video-trr 0.5, --audio-trr 0.2: overall retention achieved {r.schedule['achieved_trr']:.3f}"]
    r = ask(sample_path, "What is moving?", trr=0.3, video_trr=0.5, audio_trr=0.2, max_new_tokens=1)
    assert [n for n in r.notes if "requested" in n] == [
        f"requested --video-trr 0.5, --audio-trr 0.2: overall retention achieved {r.schedule['achieved_trr']:.3f} "
        "(--trr 0.3 not used)"]
    r = ask(sample_path, "What is moving?", video_trr=0.5, max_new_tokens=1)
    assert [n for n in r.notes if "requested" in n] == [
        f"requested TRR 0.35 with --video-trr 0.5, achieved {r.schedule['achieved_trr']:.3f}"]
    silent = make_clip(tmp_path / "silent.mp4", width=96, height=54, fps=4, seconds=4.0, audio_rate=None)
    r = ask(silent, "What is moving?", max_new_tokens=1)
    assert r.tokens["audio"] == 0
    assert [n for n in r.notes if "requested" in n] == [
        f"requested TRR 0.35, achieved {r.schedule['achieved_trr']:.3f} (this clip has no sound, so only the "
        "official pair's video ratio R_v applies; --ratio-mode exact targets R)"]
    r = ask(sample_path, "What is moving?", method="full", trr=0.2, max_new_tokens=1)
    assert "--method full prunes nothing: the requested retention ratios were not used" in r.notes
    r = ask(silent, "What is moving?", fps=100, max_new_tokens=1)  # 16 frames at 4 fps
    assert ("sampling at 100 fps asks for more frames than the video's 4 fps has: sampled 16 of its 16 frames "
            "(4 fps)") in r.notes


def test_the_json_record_carries_the_context(sample_path):
    proc = seats("ask", sample_path, "What is moving?", *FAST, "--json")
    ctx = json.loads(proc.stdout)["context"]
    assert ctx["tokens_before_pruning"] == 1223 and ctx["limit"] == 32768
    assert ctx["tokens"] == 363 + 135 + 209  # Stage I at TRR 0.35 (table pair (0.30, 0.65))


def test_sound_that_runs_past_the_video_is_kept_and_said(tmp_path):
    path = make_clip(tmp_path / "long_sound.mp4", seconds=3, fps=10, audio_seconds=33)
    proc = seats("ask", path, "What plays?", *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["media"]["audio_seconds"] == pytest.approx(33.0, abs=0.1)
    # 33 s x 25 tokens/s, plus the AAC decoder's last 48 ms (33.048 s -> 3305 mel frames -> 826 tokens): the
    # whole track, as the official preprocessing reads it
    assert out["tokens"]["audio"] == 826
    # the last time chunk is audio only and ends with the sound, not with the picture
    assert out["windows"][-1]["video_total"] == 0 and out["windows"][-1]["end_s"] == pytest.approx(33.04, abs=0.05)
    note = next(n for n in out["notes"] if n.startswith("the sound track runs past the video"))
    assert note.startswith("the sound track runs past the video (3.0 s): 33.0 s of audio kept")


def test_phone_rotation_is_honoured():
    # samples/rotated.mp4 (scripts/make_rotated_sample.py): stored 96x54 with a red top-left corner, shown 90
    # degrees clockwise -> the model gets a portrait frame with the red corner at its top right
    proc = seats("ask", ROOT / "samples" / "rotated.mp4", "What is red?", *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    media = json.loads(proc.stdout)["media"]
    assert media["rotation"] == 270 and (media["source"]["width"], media["source"]["height"]) == (54, 96)
    assert (media["width"], media["height"]) == (252, 448)
    from seats_cli.media import decode_video

    frame = decode_video(ROOT / "samples" / "rotated.mp4").frames[0].float()
    red = (frame[0] > 200) & (frame[1] < 80)
    ys, xs = red.nonzero(as_tuple=True)
    assert xs.float().mean() > 200 and ys.float().mean() < 100  # top right of 252 x 448


def _two_audio_streams(path: Path) -> Path:
    """A 2-s clip with two audio tracks, the second marked default (220 Hz) and the first not (880 Hz)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        tracks = []
        for hz, default in ((880, False), (220, True)):
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
            a.disposition = disposition(av.stream.Disposition.default) if default else 0
            tracks.append((a, hz))
        for i in range(20):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        for a, hz in tracks:
            sig = (0.4 * np.sin(2 * math.pi * hz * np.arange(32000) / 16000)).astype(np.float32)
            for s in range(0, 32000, 1024):
                fr = av.AudioFrame.from_ndarray(sig[None, s:s + 1024], format="fltp", layout="mono")
                fr.sample_rate, fr.pts, fr.time_base = 16000, s, Fraction(1, 16000)
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def test_several_audio_streams_use_the_default_one_and_say_so(tmp_path):
    path = _two_audio_streams(tmp_path / "two_tracks.mp4")
    proc = seats("ask", path, "What plays?", *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["media"]["audio_stream"], out["media"]["audio_streams"]) == (2, 2)
    assert "the file has 2 audio streams; using its default, stream #2" in out["notes"]
    from seats_cli.media import decode_video

    audio = decode_video(path).audio
    spectrum = np.abs(np.fft.rfft(audio[:16000]))
    assert abs(int(np.argmax(spectrum)) - 220) <= 2  # the 220 Hz default track, not the first (880 Hz)


def test_a_still_image_renamed_mp4_is_refused(tmp_path):
    import torch
    from torchvision.io import encode_png

    path = tmp_path / "photo.mp4"
    path.write_bytes(bytes(encode_png(torch.full((3, 32, 32), 128, dtype=torch.uint8)).tolist()))
    line = one_error(seats("ask", path, "q", *FAST))
    assert line == f"error: {path} is a still image, not a video"


def test_batch_answers_every_other_row(tmp_path, sample_path):
    shutil.copy(sample_path, tmp_path / "clip.mp4")
    import torch
    from torchvision.io import encode_png

    (tmp_path / "photo.mp4").write_bytes(bytes(encode_png(torch.zeros((3, 8, 8), dtype=torch.uint8)).tolist()))
    rows = [{"id": "a", "video": "clip.mp4", "question": "ok?"},
            {"id": "b", "video": "photo.mp4", "question": "q"},
            {"id": "c", "video": "clip.mp4", "question": "why " * 9000, "method": "full"},
            {"id": "d", "video": "clip.mp4", "question": "also ok?"}]
    src = tmp_path / "rows.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = seats("batch", src, *FAST, "--quiet")
    assert proc.returncode == 1, proc.stderr
    out = {r["id"]: r for r in map(json.loads, proc.stdout.decode().splitlines())}
    assert list(out) == ["a", "b", "c", "d"]
    assert "answer" in out["a"] and "answer" in out["d"]
    assert out["b"]["error"].endswith("is a still image, not a video")
    assert out["c"]["error"].startswith("the LLM input is 37207 tokens")


EMPTY_MODEL = "error: --model is empty: give a hub id such as Qwen/Qwen2.5-Omni-7B, a checkpoint folder, or 'tiny'"
EMPTY_CONFIG = ("error: --config is empty: give a preset (qwen2.5-omni-3b, qwen2.5-omni-7b, qwen3-omni-30b-a3b, "
                "synthetic, synthetic-calibrated, tiny, tiny-qwen3) or a YAML file")


@pytest.mark.parametrize("args, line", [
    (["ask", "samples/sample.mp4", "q", "--model", ""], EMPTY_MODEL),  # was read as the current folder
    (["ask", "samples/sample.mp4", "q", "--model", "  "], EMPTY_MODEL),
    (["ask", "samples/sample.mp4", "q", "--model", "tiny", "--config", ""], EMPTY_CONFIG),  # was ignored
    (["profile", "--frames", "8", "--model", ""], EMPTY_MODEL),  # was a hub error after an analytic start
    (["profile", "--frames", "8", "--config", ""], EMPTY_CONFIG),
    (["eval", "--benchmark", "synthetic", "--model", ""], EMPTY_MODEL),  # ran the default model's benchmark
    (["eval", "--benchmark", "synthetic", "--config", ""], EMPTY_CONFIG),
    (["batch", "QUESTIONS", "--model", ""], EMPTY_MODEL),
    (["analyze", "samples/sample.mp4", "--question", "q", "--model", ""], EMPTY_MODEL),
])
def test_an_empty_model_or_config_is_refused_by_name(tmp_path, args, line):
    from typer.testing import CliRunner

    from seats_cli.cli import app

    questions = tmp_path / "q.jsonl"
    questions.write_text('{"video": "samples/sample.mp4", "question": "q"}\n')
    args = [str(questions) if a == "QUESTIONS" else str(ROOT / a) if a.startswith("samples/") else a for a in args]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and res.stderr.strip() == line, (res.exit_code, res.stderr)


def test_the_library_refuses_an_empty_model_name():
    from seats_cli import Seats
    from seats_cli.config import ConfigError

    with pytest.raises(ConfigError, match="--model is empty"):
        Seats("")


@pytest.mark.parametrize("model", ["./no_such_dir", "/no/such/checkpoint", "../x/y", "a/b/c"])
def test_a_missing_local_model_folder_is_named_not_fetched_from_the_hub(model):
    """A folder path that does not exist was read as a hub id (exit 1 after the hub's retries, "Repo id must use
    alphanumeric chars"); with or without --config it is now one line, exit 2. A hub id (one slash) is left alone."""
    from seats_cli.config import ConfigError, resolve_config

    for config in (None, "qwen2.5-omni-7b"):
        with pytest.raises(ConfigError, match=rf"^--model {model}: no such folder$"):
            resolve_config(model, config)
    assert resolve_config("Qwen/Qwen2.5-Omni-7B").name == "qwen2.5-omni-7b"
