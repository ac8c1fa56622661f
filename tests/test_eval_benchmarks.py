"""`seats eval` on local copies of the paper's benchmarks (issue 10): tiny copies of each published layout built
here from generated clips; readers, prompts, the answer extractor, scoring, the summary, resume, shards, the
report and its plot — the whole path is real, only `--model tiny`'s answers are meaningless."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from media_factory import make_clip
from seats_cli import benchmarks as bm
from seats_cli.benchmarks.base import build_prompt, extract_letter, gold_letter, parse_options
from seats_cli.cli import app

UNLOADABLE = "Qwen/Qwen2.5-Omni-7B"  # not cached and HF_HUB_OFFLINE=1: loading it would fail


def run(*args):
    return CliRunner().invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=1.0)


def _parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _place(clip: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(clip, dest)


def build(name: str, root: Path, clip: Path) -> Path:
    """A tiny copy of benchmark ``name`` in its published layout: 2 videos, 3 questions."""
    root.mkdir(parents=True, exist_ok=True)
    if name == "videomme":
        rows = [{"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "History",
                 "url": "u", "videoID": vid, "question_id": qid, "task_type": task, "question": q,
                 "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The same."], "answer": ans}
                for vid, qid, task, q, ans in (("v1", "001-1", "Counting Problem", "How many?", "C"),
                                               ("v1", "001-2", "OCR Problems", "What text?", "A"),
                                               ("v2", "002-1", "Counting Problem", "Which?", "B"))]
        _parquet(root / "videomme" / "test-00000-of-00001.parquet", rows)
        for v in ("v1", "v2"):
            _place(clip, root / "data" / f"{v}.mp4")
    elif name == "worldsense":
        rows = [{"index": i, "video": vid, "video_path": f"./videos/{vid}.mp4", "question": f"Q{i}?",
                 "candidates": ["A. yes", "B. no", "C. maybe", "D. never"], "answer": ans, "duration": "<1min",
                 "domain": "Sports", "task_domain": "Recognition", "task_type": task, "audio_class": "['Speech']"}
                for i, (vid, ans, task) in enumerate((("w1", "A", "Counting"), ("w1", "D", "Emotion"),
                                                      ("w2", "B", "Counting")))]
        _parquet(root / "data" / "test-00000-of-00001.parquet", rows)
        for v in ("w1", "w2"):
            _place(clip, root / "videos" / f"{v}.mp4")
    elif name == "dailyomni":  # the release's qa.json: no question ids, Videos/<id>/<id>_video.mp4
        rows = [{"video_id": vid, "Question": q, "Choice": ["A. a dog", "B. a cat", "C. a bird", "D. a fish"],
                 "Answer": ans, "Type": t, "video_category": "pets", "video_duration": "30s"}
                for vid, q, ans, t in (("d1", "What barks?", "A", "Inference"), ("d1", "What meows?", "B",
                                                                                 "Reasoning"),
                                       ("d2", "What swims?", "D", "Inference"))]
        (root / "qa.json").write_text(json.dumps(rows))
        for v in ("d1", "d2"):
            _place(clip, root / "Videos" / v / f"{v}_video.mp4")
    elif name == "omnivideobench":  # the GitHub data.json: nested per video, "A.Northwest" options
        data = [{"video": "video_1", "video_type": "Vlog", "duration": "03:28", "questions": [
            {"question": "Which direction?", "question_type": "spatial", "audio_type": "Speech",
             "answer": "Northeast", "options": ["A.Northwest", "B.Southwest", "C.Southeast", "D.Northeast"],
             "correct_option": "D"},
            {"question": "Who speaks?", "question_type": "attribute", "audio_type": "Speech", "answer": "a girl",
             "options": ["A.a girl", "B.a boy", "C.nobody", "D.a dog"], "correct_option": "A"}]},
                {"video": "video_2", "video_type": "News", "duration": "01:00", "questions": [
                    {"question": "What colour?", "question_type": "attribute", "audio_type": "Music",
                     "answer": "red", "options": ["A.blue", "B.red", "C.green", "D.black"], "correct_option": "B"}]}]
        (root / "data.json").write_text(json.dumps(data))
        for v in ("video_1", "video_2"):
            _place(clip, root / "videos" / f"{v}.mp4")
    elif name == "lvomnibench":  # the xxayt parquet: question_id, stringified options, answer letter
        rows = [{"question_id": qid, "video_id": vid, "question": q, "options": "['A. one' 'B. two' 'C. three' 'D. four']",
                 "answer": ans, "question_type": t, "audio_type": "Speech", "difficulty": "easy",
                 "video_category": "Film", "duration": "10:00"}
                for qid, vid, q, ans, t in ((1, "video_0", "How many?", "B", "count"),
                                            (2, "video_0", "Which?", "C", "temporal"),
                                            (3, "video_1", "When?", "A", "temporal"))]
        _parquet(root / "data" / "test.parquet", rows)
        for v in ("video_0", "video_1"):
            _place(clip, root / "videos" / f"{v}.mp4")
    elif name == "custom":
        rows = [{"id": "c1", "video": "clips/a.mp4", "question": "What moves?", "options": ["a square", "a circle"],
                 "answer": "A", "category": "motion"},
                {"id": "c2", "video": "clips/a.mp4", "question": "What sound?", "options": ["a tone", "silence"],
                 "answer": "a tone", "category": "sound"},
                {"id": "c3", "video": "clips/b.mp4", "question": "How long?", "options": ["1 s", "2 s", "3 s"],
                 "answer": 0}]
        (root / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        for v in ("a", "b"):
            _place(clip, root / "clips" / f"{v}.mp4")
    return root


EXPECTED = {  # (ids, gold letters, categories, video file names)
    "videomme": (["001-1", "001-2", "002-1"], "CAB", ["Counting Problem", "OCR Problems", "Counting Problem"],
                 ["v1.mp4", "v1.mp4", "v2.mp4"]),
    "worldsense": (["0", "1", "2"], "ADB", ["Counting", "Emotion", "Counting"], ["w1.mp4", "w1.mp4", "w2.mp4"]),
    "dailyomni": (["d1-0", "d1-1", "d2-0"], "ABD", ["Inference", "Reasoning", "Inference"],
                  ["d1_video.mp4", "d1_video.mp4", "d2_video.mp4"]),
    "omnivideobench": (["video_1-0", "video_1-1", "video_2-0"], "DAB", ["spatial", "attribute", "attribute"],
                       ["video_1.mp4", "video_1.mp4", "video_2.mp4"]),
    "lvomnibench": (["1", "2", "3"], "BCA", ["count", "temporal", "temporal"],
                    ["video_0.mp4", "video_0.mp4", "video_1.mp4"]),
    "custom": (["c1", "c2", "c3"], "AAA", ["motion", "sound", None], ["a.mp4", "a.mp4", "b.mp4"]),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_readers_read_the_published_layouts(tmp_path, clip, name):
    root = build(name, tmp_path / name, clip)
    qs = bm.read(name, root)
    ids, gold, cats, videos = EXPECTED[name]
    assert [q.id for q in qs] == ids
    assert "".join(q.answer for q in qs) == gold
    assert [q.category for q in qs] == cats
    assert [q.video.name for q in qs] == videos and all(q.video.is_file() for q in qs)
    assert all(len(q.options) >= 2 and not q.options[0][:2] in ("A.", "A)") for q in qs)
    assert bm.missing_videos(qs) == []


def test_prompts_follow_each_benchmark_template(tmp_path, clip):
    q = bm.read("omnivideobench", build("omnivideobench", tmp_path / "o", clip))[0]
    p = bm.SPECS["omnivideobench"].prompt(q)
    assert "Question:\nWhich direction?\n\nOptions:\nA. Northwest\nB. Southwest\nC. Southeast\nD. Northeast\n\n" in p
    assert p.startswith("You are given a video.")
    v = bm.read("videomme", build("videomme", tmp_path / "v", clip))[0]
    assert bm.SPECS["videomme"].prompt(v).endswith("How many?\nA. Apples.\nB. Candles.\nC. Berries.\nD. The same.\n"
                                                   "\nAnswer with the option's letter from the given choices directly.")
    assert build_prompt(v, "{question} | {options}") == "How many? | A. Apples.\nB. Candles.\nC. Berries.\nD. The same."
    # the paper's settings: frames, answer length, system prompt
    assert [bm.SPECS[n].max_frames for n in ("worldsense", "dailyomni", "omnivideobench", "videomme",
                                             "lvomnibench")] == [128, 128, 256, 768, 768]
    assert bm.SPECS["videomme"].system_prompt("You are Qwen.") == ""
    assert bm.SPECS["worldsense"].system_prompt("You are Qwen.").startswith("You are Qwen. Please analyze")


@pytest.mark.parametrize("text, want", [
    ("B", "B"), ("B.", "B"), ("(C) two dogs", "C"), ("The answer is D.", "D"), ("Answer: (b)", "B"),
    ("D) never", "D"), ("I think it is C", "C"), ("two dogs", "C"), ("It shows a blue cube.", "B"),
    ("A man holds a red ball", "A"),  # not the letter A: the text of option A
    ("E", None), ("", None), ("B or C", None), ("none of them", None), ("A", "A"),
])
def test_one_deterministic_extractor(text, want):
    assert extract_letter(text, ("a red ball", "a blue cube", "two dogs", "never")) == want


def test_gold_answers_and_options_in_every_published_form():
    opts = ("one", "two", "three")
    assert [gold_letter(x, opts) for x in ("B", "(B)", "b.", 1, "two", "B. two")] == ["B"] * 6
    with pytest.raises(bm.BenchmarkError):
        gold_letter("E", opts)
    assert parse_options("['A. x' 'B. y z']") == ["x", "y z"]
    assert parse_options("A. x B. y C. z") == ["x", "y", "z"]
    assert parse_options(["A.Northwest", "B.South"]) == ["Northwest", "South"]


def test_missing_videos_are_listed_before_any_model_loads(tmp_path, clip):
    root = build("videomme", tmp_path / "v", clip)
    (root / "data" / "v2.mp4").unlink()
    res = run("eval", "--benchmark", "videomme", "--data-dir", root, "--model", UNLOADABLE)
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [f"error: 1 video(s) missing under {root} ({root / 'data' / 'v2.mp4'})"]


def test_bad_folders_are_one_line_errors(tmp_path):
    res = run("eval", "--benchmark", "lvomnibench", "--data-dir", tmp_path, "--model", UNLOADABLE)
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {tmp_path}: no annotation file")
    res = run("eval", "--benchmark", "nope", "--data-dir", tmp_path)
    assert res.exit_code == 2 and "is not one of: synthetic, worldsense" in res.stderr
    res = run("eval", "--benchmark", "custom")
    assert res.exit_code == 2 and "needs --data-dir" in res.stderr


TINY = ("--model", "tiny", "--device", "cpu", "--max-frames", "4", "--max-new-tokens", "2", "--quiet")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_eval_end_to_end_with_report_and_plot(tmp_path, clip, monkeypatch):
    from seats_cli.api import Seats

    from seats_cli.prefetch import Prefetcher

    prefetched, taken, prefetch, take = [], [], Seats.prefetch, Prefetcher.take

    def spy(self, video, **kw):
        prefetched.append(Path(video).name)
        return prefetch(self, video, **kw)

    def spy_take(self, key):
        pending = take(self, key)
        taken.append((Path(key[0]).name, pending is not None))
        return pending

    monkeypatch.setattr(Seats, "prefetch", spy)
    monkeypatch.setattr(Prefetcher, "take", spy_take)
    root = build("videomme", tmp_path / "v", clip)
    out = tmp_path / "r.jsonl"
    res = run("eval", "--benchmark", "videomme", "--data-dir", root, *TINY, "--method", "seats",
              "--method", "fastv", "--trr", "0.35", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert prefetched == ["v2.mp4"] and ("v2.mp4", True) in taken  # decoded while v1's questions ran, then used
    rows = _rows(out)
    assert len(rows) == 3 * 3  # questions x (full, seats@0.35, fastv@0.35)
    assert [(r["id"], r["method"], r["trr"]) for r in rows[:3]] == [("001-1", "full", None), ("001-1", "seats", 0.35),
                                                                    ("001-1", "fastv", 0.35)]
    r = rows[1]
    assert r["settings"]["max_frames"] == 4 and r["settings"]["system_prompt"] == ""
    assert r["settings"]["template"].startswith("Select the best answer")
    assert r["record"]["method"] == "seats" and r["gold"] == "C" and r["video"] == "data/v1.mp4"
    assert r["correct"] == (r["letter"] == "C") and r["unparsable"] == (r["letter"] is None)
    # the second question about v1 decoded nothing and ran no encoder again
    second = [x for x in rows if x["id"] == "001-2"]
    assert all(x["record"]["reused"]["decode"] and x["record"]["reused"]["encoders"] for x in second)
    summary = json.loads(res.stdout)
    by = {s["label"]: s for s in summary["runs"]}
    assert set(by) == {"full", "seats@0.35", "fastv@0.35"} and summary["questions"] == 3
    assert by["full"]["relative_to_full"] in (1.0, None) and by["full"]["flops_reduction"] == 1.0
    acc = sum(x["correct"] for x in rows if x["method"] == "seats") / 3
    assert by["seats@0.35"]["accuracy"] == pytest.approx(acc)
    assert set(by["seats@0.35"]["per_category"]) == {"Counting Problem", "OCR Problems"}
    # the report rebuilds the same summary and draws the plot
    png = tmp_path / "acc.png"
    rep = run("eval", "report", out, "--json", "--plot", png)
    assert rep.exit_code == 0, rep.output
    assert json.loads(rep.stdout)["runs"] == summary["runs"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_and_shards_lose_and_repeat_nothing(tmp_path, clip):
    root = build("custom", tmp_path / "c", clip)
    args = ("eval", "--benchmark", "custom", "--data-dir", root, *TINY, "--method", "random", "--trr", "0.2")
    whole = tmp_path / "whole.jsonl"
    assert run(*args, "--out", whole).exit_code == 0
    want = {(r["id"], r["method"], r["trr"]) for r in _rows(whole)}
    assert len(want) == 3 * 2
    # a crash: two rows done, a torn third line
    part = tmp_path / "part.jsonl"
    lines = whole.read_text().splitlines()
    part.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:25])
    res = run(*args, "--out", part, "--resume")
    assert res.exit_code == 0, res.output
    got = [(r["id"], r["method"], r["trr"]) for r in _rows(part)]
    assert sorted(got) == sorted(want) and len(got) == len(set(got))
    # shards: disjoint, and the report merges them into the whole
    s0, s1 = tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"
    assert run(*args, "--shard", "0/2", "--out", s0).exit_code == 0
    assert run(*args, "--shard", "1/2", "--out", s1).exit_code == 0
    ids0, ids1 = {r["id"] for r in _rows(s0)}, {r["id"] for r in _rows(s1)}
    assert ids0 == {"c1", "c3"} and ids1 == {"c2"}
    merged = json.loads(run("eval", "report", s0, s1, "--json").stdout)
    single = json.loads(run("eval", "report", whole, "--json").stdout)
    assert [(s["label"], s["n"]) for s in merged["runs"]] == [(s["label"], s["n"]) for s in single["runs"]]
    # the tiny model answers deterministically: the merged shards score as the whole run
    assert [s["accuracy"] for s in merged["runs"]] == [s["accuracy"] for s in single["runs"]]
    assert run(*args, "--shard", "2/2").exit_code == 2


def test_a_bad_video_is_an_error_row_not_a_lost_one(tmp_path, clip):
    root = build("custom", tmp_path / "c", clip)
    (root / "clips" / "b.mp4").write_bytes(b"not a video")
    out = tmp_path / "r.jsonl"
    res = run("eval", "--benchmark", "custom", "--data-dir", root, *TINY, "--method", "seats", "--trr", "0.35",
              "--out", out)
    assert res.exit_code == 1, res.output  # as seats batch: every row written, the status says some failed
    assert res.stderr.strip() == 'error: 2 of 6 rows failed (see their "error" field)'
    rows = _rows(out)
    assert len(rows) == 3 * 2
    bad = [r for r in rows if r["id"] == "c3"]
    assert len(bad) == 2 and all("error" in r for r in bad)
    summary = json.loads(run("eval", "report", out, "--json").stdout)
    assert {s["label"]: s["errors"] for s in summary["runs"]} == {"full": 1, "seats@0.35": 1}


def test_synthetic_benchmark_through_the_group_command():
    res = run("eval", "--benchmark", "synthetic", "--n", "1", "--methods", "seats", "--trr", "0.35", "--media-cuts",
              "", "--device", "cpu", "--json", "--quiet")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # the shape of `seats eval report --json`, plus the synthetic settings
    assert [(s["label"], s["n"], s["errors"]) for s in summary["runs"]] == [("full", 4, 0), ("seats@0.35", 4, 0)]
    assert summary["benchmarks"] == ["synthetic"] and summary["questions"] == 4
    assert sorted(summary["runs"][0]["per_category"]) == ["colour", "colour_while_tone", "tone", "tone_while_square"]
    assert summary["runs"][0]["flops_reduction"] == 1.0 and summary["runs"][1]["flops_reduction"] > 1.0
    assert summary["runs"][1]["prefill_ms"] > 0
    assert summary["settings"] == {"benchmark": "synthetic", "model": "synthetic", "config": "synthetic",
                                   "bench_seed": 1000000, "n_per_kind": 1, "seed": 0}
    assert run("eval", "--benchmark", "synthetic", "--shard", "0/2").exit_code == 2


def test_eval_seeds_are_named_as_in_the_other_commands():
    """``--seed`` seeds the methods' random choices as in ask/batch/profile; ``--bench-seed`` picks the synthetic
    questions as in analyze/calibrate (a training seed is refused before any model loads)."""
    res = run("eval", "--benchmark", "synthetic", "--bench-seed", "5", "--model", UNLOADABLE)
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: --bench-seed 5 is a training seed; held-out seeds start at 1000000"
    res = run("eval", "--benchmark", "synthetic", "--run-seed", "1")
    assert res.exit_code == 2 and "No such option: --run-seed" in res.output


def test_report_reads_the_synthetic_benchmarks_rows(tmp_path):
    """`seats eval --benchmark synthetic --out F` writes rows keyed by item and kind; `seats eval report F` reads
    them as it reads a real benchmark's rows."""
    rows = [{"item": "tone-1000000", "kind": "tone", "gold": "B", "method": "full", "trr": None, "letter": "B",
             "correct": True, "flops_reduction": 1.0, "achieved_trr": None, "answer": "B"},
            {"item": "tone-1000000", "kind": "tone", "gold": "B", "method": "seats", "trr": 0.35, "letter": "C",
             "correct": False, "flops_reduction": 1.5, "achieved_trr": 0.59, "answer": "C"},
            {"item": "colour-1000000", "kind": "colour", "gold": "A", "method": "seats", "trr": 0.35, "letter": "A",
             "correct": True, "flops_reduction": 2.5, "achieved_trr": 0.61, "answer": "A"}]
    f = tmp_path / "ev.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run("eval", "report", f, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["questions"] == 2 and d["benchmarks"] == ["synthetic"]
    seats = next(r for r in d["runs"] if r["method"] == "seats")
    assert (seats["n"], seats["accuracy"], seats["per_category"]) == (2, 0.5, {"colour": 1.0, "tone": 0.0})
    assert seats["flops_reduction"] == 2.0 and seats["achieved_trr"] == pytest.approx(0.6)
    assert seats["relative_to_full"] == 0.0  # on the one question full answered


