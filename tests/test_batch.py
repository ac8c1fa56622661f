"""`seats batch` and its runner: order, per-row errors, resume, streaming, duplicate ids, Ctrl-C, non-ASCII.

In-process CLI runs share the session's loaded tiny model (``seats_cli.api.Seats`` is patched to hand it out and
count its calls); one subprocess run loads the model itself, as a user's run does."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import seats_cli.api
from seats_cli.batch import BatchInputError, check_unique_ids, parse_rows, run_batch
from seats_cli.results_file import completed_ids, repair_tail
from seats_cli.stopping import stop_after_current_row
from seats_cli.cli import app
from seats_cli.media import MediaError

FAST = ["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "2", "--max-frames", "4"]


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def batch(*args, input=None):
    return CliRunner().invoke(app, ["batch", *args, *FAST], input=input)


class Counting:
    """Seats.ask-like: counts calls (and prefetches), delegates to the session's tiny model (or to ``fn``)."""

    def __init__(self, inner=None, fn=None):
        self.inner, self.fn, self.calls, self.prefetches = inner, fn, [], []

    def prefetch(self, video, **kw):
        self.prefetches.append(str(video))
        return self.inner.prefetch(video, **kw) if self.inner is not None else False

    def close(self):
        self.closed = True

    def ask(self, video, question, **kw):
        self.calls.append((str(video), question, kw))
        if self.fn is not None:
            return self.fn(len(self.calls), video, question, **kw)
        return self.inner.ask(video, question, **kw)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model(monkeypatch, tiny_seats):
    """Every `Seats(...)` made by the CLI is the session's tiny model, wrapped to count `ask` calls."""
    counting = Counting(tiny_seats)
    counting.loads = []

    def load(*args, **kwargs):
        counting.loads.append((args, kwargs))
        return counting

    monkeypatch.setattr(seats_cli.api, "Seats", load)
    return counting


