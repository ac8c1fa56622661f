"""`seats eval`: accuracy of full, SEATS and the baselines on a benchmark — the synthetic one (no data needed) or
a local copy of WorldSense, Daily-Omni, OmniVideoBench, Video-MME, LVOmniBench or a custom folder — and
`seats eval report` to rebuild the summary (and the accuracy-vs-FLOPs plot) from results files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from seats_cli.cli.common import (
    AttnOpt, DeviceMapOpt, DeviceOpt, DtypeOpt, JsonOpt, LocalOnlyOpt, QuietOpt, RatioModeOpt, RevisionOpt,
    UsageProblem, app, check_load_options, check_writable, fail, open_output, guarded, print_json, quiet_libraries,
    show_progress, status, stdout,
)
from seats_cli.tables import Table

SHORT = "Accuracy of full, SEATS and the baselines on a benchmark (synthetic, or a local copy of a real one)."
SYNTHETIC_METHODS = "seats,random,divprune,fastv,fastv-om,dycoke,visionzip,visionzip-om,omnizip,fastvid"

eval_app = typer.Typer(pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)
app.add_typer(eval_app, name="eval", short_help=SHORT, help=SHORT)


@eval_app.callback(invoke_without_command=True)
@guarded
def eval_(
    ctx: typer.Context,
    benchmark: str = typer.Option("synthetic", "--benchmark", metavar="[synthetic|worldsense|dailyomni|"
                                  "omnivideobench|videomme|lvomnibench|custom]", help="Which benchmark."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The benchmark's local folder, in its published "
                                            "layout (custom: DIR/questions.jsonl)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Hub id, local folder, tiny (default: the trained "
                                        "'synthetic' model for the synthetic benchmark, else Qwen/Qwen2.5-Omni-7B)."),
    config: Optional[str] = typer.Option(None, "--config", help="Preset name or YAML (e.g. one written by "
                                         "`seats calibrate`); default: the model's."),
    method: Optional[List[str]] = typer.Option(None, "--method", help="A method to run (repeat for several; full "
                                               "always runs)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated methods run at every --trr "
                                          f"(default: synthetic {SYNTHETIC_METHODS.replace(',', ', ')}; "
                                          "others seats)."),
    trr: Optional[List[float]] = typer.Option(None, "--trr", help="TRRs (default: synthetic 0.35 0.25 0.15 0.10 "
                                              "0.05; others 0.35 0.10)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: this process runs questions i with i % N == I "
                                        "(merge the shards' files with `seats eval report`)."),
    resume: bool = typer.Option(False, "--resume", help="Keep the rows already in --out and run the rest (error rows "
                                "run again)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="One JSONL row per (question, method, TRR)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frames per second (default: the benchmark's, 2)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Most frames (default: the benchmark's as in "
                                             "the paper: 128 WorldSense/Daily-Omni, 256 OmniVideoBench, 768 "
                                             "Video-MME/LVOmniBench)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Answer length (default: the "
                                                 "benchmark's)."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Leave the sound track out."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="System prompt (default: the "
                                                "benchmark's as the paper ran it)."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template with {question} and {options} "
                                           "(default: the benchmark's)."),
    ratio_mode: Optional[str] = RatioModeOpt, revision: Optional[str] = RevisionOpt,
    local_files_only: bool = LocalOnlyOpt,
    bench_seed: int = typer.Option(1_000_000, "--bench-seed", help="Synthetic: first held-out seed of the questions "
                                   "(>= 1,000,000; training used 0..999)."),
    n: int = typer.Option(48, "--n", help="Synthetic: questions per kind (a multiple of 4 balances the letters)."),
    media_cuts: str = typer.Option("0,8,16,20,23", "--media-cuts",
                                   help="Synthetic: layers before which all media is dropped ('' for none)."),
    write_clips: Optional[Path] = typer.Option(None, "--write-clips", help="Synthetic: only write the clips (.mp4) "
                                               "and questions.jsonl (batch rows with the gold answer) to this folder."),
    device: str = DeviceOpt, device_map: Optional[str] = DeviceMapOpt, dtype: str = DtypeOpt,
    attn_implementation: str = AttnOpt,
    seed: int = typer.Option(0, "--seed", help="Seed of the random choices of the methods (Random, audio cuts)."),
    backend: str = typer.Option("local", "--backend", metavar="[local|ray]", help="Real benchmarks: ray runs the "
                                "videos on a pool of Ray actors (pip install 'seats_cli[distributed]')."),
    workers: int = typer.Option(1, "--workers", help="--backend ray: actors in the pool."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="--backend ray: GPUs per actor."),
    address: Optional[str] = typer.Option(None, "--address", help="--backend ray: 'auto' or 'ray://host:port'."),
    json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Ask every question under `full` and each method at each TRR and print the accuracy per category, relative
    to full, with the mean FLOPs reduction and prefill latency. `seats eval report FILE...` rebuilds the summary."""
    if ctx.invoked_subcommand is not None:
        return
    names = [m.strip() for m in (methods or "").split(",") if m.strip()] + list(method or [])
    if backend not in ("local", "ray"):
        raise UsageProblem(f"--backend {backend!r} is not one of: local, ray")
    if backend == "ray":
        from seats_cli.distributed import RayMissing, require_ray

        if benchmark == "synthetic":
            raise UsageProblem("--backend ray is for the real benchmarks, not --benchmark synthetic")
        try:
            require_ray()
        except RayMissing as e:
            raise UsageProblem(str(e)) from None
        if workers < 1 or gpus_per_worker < 0:
            raise UsageProblem("--workers must be >= 1 and --gpus-per-worker >= 0")
    elif (workers, gpus_per_worker, address) != (1, 0.0, None):
        raise UsageProblem("--workers, --gpus-per-worker and --address are for --backend ray")
    if benchmark != "synthetic":
        return _real(benchmark, data_dir, model, config, names, trr, limit, shard, resume, out, fps, max_frames,
                     max_new_tokens, no_audio, system_prompt, template, ratio_mode, revision, local_files_only, device,
                     device_map, dtype, attn_implementation, seed, json_out, quiet,
                     ray=dict(workers=workers, gpus_per_worker=gpus_per_worker, address=address)
                     if backend == "ray" else None)
    # the synthetic clips, prompts and answers are fixed by the benchmark: an option that would change them is refused
    # rather than silently ignored
    for name, given in (("--data-dir", data_dir), ("--limit", limit), ("--shard", shard), ("--template", template),
                        ("--system-prompt", system_prompt), ("--fps", fps), ("--max-frames", max_frames),
                        ("--max-new-tokens", max_new_tokens), ("--ratio-mode", ratio_mode),
                        ("--revision", revision)):
        if given is not None:
            raise UsageProblem(f"{name} is for the real benchmarks, not --benchmark synthetic")
    for name, given in (("--resume", resume), ("--no-audio", no_audio), ("--local-files-only", local_files_only)):
        if given:
            raise UsageProblem(f"{name} is for the real benchmarks, not --benchmark synthetic")
    _synthetic("synthetic" if model is None else model, config, bench_seed, n, trr, ",".join(names) or SYNTHETIC_METHODS, media_cuts,
               out, write_clips, device, dtype, seed, json_out, quiet, benchmark)


