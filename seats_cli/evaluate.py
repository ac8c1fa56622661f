"""Accuracy of `full`, SEATS and the baselines on a benchmark, one JSON row per (question, method, TRR).

Today: the synthetic benchmark (``seats_cli.synthetic``). Every row is the `ask --json` record of that run plus
the benchmark's fields (``item``, ``kind``, ``gold``, ``letter``, ``correct``); a failing run becomes a row with
``error`` (no row is lost). ``benchmark_summary`` (after ``from_synthetic``) turns rows into accuracy per
(method, TRR) and kind, as for a real benchmark's rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from seats_cli.synthetic import HELD_OUT_SEED, KINDS, Item, items, media_of, parse_letter, write_clip
from seats_cli import jsonl

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
        raise ValueError(f"--bench-seed {seed} is a training seed; held-out seeds start at {HELD_OUT_SEED}")
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
                              "achieved_trr": (r.schedule or {}).get("achieved_trr"),
                              "prefill_ms": r.latency_ms["prefill"], "answer": r.answer}
            except Exception as e:  # noqa: BLE001 - a failing run is a row, never lost
                row = base | {"error": str(e) or type(e).__name__, "correct": False}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


# ============================================================================ real benchmarks (local copies)
@dataclass(frozen=True)
class EvalSettings:
    """Everything that shaped an answer, saved in every output row."""

    benchmark: str
    model: str
    config: str
    revision: str | None
    fps: float
    max_frames: int
    use_audio: bool
    system_prompt: str | None
    template: str
    max_new_tokens: int
    ratio_mode: str | None
    seed: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def row_key(qid: str, method: str, trr: float | None, benchmark: str | None = None) -> str:
    """One row per (question, method, TRR) — and benchmark, where files of several are read together."""
    return json.dumps([str(qid), method, trr] + ([benchmark] if benchmark else []))


def settings_differences(path: str | Path, settings: "EvalSettings") -> list[str]:
    """What differs between ``settings`` and those saved in the rows of an output file (``--resume`` continues a
    file only with the settings that made it): "model: tiny (file) vs synthetic (now)", one per setting."""
    now = settings.to_dict()
    seen: dict[str, set] = {}
    try:
        lines = jsonl.lines(Path(path).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        stored = r.get("settings") if isinstance(r, dict) else None
        if isinstance(stored, dict):
            for k, v in stored.items():
                if k in now and v != now[k]:
                    seen.setdefault(k, set()).add(json.dumps(v))
    return [f"{k}: {', '.join(sorted(v))} (file) vs {json.dumps(now[k])} (now)" for k, v in sorted(seen.items())]


def shard_of(questions: list, shard: tuple[int, int] | None) -> list:
    """Questions ``i`` with i % N == I (``shard`` = (I, N)); a question's runs stay in one shard, so its video is
    decoded and encoded once."""
    if shard is None:
        return list(questions)
    i, n = shard
    return [q for k, q in enumerate(questions) if k % n == i]


def by_video(questions: list) -> list:
    """Questions grouped by video (first appearance order), so consecutive requests share the decoded media and
    the encoders' outputs."""
    groups: dict = {}
    for q in questions:
        groups.setdefault(q.video, []).append(q)
    return [q for qs in groups.values() for q in qs]