@pytest.fixture
def no_model(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(seats_cli.api, "Seats", load)


@pytest.fixture
def clips(tmp_path, sample_path) -> Path:
    shutil.copy(sample_path, tmp_path / "clip.mp4")
    data = sample_path.read_bytes()
    (tmp_path / "corrupt.mp4").write_bytes(data[: int(len(data) * 0.3)])
    return tmp_path


# ----------------------------------------------------------------------------- CLI, tiny model

def test_mixed_rows_one_line_each_in_order_and_same_answers_as_ask(clips, model):
    src = jsonl(clips / "rows.jsonl", [
        {"id": "good-1", "video": "clip.mp4", "question": "What is moving?"},
        {"id": "missing", "video": "nope.mp4", "question": "Anything?"},
        {"id": "corrupt", "video": "corrupt.mp4", "question": "Anything?"},
        '{"id": "torn", "video": "clip.mp4", "question": ',
        {"id": "empty-q", "video": "clip.mp4", "question": "   "},
        {"id": "no-q", "video": "clip.mp4"},
        {"id": "bad-method", "video": "clip.mp4", "question": "x", "method": "bogus"},
        {"id": "bad-trr", "video": "clip.mp4", "question": "x", "trr": 1.5},
        {"id": "text-trr", "video": "clip.mp4", "question": "x", "trr": "half"},
        {"id": 2, "video": "clip.mp4", "question": "And the sound?", "trr": 0.5, "max_new_tokens": 3},
    ])
    res = batch(str(src))
    assert res.exit_code == 1, res.output
    out = lines_of(res.stdout)
    assert [o["id"] for o in out] == ["good-1", "missing", "corrupt", None, "empty-q", "no-q", "bad-method",
                                     "bad-trr", "text-trr", 2]
    errors = {o["id"]: o["error"] for o in out if "error" in o}
    assert set(errors) == {"missing", "corrupt", None, "empty-q", "no-q", "bad-method", "bad-trr", "text-trr"}
    assert "no such file" in errors["missing"] and "nope.mp4" in errors["missing"]
    assert "corrupt.mp4" in errors["corrupt"]
    assert "not valid JSON" in errors[None] and out[3]["line"] == 4
    assert errors["empty-q"] == "the question is empty"
    assert "question" in errors["no-q"]
    assert "--method 'bogus' is not one of: seats, full, random" in errors["bad-method"]
    assert "trr" in errors["bad-trr"] and "1.5" in errors["bad-trr"]
    assert "trr" in errors["text-trr"]
    assert all("\n" not in e for e in errors.values())
    assert res.stderr.strip().splitlines() == ['error: 8 of 10 rows failed (see the "error" field of their lines)']
    assert len(model.loads) == 1  # loaded once
    assert model.prefetches == [], model.prefetches  # one file for every answerable row: nothing to decode ahead

    for row, extra in ((out[0], []), (out[9], ["--trr", "0.5", "--max-new-tokens", "3"])):
        question = {"good-1": "What is moving?", 2: "And the sound?"}[row["id"]]
        a = CliRunner().invoke(app, ["ask", str(clips / "clip.mp4"), question, "--json", *FAST, *extra])
        assert a.exit_code == 0, a.output
        ref = json.loads(a.stdout)
        for key in ("answer", "layers", "tokens", "trr", "method", "generated_tokens"):
            assert row[key] == ref[key], key


def fake_answer(n, video, question, **kw):
    """A fast stand-in for Seats.ask: decodes nothing, but fails like it on a missing file."""
    if not Path(video).is_file():
        raise MediaError(f"no such file: {video}")
    return {"answer": f"answer {n}", "video": str(video)}


@pytest.fixture
def fake_model(monkeypatch):
    counting = Counting(fn=fake_answer)
    monkeypatch.setattr(seats_cli.api, "Seats", lambda *a, **k: counting)
    return counting


def test_resume_skips_answered_rows_and_appends_the_rest(clips, fake_model):
    src = jsonl(clips / "rows.jsonl", [
        {"id": "a", "video": "clip.mp4", "question": "one"},
        {"id": "b", "video": "later.mp4", "question": "two"},
    ])
    out = clips / "out.jsonl"
    first = batch(str(src), "--out", str(out))
    assert first.exit_code == 1 and first.stdout == ""
    assert [("error" in o) for o in lines_of(out.read_text("utf-8"))] == [False, True]

    shutil.copy(clips / "clip.mp4", clips / "later.mp4")  # b can now succeed; c is new
    jsonl(src, [{"id": "a", "video": "clip.mp4", "question": "one"},
                {"id": "b", "video": "later.mp4", "question": "two"},
                {"id": "c", "video": "clip.mp4", "question": "three"}])
    fake_model.calls.clear()
    second = batch(str(src), "--out", str(out), "--resume")
    assert second.exit_code == 0, second.output
    assert [q for _, q, _ in fake_model.calls] == ["two", "three"]  # a was not asked again
    lines = lines_of(out.read_text("utf-8"))
    # b's error line went before it ran again: one line per row
    assert [(o["id"], "error" in o) for o in lines] == [("a", False), ("b", False), ("c", False)]
    assert "1 error line of retried rows removed (one line per row)" in second.stderr

    fake_model.calls.clear()
    assert batch(str(src), "--out", str(out), "--resume").exit_code == 0
    assert fake_model.calls == [] and len(out.read_text("utf-8").splitlines()) == 3


def test_ctrl_c_after_first_row_keeps_it_and_exits_130(clips, monkeypatch):
    def answer(n, video, question, **kw):
        if n == 2:
            raise KeyboardInterrupt
        return fake_answer(n, video, question, **kw)

    counting = Counting(fn=answer)
    monkeypatch.setattr(seats_cli.api, "Seats", lambda *a, **k: counting)
    src = jsonl(clips / "rows.jsonl", [{"id": i, "video": "clip.mp4", "question": f"q{i}"} for i in (1, 2, 3)])
    out = clips / "out.jsonl"
    res = batch(str(src), "-o", str(out))
    assert res.exit_code == 130
    assert [o["id"] for o in lines_of(out.read_text("utf-8"))] == [1]
    assert res.stderr.strip().splitlines()[-1].startswith("error: interrupted after 1 of 3 rows")
    assert len(counting.calls) == 2  # row 3 never started


def test_non_ascii_ids_questions_and_paths(tmp_path, sample_path, model, monkeypatch):
    folder = tmp_path / "vidéos 日本"
    folder.mkdir()
    shutil.copy(sample_path, folder / "клип ü.mp4")
    src = jsonl(tmp_path / "données.jsonl", [
        {"id": "ид-1 ✓", "video": "vidéos 日本/клип ü.mp4", "question": "Что движется? 何が動いている?"}])
    monkeypatch.chdir(folder)  # relative videos resolve against the JSONL's folder, not the cwd
    out = tmp_path / "résultats.jsonl"
    res = batch(str(src), "--out", str(out))
    assert res.exit_code == 0, res.output
    (line,) = lines_of(out.read_bytes().decode("utf-8"))
    assert line["id"] == "ид-1 ✓" and "error" not in line
    assert model.calls[0][1] == "Что движется? 何が動いている?"
    assert line["media"]["path"].endswith("vidéos 日本/клип ü.mp4")

    monkeypatch.chdir(tmp_path)  # stdin: relative to the cwd
    monkeypatch.setattr(seats_cli.api, "Seats", lambda *a, **k: Counting(fn=fake_answer))
    res = batch("-", input=(src.read_text("utf-8")).encode("utf-8"))
    assert res.exit_code == 0, res.output
    (line,) = lines_of(res.stdout)
    assert line["id"] == "ид-1 ✓" and line["video"] == "vidéos 日本/клип ü.mp4"


def test_duplicate_ids_fail_before_any_work(tmp_path, no_model):
    src = jsonl(tmp_path / "rows.jsonl", [{"id": "a", "video": "x.mp4", "question": "q"},
                                          {"id": "b", "video": "x.mp4", "question": "q"},
                                          {"id": "a", "video": "y.mp4", "question": "q"}])
    out = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    res = batch(str(src), "--out", str(out))
    assert time.perf_counter() - t0 < 5
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == ['error: duplicate id "a" on lines 1 and 3']
    assert not out.exists()


def test_usage_errors_exit_2_without_loading(tmp_path, no_model):
    src = jsonl(tmp_path / "rows.jsonl", [{"id": "a", "video": "x.mp4", "question": "q"}])
    for args in ([str(tmp_path / "missing.jsonl")], [str(src), "--resume"], [str(src), "--trr", "2"],
                 [str(src), "--method", "bogus"], [str(src), "--out", str(tmp_path / "no" / "out.jsonl")]):
        res = batch(*args)
        assert res.exit_code == 2, (args, res.output)
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("error: "), res.stderr


def test_out_may_not_be_the_input_and_resume_counts_answers_only(clips, fake_model):
    rows = [{"id": "a", "video": "clip.mp4", "question": "one"}, {"id": "b", "video": "clip.mp4", "question": "two"}]
    src = jsonl(clips / "rows.jsonl", rows)
    before = src.read_text()
    for extra in ((), ("--resume",)):
        res = batch(str(src), "--out", str(src), *extra)
        assert res.exit_code == 2 and src.read_text() == before
        assert res.stderr.strip() == f"error: --out {src} is the input file: the answers would overwrite the questions"
    # a file of rows without answers (the questions, say) answers nothing: --resume runs every row
    other = jsonl(clips / "other.jsonl", rows)
    res = batch(str(src), "--out", str(other), "--resume")
    assert res.exit_code == 0, res.output
    answered = [r for r in lines_of(other.read_text()) if "answer" in r]
    assert [r["id"] for r in answered] == ["a", "b"] and len(fake_model.calls) == 2


def test_a_model_that_does_not_load_still_gives_every_row_its_line(clips, monkeypatch):
    from seats_cli.models.loading import ModelLoadError

    def fail(*a, **k):
        raise ModelLoadError("cannot load Qwen/Qwen2.5-Omni-7B: not in the local cache")

    monkeypatch.setattr(seats_cli.api, "Seats", fail)
    src = jsonl(clips / "rows.jsonl", [{"id": 1, "video": "nope.mp4", "question": "q"},
                                       {"id": 2, "video": "clip.mp4", "question": "q"},
                                       {"id": 3, "video": "clip.mp4", "question": "  "}])
    out = clips / "out.jsonl"
    res = batch(str(src), "--out", str(out))
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: cannot load Qwen/Qwen2.5-Omni-7B: not in the local cache"
    got = lines_of(out.read_text())
    assert [r["id"] for r in got] == [1, 2, 3] and all("answer" not in r for r in got)
    assert "nope.mp4" in got[0]["error"] and got[2]["error"] == "the question is empty"
    assert got[1]["error"] == ("not run: the model did not load (cannot load Qwen/Qwen2.5-Omni-7B: not in the "
                               "local cache)")


def test_keys_that_are_not_options_are_named_once(clips, fake_model):
    src = jsonl(clips / "rows.jsonl", [{"id": "a", "video": "clip.mp4", "question": "q", "trrr": 0.1, "tag": 1},
                                       {"id": "b", "video": "clip.mp4", "question": "q", "tag": 2}])
    res = batch(str(src))
    assert res.exit_code == 0, res.output
    notes = [x for x in res.stderr.splitlines() if x.startswith("note: keys")]
    assert len(notes) == 1 and notes[0].startswith("note: keys that are not batch fields or options are ignored: "
                                                   "tag, trrr (options: ")
    assert fake_model.calls[0][2]["trr"] is None  # the misspelt option did not apply


def test_rows_with_empty_questions_fail_before_any_model_loads(clips, no_model):
    # "" and text of invisible characters only (zero-width space, word joiner, BOM, non-breaking space)
    src = jsonl(clips / "rows.jsonl", [{"id": "e", "video": "clip.mp4", "question": ""},
                                       {"id": "z", "video": "clip.mp4", "question": "\u200b\u2060\ufeff\u00a0"}])
    res = batch(str(src))
    assert res.exit_code == 1
    assert lines_of(res.stdout) == [{"id": "e", "line": 1, "error": "the question is empty"},
                                    {"id": "z", "line": 2, "error": "the question is empty"}]


def test_progress_bar_goes_to_stderr_only(tmp_path, monkeypatch, sample_path):
    import seats_cli.cli.batch as cli_batch

    shutil.copy(sample_path, tmp_path / "x.mp4")  # rows' videos are probed before any model is loaded

    counting = Counting(fn=lambda n, video, question, **kw: {"answer": f"a{n}"})
    monkeypatch.setattr(seats_cli.api, "Seats", lambda *a, **k: counting)
    monkeypatch.setattr(cli_batch, "show_progress", lambda quiet: not quiet)
    src = jsonl(tmp_path / "rows.jsonl", [{"id": i, "video": "x.mp4", "question": "q"} for i in range(3)])
    res = batch(str(src))
    assert res.exit_code == 0, res.output
    assert lines_of(res.stdout) == [{"id": i, "answer": f"a{i + 1}"} for i in range(3)]
    assert "3/3" in res.stderr and "rows/s" in res.stderr
    quiet = batch(str(src), "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.skipif(sys.platform == "win32", reason="uses select() on a pipe")
def test_lines_stream_out_as_rows_finish(tmp_path, sample_path, tiny_seats):
    shutil.copy(sample_path, tmp_path / "clip.mp4")
    rows = [{"id": "é-1", "video": "clip.mp4", "question": "first?"}]
    rows += [{"id": n, "video": "clip.mp4", "question": "later?", "max_frames": 8, "max_new_tokens": 4}
             for n in (2, 3)]
    src = jsonl(tmp_path / "rows.jsonl", rows)
    ref = tiny_seats.ask(tmp_path / "clip.mp4", "first?", max_new_tokens=2, max_frames=4)  # before: no CPU race
    exe = shutil.which("seats")
    cmd = [exe] if exe else [sys.executable, "-c", "from seats_cli.cli import main; main()"]
    proc = subprocess.Popen([*cmd, "batch", str(src), *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0, env={**os.environ, "OMP_NUM_THREADS": "1"})  # as `ref`: one thread
    try:
        first = proc.stdout.readline()  # unbuffered: reads exactly one line
        assert proc.poll() is None, "the first line arrived only when the whole run was over"
        assert select.select([proc.stdout], [], [], 0)[0] == [], "row 2 was already written"
        row = json.loads(first.decode("utf-8"))
        assert row["id"] == "é-1" and row["answer"] == ref.answer and row["layers"] == ref.to_dict()["layers"]
        proc.stdout.close()  # the reader goes away, like `| head -1`: the run stops quietly
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 141
    assert b"Traceback" not in err and b"error" not in err, err


# ----------------------------------------------------------------------------- the runner, no model

def test_parse_rows_skips_blank_lines_and_reports_bad_ones(tmp_path):
    data = ("\ufeff" + "\n".join([
        '{"id": "a", "video": "v.mp4", "question": "q", "trr": null, "max_new_tokens": 4.0, "tag": "kept out"}',
        "",
        "   ",
        "[1, 2]",
        '{"video": "v.mp4", "question": "q"}',
        '{"id": true, "video": "v.mp4", "question": "q"}',
        '{"id": "m", "video": "v.mp4", "question": "q", "model": "other"}',
        '{"id": 5, "video": "/abs/v.mp4", "question": 3, "seed": 1.5}',
        '{"id": "d", "video": "v.mp4", "question": "q", "decode_mode": "static"}',
    ])).encode("utf-8") + b"\n\xff\xfe\n"
    rows = parse_rows(data, base_dir=tmp_path)
    assert [r.line for r in rows] == [1, 4, 5, 6, 7, 8, 9, 10]
    assert rows[6].id == "d" and "--decode-mode" in rows[6].error
    del rows[6]
    a = rows[0]
    assert a.error is None and a.video == str(tmp_path / "v.mp4") and a.options == {"max_new_tokens": 4}
    assert a.ignored == ("tag",)  # metadata (or a misspelt option): kept out of the options, and named
    assert "JSON object" in rows[1].error and "'id'" in rows[2].error and rows[2].id is None
    assert rows[3].id is None and "'id' must be" in rows[3].error
    assert rows[4].id == "m" and "--model" in rows[4].error
    assert rows[5].id == 5 and "'question' must be a string" in rows[5].error and "'seed'" in rows[5].error
    assert "UTF-8" in rows[6].error
    assert parse_rows('{"id": 1, "video": "v.mp4", "question": "q"}')[0].video == "v.mp4"  # stdin: cwd


def test_check_unique_ids_names_every_duplicate():
    rows = parse_rows("\n".join(json.dumps({"id": i, "video": "v", "question": "q"}) for i in ("x", 1, "x", "1", 1)))
    with pytest.raises(BatchInputError, match=r'duplicate ids: "x" \(lines 1 and 3\), 1 \(lines 2 and 5\)'):
        check_unique_ids(rows)
    assert check_unique_ids(rows[1:4]) == rows[1:4]  # 1 and "1" are different ids


def test_run_batch_order_errors_and_stop():
    rows = parse_rows("\n".join(json.dumps({"id": i, "video": "v", "question": f"q{i}"}) for i in range(4)))
    written, seen = [], []

    def answer(video, question, **kw):
        seen.append((question, kw))
        if question == "q1":
            raise ValueError("bad\nrow")
        return {"answer": question}

    s = run_batch(rows, answer, written.append, defaults={"trr": 0.3}, should_stop=lambda: len(written) == 3)
    assert [json.loads(w) for w in written] == [
        {"id": 0, "answer": "q0"}, {"id": 1, "line": 2, "error": "bad row"}, {"id": 2, "answer": "q2"}]
    assert (s.total, s.written, s.failed, s.interrupted) == (4, 3, 1, True)
    assert seen[0] == ("q0", {"trr": 0.3})

    def broken(line):
        raise BrokenPipeError

    with pytest.raises(BrokenPipeError):  # a failing sink is not a row error
        run_batch(rows, answer, broken)


def test_run_batch_hands_the_next_answerable_rows_file_to_prefetch():
    rows = parse_rows("\n".join(json.dumps(r) for r in [
        {"id": "a", "video": "one.mp4", "question": "q"},
        {"id": "b", "video": "one.mp4", "question": "q"},  # the same file as a: reused, not prefetched
        {"id": "c", "video": "two.mp4"},  # no question: an error row, skipped
        {"id": "d", "video": "three.mp4", "question": "q", "fps": 1.0},
        {"id": "e", "video": "four.mp4", "question": "q"},
        {"id": "f", "video": "four.mp4", "question": "q", "max_frames": 8},  # the same file, sampled otherwise
    ]))
    events = []

    def answer(video, question, **kw):
        events.append(("ask", Path(video).name))
        return {"answer": "x"}

    def prefetch(video, **kw):
        events.append(("prefetch", Path(video).name, kw.get("fps"), kw.get("trr")))
        if Path(video).name == "three.mp4":
            raise RuntimeError("a failing prefetch is ignored")

    s = run_batch(rows, answer, lambda line: None, defaults={"trr": 0.3}, prefetch=prefetch)
    assert events == [("ask", "one.mp4"), ("prefetch", "three.mp4", 1.0, 0.3), ("ask", "one.mp4"),
                      ("prefetch", "four.mp4", None, 0.3), ("ask", "three.mp4"), ("prefetch", "four.mp4", None, 0.3),
                      ("ask", "four.mp4"), ("ask", "four.mp4")]
    assert (s.written, s.failed) == (6, 1)


def test_a_row_telling_the_processor_another_fps_gets_its_own_decode():
    """--processor-fps is part of how a file is decoded (the media carries it to the processor): the same file with
    another value is decoded again, so it is prefetched, and with it the row's value."""
    rows = parse_rows("\n".join(json.dumps(r) for r in [
        {"id": "a", "video": "one.mp4", "question": "q"},
        {"id": "b", "video": "one.mp4", "question": "q", "processor_fps": "official"},
    ]))
    events = []
    s = run_batch(rows, lambda video, question, **kw: events.append(("ask", kw.get("processor_fps"))) or {},
                  lambda line: None, defaults={},
                  prefetch=lambda video, **kw: events.append(("prefetch", kw.get("processor_fps"))))
    assert events == [("prefetch", "official"), ("ask", None), ("ask", "official")]  # b decoded while a runs
    assert (s.written, s.failed) == (2, 0)


def test_batch_decodes_the_next_file_ahead_unless_told_not_to(tmp_path, sample_path, model):
    shutil.copy(sample_path, tmp_path / "a.mp4")
    shutil.copy(sample_path, tmp_path / "b.mp4")
    src = jsonl(tmp_path / "rows.jsonl", [{"id": 1, "video": "a.mp4", "question": "q"},
                                          {"id": 2, "video": "b.mp4", "question": "q"}])
    runs = {}
    for flag in ("--prefetch", "--no-prefetch"):
        res = batch(str(src), flag)
        assert res.exit_code == 0, res.output
        runs[flag] = lines_of(res.stdout)
    assert [o["reused"]["prefetched"] for o in runs["--prefetch"]] == [False, True]
    assert [o["reused"]["prefetched"] for o in runs["--no-prefetch"]] == [False, False]
    assert [o["answer"] for o in runs["--prefetch"]] == [o["answer"] for o in runs["--no-prefetch"]]
    assert model.prefetches == [str(tmp_path / "b.mp4")]
    assert model.closed  # the CLI stops what it started


def test_completed_ids_and_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a", "answer": "x"}\n{"id": 2, "line": 3, "error": "e"}\n{"id": 3, "answer": "y"}\n'
                    b'{"id": "c", "answ')
    assert completed_ids(out) == {'"a"', "3"}
    assert "incomplete" in repair_tail(out)
    assert out.read_bytes().endswith(b'"y"}\n')
    assert completed_ids(tmp_path / "none.jsonl") == set()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_after_the_row_like_ctrl_c_with_its_own_exit_code():
    """A scheduler's stop (SIGTERM: Slurm's preemption, `kill`) ends a run as the first Ctrl-C does: the row in
    progress finishes and is written, then exit 128 + 15."""
    notes = []
    before = signal.getsignal(signal.SIGTERM)
    with stop_after_current_row(notes.append) as should_stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert should_stop() and should_stop.exit_code == 143 and "current row" in notes[0]
    assert signal.getsignal(signal.SIGTERM) is before
    with stop_after_current_row() as should_stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert should_stop.exit_code == 130


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_first_ctrl_c_stops_after_the_row_second_stops_now():
    notes = []
    before = signal.getsignal(signal.SIGINT)
    with stop_after_current_row(notes.append) as should_stop:
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert should_stop() and "current row" in notes[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before


def test_shards_merge_back_in_input_order(tmp_path, sample_path):
    """--shard I/N splits the rows deterministically; --merge puts the shards' lines back in input order (ids and
    their types kept) and equals the unsharded run; a row missing from every shard is an error line, exit 1."""
    shutil.copy(sample_path, tmp_path / "a.mp4")
    rows = [{"id": 1, "video": "a.mp4", "question": "What moves?"},
            {"id": "1", "video": "a.mp4", "question": "What sound?", "method": "full"},
            {"id": 25, "video": "a.mp4", "question": "Where?", "trr": 0.2},
            {"id": "x", "video": "a.mp4", "question": "Which colour?"}]
    src = jsonl(tmp_path / "rows.jsonl", rows)
    whole = tmp_path / "whole.jsonl"
    assert batch(str(src), "--out", str(whole), "--quiet").exit_code == 0
    parts = []
    for i in range(2):
        part = tmp_path / f"out.{i}.jsonl"
        res = batch(str(src), "--shard", f"{i}/2", "--out", str(part), "--quiet")
        assert res.exit_code == 0, res.output
        parts.append(part)
    assert [r["id"] for r in lines_of(parts[0].read_text())] == [1, 25]
    assert [r["id"] for r in lines_of(parts[1].read_text())] == ["1", "x"]
    merged = tmp_path / "merged.jsonl"
    res = batch(str(src), "--merge", str(parts[0]), "--merge", str(parts[1]), "--out", str(merged))
    assert res.exit_code == 0, res.output
    got, want = lines_of(merged.read_text()), lines_of(whole.read_text())
    assert [r["id"] for r in got] == [1, "1", 25, "x"]
    assert [(r["answer"], r["layers"]) for r in got] == [(r["answer"], r["layers"]) for r in want]
    res = batch(str(src), "--merge", str(parts[0]), "--out", str(merged))
    assert res.exit_code == 1 and "2 of 4 rows have no result" in res.stderr
    assert [("error" in r) for r in lines_of(merged.read_text())] == [False, True, False, True]
    assert batch(str(src), "--shard", "2/2").exit_code == 2


def test_a_ray_pool_that_breaks_still_gives_every_row_its_line(monkeypatch):
    """--backend ray: when the pool fails (an actor whose model did not load), the rows it did not answer get its
    error, in input order, and rows known to be bad keep their own."""
    from seats_cli import distributed

    def pool(items, *args, **kwargs):
        yield {"line": json.dumps({"id": "a", "answer": "x"})}
        raise RuntimeError("actor died:\n cannot load the model")

    monkeypatch.setattr(distributed, "_pool", pool)
    rows = parse_rows("\n".join(json.dumps(r) for r in [
        {"id": "a", "video": "v.mp4", "question": "q"}, {"id": "b", "video": "v.mp4"},
        {"id": "c", "video": "v.mp4", "question": "q"}, {"id": "d", "video": "v.mp4", "question": "q"}]))
    lines = []
    assert distributed.run_ray(rows, lines.append, load={}, defaults={}) == 4
    got = [json.loads(x) for x in lines]
    assert [r["id"] for r in got] == ["a", "b", "c", "d"] and got[0]["answer"] == "x"
    assert "missing field 'question'" in got[1]["error"]
    assert got[2]["error"] == got[3]["error"] == "not run: actor died: cannot load the model"


def test_a_path_the_system_refuses_fails_its_row_only(clips, fake_model):
    """A video name longer than the file system allows (ENAMETOOLONG) or in a folder that cannot be entered: that
    row's error line; every other row runs (the whole batch stopped with no output before)."""
    src = jsonl(clips / "rows.jsonl", [{"id": "long", "video": "a" * 300 + ".mp4", "question": "q"},
                                       {"id": "ok", "video": "clip.mp4", "question": "q"}])
    out = clips / "out.jsonl"
    res = batch(str(src), "--out", str(out))
    assert res.exit_code == 1, res.output
    got = lines_of(out.read_text("utf-8"))
    assert [r["id"] for r in got] == ["long", "ok"] and "answer" in got[1]
    assert got[0]["error"].startswith("cannot open ") and got[0]["error"].endswith(": File name too long")


def test_ids_holding_line_separators_stay_one_row(clips, fake_model):
    """U+2028, U+2029 and U+0085 are legal raw inside JSON strings and the output writes them raw; every reader
    splits lines at "\\n" only, so --resume skips those rows, --merge finds them, and they are one line each."""
    ids = ["a\u2028b", "c\u0085d", "e\u2029f"]
    src = jsonl(clips / "rows.jsonl", [{"id": i, "video": "clip.mp4", "question": "q"} for i in ids])
    out = clips / "out.jsonl"
    assert batch(str(src), "--out", str(out)).exit_code == 0
    assert "\u2028" in out.read_text("utf-8")  # written raw
    assert [r["id"] for r in lines_of_jsonl(out)] == ids
    fake_model.calls.clear()
    res = batch(str(src), "--out", str(out), "--resume")
    assert res.exit_code == 0 and fake_model.calls == [] and len(lines_of_jsonl(out)) == 3
    merged = clips / "merged.jsonl"
    res = batch(str(src), "--merge", str(out), "--out", str(merged))
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in lines_of_jsonl(merged)] == ids and all("answer" in r for r in lines_of_jsonl(merged))


def lines_of_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").split("\n") if line]


def test_a_second_run_into_the_same_out_is_refused(clips, fake_model):
    """Two runs writing one --out at once lost one run's rows; the second now stops before any work, the file as
    the first one leaves it."""
    import fcntl

    src = jsonl(clips / "rows.jsonl", [{"id": "a", "video": "clip.mp4", "question": "q"}])
    out = clips / "out.jsonl"
    out.write_text('{"id": "z", "answer": "kept"}\n', encoding="utf-8")
    with open(out, "a") as held:  # the first run, still writing
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        res = batch(str(src), "--out", str(out))
    assert res.exit_code == 2 and fake_model.calls == []
    assert res.stderr.strip() == f"error: --out {out} is being written by another run; wait for it to end, or give " \
                                 f"another --out"
    assert out.read_text("utf-8") == '{"id": "z", "answer": "kept"}\n'
    assert batch(str(src), "--out", str(out)).exit_code == 0  # once it is free


def test_merge_reads_a_shard_line_whose_error_is_null(tmp_path):
    src = jsonl(tmp_path / "rows.jsonl", [{"id": "c", "video": "v.mp4", "question": "q"}])
    shard = jsonl(tmp_path / "s.jsonl", [{"id": "c", "error": None}])
    res = batch(str(src), "--merge", str(shard), "--out", str(tmp_path / "m.jsonl"))
    assert res.exit_code == 1, res.output  # a line with an "error" key is a failed row, as in a run
    assert res.stderr.strip() == 'error: 1 of 1 rows failed in the shards (see the "error" field of their lines)'
    assert lines_of((tmp_path / "m.jsonl").read_text()) == [{"id": "c", "error": None}]


def test_a_ray_run_stops_after_the_row_in_progress_when_asked(monkeypatch):
    """Ctrl-C / SIGTERM on --backend ray: the rows written so far stay, the rest are left to --resume."""
    from seats_cli import distributed

    def pool(items, *args, **kwargs):
        for item in items:
            yield {"line": json.dumps({"id": json.loads(item["row"])["id"], "answer": "x"})}

    monkeypatch.setattr(distributed, "_pool", pool)
    rows = parse_rows("\n".join(json.dumps({"id": i, "video": "v.mp4", "question": "q"}) for i in "abcd"))
    lines = []
    stop = {"after": 2}
    assert distributed.run_ray(rows, lines.append, load={}, defaults={},
                               should_stop=lambda: len(lines) >= stop["after"]) == 2
    assert [json.loads(x)["id"] for x in lines] == ["a", "b"]


def test_resume_removes_only_the_error_lines_its_retries_replace(clips, fake_model):
    """A resumed run with another input file (or one stopped early) leaves the error lines of rows it did not run
    again; the ones it retried go, after their new lines are written. --out /dev/null still works (not truncated)."""
    out = clips / "out.jsonl"
    first = jsonl(clips / "one.jsonl", [{"id": "a", "video": "clip.mp4", "question": "q"},
                                       {"id": "b", "video": "gone.mp4", "question": "q"},
                                       {"id": "c", "video": "gone.mp4", "question": "q"}])
    assert batch(str(first), "--out", str(out)).exit_code == 1
    shutil.copy(clips / "clip.mp4", clips / "gone.mp4")
    other = jsonl(clips / "two.jsonl", [{"id": "a", "video": "clip.mp4", "question": "q"},
                                       {"id": "c", "video": "gone.mp4", "question": "q"}])
    res = batch(str(other), "--out", str(out), "--resume")
    assert res.exit_code == 0, res.output
    assert [(o["id"], "error" in o) for o in lines_of(out.read_text("utf-8"))] == \
        [("a", False), ("b", True), ("c", False)]  # b was not in this run: its line stays
    assert batch(str(other), "--out", "/dev/null").exit_code == 0


def test_an_input_without_rows_says_so(tmp_path, no_model):
    src = jsonl(tmp_path / "rows.jsonl", ["", "  "])
    res = batch(str(src), "--out", str(tmp_path / "out.jsonl"))
    assert res.exit_code == 0 and res.stderr.strip() == f"note: {src} has no rows: nothing to answer"
    assert (tmp_path / "out.jsonl").read_text() == ""