def test_resume_continues_a_file_only_with_the_settings_that_made_it(tmp_path, clip):
    root = build("custom", tmp_path / "c", clip)
    out = tmp_path / "r.jsonl"
    args = ("eval", "--benchmark", "custom", "--data-dir", root, "--method", "random", "--trr", "0.2")
    assert run(*args, *TINY, "--out", out).exit_code == 0
    before = out.read_text()
    other = [x if x != "2" else "3" for x in TINY]  # --max-new-tokens 3 instead of 2
    res = run(*args, *other, "--out", out, "--resume")
    assert res.exit_code == 2 and out.read_text() == before
    assert res.stderr.strip() == (f"error: --resume: {out} was written with other settings (max_new_tokens: 2 (file) "
                                  "vs 3 (now)); continue it with those, or give another --out")
    assert run(*args, *TINY, "--out", out, "--resume").exit_code == 0  # the same settings: nothing left to run


def test_report_keeps_benchmarks_apart_when_their_ids_meet(tmp_path):
    def row(bench, qid, method, correct):
        return {"benchmark": bench, "id": qid, "method": method, "trr": None if method == "full" else 0.35,
                "correct": correct, "record": {"flops": {"reduction": 1.0}, "latency_ms": {"prefill": 1.0}}}

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in [row("custom", "q1", "full", True),
                                                         row("custom", "q1", "seats", True)]))
    b.write_text("".join(json.dumps(r) + "\n" for r in [row("videomme", "q1", "full", False),
                                                         row("videomme", "q1", "seats", False)]))
    d = json.loads(run("eval", "report", a, b, "--json").stdout)
    assert d["questions"] == 2 and d["benchmarks"] == ["custom", "videomme"]
    full = next(r for r in d["runs"] if r["method"] == "full")
    assert (full["n"], full["accuracy"]) == (2, 0.5)


