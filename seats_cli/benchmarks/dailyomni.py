"""Daily-Omni: ``qa.json`` (the release: video_id, Question, Choice ["A. ...", ...], Answer "A", Type,
video_category, video_duration) or the parquet under ``data/`` (adds question_id; Choice may be numpy's
``"['A. x' 'B. y']"``); videos ``videos/<id>/<id>_video.mp4`` (or ``Videos/...``). Categories: Type."""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkSpec, QuestionIds, first_video, load_rows, make_question, need

SPEC = BenchmarkSpec(
    "dailyomni", max_frames=128, max_new_tokens=32,
    system="{default} Please analyze the video carefully and select the most appropriate answer from the given options.",
    template=("Your task is to accurately answer multiple-choice questions based on the given video.\n"
              "Select the single most accurate answer from the given choices.\nQuestion: {question}\n"
              "Choices: {options}\nYour answer should be a capital letter representing your choice: A, B, C, or D. "
              "Don't generate any other text.\n"))


def read(folder: Path):
    rows, path = load_rows(folder, ("qa.json", "data/*.parquet", "*.parquet", "*.jsonl"))
    ids = QuestionIds()
    out = []
    for i, r in enumerate(rows):
        where = f"{path.name} row {i}"
        vid = str(need(r, "video_id", where))
        qid = ids(r.get("question_id"), vid)
        video = first_video(folder, [f"videos/{vid}/{vid}_video.mp4", f"Videos/{vid}/{vid}_video.mp4",
                                     f"videos/{vid}.mp4"])
        out.append(make_question(qid, video, need(r, ("Question", "question"), where),
                                 need(r, ("Choice", "choices", "options"), where), need(r, ("Answer", "answer"), where),
                                 r.get("Type", r.get("type")),
                                 {k: r.get(k) for k in ("video_category", "video_duration") if k in r}, where))
    return out
