"""LVOmniBench (KD-TAO/LVOmniBench; annotations also as xxayt/LVOmniBench): ``data.json`` (video_id,
question, options, correct_option, question_type, audio_type, difficulty, video_category) or a parquet under
``data/`` (question_id, ..., answer); videos ``videos/<video_id>.mp4``. Categories: question_type."""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkSpec, QuestionIds, first_video, load_rows, make_question, need

SPEC = BenchmarkSpec(
    "lvomnibench", max_frames=768, max_new_tokens=32, system="",
    template=("Question: {question}\nOptions: {options}\nSelect the best answer from the options above. Directly "
              "provide the letter representing your choice (A/B/C/D) and nothing else. Do not include the full "
              "text of the option; do not provide any explanation."))


def read(folder: Path):
    rows, path = load_rows(folder, ("data.json", "data/*.parquet", "*.parquet", "*.jsonl"))
    ids = QuestionIds()
    out = []
    for i, r in enumerate(rows):
        where = f"{path.name} row {i}"
        vid = str(need(r, "video_id", where))
        qid = ids(r.get("question_id"), vid)
        video = first_video(folder, [f"videos/{vid}.mp4", f"videos/{vid}"])
        out.append(make_question(qid, video, need(r, "question", where), need(r, "options", where),
                                 need(r, ("answer", "correct_option"), where), r.get("question_type"),
                                 {k: r.get(k) for k in ("audio_type", "difficulty", "video_category", "duration")
                                  if k in r}, where))
    return out
