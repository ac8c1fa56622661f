"""`seats analyze` and `seats calibrate`: a model's layer dependence on video and audio, and boundaries from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from seats_cli.cli.common import (
    DeviceOpt, DtypeOpt, JsonOpt, QuietOpt, UsageProblem, app, check_load_options, check_writable, guarded,
    print_json,
    quiet_libraries, show_progress, status, stdout,
)
from seats_cli.tables import Table

ANALYZE = "Per layer: attention on video/audio/text and the answers with media dropped from that layer."
CALIBRATE = "Fit a model's SEATS layer boundaries from that analysis and write a preset YAML."


def _cases(seats, videos, question, questions, benchmark, n, bench_seed, data_dir=None, limit=None):
    """(media or a loader, question, gold or None, key[, options]) from videos + --question, a JSONL file, the
    synthetic benchmark, or a local copy of a real one (--benchmark NAME --data-dir DIR: the paper's prompts)."""
    from functools import partial

    from seats_cli.batch import read_jsonl
    from seats_cli.media import decode_video
    from seats_cli.request import check_text, frame_policy

    policy = frame_policy(seats.config)
    if benchmark == "synthetic":
        from seats_cli.evaluate import synthetic_items
        from seats_cli.synthetic import media_of

        return [(partial(media_of, it), it.question, it.answer, it.id)
                for it in synthetic_items(bench_seed, n)][:limit]
    if benchmark:
        from seats_cli import benchmarks as bm

        if data_dir is None:
            raise UsageProblem(f"--benchmark {benchmark} needs --data-dir")
        qs = bm.read(benchmark, data_dir)[:limit]
        missing = bm.missing_videos(qs)
        if missing:
            raise UsageProblem(f"{len(missing)} video(s) missing under {data_dir} ({missing[0]}, ...)")
        spec = bm.SPECS[benchmark]
        pol = frame_policy(seats.config, fps=spec.fps, max_frames=spec.max_frames)
        return [(partial(decode_video, q.video, pol), spec.prompt(q), q.answer, q.id, q.options) for q in qs]
    if questions:
        from seats_cli.batch import BatchInputError, check_unique_ids

        try:
            rows = check_unique_ids(read_jsonl(questions))
        except BatchInputError as e:
            raise UsageProblem(f"{questions}: {e}") from None
        bad = [r for r in rows if r.error]
        if bad:
            raise UsageProblem(f"{questions}: {bad[0].error}")
        rows = rows[:limit]
        if not rows:
            raise UsageProblem(f"{questions} holds no questions")
        answers = _answers(questions, rows)
        if len({a is None for a in answers}) > 1:
            raise UsageProblem(f"{questions}: give an \"answer\" on every row (scored by accuracy) or on none "
                               f"(scored by agreement with the full run), not on some")
        _check_videos([r.video for r in rows])
        return [(partial(decode_video, r.video, policy), check_text(r.question), a, json_key(r.id))
                for r, a in zip(rows, answers)]
    if not videos or not question:
        raise UsageProblem("give VIDEO... with --question, or --questions FILE, or --benchmark NAME")
    videos = list(videos)[:limit]
    _check_videos(videos)
    return [(partial(decode_video, v, policy), check_text(question), None, str(v)) for v in videos]


def _check_videos(paths) -> None:
    """Every video is there before any is analysed (not the fifth after four were)."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise UsageProblem(f"no such file: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                            else ""))


def _answers(questions, rows) -> list:
    """Each row's gold letter (upper-cased) or None, read from the same lines `seats batch` reads."""
    import json

    lines = Path(questions).read_bytes().split(b"\n")
    out = []
    for r in rows:
        text = lines[r.line - 1].decode("utf-8")
        value = json.loads(text.lstrip("\ufeff")).get("answer")
        if value is None or (isinstance(value, str) and not value.strip()):
            out.append(None)
            continue
        letter = str(value).strip().upper()
        if isinstance(value, bool) or len(letter) != 1 or not letter.isalpha():
            raise UsageProblem(f"{questions}: line {r.line}: \"answer\" must be an option letter (A, B, ...), "
                               f"got {value!r}")
        out.append(letter)
    return out


def json_key(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _run(model, device, dtype, videos, question, questions, benchmark, n, bench_seed, every, quiet,
         data_dir=None, limit=None, checkpoint=None):
    from seats_cli import analyze as an
    from seats_cli.api import Seats

    for flag, value in (("--every", every), ("--n", n), ("--limit", limit)):
        if value is not None and value < 1:
            raise UsageProblem(f"{flag} must be at least 1 (got {value})")
    if benchmark and (question or videos or questions):
        raise UsageProblem("--benchmark brings its own questions: give it alone, or VIDEO... --question, or "
                           "--questions FILE")
    if questions and (videos or question):
        raise UsageProblem("--questions FILE brings its own videos and questions: give it alone, or VIDEO... "
                           "--question")
    if checkpoint is not None and checkpoint.is_dir():
        raise UsageProblem(f"--checkpoint {checkpoint} is a folder, not a JSONL file")
    if checkpoint is not None and not checkpoint.parent.is_dir():
        raise UsageProblem(f"--checkpoint {checkpoint}: no such folder {checkpoint.parent}")
    if benchmark and benchmark != "synthetic":
        from seats_cli import benchmarks as bm

        if benchmark not in bm.BENCHMARKS:
            raise UsageProblem(f"--benchmark {benchmark!r} is not one of: synthetic, {', '.join(bm.BENCHMARKS)}")
    check_load_options(device, dtype, "sdpa")
    quiet_libraries()
    progress = show_progress(quiet)
    with status(f"loading {model}", progress):
        seats = Seats(model, device=device, dtype=dtype)
    cases = _cases(seats, videos, question, questions, benchmark, n, bench_seed, data_dir, limit)
    layers = list(range(0, len(seats.adapter.layers), max(1, every)))

    def tick(done, total):
        if not quiet:
            print(f"\ranalysed {done}/{total}", end="", file=sys.stderr, flush=True)

    result = an.analyze(seats, cases, layers=layers, progress=tick, checkpoint=checkpoint)
    if not quiet:
        print(file=sys.stderr)
    return seats, result


def _table(result) -> Table:
    t = Table(title=f"layer dependence over {result.items} questions (score: {result.scored_by}; full "
                    f"{result.full_score:.2f})")
    for col in ("layer", "attn video", "attn audio", "attn text", "video dropped", "audio dropped", "both dropped"):
        t.add_column(col, justify="right")
    for j, layer in enumerate(result.layers):
        t.add_row(str(layer), *(f"{result.attention[k][layer]:.3f}" for k in ("video", "audio", "text")),
                  *(f"{result.dropped[k][j]:.2f}" for k in ("video", "audio", "both")))
    return t


def _plot(result, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageProblem("--plot needs matplotlib (pip install matplotlib)") from None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for k in ("video", "audio", "text"):
        a.plot(range(len(result.attention[k])), result.attention[k], label=k)
    a.set(xlabel="decoder layer", ylabel="attention mass of the last prompt token", title="where the query looks")
    for k in ("video", "audio", "both"):
        b.plot(result.layers, result.dropped[k], marker="o", label=f"{k} dropped from layer")
    b.axhline(result.full_score, color="gray", linestyle="--", label="full")
    b.set(xlabel="decoder layer", ylabel=result.scored_by, title="answers without the media")
    for ax in (a, b):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@app.command(short_help=ANALYZE)
@guarded
def analyze(
    videos: Optional[List[Path]] = typer.Argument(None, help="Video files (with --question)."),
    model: str = typer.Option(..., "--model", "-m", help="Hub id, local folder, 'tiny', 'synthetic' ..."),
    question: Optional[str] = typer.Option(None, "--question", help="The question asked of every VIDEO."),
    questions: Optional[Path] = typer.Option(None, "--questions", help="JSONL rows {id, video, question, "
                                             "answer?} (answers: scored by accuracy)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="Questions of a benchmark instead: synthetic, "
                                            "or a local copy of a real one with --data-dir (e.g. videomme)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The real benchmark's local folder."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Keep each question's result in this "
                                              "JSONL; run again with it to resume a long analysis."),
    n: int = typer.Option(12, "--n", help="Questions per kind with --benchmark synthetic."),
    bench_seed: int = typer.Option(1_000_000, "--bench-seed", help="With --benchmark synthetic: first held-out seed "
                                   "of its questions (>= 1,000,000; training used 0..999)."),
    every: int = typer.Option(1, "--every", help="Analyse every N-th layer for the drop curves."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the layer-dependence figure (PNG)."),
    device: str = DeviceOpt, dtype: str = DtypeOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
) -> None:
    """Per decoder layer: the attention mass the last prompt token puts on video, audio and text, and the answers'
    score when all video, all audio or both are dropped from that layer on."""
    if plot is not None:
        check_writable(plot, "--plot")
    _, result = _run(model, device, dtype, videos, question, questions, benchmark, n, bench_seed, every, quiet,
                     data_dir, limit, checkpoint)
    if plot is not None:
        _plot(result, plot)
    if json_out:
        print_json(result.to_dict())
    else:
        stdout.print(_table(result))


@app.command(short_help=CALIBRATE)
@guarded
def calibrate(
    videos: Optional[List[Path]] = typer.Argument(None, help="Video files (with --question)."),
    model: str = typer.Option(..., "--model", "-m", help="Hub id, local folder, 'tiny', 'synthetic' ...: the model "
                              "whose boundaries are fitted."),
    question: Optional[str] = typer.Option(None, "--question", help="The question asked of every VIDEO."),
    questions: Optional[Path] = typer.Option(None, "--questions", help="JSONL rows {id, video, question, answer?} "
                                             "instead of VIDEO/--question."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="synthetic, or a real one with --data-dir."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The real benchmark's local folder."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Resumable: per-question results JSONL."),
    n: int = typer.Option(12, "--n", help="Questions per kind with --benchmark synthetic."),
    bench_seed: int = typer.Option(1_000_000, "--bench-seed", help="With --benchmark synthetic: first held-out seed "
                                   "of its questions (>= 1,000,000; training used 0..999)."),
    tolerance: float = typer.Option(0.02, "--tolerance", help="How far below full the media-free answers may be."),
    out: Path = typer.Option(..., "--out", "-o", help="The preset YAML to write."),
    device: str = DeviceOpt, dtype: str = DtypeOpt, json_out: bool = JsonOpt, quiet: bool = QuietOpt,
) -> None:
    """Measure the layer dependence (as `seats analyze`), fit `text_only_from` and `prune_before`, and write a
    preset YAML (the model's preset with the fitted boundaries, `calibrated: true`, the evidence in comments)."""
    import math

    import yaml

    from seats_cli import analyze as an

    if not (math.isfinite(tolerance) and 0 <= tolerance < 1):  # checked before the analysis, like --out
        raise UsageProblem(f"--tolerance must be a score difference in [0, 1) (got {tolerance})")
    check_writable(out)
    seats, result = _run(model, device, dtype, videos, question, questions, benchmark, n, bench_seed, 1, quiet,
                         data_dir, limit, checkpoint)
    cfg = seats.config
    pb, tof = an.calibrate_boundaries(result, tolerance=tolerance, num_layers=cfg.architecture.num_layers)
    raw = yaml.safe_load(Path(cfg.source).read_text())
    raw["name"] = f"{cfg.name}-calibrated"
    raw["calibrated"] = True
    raw["seats"]["prune_before"] = pb
    raw["seats"]["text_only_from"] = tof
    import shlex

    argv = shlex.join(sys.argv[2:]).replace("\r", "\\r").replace("\n", "\\n")  # one comment line, as typed
    evidence = [f"# calibrated by: seats calibrate {argv}",
                f"# {result.items} questions, score = {result.scored_by}, full {result.full_score:.3f}, "
                f"tolerance {tolerance}",
                "# score with all media dropped from layer L: " + ", ".join(
                    f"{layer}:{s:.2f}" for layer, s in zip(result.layers, result.dropped["both"]))]
    import os
    import tempfile

    from seats_cli.config import ModelConfig

    # written beside --out and checked to load and validate before it replaces anything there
    fd, tmp = tempfile.mkstemp(prefix=".calibrate-", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(evidence) + "\n" + yaml.safe_dump(raw, sort_keys=False))
        ModelConfig.from_yaml(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if json_out:
        print_json({"prune_before": pb, "text_only_from": tof, "out": str(out), "analysis": result.to_dict()})
    else:
        stdout.print(_table(result))
        stdout.print(f"prune_before {pb}, text_only_from {tof} -> {out}")