def done_keys(path: str | Path) -> set[str]:
    """Keys of the rows of an output file that carry an answer (error rows are run again on --resume)."""
    keys = set()
    try:
        lines = jsonl.lines(Path(path).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return keys
    for line in lines:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and "error" not in r and "id" in r:
            keys.add(row_key(r["id"], r.get("method"), r.get("trr")))
    return keys


def run_benchmark(seats, questions: list, runs: list[Run], settings: EvalSettings, *, root: Path,
                  skip: set[str] = frozenset(), write: Callable[[dict], None], should_stop=lambda: False,
                  on_row: Callable[[dict], None] | None = None) -> int:
    """Ask every (question, run) not in ``skip``, writing one row each as soon as it is done; a failure (bad file,
    out of memory, ...) is a row with ``error``. Questions about one video run back to back: its media is
    decoded once and its encoders run once per set of signals, and the next video is decoded in the background
    meanwhile (``Seats.prefetch``). Returns the rows written."""
    from dataclasses import replace

    from seats_cli.benchmarks import extract_letter
    from seats_cli.request import RequestOptions

    written = 0
    media_of_video: tuple | None = None
    opts = RequestOptions(fps=settings.fps, max_frames=settings.max_frames)
    ordered = [q for q in by_video(questions) if any(row_key(q.id, r.method, r.trr) not in skip for r in runs)]
    for i, q in enumerate(ordered):
        todo = [r for r in runs if row_key(q.id, r.method, r.trr) not in skip]
        if media_of_video is None or media_of_video[0] != q.video:
            try:
                media = seats.decode(q.video, opts)
                if not settings.use_audio:
                    media = replace(media, audio=None)
                media_of_video = (q.video, media, None)
            except Exception as e:  # noqa: BLE001 - every row of this video becomes an error row
                media_of_video = (q.video, None, str(e) or type(e).__name__)
            nxt = next((o.video for o in ordered[i + 1:] if o.video != q.video), None)
            if nxt is not None:  # decoded in the background while this video's questions run
                seats.prefetch(nxt, fps=settings.fps, max_frames=settings.max_frames)
        _, media, media_error = media_of_video
        prompt = build_prompt_for(q, settings.template)
        for run in todo:
            if should_stop():
                return written
            base = {"benchmark": settings.benchmark, "id": q.id, "method": run.method, "trr": run.trr,
                    "gold": q.answer, "category": q.category, "video": _relative(q.video, root)}
            if media_error is not None:
                row = base | {"error": media_error, "settings": settings.to_dict()}
            else:
                try:
                    r = seats.ask(media, prompt, system_prompt=settings.system_prompt, method=run.method,
                                  trr=run.trr, seed=settings.seed, max_new_tokens=settings.max_new_tokens,
                                  ratio_mode=settings.ratio_mode, fps=settings.fps, max_frames=settings.max_frames)
                    letter = extract_letter(r.answer, q.options)
                    row = base | {"letter": letter, "correct": letter == q.answer, "unparsable": letter is None,
                                  "settings": settings.to_dict(), "record": r.to_dict()}
                except Exception as e:  # noqa: BLE001 - a failing run is a row, never lost
                    row = base | {"error": " ".join(str(e).split()) or type(e).__name__,
                                  "settings": settings.to_dict()}
            write(row)
            written += 1
            if on_row is not None:
                on_row(row)
    return written


def build_prompt_for(q, template: str) -> str:
    from seats_cli.benchmarks import build_prompt

    return build_prompt(q, template)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def read_results(paths) -> list[dict]:
    """Rows of one or more results files (shards), the last row per (id, method, TRR) winning (a resumed run
    appends its retries)."""
    rows: dict[str, dict] = {}
    for path in paths:
        try:
            lines = jsonl.lines(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):  # a torn last line (a crash mid-write): the run will redo it
                    continue
                raise ValueError(f"{path}:{n}: not JSON") from None
            if isinstance(r, dict) and "item" in r and "id" not in r and "method" in r:
                r = from_synthetic(r)
            if isinstance(r, dict) and "id" in r and "method" in r:
                problem = _not_a_result(r)
                if problem:
                    raise ValueError(f"{path}:{n}: not a `seats eval` results row ({problem})")
                rows[row_key(r["id"], r["method"], r.get("trr"), r.get("benchmark"))] = r
    return list(rows.values())


def _not_a_result(r: dict) -> str | None:
    """What makes ``r`` unusable as a results row (a `seats batch` output, a hand-edited line), or None."""
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(r["method"], str):
        return f"method {r['method']!r} is not a name"
    if r.get("trr") is not None and not number(r["trr"]):
        return f"trr {r['trr']!r} is not a number"
    if "error" in r:
        return None
    if not isinstance(r.get("correct"), bool):
        return "no correct: true/false" if "correct" not in r else f"correct {r['correct']!r} is not true/false"
    record = r.get("record")
    if not isinstance(record, dict):
        return "no record"
    if record.get("schedule") is not None and not isinstance(record["schedule"], dict):
        return "record.schedule is not an object"
    for part, key in (("flops", "reduction"), ("latency_ms", "prefill")):
        if not isinstance(record.get(part), dict) or key not in record[part]:
            return f"no record.{part}.{key}"
        value = record[part][key]
        if value is not None and not number(value):
            return f"record.{part}.{key} {value!r} is not a number"
    return None


def from_synthetic(r: dict) -> dict:
    """A synthetic benchmark row (``item``, ``kind``, flat figures) in the shape of a real benchmark's row."""
    record = {"flops": {"reduction": r.get("flops_reduction")}, "latency_ms": {"prefill": r.get("prefill_ms")},
              "schedule": {"achieved_trr": r.get("achieved_trr")}}
    return {"id": r["item"], "category": r.get("kind"), "benchmark": "synthetic",
            "unparsable": "error" not in r and r.get("letter") is None, **r, "record": record}


def benchmark_summary(rows: list[dict]) -> dict:
    """Per (method, TRR): questions, accuracy overall and per category, unparsable answers, errors, relative
    accuracy vs ``full`` on the questions both answered, mean FLOPs reduction, mean prefill ms, mean achieved TRR."""
    def question(r: dict) -> tuple:  # files of several benchmarks read together may share ids
        return r.get("benchmark"), str(r["id"])

    full = {question(r): bool(r.get("correct")) for r in rows if r["method"] == "full" and "error" not in r}
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r["method"], r.get("trr"))].append(r)
    out = []
    for (method, trr), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        cats: dict = defaultdict(list)
        for r in ok:
            cats[r.get("category") or "-"].append(bool(r["correct"]))
        both = [r for r in ok if question(r) in full]
        full_acc = sum(full[question(r)] for r in both) / len(both) if both else None
        acc_both = sum(bool(r["correct"]) for r in both) / len(both) if both else None

        def mean(values):
            values = [v for v in values if v is not None]
            return sum(values) / len(values) if values else None

        out.append({
            "method": method, "trr": trr, "label": Run(method, trr).label, "n": len(rs), "answered": len(ok),
            "errors": len(rs) - len(ok), "unparsable": sum(bool(r.get("unparsable")) for r in ok),
            "accuracy": mean([float(bool(r["correct"])) for r in ok]),
            "per_category": {c: sum(v) / len(v) for c, v in sorted(cats.items())},
            "relative_to_full": (acc_both / full_acc) if full_acc else None,
            "flops_reduction": mean([r["record"]["flops"]["reduction"] for r in ok]),
            "prefill_ms": mean([r["record"]["latency_ms"]["prefill"] for r in ok]),
            "achieved_trr": mean([(r["record"].get("schedule") or {}).get("achieved_trr") for r in ok]),
        })
    def order(s: dict) -> tuple:  # full first; names in order, their numbers as numbers (media-cut:8 before :16)
        name, _, number = s["method"].partition(":")
        return (s["method"] != "full", name, int(number) if number.isdecimal() else -1, s["method"],
                -(s["trr"] or 0))

    out.sort(key=order)
    return {"runs": out, "questions": len({question(r) for r in rows}),
            "benchmarks": sorted({r.get("benchmark") or "-" for r in rows})}


def plot_accuracy(summary: dict, path: str | Path) -> Path:
    """Accuracy against FLOPs reduction, one line per method (``full`` a point at 1x)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'seats-cli[eval]'") from None
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    methods = dict.fromkeys(s["method"] for s in summary["runs"])
    for method in methods:
        pts = sorted((s["flops_reduction"], s["accuracy"]) for s in summary["runs"]
                     if s["method"] == method and s["flops_reduction"] and s["accuracy"] is not None)
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="*" if method == "full" else "o", linestyle="" if len(pts) == 1 else "-",
                label=method, markersize=10 if method == "full" else 5)
    ax.set_xlabel("prefill FLOPs reduction (x, paper convention)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{', '.join(summary['benchmarks'])}: accuracy vs cost ({summary['questions']} questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