def _synthetic(model, config, bench_seed, n, trr, methods, media_cuts, out, write_clips, device, dtype, seed,
               json_out, quiet, benchmark) -> None:
    from seats_cli import evaluate as ev
    from seats_cli.request import RequestOptions, check_ratio

    if benchmark != "synthetic":
        raise UsageProblem(f"--benchmark {benchmark!r} is not one of: synthetic")
    if n < 1:
        raise UsageProblem("--n must be at least 1")
    if out is not None and write_clips is None:
        check_writable(out)  # before the model loads
    items = ev.synthetic_items(bench_seed, n)
    if write_clips is not None:
        if write_clips.exists() and not write_clips.is_dir():
            raise UsageProblem(f"--write-clips {write_clips} is a file, not a folder")
        if not write_clips.exists() and not write_clips.parent.is_dir():
            raise UsageProblem(f"--write-clips {write_clips}: no such folder {write_clips.parent}")
        path = ev.write_benchmark(items, write_clips)
        stdout.print(f"wrote {len(items)} clips and {path}")
        return
    trrs = list(dict.fromkeys(trr)) if trr else list(ev.TRRS)
    for r in trrs:
        check_ratio("trr", r)
    names = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))
    for m in names:
        RequestOptions(method=m)  # validated below against the preset
    try:
        cuts = [int(x) for x in media_cuts.split(",") if x.strip()]
    except ValueError:
        raise UsageProblem(f"--media-cuts must be comma-separated layer numbers, got {media_cuts!r}") from None
    runs = ev.default_runs(names, trrs, cuts)
    check_load_options(device, dtype, "sdpa")
    from seats_cli.config import resolve_config
    from seats_cli.frames import plan_resize
    from seats_cli.request import frame_policy

    cfg = resolve_config(model, config)
    size = plan_resize(56, 56, 8, frame_policy(cfg))
    if size != (56, 56):  # the benchmark hands 56x56 frames to the model as they are
        raise UsageProblem(f"the synthetic clips are 56x56 but {cfg.name}'s frame policy makes them "
                           f"{size[1]}x{size[0]}; use --model synthetic (or write the clips with --write-clips and "
                           f"run `seats batch` on them)")
    quiet_libraries()
    from seats_cli.api import Seats

    progress = show_progress(quiet)
    with status(f"loading {model}", progress):
        seats = Seats(model, config=cfg, device=device, dtype=dtype)
    for m in names + [r.method for r in runs if r.method.startswith("media-cut")]:
        RequestOptions(method=m).check(seats.config)
    sink = open_output(out, resume=False) if out else None
    try:
        import json

        def on_row(row):
            if sink is not None:
                sink.write(json.dumps(row) + "\n")
                sink.flush()

        with status(f"{len(items)} questions x {len(runs)} runs", progress):
            rows = ev.evaluate(seats, items, runs, seed=seed, on_row=on_row)
    finally:
        if sink is not None:
            sink.close()
    # the same summary as `seats eval report` (and a real benchmark's run): one shape for every consumer
    summary = ev.benchmark_summary([ev.from_synthetic(r) for r in rows])
    summary["settings"] = {"benchmark": benchmark, "model": model, "config": cfg.name, "bench_seed": bench_seed,
                           "n_per_kind": n, "seed": seed}
    finish(summary, json_out, out, len(rows))


