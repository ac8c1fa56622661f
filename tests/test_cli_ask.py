"""`seats ask` end to end through the real Typer app (in process with CliRunner, and the installed console
script in subprocesses): the JSON contract, the per-layer counts and FLOPs of a SEATS run, the human output,
and one `error:` line with the right exit status for every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seats_cli.cli import app

QUESTION = "What is moving?"
# tiny thinker text model (configs/tiny.yaml, seats_cli/models/tiny.py)
D, I, H, H_KV, V, L = 64, 128, 4, 2, 272, 28
HEAD_DIM = D // H
D_KV = H_KV * HEAD_DIM  # 32
# the committed sample: 864 video, 150 audio, 209 text tokens (derived by hand in test_engine.py)
N_V, N_A, N_T = 864, 150, 209


# ------------------------------------------------------------------------------------------------- helpers
def _runner() -> CliRunner:
    return CliRunner()


def invoke(*args: str, input: str | None = None):
    return _runner().invoke(app, ["ask", *map(str, args)], input=input)


def console_script() -> list[str]:
    """The installed `seats` entry point (next to this interpreter first, so the right environment is used)."""
    here = Path(sys.executable).parent / "seats"
    if here.is_file():
        return [str(here)]
    found = shutil.which("seats")
    if found:
        return [found]
    return [sys.executable, "-c", "from seats_cli.cli import main; main()"]


def assert_one_error_line(stderr: str, *, mentions: str | None = None) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got: {stderr!r}"
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in stderr
    if mentions is not None:
        assert mentions.lower() in lines[0].lower(), lines[0]
    return lines[0]


def layer_flops(s: int) -> int:
    """The paper's per-layer prefill FLOPs with the tiny dims: 2SD^2 + 2SD*D_kv + 2S^2*D + 3SDI."""
    return 2 * s * D * D + 2 * s * D * D_KV + 2 * s * s * D + 3 * s * D * I


def prefill_flops_by_hand(layer_tokens: list[int]) -> int:
    assert len(layer_tokens) == L
    return sum(layer_flops(s) for s in layer_tokens) + layer_tokens[-1] * D * V


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def runs(sample_path, tiny_dir):
    """JSON results of successful in-process runs, computed once per argument list."""
    cache: dict = {}

    def get(*extra: str) -> dict:
        if extra not in cache:
            res = invoke(sample_path, QUESTION, "--model", "tiny", "--json", "--max-new-tokens", "4", *extra)
            assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
            assert "Traceback" not in res.stderr
            cache[extra] = (json.loads(res.stdout), res)  # the whole stdout is ONE JSON object
        return cache[extra][0]

    return get


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample_path):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "x.mp4").write_text("this is a text file, not a video\n" * 10)
    data = sample_path.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: int(len(data) * 0.3)])
    with wave.open(str(d / "tone.wav"), "wb") as w:  # audio only
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x10\x00\xf0\xff" * 8000)
    return d


# ------------------------------------------------------------------------------------------- JSON contract
def test_json_is_one_object_with_the_contract_keys(runs):
    out = runs()
    assert {"answer", "model", "method", "trr", "tokens", "flops", "latency_ms", "layers", "windows"} <= set(out)
    assert isinstance(out["answer"], str)
    assert out["model"] == "tiny" and out["method"] == "seats" and out["trr"] == pytest.approx(0.35)
    assert out["tokens"] == {"video": N_V, "audio": N_A, "text": N_T}
    assert set(out["flops"]) >= {"full", "pruned", "reduction"}
    assert set(out["latency_ms"]) >= {"encode", "prefill", "decode"}
    assert all(out["latency_ms"][k] >= 0 for k in ("encode", "prefill", "decode"))
    assert len(out["layers"]) == L
    assert [row["layer"] for row in out["layers"]] == list(range(L))
    assert all(set(row) >= {"layer", "video", "audio", "text"} for row in out["layers"])
    assert len(out["windows"]) == 3
    for i, w in enumerate(out["windows"]):
        assert set(w) >= {"index", "start_s", "end_s", "video_total", "audio_total", "kept"}
        assert (w["index"], w["start_s"], w["end_s"]) == (i, 2.0 * i, 2.0 * i + 2)
        assert (w["video_total"], w["audio_total"]) == (288, 50)
        assert w["kept"] and all(set(k) >= {"layer", "video", "audio"} for k in w["kept"])
    assert out["flops"]["reduction"] > 1
    assert any("meaningless" in note for note in out.get("notes", []))
    # on the CPU the file is decoded before the model loads (decoding and loading would share the cores)
    assert out["reused"] == {"decode": False, "encoders": False, "prefetched": False}
    assert out["latency_ms"]["media"] > 0


