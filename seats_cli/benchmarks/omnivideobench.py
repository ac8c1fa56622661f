"""OmniVideoBench (NJU-LINK/OmniVideoBench): ``data.parquet`` (flat rows) or ``data.json`` (per video:
{video, video_type, duration, questions: [...]}); fields question, question_type, audio_type, options
["A.Northwest", ...], correct_option "D" (``answer`` is the option's text); videos ``videos/`` (the ``video``
field with or without its extension). Categories: question_type."""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkSpec, QuestionIds, first_video, load_rows, make_question, need

SPEC = BenchmarkSpec(
    "omnivideobench", max_frames=256, max_new_tokens=32, system="",
    template=("You are given a video. Based on the content of the video, answer the following question:\n\n"
              "Question:\n{question}\n\nOptions:\n{options}\n\nAnswer with the option's letter directly(e.g., A, B, "
              "C, or D).If your access to the video content is limited, at least one option that is more likely "
              "than the others must be chosen.Mustn't give any other reason for can not choose!"))


def _flatten(rows):
    for r in rows:
        if isinstance(r.get("questions"), list):  # data.json: one entry per video
            for q in r["questions"]:
                yield {k: v for k, v in r.items() if k != "questions"} | q
        else:
            yield r


def read(folder: Path):
    rows, path = load_rows(folder, ("data.parquet", "*.parquet", "data.json", "*.json", "*.jsonl"))
    ids = QuestionIds()
    out = []
    for i, r in enumerate(_flatten(rows)):
        where = f"{path.name} question {i}"
        vid = str(need(r, "video", where))
        qid = ids(r.get("question_id"), Path(vid).stem)
        video = first_video(folder, [vid, f"videos/{vid}", f"videos/{vid}.mp4", f"{vid}.mp4"])
        out.append(make_question(qid, video, need(r, "question", where), need(r, "options", where),
                                 need(r, ("correct_option", "answer"), where), r.get("question_type"),
                                 {k: r.get(k) for k in ("video_type", "audio_type", "duration") if k in r}, where))
    return out