@pytest.mark.parametrize("args, line", [
    (["--fps", "1"], "error: --fps is for the real benchmarks, not --benchmark synthetic"),
    (["--ratio-mode", "exact"], "error: --ratio-mode is for the real benchmarks, not --benchmark synthetic"),
    (["--no-audio"], "error: --no-audio is for the real benchmarks, not --benchmark synthetic"),
    (["--media-cuts", "x"], "error: --media-cuts must be comma-separated layer numbers, got 'x'"),
])
def test_synthetic_eval_refuses_what_it_would_ignore(args, line):
    res = run("eval", "--benchmark", "synthetic", "--model", UNLOADABLE, *args)
    assert res.exit_code == 2 and res.stderr.strip() == line


@pytest.mark.parametrize("flag, line", [("--fps", "error: --fps must be a finite number > 0 (got 0.0)"),
                                        ("--max-new-tokens", "error: --max-new-tokens 0 must be a whole number >= 1"),
                                        ("--max-frames", "error: --max-frames must be at least 4 (got 0)")])
def test_a_zero_is_refused_not_replaced_by_the_default(tmp_path, clip, flag, line):
    root = build("custom", tmp_path / "c", clip)
    res = run("eval", "--benchmark", "custom", "--data-dir", root, "--model", UNLOADABLE, flag, "0")
    assert res.exit_code == 2 and res.stderr.strip() == line


