"""`custom`: DIR/questions.jsonl, one row per question:
{"id", "video" (relative to DIR), "question", "options": ["...", ...], "answer": "B", "category"?}."""

from __future__ import annotations

import json
from pathlib import Path

from seats_cli.benchmarks.base import BenchmarkError, BenchmarkSpec, Question, gold_letter, record_read, strip_letter
from seats_cli import jsonl
from seats_cli.request import check_text

SPEC = BenchmarkSpec("custom", max_frames=128)


def read(folder: Path) -> list[Question]:
    path = folder / "questions.jsonl"
    if not path.is_file():
        raise BenchmarkError(f"{folder}: no questions.jsonl (custom benchmark rows: id, video, question, options, "
                             f"answer, category?)")
    out = []
    record_read(path)
    for n, line in enumerate(jsonl.lines(path.read_text(encoding="utf-8")), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise BenchmarkError(f"{path}:{n}: a row must be a JSON object")
        missing = [k for k in ("id", "video", "question", "options", "answer") if k not in row]
        if missing:
            raise BenchmarkError(f"{path}:{n}: missing {', '.join(missing)}")
        rid = row["id"]
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or (isinstance(rid, str) and not rid.strip()):
            raise BenchmarkError(f"{path}:{n}: id must be a non-empty text or a whole number, got {rid!r}")
        if not isinstance(row["video"], str) or not row["video"].strip():
            raise BenchmarkError(f"{path}:{n}: video must be a file name (relative to {folder}), got "
                                 f"{row['video']!r}")
        opts = row["options"]
        if not isinstance(opts, list) or not 2 <= len(opts) <= 26 or not all(isinstance(o, str) for o in opts):
            raise BenchmarkError(f"{path}:{n}: options must be a list of 2 to 26 texts (letters A-Z)")
        try:
            check_text(row["question"])  # the rule of every question (invisible characters only: empty)
        except ValueError as e:
            raise BenchmarkError(f"{path}:{n}: {e}") from None
        options = tuple(strip_letter(o) for o in opts)
        if not all(o.strip() for o in options):
            raise BenchmarkError(f"{path}:{n}: an option is empty")
        if len(set(options)) < len(options):
            raise BenchmarkError(f"{path}:{n}: two options have the same text, so an answer could not tell them "
                                 "apart")
        try:
            answer = gold_letter(row["answer"], options)
        except BenchmarkError as e:
            raise BenchmarkError(f"{path}:{n}: {e}") from None
        extra = {k: v for k, v in row.items() if k not in ("id", "video", "question", "options", "answer",
                                                            "category")}
        out.append(Question(str(row["id"]), folder / str(row["video"]), str(row["question"]), options, answer,
                            None if row.get("category") is None else str(row["category"]), extra))
    return out
