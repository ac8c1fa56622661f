"""Video-MME (lmms-lab/Video-MME): ``videomme/test-00000-of-00001.parquet`` (fields video_id, duration, domain,
sub_category, url, videoID, question_id, task_type, question, options ["A. ...", ...], answer "C"), videos
``data/<videoID>.mp4`` (also .MP4 / .mkv). Categories: task_type."""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkSpec, first_video, load_rows, make_question, need

SPEC = BenchmarkSpec(
    "videomme", max_frames=768, max_new_tokens=16, system="",
    template=("Select the best answer to the following multiple-choice question based on the video and the subtitles. "
              "Respond with only the letter (A, B, C, or D) of the correct option.\n{question}\n{options}\n"
              "\nAnswer with the option's letter from the given choices directly."))


def read(folder: Path):
    rows, path = load_rows(folder, ("videomme/*.parquet", "*.parquet", "videomme/*.json*", "*.json*"))
    out = []
    for i, r in enumerate(rows):
        where = f"{path.name} row {i}"
        vid = str(need(r, ("videoID", "video_id"), where))
        video = first_video(folder, [f"data/{vid}.mp4", f"data/{vid}.MP4", f"data/{vid}.mkv", f"videos/{vid}.mp4"])
        out.append(make_question(need(r, ("question_id", "id"), where), video, need(r, "question", where),
                                 need(r, "options", where), need(r, "answer", where), r.get("task_type"),
                                 {k: r.get(k) for k in ("duration", "domain", "sub_category") if k in r}, where))
    return out
