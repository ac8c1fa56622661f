"""WorldSense (lmms-lab/WorldSense): a parquet under ``data/`` (fields index, video, video_path, question,
candidates ["A. ...", ...], answer "B", duration, domain, sub_category, audio_class, task_domain, task_type), videos
``videos/<video>.mp4`` (``video_path``). Categories: task_type."""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkSpec, first_video, load_rows, make_question, need

SPEC = BenchmarkSpec(
    "worldsense", max_frames=128, max_new_tokens=1024,
    system="{default} Please analyze the video carefully and select the most appropriate answer from the given options.",
    template="{question}\nOptions:\n{options}\nAnswer with the option's letter from the given choices directly.")


def read(folder: Path):
    rows, path = load_rows(folder, ("data/*.parquet", "*.parquet", "*.jsonl", "*.json"))
    out = []
    for i, r in enumerate(rows):
        where = f"{path.name} row {i}"
        vid = str(r.get("video") or "")
        video = first_video(folder, [r.get("video_path"), f"videos/{vid}.mp4", f"videos/{vid}"])
        out.append(make_question(need(r, ("index", "question_id", "id"), where), video, need(r, "question", where),
                                 need(r, ("candidates", "options"), where), need(r, "answer", where),
                                 r.get("task_type"),
                                 {k: r.get(k) for k in ("duration", "domain", "task_domain", "audio_class") if k in r},
                                 where))
    return out
