"""Accuracy of `full`, SEATS and the baselines on a benchmark, one JSON row per (question, method, TRR).

Today: the synthetic benchmark (``seats_cli.synthetic``). Every row is the `ask --json` record of that run plus
the benchmark's fields (``item``, ``kind``, ``gold``, ``letter``, ``correct``); a failing run becomes a row with
``error`` (no row is lost). ``summarize`` turns rows into accuracy per (method, TRR) and kind.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from seats_cli.synthetic import HELD_OUT_SEED, KINDS, Item, items, media_of, parse_letter, write_clip

TRRS = (0.35, 0.25, 0.15, 0.10, 0.05)
BASELINES = ("random", "divprune", "fastv", "fastv-om", "dycoke", "visionzip", "visionzip-om", "omnizip",
             "fastvid")
MEDIA_CUTS = (0, 8, 16, 20, 23)


@dataclass(frozen=True)
class Run:
    method: str
    trr: float | None

    @property
    def label(self) -> str:
        return self.method if self.trr is None else f"{self.method}@{self.trr:g}"


def default_runs(methods: Iterable[str] = ("seats", *BASELINES), trrs: Iterable[float] = TRRS,
                 media_cuts: Iterable[int] = MEDIA_CUTS) -> list[Run]:
    runs = [Run("full", None)]
    runs += [Run(m, t) for m in methods for t in trrs]
    runs += [Run(f"media-cut:{layer}", None) for layer in media_cuts]
    return runs


def synthetic_items(seed: int = HELD_OUT_SEED, n: int = 48, kinds=KINDS) -> list[Item]:
    if seed < HELD_OUT_SEED:
        raise ValueError(f"--seed {seed} is a training seed; held-out seeds start at {HELD_OUT_SEED}")
    return items(seed, n, kinds)


def write_benchmark(items_: list[Item], folder: str | Path) -> Path:
    """Each item's clip as an .mp4 plus ``questions.jsonl`` (rows `seats batch` reads, with the gold answer)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "questions.jsonl", "w", encoding="utf-8") as f:
        for it in items_:
            write_clip(it, folder / f"{it.id}.mp4")
            f.write(json.dumps({"id": it.id, "video": f"{it.id}.mp4", "question": it.question, "answer": it.answer,
                                "kind": it.kind}) + "\n")
    return folder / "questions.jsonl"


def evaluate(seats, items_: list[Item], runs: list[Run], *, seed: int = 0,
             on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Ask every item under every run (each item's clip is prepared and encoded once)."""
    rows = []
    for it in items_:
        media = media_of(it)
        for run in runs:
            base = {"item": it.id, "kind": it.kind, "gold": it.answer, "method": run.method, "trr": run.trr}
            try:
                r = seats.ask(media, it.question, method=run.method, trr=run.trr, seed=seed, max_new_tokens=1)
                letter = parse_letter(r.answer)
                row = base | {"letter": letter, "correct": letter == it.answer,
                              "flops_reduction": r.flops["reduction"],
                              "achieved_trr": (r.schedule or {}).get("achieved_trr"), "answer": r.answer}
            except Exception as e:  # noqa: BLE001 - a failing run is a row, never lost
                row = base | {"error": str(e) or type(e).__name__, "correct": False}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    """{run label: {kind: accuracy, "all": accuracy, "n": questions, "flops_reduction": mean}}."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    red: dict = defaultdict(list)
    for r in rows:
        label = Run(r["method"], r["trr"]).label
        acc[label][r["kind"]].append(bool(r.get("correct")))
        acc[label]["all"].append(bool(r.get("correct")))
        if r.get("flops_reduction"):
            red[label].append(r["flops_reduction"])
    out = {}
    for label, kinds in acc.items():
        out[label] = {k: sum(v) / len(v) for k, v in kinds.items()}
        out[label]["n"] = len(kinds["all"])
        out[label]["flops_reduction"] = sum(red[label]) / len(red[label]) if red[label] else None
    return out
