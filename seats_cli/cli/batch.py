"""`seats batch`: JSONL in, JSONL out, the model loaded once."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)
from rich.text import Text

from seats_cli import results_file
from seats_cli.cli.common import (
    AttnOpt, AudioTrrOpt, ConfigOpt, DecodeModeOpt, DeviceMapOpt, DeviceOpt, DtypeOpt, FpsOpt, FrameSizingOpt,
    KvOpt, LocalOnlyOpt, LongContextOpt, MaxFramesOpt, MaxNewOpt, MethodOpt, ModelOpt, ProcessorFpsOpt, QuietOpt,
    RatioModeOpt, RevisionOpt, SaliencySpanOpt, ScoreLayerOpt, SeedOpt, TrrOpt, UsageProblem, VideoTrrOpt, app,
    check_load_options, check_request_options, check_writable, fail, guarded, open_output, quiet_libraries,
    show_progress, status, stderr,
)
from seats_cli.stopping import stop_after_current_row

SIGPIPE_EXIT = 141  # what a shell reports for a process killed by SIGPIPE (`seats batch ... | head -1`)


SHORT = "Answer JSONL rows of questions, loading the model once."


@app.command(short_help=SHORT)
@guarded
def batch(
    source: Optional[str] = typer.Argument(
        None, metavar="FILE|-", show_default=False,
        help="JSONL rows: {\"id\", \"video\", \"question\", ...per-row overrides}; '-' or none: stdin."),
    out: str = typer.Option("-", "--out", "-o", help="Write the JSONL results to this file ('-': stdout)."),
    resume: bool = typer.Option(
        False, "--resume", help="With --out FILE: skip rows whose id already has a successful line there; "
                                "append the others (failed rows' lines are removed and the rows retried: one line "
                                "per row)."),
    model: str = ModelOpt, config: Optional[str] = ConfigOpt, method: str = MethodOpt,
    trr: Optional[float] = TrrOpt, video_trr: Optional[float] = VideoTrrOpt, audio_trr: Optional[float] = AudioTrrOpt,
    device: str = DeviceOpt, device_map: Optional[str] = DeviceMapOpt, dtype: str = DtypeOpt,
    attn_implementation: str = AttnOpt, decode_mode: str = DecodeModeOpt,
    fps: Optional[float] = FpsOpt, max_frames: Optional[int] = MaxFramesOpt, max_new_tokens: Optional[int] = MaxNewOpt,
    seed: int = SeedOpt, kv_policy: Optional[str] = KvOpt, score_layer: Optional[str] = ScoreLayerOpt,
    ratio_mode: Optional[str] = RatioModeOpt, saliency_span: Optional[str] = SaliencySpanOpt,
    frame_sizing: Optional[str] = FrameSizingOpt, processor_fps: Optional[str] = ProcessorFpsOpt,
    allow_long_context: bool = LongContextOpt,
    revision: Optional[str] = RevisionOpt, local_files_only: bool = LocalOnlyOpt, quiet: bool = QuietOpt,
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: only rows i with i % N == I (0-based input "
                                        "order), for N processes or machines; put the outputs back with --merge."),
    merge: Optional[list[Path]] = typer.Option(None, "--merge", help="Shards' output files: write one line per input "
                                               "row, in input order, to --out (no model is loaded)."),
    backend: str = typer.Option("local", "--backend", metavar="[local|ray]", help="local: this process; ray: a pool "
                                "of Ray actors, one model load each (pip install 'seats_cli[distributed]')."),
    workers: int = typer.Option(1, "--workers", help="--backend ray: actors in the pool."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="--backend ray: GPUs per actor (e.g. 1)."),
    address: Optional[str] = typer.Option(None, "--address", help="--backend ray: 'auto' or 'ray://host:port' "
                                          "(default: a local cluster started on demand)."),
    prefetch: bool = typer.Option(True, "--prefetch/--no-prefetch", help="--backend local: decode the next "
                                  "row's file in a background thread while the model answers the current row."),
) -> None:
    """Answer many questions about videos from JSONL rows, loading the model once.

    Rows: {"id", "video", "question"} plus optional overrides of the options below (null: the default).

    Per-row overrides: trr, method, max_new_tokens, video_trr, audio_trr, fps, max_frames, seed, kv_policy, score_layer,
    ratio_mode, saliency_span, frame_sizing, processor_fps, allow_long_context.

    Blank lines are skipped. Relative video paths resolve against the JSONL file's folder (stdin: the cwd).

    Out: one line per row, in input order, as soon as it is done: {"id", ...`ask --json`} or {"id", "line", "error"}.

    Exit 0: all answered; 1: some row failed; 2: bad input or options (duplicate ids ...: nothing is run).

    Ctrl-C (or SIGTERM) stops after the current row (twice: at once), keeps what is written, and exits 130 (143).

    Sharding: `--shard I/N --out out.I.jsonl` on each of N workers, then `seats batch rows.jsonl --merge out.0.jsonl
    --merge out.1.jsonl ... --out out.jsonl` (rows need ids).
    """
    from seats_cli import api
    from seats_cli import batch as runner
    from seats_cli.config import resolve_config

    if backend not in ("local", "ray"):
        raise UsageProblem(f"--backend {backend!r} is not one of: local, ray")
    if backend == "ray":
        from seats_cli.distributed import RayMissing, require_ray

        try:
            require_ray()
        except RayMissing as e:
            raise UsageProblem(str(e)) from None
        if workers < 1:
            raise UsageProblem("--workers must be at least 1")
        if gpus_per_worker < 0:
            raise UsageProblem("--gpus-per-worker must be >= 0")
    elif (workers, gpus_per_worker, address) != (1, 0.0, None):
        raise UsageProblem("--workers, --gpus-per-worker and --address are for --backend ray")

    if source is None and _isatty(sys.stdin):
        raise UsageProblem("no input: give a JSONL FILE, or pipe rows to stdin ('-')")
    to_file = out != "-"
    if resume and not to_file:
        raise UsageProblem("--resume needs --out FILE (the results file of the earlier run)")
    if to_file:
        check_writable(Path(out))
        if source not in (None, "-") and Path(source).exists() and Path(out).exists() \
                and os.path.samefile(out, source):  # the same file under any name (links, case)
            raise UsageProblem(f"--out {out} is the input file: the answers would overwrite the questions")
    rows = runner.check_unique_ids(runner.read_jsonl(source or "-"))
    if not rows and not quiet:
        _say(f"note: {'stdin' if source in (None, '-') else source} has no rows: nothing to answer")
    ignored = sorted({key for row in rows for key in row.ignored})
    if ignored and not quiet:  # metadata rides along untouched; a misspelt option would silently not apply
        _say(f"note: keys that are not batch fields or options are ignored: {', '.join(ignored)} (options: "
             f"{', '.join(runner.ROW_OPTIONS)})")
    if (shard or merge) and any(row.key is None for row in rows):
        bad = next(row for row in rows if row.key is None)
        raise UsageProblem(f"--shard/--merge need an id on every row (line {bad.line} has none)")
    if merge:
        if shard or resume:
            raise UsageProblem("--merge writes the merged output; it takes no --shard or --resume")
        for path in merge:
            if not path.is_file():
                raise UsageProblem(f"--merge {path}: no such file")
        records = runner.merge_outputs(rows, merge)
        lines = [runner.to_json_line(record) for record in records]
        if to_file:
            with open_output(out, resume=False, newline="\n") as sink:  # locked like a run's output
                sink.write("".join(line + "\n" for line in lines))
        else:
            write = _stdout_writer()
            for line in lines:
                write(line)
        missing = sum(isinstance(r.get("error"), str) and r["error"].startswith("no result") for r in records)
        if missing:
            fail(f"{missing} of {len(rows)} rows have no result in the merged outputs", 1)
        failed = sum("error" in r for r in records)
        if failed:  # as a run with failed rows: every line written, the status says some failed
            fail(f"{failed} of {len(rows)} rows failed in the shards (see the \"error\" field of their lines)", 1)
        return
    if shard:
        from seats_cli.cli.eval import _parse_shard

        rows = runner.shard_rows(rows, _parse_shard(shard))
    todo = rows
    if resume:
        done = results_file.completed_ids(out)
        todo = [row for row in rows if row.key is None or row.key not in done]
        if not quiet and len(todo) < len(rows):
            _say(f"resuming: {len(rows) - len(todo)} of {len(rows)} rows already answered in {out}")

    defaults = dict(method=method, trr=trr, video_trr=video_trr, audio_trr=audio_trr, fps=fps,
                    max_frames=max_frames, max_new_tokens=max_new_tokens, seed=seed, kv_policy=kv_policy,
                    score_layer=score_layer, ratio_mode=ratio_mode, saliency_span=saliency_span,
                    frame_sizing=frame_sizing, processor_fps=processor_fps, allow_long_context=allow_long_context)
    cfg = resolve_config(model, config)
    check_request_options(cfg, defaults)  # bad defaults fail every row: say so once, before loading anything
    check_load_options(device, dtype, attn_implementation, device_map, decode_mode)
    if not todo:
        if to_file and not resume:
            open_output(out, resume=False).close()  # emptied, unless another run is writing it
        return

    quiet_libraries()
    todo = runner.prevalidate(todo, cfg)  # bad options and unreadable files: error rows, before any loading
    bar = show_progress(quiet) and (to_file or not _isatty(sys.stdout))  # on a terminal, the lines are the progress
    answer = _never_called
    load = dict(model=model, config=cfg, device=device, dtype=dtype, attn_implementation=attn_implementation,
                revision=revision, local_files_only=local_files_only, device_map=device_map,
                decode_mode=decode_mode)
    if backend == "ray":
        return _run_ray(todo, out, to_file, resume, quiet, bar, load, defaults, workers, gpus_per_worker, address)
    ahead = seats = None
    sink, write = _open_output(out, to_file, resume, quiet)  # locked before the model loads
    try:
        if any(row.error is None for row in todo):
            try:
                with status(f"loading {model}", bar):
                    seats = api.Seats(model, config=cfg, device=device, dtype=dtype,
                                      attn_implementation=attn_implementation, revision=revision,
                                      local_files_only=local_files_only, device_map=device_map,
                                      decode_mode=decode_mode)
            except Exception as e:  # noqa: BLE001 - no row is lost: each gets its line, then the load error is raised
                _write_unanswered(todo, write, f"not run: the model did not load ({e})")
                raise
            answer, ahead = seats.ask, seats.prefetch if prefetch else None
        with _progress(len(todo), bar) as advance, stop_after_current_row(_say) as should_stop:
            summary = runner.run_batch(todo, answer, write, defaults=defaults, should_stop=should_stop,
                                       on_row_done=advance, prefetch=ahead)
    except BrokenPipeError:
        if to_file:
            raise
        _silence_stdout()  # the reader went away (`| head`): stop quietly, like a SIGPIPE'd tool
        raise typer.Exit(SIGPIPE_EXIT) from None
    finally:
        if seats is not None:  # a decode started for a row never reached stops now
            seats.close()
        _close_output(sink, out, resume, quiet)

    if summary.interrupted:
        hint = f"; rerun with --resume --out {out} to continue" if to_file else ""
        fail(f"interrupted after {summary.written} of {len(todo)} rows{hint}", should_stop.exit_code)
    if summary.failed:
        fail(f"{summary.failed} of {len(todo)} rows failed (see the \"error\" field of their lines)", 1)


def _run_ray(todo, out, to_file, resume, quiet, bar, load, defaults, workers, gpus_per_worker, address) -> None:
    """--backend ray: the same rows, lines and exit codes as local; the pool writes in input order."""
    from seats_cli.distributed import run_ray

    sink, write = _open_output(out, to_file, resume, quiet)
    failed = 0

    def done(record):
        nonlocal failed
        failed += "error" in record
        advance(record)

    try:
        with _progress(len(todo), bar) as advance, stop_after_current_row(_say) as should_stop:
            written = run_ray(todo, write, load=load, defaults=defaults, workers=workers,
                              gpus_per_worker=gpus_per_worker, address=address, on_row_done=done,
                              should_stop=should_stop)
    finally:
        _close_output(sink, out, resume, quiet)
    if written < len(todo):
        hint = f"; rerun with --resume --out {out} to continue" if to_file else ""
        fail(f"interrupted after {written} of {len(todo)} rows{hint}", should_stop.exit_code)
    if failed:
        fail(f"{failed} of {len(todo)} rows failed (see the \"error\" field of their lines)", 1)


def _write_unanswered(rows, write, why: str) -> None:
    """One error line per row when nothing can be answered (the model did not load): a row known to be bad keeps
    its own error, the others say ``why``."""
    from seats_cli import batch as runner

    for row in rows:
        write(runner.to_json_line(runner.error_record(row, row.error or why)))


def _open_output(out, to_file: bool, resume: bool, quiet: bool):
    """(file or None, write_line): --out FILE, locked (appending after a torn last line is repaired, with --resume),
    or stdout."""
    if not to_file:
        return None, _stdout_writer()
    sink = open_output(out, resume=resume, newline="\n")
    note = results_file.repair_tail(out) if resume else None
    if note and not quiet:
        _say(f"note: {note}")
    return sink, _file_writer(sink)


def _close_output(sink, out, resume: bool, quiet: bool, key_of=None) -> None:
    """Close --out; after a resumed run, first remove the error lines its retries superseded (one line per row),
    while the file is still locked. ``key_of``: which row a line answers (batch: its id)."""

    if sink is None:
        return
    try:
        if resume:
            sink.flush()
            try:
                dropped = results_file.drop_superseded_errors(out, key_of or results_file.line_key)
            except OSError as e:  # the results are all there; only the old error lines stay
                dropped = 0
                _say(f"note: {out}: the retried rows' old error lines were kept ({e.strerror or e})")
            if dropped and not quiet:
                _say(f"note: {out}: {dropped} error line{'s' if dropped > 1 else ''} of retried rows removed "
                     f"(one line per row)")
    finally:
        sink.close()


def _say(message: str) -> None:
    """A plain line on stderr (above the progress bar when one is shown)."""
    stderr.print(message, markup=False, highlight=False)


def _never_called(*args, **kwargs):  # every row already carries its error: no model is loaded
    raise AssertionError("no row to answer")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _file_writer(fh):
    def write(line: str) -> None:
        fh.write(line + "\n")
        fh.flush()

    return write


def _stdout_writer():
    """Write UTF-8 lines to stdout whatever the locale, flushing each one (so `head`, `jq`, `tee` see it)."""
    stream = sys.stdout
    buf = getattr(stream, "buffer", None)

    def write(line: str) -> None:
        if buf is None:
            stream.write(line + "\n")
            stream.flush()
            return
        stream.flush()
        buf.write((line + "\n").encode("utf-8"))
        buf.flush()

    return write


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- rows/s" if speed is None else f"{speed:.2f} rows/s", style="progress.data.speed")


@contextmanager
def _progress(total: int, enabled: bool):
    """Yield a per-row callback that advances a rich progress bar on stderr (a no-op when disabled)."""
    if not enabled:
        yield lambda record: None
        return
    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=stderr,
                  redirect_stdout=False, redirect_stderr=False) as progress:
        task = progress.add_task("rows", total=total)

        def advance(record: dict) -> None:
            nonlocal failed
            failed += "error" in record
            progress.update(task, advance=1, description=f"rows ({failed} failed)" if failed else "rows")

        yield advance