# ------------------------------------------------------------------------------------------- real benchmarks
def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if shard is None:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise UsageProblem(f"--shard {shard!r} must be I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageProblem(f"--shard {shard}: need 0 <= I < N")
    return i, n


def _real(benchmark, data_dir, model, config, names, trr, limit, shard, resume, out, fps, max_frames,
          max_new_tokens, no_audio, system_prompt, template, ratio_mode, revision, local_files_only, device,
          device_map, dtype, attn_implementation, seed, json_out, quiet, ray=None) -> None:
    from seats_cli import benchmarks as bm
    from seats_cli import evaluate as ev
    from seats_cli.cli.batch import _close_output, _progress, _say
    from seats_cli.cli.common import DEFAULT_MODEL
    from seats_cli.config import resolve_config
    from seats_cli.request import RequestOptions, check_ratio

    if benchmark not in bm.BENCHMARKS:
        raise UsageProblem(f"--benchmark {benchmark!r} is not one of: synthetic, {', '.join(bm.BENCHMARKS)}")
    if data_dir is None:
        raise UsageProblem(f"--benchmark {benchmark} needs --data-dir (the benchmark's local folder)")
    if resume and out is None:
        raise UsageProblem("--resume needs --out (the results file to continue)")
    if limit is not None and limit < 1:
        raise UsageProblem("--limit must be at least 1")
    if out is not None:
        check_writable(out)
    part = _parse_shard(shard)
    trrs = list(dict.fromkeys(trr)) if trr else [0.35, 0.10]
    for r in trrs:
        check_ratio("trr", r)
    names = list(dict.fromkeys(m for m in (names or ["seats"]) if m != "full"))
    model = DEFAULT_MODEL if model is None else model
    cfg = resolve_config(model, config)
    for m in names:
        RequestOptions(method=m).check(cfg)
    spec = bm.SPECS[benchmark]
    sources: list[Path] = []
    questions = bm.read(benchmark, data_dir, sources)
    if out is not None and Path(out).exists() and any(os.path.samefile(out, f) for f in sources):
        raise UsageProblem(f"--out {out} is the benchmark's own annotation file: the results would overwrite the "
                           f"questions")
    if limit is not None:
        questions = questions[:limit]
    questions = ev.shard_of(questions, part)
    missing = bm.missing_videos(questions)
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise UsageProblem(f"{len(missing)} video(s) missing under {data_dir} ({shown}{', ...' if len(missing) > 3 else ''})")
    settings = ev.EvalSettings(
        benchmark=benchmark, model=model, config=cfg.name, revision=revision,
        fps=spec.fps if fps is None else fps, max_frames=spec.max_frames if max_frames is None else max_frames,
        use_audio=spec.use_audio and not no_audio,
        system_prompt=system_prompt if system_prompt is not None else spec.system_prompt(cfg.system_prompt),
        template=template or spec.template,
        max_new_tokens=spec.max_new_tokens if max_new_tokens is None else max_new_tokens,
        ratio_mode=ratio_mode, seed=seed)
    RequestOptions(fps=settings.fps, max_frames=settings.max_frames, max_new_tokens=settings.max_new_tokens,
                   ratio_mode=ratio_mode).check(cfg)
    if "{question}" not in settings.template or "{options}" not in settings.template:
        raise UsageProblem("--template must contain {question} and {options}")
    runs = [ev.Run("full", None)] + [ev.Run(m, t) for t in trrs for m in names]
    if resume:
        differ = ev.settings_differences(out, settings)
        if differ:
            raise UsageProblem(f"--resume: {out} was written with other settings ({'; '.join(differ)}); "
                               "continue it with those, or give another --out")
    skip = ev.done_keys(out) if resume else set()
    total = sum(1 for q in questions for r in runs if ev.row_key(q.id, r.method, r.trr) not in skip)
    check_load_options(device, dtype, attn_implementation, device_map)
    quiet_libraries()
    from seats_cli.api import Seats
    from seats_cli.results_file import repair_tail
    from seats_cli.stopping import stop_after_current_row

    progress = show_progress(quiet)
    written = 0
    load = dict(model=model, config=cfg, device=device, dtype=dtype, attn_implementation=attn_implementation,
                revision=revision, local_files_only=local_files_only, device_map=device_map)
    if total:
        seats = None
        sink = open_output(out, resume=resume) if out else None  # locked before the model loads
        if resume:
            note = repair_tail(out)
            if note and not quiet:
                _say(f"note: {note}")
        if ray is None:
            try:
                with status(f"loading {model}", progress):
                    seats = Seats(**load)
            except BaseException:
                if sink is not None:
                    sink.close()
                raise
        rows: list[dict] = []

        def write(row: dict) -> None:
            from seats_cli.batch import to_json_line

            if sink is not None:
                sink.write(to_json_line(row) + "\n")
                sink.flush()
            else:
                rows.append(row)

        try:
            if ray is not None:
                from seats_cli.distributed import run_eval_ray

                with _progress(total, progress) as advance, stop_after_current_row(_say) as should_stop:
                    written = run_eval_ray(questions, runs, settings, root=Path(data_dir), skip=skip, write=write,
                                           load=load, on_row=advance, should_stop=should_stop, **ray)
            else:
                with _progress(total, progress) as advance, stop_after_current_row(_say) as should_stop:
                    written = ev.run_benchmark(seats, questions, runs, settings, root=Path(data_dir), skip=skip,
                                               write=write, should_stop=should_stop, on_row=advance)
        finally:
            if seats is not None:  # a decode started for a video never reached stops now
                seats.close()
            _close_output(sink, out, resume, quiet, key_of=lambda r: ev.row_key(
                r.get("id"), r.get("method"), r.get("trr"), r.get("benchmark")))
        if written < total:
            fail(f"interrupted after {written} of {total} rows"
                 + (f"; rerun with --resume --out {out} to continue" if out else ""), should_stop.exit_code)
    all_rows = ev.read_results([out]) if out else rows
    summary = ev.benchmark_summary(all_rows)
    summary["settings"] = settings.to_dict()
    finish(summary, json_out, out, written)


def finish(summary: dict, json_out: bool, out, written: int) -> None:
    """The end of every `seats eval` run: the summary (JSON or the table), where the rows went, and exit 1 when
    some rows failed (as seats batch: every row is written, the status says some failed)."""
    if json_out:
        print_json(summary)
    else:
        render_summary(summary)
        if out is not None:
            what = f"{written} rows written to {out}" if written else f"every row was already in {out}"
            stdout.print(f"[dim]{what}; `seats eval report {out}` rebuilds this[/dim]")
    errors = sum(s["errors"] for s in summary["runs"])
    if errors:
        fail(f"{errors} of {sum(s['n'] for s in summary['runs'])} rows failed (see their \"error\" field)", 1)


def render_summary(summary: dict) -> None:
    runs = summary["runs"]
    cats = sorted({c for s in runs for c in s["per_category"]})
    show_cats = cats if 1 < len(cats) <= 8 else []
    t = Table(title=f"{', '.join(summary['benchmarks'])} · {summary['questions']} questions")
    for col in ("run", "n", "accuracy", "vs full", *show_cats, "unparsable", "errors", "FLOPs reduction",
                "prefill ms", "achieved TRR"):
        t.add_column(col, justify="right")

    def fmt(x, spec=".3f", suffix=""):
        return "-" if x is None else f"{x:{spec}}{suffix}"

    for s in runs:
        t.add_row(s["label"], str(s["n"]), fmt(s["accuracy"]), fmt(s["relative_to_full"], ".1%"),
                  *(fmt(s["per_category"].get(c)) for c in show_cats), str(s["unparsable"]), str(s["errors"]),
                  fmt(s["flops_reduction"], ".2f", "x"), fmt(s["prefill_ms"], ".1f"), fmt(s["achieved_trr"], ".3f"))
    stdout.print(t)
    if len(cats) > 8:
        stdout.print(f"[dim]{len(cats)} categories: per-category accuracy is in --json[/dim]")


@eval_app.command("report", short_help="Summary (and --plot) from results files; shards merge.")
@guarded
def report(
    files: List[Path] = typer.Argument(..., help="Results files of `seats eval --out` (several: shards, merged)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw accuracy against FLOPs reduction (PNG)."),
    json_out: bool = JsonOpt,
) -> None:
    """Accuracy overall and per category for each (method, TRR), relative to full on the same questions, mean
    FLOPs reduction and prefill latency; the last row per (question, method, TRR) counts."""
    import json

    from seats_cli import evaluate as ev

    from seats_cli.cli.common import check_writable

    for f in files:
        if f.is_dir():
            raise UsageProblem(f"{f} is a folder, not a results file")
        if not f.is_file():
            raise UsageProblem(f"{f}: no such file")
    if plot is not None:
        check_writable(plot, "--plot")
    try:
        rows = ev.read_results(files)
    except ValueError as e:
        raise UsageProblem(str(e)) from None
    if not rows:
        raise UsageProblem(f"no result rows in {', '.join(map(str, files))}")
    summary = ev.benchmark_summary(rows)
    if plot is not None:
        try:
            ev.plot_accuracy(summary, plot)
        except ValueError as e:
            raise UsageProblem(str(e)) from None
    if json_out:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        render_summary(summary)
        if plot is not None:
            stdout.print(f"[dim]plot: {plot}[/dim]")


@eval_app.command("export-lmms", short_help="Write an lmms-eval task (for --include_path) from a local benchmark.")
@guarded
def export_lmms(
    benchmark: str = typer.Option(..., "--benchmark", help="worldsense, dailyomni, omnivideobench, videomme, "
                                  "lvomnibench or custom."),
    data_dir: Path = typer.Option(..., "--data-dir", help="The benchmark's local folder (its published layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the task (YAML, rows, utils.py)."),
) -> None:
    """A `generate_until` lmms-eval task over the benchmark's questions (prompts as the paper ran them, scored with
    seats' letter extractor): `lmms-eval --model seats --model_args pretrained=...,method=seats,trr=0.1,<printed
    args> --tasks seats_<benchmark> --include_path OUT`."""
    from seats_cli import benchmarks as bm
    from seats_cli.lmms_tasks import export

    if benchmark not in bm.BENCHMARKS:
        raise UsageProblem(f"--benchmark {benchmark!r} is not one of: {', '.join(bm.BENCHMARKS)}")
    if out.exists() and not out.is_dir():
        raise UsageProblem(f"--out {out} is a file; the task is written into a folder")
    if not out.exists() and not out.parent.is_dir():
        raise UsageProblem(f"--out {out}: no such folder {out.parent}")
    path, model_args = export(benchmark, data_dir, out)
    stdout.print(f"wrote {path}\nrun: lmms-eval --model seats --model_args pretrained=Qwen/Qwen2.5-Omni-7B,method=seats,"
                 f"trr=0.1,{model_args} --tasks seats_{benchmark} --include_path {out}", markup=False,
                 highlight=False)