def test_output_paths_are_checked_before_any_work(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text("")
    res = run("eval", "report", f, "--plot", tmp_path / "no" / "p.png")
    assert res.exit_code == 2 and res.stderr.strip() == f"error: --plot {tmp_path}/no/p.png: no such folder {tmp_path}/no"
    res = run("eval", "report", tmp_path)
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {tmp_path} is a folder, not a results file"
    res = run("eval", "export-lmms", "--benchmark", "custom", "--data-dir", tmp_path, "--out", f)
    assert res.exit_code == 2 and res.stderr.strip() == f"error: --out {f} is a file; the task is written into a folder"


@pytest.mark.parametrize("row, why", [
    ({"options": [f"o{i}" for i in range(30)], "answer": "A"}, "options must be a list of 2 to 26 texts (letters A-Z)"),
    ({"options": ["yes", "yes"], "answer": "yes"}, "two options have the same text, so an answer could not tell them "
                                                  "apart"),
    ({"question": " ", "options": ["a", "b"], "answer": "A"}, "the question is empty"),
    ({"options": ["a", ""], "answer": "A"}, "an option is empty"),
    ({"id": None, "options": ["a", "b"], "answer": "A"}, "id must be a non-empty text or a whole number, got None"),
    ({"id": True, "options": ["a", "b"], "answer": "A"}, "id must be a non-empty text or a whole number, got True"),
    ({"video": None, "options": ["a", "b"], "answer": "A"}, "video must be a file name (relative to {dir}), got None"),
])
def test_custom_rows_a_prompt_cannot_represent_are_refused(tmp_path, row, why):
    base = {"id": "x", "video": "a.mp4", "question": "What?"}
    (tmp_path / "questions.jsonl").write_text(json.dumps(base | row) + "\n")
    with pytest.raises(bm.BenchmarkError) as e:
        bm.read("custom", tmp_path)
    assert str(e.value) == f"{tmp_path / 'questions.jsonl'}:1: {why.format(dir=tmp_path)}"


def test_limit_template_and_system_prompt_reach_every_row(tmp_path, clip, monkeypatch):
    """--limit N runs the first N questions; --template and --system-prompt are what the model is asked with, and
    every row's settings say so."""
    from seats_cli.api import Seats

    asked, ask = [], Seats.ask

    def spy(self, video, question, **kw):
        asked.append((question, kw.get("system_prompt")))
        return ask(self, video, question, **kw)

    monkeypatch.setattr(Seats, "ask", spy)
    root = build("videomme", tmp_path / "v", clip)
    out = tmp_path / "r.jsonl"
    res = run("eval", "--benchmark", "videomme", "--data-dir", root, *TINY, "--method", "seats", "--trr", "0.35",
              "--limit", "1", "--template", "Q: {question}\nChoices: {options}\nLetter:", "--system-prompt",
              "Answer tersely.", "--out", out)
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert [(r["id"], r["method"]) for r in rows] == [("001-1", "full"), ("001-1", "seats")]
    for r in rows:
        assert r["settings"]["template"] == "Q: {question}\nChoices: {options}\nLetter:"
        assert r["settings"]["system_prompt"] == "Answer tersely."
    options = "A. Apples.\nB. Candles.\nC. Berries.\nD. The same."
    assert asked == [(f"Q: How many?\nChoices: {options}\nLetter:", "Answer tersely.")] * 2


def test_out_may_not_be_the_benchmarks_own_questions(tmp_path, clip):
    root = build("custom", tmp_path / "c", clip)
    before = (root / "questions.jsonl").read_text()
    res = run("eval", "--benchmark", "custom", "--data-dir", root, *TINY, "--out", root / "questions.jsonl")
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"error: --out {root / 'questions.jsonl'} is the benchmark's own annotation file: "
                                  f"the results would overwrite the questions")
    assert (root / "questions.jsonl").read_text() == before


