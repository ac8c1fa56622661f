"""Local copies of the paper's benchmarks (and `custom`), one small reader module each.

``read(name, folder)`` returns ``Question``s; ``SPECS[name]`` holds the paper's evaluation settings for it.
"""

from __future__ import annotations

from pathlib import Path

from seats_cli.benchmarks import custom, dailyomni, lvomnibench, omnivideobench, videomme, worldsense
from seats_cli.benchmarks.base import (BenchmarkError, BenchmarkSpec, Question, build_prompt, extract_letter,
                                       gold_letter, recording_reads)

_MODULES = {m.SPEC.name: m for m in (worldsense, dailyomni, omnivideobench, videomme, lvomnibench, custom)}
BENCHMARKS = tuple(_MODULES)
SPECS: dict[str, BenchmarkSpec] = {name: m.SPEC for name, m in _MODULES.items()}


def read(name: str, folder: str | Path, sources: list[Path] | None = None) -> list[Question]:
    """The questions of benchmark ``name`` from its local folder (the published layout), in file order;
    ``sources`` (a list) receives the annotation files read."""
    if name not in _MODULES:
        raise BenchmarkError(f"--benchmark {name!r} is not one of: {', '.join(BENCHMARKS + ('synthetic',))}")
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(f"--data-dir {folder}: no such folder")
    with recording_reads() as files:
        questions = _MODULES[name].read(folder)
    if sources is not None:
        sources.extend(files)
    if not questions:
        raise BenchmarkError(f"{folder}: no questions found for {name}")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise BenchmarkError(f"{folder}: duplicate question ids ({', '.join(dup)})")
    return questions


def missing_videos(questions: list[Question]) -> list[Path]:
    """Each missing video once, in question order."""
    seen, out = set(), []
    for q in questions:
        if q.video not in seen:
            seen.add(q.video)
            try:
                found = q.video.is_file()
            except OSError:  # a name too long, a folder the user may not enter: missing to this run
                found = False
            if not found:
                out.append(q.video)
    return out


__all__ = ["BENCHMARKS", "SPECS", "BenchmarkError", "BenchmarkSpec", "Question", "build_prompt", "extract_letter",
           "gold_letter", "missing_videos", "read"]
