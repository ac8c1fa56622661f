"""`seats analyze` / `seats calibrate` (issue 17): the attention profile sums to 1 per layer and follows the
modalities, the media-drop curves use the real pruner path, and the boundary fit is a pure, hand-checked rule."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seats_cli.analyze import Analysis, calibrate_boundaries
from seats_cli.cli import app


def _analysis(both, layers=None, full=1.0):
    layers = layers or list(range(len(both)))
    zero = [0.0] * 28
    return Analysis(layers, {"video": zero, "audio": zero, "text": zero},
                    {"video": both, "audio": both, "both": both}, full, 0.25, 10, "accuracy")


def test_calibrate_boundaries_by_hand():
    # 28 layers analysed every 2: media needed up to layer 18 (score 0.25), recovering at 20-22, safe from 24
    layers = list(range(0, 28, 2))
    both = [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5, 0.8, 0.99, 1.0]
    pb, tof = calibrate_boundaries(_analysis(both, layers), tolerance=0.02, num_layers=28)
    # text_only_from: first layer from which every later score is >= 0.98 -> 24; the fall starts where the score
    # recovers half way (0.25 -> 1.0: 0.625) -> layer 22? no: 20 scores 0.5, 22 scores 0.8 >= 0.625 -> start 22,
    # clipped to text_only_from - 3 = 21 -> prune_before [21, 22, 23]
    assert (pb, tof) == ([21, 22, 23], 24)
    # a model that never needs the media from layer 8 on
    pb, tof = calibrate_boundaries(_analysis([0.25] * 8 + [1.0] * 20), tolerance=0.02, num_layers=28)
    assert tof == 8 and pb == [5, 6, 7]
    # one that always needs it: text only never (num_layers), boundaries in the last layers
    pb, tof = calibrate_boundaries(_analysis([0.25] * 28), tolerance=0.02, num_layers=28)
    assert tof == 28 and pb == [25, 26, 27]
    # a model too shallow for three drops and a text-only block, and a tolerance that is no score difference
    with pytest.raises(ValueError, match="at least 4 layers, got 3"):
        calibrate_boundaries(_analysis([0.25] * 3), tolerance=0.02, num_layers=3)
    with pytest.raises(ValueError, match="tolerance must be a score difference"):
        calibrate_boundaries(_analysis([0.25] * 28), tolerance=float("nan"), num_layers=28)


def test_analyze_the_tiny_model_through_the_cli(sample_path, tmp_path):
    res = CliRunner().invoke(app, ["analyze", str(sample_path), "--model", "tiny", "--question", "What is moving?",
                                   "--every", "7", "--device", "cpu", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["layers"] == [0, 7, 14, 21] and out["scored_by"] == "agreement with full" and out["items"] == 1
    for layer in range(28):  # the query's softmax over all tokens: the three masses sum to 1
        assert sum(out["attention"][k][layer] for k in ("video", "audio", "text")) == pytest.approx(1.0, abs=1e-5)
    # with media kept the answer agrees with itself; dropping both before the LLM is a real change of input
    assert all(0.0 <= s <= 1.0 for s in out["dropped"]["both"])


def test_calibrate_writes_a_preset_that_loads(sample_path, tmp_path):
    from seats_cli.config import ModelConfig

    out = tmp_path / "tiny-cal.yaml"
    res = CliRunner().invoke(app, ["calibrate", str(sample_path), "--model", "tiny", "--question", "What is moving?",
                                   "--out", str(out), "--device", "cpu", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    cfg = ModelConfig.from_yaml(out)
    assert cfg.calibrated and list(cfg.seats.prune_before) == got["prune_before"]
    assert cfg.seats.text_only_from == got["text_only_from"]
    assert out.read_text().startswith("# calibrated by: seats calibrate")


def test_a_long_analysis_resumes_from_its_checkpoint(tmp_path):
    """Each question's result is kept as soon as it is done; a rerun with the same checkpoint reads them back (the
    same analysis), a torn last line is run again, and the synthetic questions are analysed one clip at a time."""
    ck = tmp_path / "ck.jsonl"
    args = ["analyze", "--model", "synthetic", "--benchmark", "synthetic", "--n", "1", "--every", "14",
            "--checkpoint", str(ck), "--device", "cpu", "--json", "--quiet"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    lines = ck.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["layers"] == [0, 14] for x in lines)
    again = CliRunner().invoke(app, args)
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert b["notes"] == [f"4 of 4 questions read back from {ck}"]
    assert {k: v for k, v in a.items() if k != "notes"} == {k: v for k, v in b.items() if k != "notes"}
    ck.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # a crash while writing the fourth
    third = CliRunner().invoke(app, args)
    c = json.loads(third.stdout)
    assert c["notes"] == [f"3 of 4 questions read back from {ck}"]
    assert c["dropped"] == a["dropped"] and c["full_score"] == a["full_score"] and a["scored_by"] == "accuracy"


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    """A checkpoint names the model that made it: another model's results are never read back as this one's."""
    ck = tmp_path / "ck.jsonl"
    ck.write_text(json.dumps({"key": "x", "model": "tiny (tiny)", "layers": [0, 14]}) + "\n")
    res = CliRunner().invoke(app, ["analyze", "--model", "synthetic", "--benchmark", "synthetic", "--n", "1",
                                   "--every", "14", "--checkpoint", str(ck), "--device", "cpu", "--quiet"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"error: --checkpoint {ck} holds results of tiny (tiny), not of synthetic "
                                  "(synthetic): give another file")


@pytest.mark.parametrize("args, line", [
    (["calibrate", "--tolerance", "nan"], "error: --tolerance must be a score difference in [0, 1) (got nan)"),
    (["calibrate", "--tolerance", "-1"], "error: --tolerance must be a score difference in [0, 1) (got -1.0)"),
    (["calibrate", "--out", "{tmp}/no/x.yaml"], "error: --out {tmp}/no/x.yaml: no such folder {tmp}/no"),
    (["analyze", "--every", "0"], "error: --every must be at least 1 (got 0)"),
    (["analyze", "--question", "q"], "error: --benchmark brings its own questions: give it alone, or VIDEO... "
                                     "--question, or --questions FILE"),
    (["analyze", "--checkpoint", "{tmp}"], "error: --checkpoint {tmp} is a folder, not a JSONL file"),
    (["analyze", "--plot", "{tmp}/no/p.png"], "error: --plot {tmp}/no/p.png: no such folder {tmp}/no"),
])
def test_analysis_options_are_checked_before_any_work(tmp_path, monkeypatch, args, line):
    import seats_cli.api

    def never(*a, **k):
        raise AssertionError("no model may load before the options are checked")

    monkeypatch.setattr(seats_cli.api, "Seats", never)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "calibrate" and "--out" not in args:
        args += ["--out", str(tmp_path / "p.yaml")]
    res = CliRunner().invoke(app, [*args, "--model", "synthetic", "--benchmark", "synthetic", "--quiet"])
    assert res.exit_code == 2 and res.stderr.strip() == line.replace("{tmp}", str(tmp_path))


def test_analyze_reads_a_real_benchmark_copy(tmp_path, sample_path):
    """`--benchmark custom --data-dir`: the benchmark's prompts, scored by accuracy against its gold letters."""
    import shutil

    shutil.copy(sample_path, tmp_path / "a.mp4")
    rows = [{"id": "q1", "video": "a.mp4", "question": "What moves?", "options": ["a square", "a circle"],
             "answer": "A"}, {"id": "q2", "video": "a.mp4", "question": "What sound?", "options": ["a tone", "none"],
                              "answer": "B"}]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = CliRunner().invoke(app, ["analyze", "--model", "tiny", "--benchmark", "custom", "--data-dir", str(tmp_path),
                                   "--every", "14", "--device", "cpu", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["items"] == 2 and out["scored_by"] == "accuracy" and out["layers"] == [0, 14]
    bad = CliRunner().invoke(app, ["analyze", "--model", "tiny", "--benchmark", "nope", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "is not one of: synthetic, worldsense" in bad.stderr


# ---- the numbers themselves, against independent computations ----------------------------------------------
# The tiny model on the sample clip: dropping the video (alone or with the audio) before layer 0 changes the first
# token, the video alone still changes it at layer 5 but both together no longer do, and from layer 7 on nothing
# does; the audio never matters to this model (top-2 logit margins >= 0.01 at every cut, the engine and the
# reference agree to ~3e-6).
TINY_QUESTION = "What is moving?"
TINY_LAYERS = [0, 5, 7]
CUTS = {"video": (1,), "audio": (2,), "both": (1, 2)}  # layout.modality: 0 text, 1 video, 2 audio


def _analysed(seats, media, question, gold, layers) -> dict:
    """`seats analyze --json` of one question (the dict the CLI prints), on one torch thread."""
    import torch

    from seats_cli.analyze import analyze

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return analyze(seats, [(media, question, gold)], layers=layers).to_dict()
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_analysis(tiny_seats, sample_path):
    from reference import prepared_case

    media, _, _ = prepared_case(tiny_seats.adapter, sample_path, TINY_QUESTION)
    return _analysed(tiny_seats, media, TINY_QUESTION, None, TINY_LAYERS)


def _reference_first_tokens(adapter, encoded, modality, layers) -> tuple[int, dict[str, list[int]]]:
    """The stock layers over the whole prompt (tests/reference.py): the full first token, and per cut and layer L
    the first token with that cut's rows hidden from every layer >= L (nothing is ever gathered)."""
    import torch

    from reference import full_live, masked_reference_logits

    n, n_layers = encoded.embeds.shape[1], len(adapter.layers)
    full = int(masked_reference_logits(adapter, encoded, full_live(encoded, n_layers)).argmax())
    out = {}
    for name, mods in CUTS.items():
        kept = torch.tensor([i for i in range(n) if int(modality[i]) not in mods])
        assert 0 < len(kept) < n
        out[name] = [int(masked_reference_logits(adapter, encoded, [torch.arange(n) if idx < cut else kept
                                                                    for idx in range(n_layers)]).argmax())
                     for cut in layers]
    return full, out


def test_attention_profile_equals_the_stock_eager_attention_weights(tiny_analysis, tiny_dir, sample_path,
                                                                    one_thread):
    """Per layer, the mass the last prompt token puts on each modality is the stock model's own eager attention
    (output_attentions) of the last row, mean over heads, summed over that modality's positions."""
    import torch

    from reference import load_tiny, prepared_case

    eager = load_tiny(tiny_dir, "eager")
    _, request, _ = prepared_case(eager, sample_path, TINY_QUESTION)
    modality = request.layout.modality
    assert [int((modality == m).sum()) for m in (0, 1, 2)] == [209, 864, 150]  # each modality is really there
    with torch.no_grad():
        out = eager.model(**request.inputs, use_audio_in_video=request.use_audio_in_video, output_attentions=True)
    assert len(out.attentions) == 28
    got = tiny_analysis["attention"]
    for layer, weights in enumerate(out.attentions):
        row = weights[0, :, -1, :].float().mean(dim=0)  # (S,): the last prompt row, mean over the heads
        for name, m in (("text", 0), ("video", 1), ("audio", 2)):
            want = float(row[modality == m].sum())
            assert got[name][layer] == pytest.approx(want, abs=1e-5), (layer, name)
    # the modalities' masses differ enough that a mix-up of the labels cannot pass the 1e-5 check
    assert min(abs(got["video"][j] - got["audio"][j]) for j in range(28)) > 1e-3


def test_drop_curves_equal_the_masked_reference_on_the_tiny_model(tiny_analysis, tiny_seats, sample_path,
                                                                 one_thread):
    """Agreement with the full model per analysed layer = (the reference's first token with the cut's rows hidden
    from that layer on) == (its full first token), for video, audio and both."""
    from reference import prepared_case

    _, request, encoded = prepared_case(tiny_seats.adapter, sample_path, TINY_QUESTION)
    full, tokens = _reference_first_tokens(tiny_seats.adapter, encoded, request.layout.modality, TINY_LAYERS)
    expected = {name: [float(t == full) for t in toks] for name, toks in tokens.items()}
    assert tiny_analysis["layers"] == TINY_LAYERS and tiny_analysis["scored_by"] == "agreement with full"
    assert tiny_analysis["dropped"] == expected
    # the reference's curves, by hand: the check has teeth (a cut that drops nothing would give all 1.0, and a
    # swap of any two curves changes them)
    assert expected == {"video": [0.0, 0.0, 1.0], "audio": [1.0, 1.0, 1.0], "both": [0.0, 1.0, 1.0]}


def test_drop_curves_equal_the_masked_reference_on_the_synthetic_model(seats_cache, one_thread):
    """The trained `synthetic` model, scored by accuracy against the gold letter: a tone question whose answer
    needs the audio up to layer 14 (the video alone never changes it, both together only with the audio)."""
    from seats_cli.api import Seats
    from seats_cli.evaluate import synthetic_items
    from seats_cli.synthetic import media_of

    seats = Seats("synthetic", device="cpu", dtype="float32", cache_dir=seats_cache)
    item = next(it for it in synthetic_items(1_000_000, 2) if it.id == "tone_while_square-1000501")
    media = media_of(item)
    layers = [0, 14, 20]
    got = _analysed(seats, media, item.question, item.answer, layers)
    ad = seats.adapter
    request = ad.prepare(media, item.question)
    full, tokens = _reference_first_tokens(ad, ad.encode(request), request.layout.modality, layers)
    assert ad.decode_text([full]) == item.answer == "A"  # the full model answers right
    expected = {name: [float(ad.decode_text([t]) == item.answer) for t in toks] for name, toks in tokens.items()}
    assert (got["scored_by"], got["full_score"], got["chance"]) == ("accuracy", 1.0, 0.25)
    assert got["dropped"] == expected
    assert expected == {"video": [1.0, 1.0, 1.0], "audio": [0.0, 0.0, 1.0], "both": [1.0, 1.0, 1.0]}


def test_question_files_are_checked_before_any_question_runs(tmp_path, sample_path):
    """Empty files, duplicate ids, answers on some rows only, answers that are not letters and missing videos are
    one-line errors before the first question is analysed; lower-case letters are read as letters."""
    from test_cli_ask import assert_one_error_line

    row = {"id": "a", "video": str(sample_path), "question": "What is moving?"}
    cases = {
        "empty": ([], "holds no questions"),
        "dup": ([row, dict(row, question="Again?")], 'duplicate id "a" on lines 1 and 2'),
        "mixed": ([dict(row, answer="A"), dict(row, id="b")], 'give an "answer" on every row'),
        "notletter": ([dict(row, answer="AB")], 'line 1: "answer" must be an option letter (A, B, ...), got \'AB\''),
        "missing": ([row, dict(row, id="b", video=str(tmp_path / "nope.mp4"))], "no such file: "),
    }
    both = tmp_path / "both.jsonl"
    both.write_text(json.dumps(row) + "\n")
    res = CliRunner().invoke(app, ["analyze", str(sample_path), "--question", "Q?", "--questions", str(both),
                                   "--model", "tiny"])
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, mentions="--questions FILE brings its own videos and questions")
    res = CliRunner().invoke(app, ["analyze", "--questions", str(both), "--model", "tiny", "--checkpoint",
                                   str(tmp_path / "no" / "ck.jsonl")])
    assert res.exit_code == 2
    assert_one_error_line(res.stderr, mentions="--checkpoint")
    for name, (rows, mention) in cases.items():
        f = tmp_path / f"{name}.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        res = CliRunner().invoke(app, ["analyze", "--model", "tiny", "--questions", str(f), "--every", "14", "-q"])
        assert res.exit_code == 2, (name, res.output)
        assert_one_error_line(res.stderr, mentions=mention)
    from seats_cli.cli.analyze import _answers
    from seats_cli.batch import read_jsonl

    f = tmp_path / "lower.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(dict(row, answer=" c ", question="What\u2028is moving?")).encode() + b"\n")
    assert _answers(f, read_jsonl(f)) == ["C"]


def test_a_checkpoint_gives_back_only_the_same_question(tmp_path, tiny_seats, sample_path):
    """A result is read back for the same item, question and gold answer only (the key was the video alone)."""
    from seats_cli.analyze import analyze
    from seats_cli.media import decode_video
    from seats_cli.request import frame_policy

    media = decode_video(sample_path, frame_policy(tiny_seats.config))
    ck = tmp_path / "ck.jsonl"
    analyze(tiny_seats, [(media, "What is moving?", None, "v")], layers=[27], checkpoint=ck)
    again = analyze(tiny_seats, [(media, "What is moving?", None, "v")], layers=[27], checkpoint=ck)
    other = analyze(tiny_seats, [(media, "What colour is it?", None, "v")], layers=[27], checkpoint=ck)
    assert again.notes == [f"1 of 1 questions read back from {ck}"] and other.notes == []
    with pytest.raises(ValueError, match="no questions to analyse"):
        analyze(tiny_seats, [], layers=[27])
    with pytest.raises(ValueError, match="layers must be in 0..27"):
        analyze(tiny_seats, [(media, "What is moving?", None, "v")], layers=[28])


def test_calibrate_writes_the_command_as_one_comment(tmp_path, sample_path, monkeypatch):
    """A question with a newline stays inside the shell-quoted comment: it cannot add YAML keys or break the file."""
    import sys

    import yaml

    out = tmp_path / "preset.yaml"
    args = ["calibrate", str(sample_path), "--model", "tiny", "--question", "What?\nfoo: [", "--out", str(out), "-q"]
    monkeypatch.setattr(sys, "argv", ["seats", *args])  # what the comment records
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.splitlines()[0].endswith("--question 'What?\\nfoo: [' --out " + str(out) + " -q")
    assert "foo" not in yaml.safe_load(text)