def test_on_a_gpu_the_file_decodes_while_the_model_loads(runs, sample_path, monkeypatch):
    """The GPU path (forced here on the CPU): the file is probed, decoded in the background while the model loads,
    and the request waits only for what was left; the answer is the CPU path's."""
    import seats_cli.cli.ask as ask_cli

    monkeypatch.setattr(ask_cli, "_on_gpu", lambda device, device_map: True)
    res = invoke(sample_path, QUESTION, "--model", "tiny", "--json", "--max-new-tokens", "4")
    assert res.exit_code == 0, res.output
    out, ref = json.loads(res.stdout), runs()
    assert out["reused"] == {"decode": False, "encoders": False, "prefetched": True}
    assert (out["answer"], out["layers"], out["media"]) == (ref["answer"], ref["layers"], ref["media"])
    import seats_cli.api

    def no_load(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(seats_cli.api, "Seats", no_load)
    missing = invoke(sample_path.parent / "missing.mp4", QUESTION, "--model", "tiny")
    assert missing.exit_code == 2 and "missing.mp4" in missing.stderr  # probed before any model loads


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_decode_mode_runs_that_loop_and_gives_the_same_answer(runs, mode):
    out = runs("--decode-mode", mode)
    assert out["decode_mode"] == mode
    assert runs()["decode_mode"] == "buffers"  # auto on the CPU
    assert out["answer"] == runs()["answer"] and out["generated_tokens"] == runs()["generated_tokens"] == 4


def test_json_method_full(runs):
    out = runs("--method", "full")
    assert out["method"] == "full"
    assert all((r["video"], r["audio"], r["text"]) == (N_V, N_A, N_T) for r in out["layers"])
    assert out["flops"]["pruned"] == out["flops"]["full"] == prefill_flops_by_hand([N_V + N_A + N_T] * L)
    assert out["flops"]["reduction"] == 1
    for w in out["windows"]:
        assert all((k["video"], k["audio"]) == (w["video_total"], w["audio_total"]) for k in w["kept"])


def test_json_trr_0_1_follows_schedule_and_flops(runs):
    out = runs("--trr", "0.1")
    assert out["trr"] == pytest.approx(0.1)
    layers = out["layers"]
    prune_before, text_only_from = [16, 18, 20], 23
    # by hand: --trr 0.1 -> the table pair (0.06, 0.35) -> rho (0.084, 0.49); Stage I keeps round(0.084*288) =
    # round(24.19) = 24 of each of the 3 video windows and round(0.49*50) = round(24.5) = 24 (half to even) of each
    # audio window; Stage II keeps round(k*n) with the 7B's keep ratios 0.9298, 0.7949, 0.2986:
    # 72 -> round(66.95) = 67 -> round(53.26) = 53 -> round(15.83) = 16; text only from layer 23
    want = {**{i: (72, 72) for i in range(16)}, 16: (67, 67), 17: (67, 67), 18: (53, 53), 19: (53, 53),
            **{i: (16, 16) for i in (20, 21, 22)}, **{i: (0, 0) for i in range(23, 28)}}
    assert [(r["video"], r["audio"]) for r in layers] == [want[i] for i in range(L)]
    assert all(r["text"] == N_T for r in layers)
    # per stage layer, the windows' kept counts add up to that layer's counts
    stage_layers = [k["layer"] for k in out["windows"][0]["kept"]]
    assert stage_layers == [0, *prune_before, text_only_from]
    for j, layer in enumerate(stage_layers):
        assert all(w["kept"][j]["layer"] == layer for w in out["windows"])
        assert sum(w["kept"][j]["video"] for w in out["windows"]) == layers[layer]["video"]
        assert sum(w["kept"][j]["audio"] for w in out["windows"]) == layers[layer]["audio"]
    # FLOPs by hand from the layer counts
    tokens = [r["video"] + r["audio"] + r["text"] for r in layers]
    assert out["flops"]["full"] == prefill_flops_by_hand([N_V + N_A + N_T] * L)
    assert out["flops"]["pruned"] == prefill_flops_by_hand(tokens)
    assert out["flops"]["reduction"] == pytest.approx(out["flops"]["full"] / out["flops"]["pruned"])
    assert out["flops"]["reduction"] > 1
    # a smaller TRR costs less than the default 0.35
    assert out["flops"]["pruned"] < runs()["flops"]["pruned"]


def test_question_from_stdin(runs, sample_path):
    res = invoke(sample_path, "-", "--model", "tiny", "--json", "--max-new-tokens", "4", input=QUESTION + "\n")
    assert res.exit_code == 0, (res.stdout, res.stderr)
    out = json.loads(res.stdout)
    direct = runs()
    assert out["answer"] == direct["answer"] and out["layers"] == direct["layers"]


# -------------------------------------------------------------------------------------------- human output
def test_human_output(sample_path):
    res = invoke(sample_path, QUESTION, "--model", "tiny", "--max-new-tokens", "2")
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Answer (random weights, meaningless): ")
    assert "\ufffd" not in res.stdout  # random bytes are shown escaped, never as replacement characters
    flat = " ".join(res.stdout.split())  # rich may wrap long titles
    for title in ("tiny · seats · TRR 0.35", "LLM prefill cost",
                  "Per time chunk (Stage II's windows where there is sound)",
                  "Stage I (fixed windows): video 363/864 in 3 windows of 288; audio 135/150 in 3 windows of 50",
                  "TRR requested 0.35 (table: video 0.3, audio 0.65); achieved"):
        assert title in flat
    assert "answers are meaningless" in flat
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.stdout)


