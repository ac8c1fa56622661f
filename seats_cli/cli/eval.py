"""`seats eval --benchmark synthetic`: accuracy per question kind for full, SEATS and the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from seats_cli.cli.common import (
    DeviceOpt, DtypeOpt, JsonOpt, QuietOpt, UsageProblem, app, check_load_options, guarded, print_json,
    quiet_libraries, show_progress, status, stdout,
)

SHORT = "Accuracy of full, SEATS and the baselines on a benchmark (today: the synthetic one)."


@app.command(name="eval", short_help=SHORT)
@guarded
def eval_(
    benchmark: str = typer.Option("synthetic", "--benchmark", metavar="[synthetic]", help="Which benchmark."),
    model: str = typer.Option("synthetic", "--model", "-m", help="Default for the synthetic benchmark: its "
                              "trained small model."),
    config: Optional[str] = typer.Option(None, "--config", help="Preset name or YAML (e.g. one written by "
                                         "`seats calibrate`); default: the model's."),
    bench_seed: int = typer.Option(1_000_000, "--seed", help="First held-out seed of the questions (>= 1,000,000; "
                                   "training used 0..999)."),
    n: int = typer.Option(48, "--n", help="Questions per kind (a multiple of 4 balances the letters)."),
    trr: Optional[List[float]] = typer.Option(None, "--trr", help="TRRs (default 0.35 0.25 0.15 0.10 0.05)."),
    methods: str = typer.Option("seats,random,divprune,fastv,fastv-om,dycoke,visionzip,visionzip-om,omnizip,fastvid",
                                "--methods",
                                help="Comma-separated methods run at every --trr (full always runs)."),
    media_cuts: str = typer.Option("0,8,16,20,23", "--media-cuts",
                                   help="Diagnostic: layers before which all media is dropped ('' for none)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write one JSONL row per (question, run)."),
    write_clips: Optional[Path] = typer.Option(None, "--write-clips", help="Only write the clips (.mp4) and "
                                               "questions.jsonl (batch rows with the gold answer) to this folder."),
    device: str = DeviceOpt, dtype: str = DtypeOpt,
    seed: int = typer.Option(0, "--run-seed", help="Seed of the random choices of the methods (Random, audio cuts)."),
    json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Ask every held-out question under `full`, each method at each TRR and the media-cut diagnostics; print the
    accuracy per question kind (and the mean FLOPs reduction) of each run."""
    from seats_cli import evaluate as ev
    from seats_cli.request import RequestOptions, check_ratio

    if benchmark != "synthetic":
        raise UsageProblem(f"--benchmark {benchmark!r} is not one of: synthetic")
    if n < 1:
        raise UsageProblem("--n must be at least 1")
    items = ev.synthetic_items(bench_seed, n)
    if write_clips is not None:
        path = ev.write_benchmark(items, write_clips)
        stdout.print(f"wrote {len(items)} clips and {path}")
        return
    trrs = list(trr) if trr else list(ev.TRRS)
    for r in trrs:
        check_ratio("trr", r)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for m in names:
        RequestOptions(method=m)  # validated below against the preset
    cuts = [int(x) for x in media_cuts.split(",") if x.strip()]
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
    sink = open(out, "w", encoding="utf-8") if out else None
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
    summary = ev.summarize(rows)
    if json_out:
        print_json({"benchmark": benchmark, "model": model, "config": cfg.name, "bench_seed": bench_seed,
                    "n_per_kind": n, "summary": summary})
        return
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    t = Table(title=f"{benchmark} benchmark · {model} · {n} held-out questions per kind (seeds from {bench_seed})")
    for col in ("run", *kinds, "all", "FLOPs reduction", "errors"):
        t.add_column(col, justify="right")
    failed = {}
    for r in rows:
        if "error" in r:
            label = ev.Run(r["method"], r["trr"]).label
            failed[label] = failed.get(label, 0) + 1
    for run in runs:
        s = summary[run.label]
        red = s["flops_reduction"]
        t.add_row(run.label, *(f"{s.get(k, 0):.2f}" for k in kinds), f"{s['all']:.2f}",
                  f"{red:.2f}x" if red else "-", str(failed.get(run.label, 0)))
    stdout.print(t)
    errors = sum(1 for r in rows if "error" in r)
    if errors:
        stdout.print(f"[yellow]note:[/yellow] {errors} runs failed (rows with 'error')")