def test_synthetic_out_is_checked_before_the_model_loads(tmp_path, monkeypatch):
    import seats_cli.api

    def load(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(seats_cli.api, "Seats", load)
    res = run("eval", "--n", "1", "--trr", "0.35", "--methods", "seats", "--media-cuts", "", "--out",
              tmp_path / "no" / "e.jsonl")
    assert res.exit_code == 2 and res.stderr.strip() == f"error: --out {tmp_path}/no/e.jsonl: no such folder {tmp_path}/no"


def test_report_refuses_rows_that_are_not_eval_results(tmp_path, clip):
    """A `seats batch` output (an easy mistake) or a hand-edited line: exit 2 naming the line and what is wrong
    (it printed `error: 'correct'`, exit 1); an id holding U+2028 stays one row."""
    def report(*rows):
        path = tmp_path / "r.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return run("eval", "report", path, "--json")

    res = report({"id": "a", "method": "seats", "answer": "x"})
    assert res.exit_code == 2 and res.stderr.strip() == \
        f"error: {tmp_path / 'r.jsonl'}:1: not a `seats eval` results row (no correct: true/false)"
    res = report({"id": "a", "method": ["full"], "error": "x"})
    assert res.exit_code == 2 and "(method ['full'] is not a name)" in res.stderr
    res = report({"id": "a", "method": "seats", "trr": "0.35", "error": "x"})
    assert res.exit_code == 2 and "(trr '0.35' is not a number)" in res.stderr
    ok = {"method": "full", "trr": None, "correct": True,
          "record": {"flops": {"reduction": 1.0}, "latency_ms": {"prefill": 5.0}}}
    res = report({"id": "a\u2028b", **ok}, {"id": "c", **ok})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["questions"] == 2
    (tmp_path / "bad.jsonl").write_bytes(b'{"id": "\xff"}\n')
    res = run("eval", "report", tmp_path / "bad.jsonl")
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {tmp_path / 'bad.jsonl'}: not UTF-8 text (byte 8)"


def test_summary_orders_layer_numbers_as_numbers():
    from seats_cli.evaluate import benchmark_summary

    ok = {"correct": True, "record": {"flops": {"reduction": 1.0}, "latency_ms": {"prefill": 1.0}}}
    rows = [{"id": "q", "method": m, "trr": None, **ok} for m in ("media-cut:23", "media-cut:8", "seats", "full",
                                                                   "media-cut:16")]
    assert [s["method"] for s in benchmark_summary(rows)["runs"]] == ["full", "media-cut:8", "media-cut:16",
                                                                      "media-cut:23", "seats"]


def test_resume_keeps_one_row_per_key_and_report_checks_the_record(tmp_path, clip):
    """eval --resume retries the error rows and then removes their old lines (one row per question, method and
    TRR); a row whose record lacks its figures is refused by name (it printed `error: 'flops'`, exit 1)."""
    root = build("custom", tmp_path / "c", clip)
    good = (root / "clips" / "b.mp4").read_bytes()
    (root / "clips" / "b.mp4").write_bytes(b"not a video")
    out = tmp_path / "r.jsonl"
    args = ("eval", "--benchmark", "custom", "--data-dir", root, *TINY, "--method", "random", "--trr", "0.2",
            "--out", out)
    assert run(*args).exit_code == 1
    (root / "clips" / "b.mp4").write_bytes(good)
    res = run(*args, "--resume")
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    keys = [(r["id"], r["method"], r["trr"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6 and not any("error" in r for r in rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "method": "full", "trr": None, "correct": True, "record": {}}) + "\n")
    res = run("eval", "report", bad)
    assert res.exit_code == 2 and res.stderr.strip().endswith("(no record.flops.reduction)")