# ---------------------------------------------------------------------------------------------- bad input
BAD = {
    "missing file": (lambda d, s: [d / "missing.mp4", QUESTION], "missing.mp4"),
    "empty file": (lambda d, s: [d / "empty.mp4", QUESTION], "empty.mp4"),
    "text file named .mp4": (lambda d, s: [d / "x.mp4", QUESTION], "x.mp4"),
    "truncated mp4": (lambda d, s: [d / "truncated.mp4", QUESTION], "truncated.mp4"),
    "audio only": (lambda d, s: [d / "tone.wav", QUESTION], "video"),
    "empty question": (lambda d, s: [s, ""], "question"),
    "blank question": (lambda d, s: [s, "   "], "question"),
    "fps 0": (lambda d, s: [s, QUESTION, "--fps", "0"], "fps"),
    "fps -1": (lambda d, s: [s, QUESTION, "--fps", "-1"], "fps"),
    "max-frames 2": (lambda d, s: [s, QUESTION, "--max-frames", "2"], "max-frames"),
    "trr 0": (lambda d, s: [s, QUESTION, "--trr", "0"], "trr"),
    "trr 1.5": (lambda d, s: [s, QUESTION, "--trr", "1.5"], "trr"),
    "method nope": (lambda d, s: [s, QUESTION, "--method", "nope"], "nope"),
    "decode-mode graph": (lambda d, s: [s, QUESTION, "--decode-mode", "graph"], "decode-mode 'graph'"),
    "cuda graph on cpu": (lambda d, s: [s, QUESTION, "--decode-mode", "cuda-graph", "--device", "cpu"], "cuda device"),
    "static with flash": (lambda d, s: [s, QUESTION, "--decode-mode", "static", "--attn-implementation",
                                        "flash_attention_2"], "sdpa or eager"),
    "compiled over gpus": (lambda d, s: [s, QUESTION, "--decode-mode", "compiled", "--device-map", "auto"],
                           "one device"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_in_process(name, bad_files, sample_path):
    make_args, mention = BAD[name]
    res = invoke(*make_args(bad_files, sample_path), "--model", "tiny")
    assert res.exit_code == 2, (name, res.exit_code, res.stdout, res.stderr, res.exception)
    assert res.stdout == ""
    assert_one_error_line(res.stderr, mentions=mention)


def test_a_decode_mode_the_loaded_model_refuses_is_one_error_line(sample_path):
    """Known only once the model is loaded (on any machine: the Qwen3-Omni preset's MoE step cannot be captured),
    still one `error:` line and exit 2."""
    res = _runner().invoke(app, ["ask", str(sample_path), QUESTION, "--model", "tiny-qwen3", "--decode-mode",
                                 "cuda-graph"])
    assert res.exit_code == 2 and res.stdout == ""
    assert_one_error_line(res.stderr, mentions="cuda_graph_decode=False")


# ------------------------------------------------------------------------------- the real console script
SUBPROCESS_CASES = {
    "missing file": (["ask", "{bad}/missing.mp4", QUESTION, "--model", "tiny"], None, 2, "missing.mp4"),
    "fps -1": (["ask", "{sample}", QUESTION, "--model", "tiny", "--fps", "-1"], None, 2, "fps"),
    "empty question on stdin": (["ask", "{sample}", "-", "--model", "tiny"], "  \n", 2, "question"),
    # the default model (Qwen/Qwen2.5-Omni-7B) is not in an empty HF cache and the hub is off
    "default model without cache": (["ask", "{sample}", QUESTION], None, 1, "--model tiny"),
    # usage errors Click itself finds: one line through main(), not the usage box
    "non-numeric trr": (["ask", "{sample}", QUESTION, "--model", "tiny", "--trr", "abc"], None, 2,
                        "Invalid value for '--trr'"),
    "unknown option": (["ask", "{sample}", QUESTION, "--bogus"], None, 2, "No such option: --bogus"),
    "missing argument": (["eval", "report"], None, 2, "Missing argument"),
}


@pytest.fixture(scope="module")
def subprocess_results(bad_files, sample_path, tmp_path_factory):
    """Start every console-script case at once (each pays the import of torch/transformers), then collect."""
    empty_hf = tmp_path_factory.mktemp("empty-hf-home")
    procs = {}
    for name, (args, stdin, _, _) in SUBPROCESS_CASES.items():
        env = dict(os.environ)
        env["HF_HUB_OFFLINE"] = "1"
        env.pop("SEATS_MODEL", None)
        if name == "default model without cache":
            for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_HOME"):
                env.pop(var, None)
            env["HF_HOME"] = str(empty_hf)
        argv = console_script() + [a.format(bad=bad_files, sample=sample_path) for a in args]
        procs[name] = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=env)
    results = {}
    for name, proc in procs.items():  # they all run meanwhile; outputs are a few lines (no pipe can fill up)
        out, err = proc.communicate(input=SUBPROCESS_CASES[name][1] or "", timeout=300)
        results[name] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_console_script_errors(name, subprocess_results):
    code, out, err = subprocess_results[name]
    _, _, want_code, mention = SUBPROCESS_CASES[name]
    assert code == want_code, (name, code, out, err)
    assert out == ""
    assert_one_error_line(err, mentions=mention)


def test_request_options_reach_the_engine(tiny_dir, sample_path, monkeypatch):
    """--kv-policy, --score-layer and --saliency-span are used, not only validated: the engine and the encoders get
    them, the record says them, and the answer and per-layer counts equal the engine's own run with them."""
    from reference import prepared_case

    import seats_cli.api as api
    from seats_cli import Seats, engine
    from seats_cli.methods import build_pruner
    from seats_cli.report import layer_rows
    import torch

    seats = Seats("tiny", device="cpu", dtype="float32", cache_dir=tiny_dir.parent, reuse_media=False)
    ad = seats.adapter
    seen = {}
    real_prefill, real_encode = api.prefill, ad.encode_media

    def spy_prefill(*args, **kw):
        seen["pruner"], seen["kv_policy"] = args[3], kw.get("kv_policy")
        return real_prefill(*args, **kw)

    def spy_encode(*args, **kw):
        seen["saliency"] = kw.get("saliency")
        return real_encode(*args, **kw)

    monkeypatch.setattr(api, "prefill", spy_prefill)
    monkeypatch.setattr(ad, "encode_media", spy_encode)
    opts = dict(kv_policy="per_layer", score_layer="next", saliency_span="encoder")
    r = seats.ask(sample_path, QUESTION, trr=0.35, max_new_tokens=4, **opts)
    assert (seen["kv_policy"], seen["pruner"].score_layer, seen["saliency"]) == ("per_layer", "next", "encoder")
    assert seen["pruner"].plan.saliency_span == "encoder"
    assert (r.kv_policy, r.schedule["score_layer"], r.schedule["saliency_span"]) == ("per_layer", "next", "encoder")

    _, request, _ = prepared_case(ad, sample_path, QUESTION)
    runs = {}
    for name, kw in (("given", opts), ("default", {})):
        enc = ad.encode(request, saliency=kw.get("saliency_span", "official"))
        pruner, _ = build_pruner("seats", ad.config, request.layout, trr=0.35, score_layer=kw.get("score_layer"),
                                 saliency_span=kw.get("saliency_span"))
        res = engine.prefill(ad, enc, request.layout, pruner, kv_policy=kw.get("kv_policy", "survivors"))
        out = engine.decode(ad, res, enc.next_position, max_new_tokens=4)
        runs[name] = (res.layer_live, ad.decode_text(out.tokens))
    assert r.layers == layer_rows(request.layout, runs["given"][0]) and r.answer == runs["given"][1]
    # the options change which tokens are kept, so the comparison above would see them ignored
    assert any(not torch.equal(a, b) for a, b in zip(runs["given"][0], runs["default"][0]))


def test_a_template_that_writes_after_the_assistant_header_is_named(tiny_seats, sample_path, monkeypatch):
    """SEATS_SPEC 7.6: the Stage II query is the prompt's last token, meant to be the newline after `assistant`;
    a chat template that adds anything there (a thinking block) is named in the answer's notes."""
    plain = tiny_seats.ask(sample_path, QUESTION, max_new_tokens=1)
    assert not any("chat template" in n for n in plain.notes)
    proc = tiny_seats.adapter.processor
    real = proc.apply_chat_template
    monkeypatch.setattr(proc, "apply_chat_template", lambda *a, **kw: real(*a, **kw) + "<think>\n\n</think>\n\n")
    r = tiny_seats.ask(sample_path, "And now?", max_new_tokens=1)  # another question: the prompt is made again
    assert ("the chat template puts '<think>\\n\\n</think>\\n\\n' after '<|im_start|>assistant\\n': the query that "
            "scores Stage II is the prompt's last token, as in the official code") in r.notes
