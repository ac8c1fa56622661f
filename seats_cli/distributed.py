"""`seats batch --backend ray`: the same rows answered by a pool of Ray actors, each loading the model once.

The driver reads and validates the rows (so ids keep their JSON types and bad rows never reach a worker), hands
each row to Ray Data as its JSON text, and writes one output line per input row, in input order, as results come
back (``preserve_order``). A worker answers a row exactly as ``--backend local`` does (``batch.answer_row``: a failing
row becomes an error line); a worker that dies is restarted by Ray and its rows are run again, so no row is lost or
written twice. Ray is the optional extra ``seats-cli[distributed]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

INSTALL = 'pip install "seats-cli[distributed]"  (from a checkout: pip install -e ".[distributed]")'


class RayMissing(ImportError):
    pass


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(f"--backend ray needs Ray Data: {INSTALL}") from None
    return ray


class RowAnswerer:
    """One Ray actor: loads the model once, then answers rows (``batch.answer_row``) as JSON lines."""

    def __init__(self, load: dict, defaults: dict, fail_once: str | None = None):
        self.seats, self.load_error = _load(load)
        self.defaults = defaults
        self.fail_once = fail_once  # tests: a marker path; the first worker to see row id "kill" dies once

    def __call__(self, batch: dict) -> dict:

        from seats_cli import batch as runner

        lines = []
        for text in batch["row"]:
            row = runner.BatchRow(**json.loads(text))
            if self.load_error is not None:  # as --backend local: the row's line says why it was not run
                record = runner.error_record(row, f"not run: the model did not load ({self.load_error})")
                lines.append(runner.to_json_line({**record, LOAD_ERROR: self.load_error}))
                continue
            if self.fail_once and row.id == "kill" and not os.path.exists(self.fail_once):
                open(self.fail_once, "w").close()
                os._exit(1)  # a worker lost mid-run (a preempted node, an OOM kill)
            lines.append(runner.to_json_line(runner.answer_row(row, self.seats.ask, self.defaults)))
        return {"line": lines}


LOAD_ERROR = "_load_error"  # a worker's model did not load: the driver raises it after writing every row


def _load(load: dict):
    """(Seats, None), or (None, the one-line reason) when the model does not load: an actor whose constructor
    raised made Ray print its traceback (on stdout too) and restart it, and the rows got Ray's wrapped message."""
    from seats_cli.api import Seats

    try:
        return Seats(**load), None
    except Exception as e:  # noqa: BLE001 - reported by the driver as the local backend reports it
        return None, " ".join(str(e).split()) or type(e).__name__


def _plain(message: str) -> str:
    """Ray's error text as one plain line: no terminal colour codes, no line breaks."""
    import re

    return " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message).split())


def _start(address: str | None, workers: int):
    import logging

    ray = require_ray()
    logging.getLogger("ray").setLevel(logging.ERROR)  # results on stdout, a progress bar on stderr: no Ray chatter
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # Ray Data sets its own level (INFO per execution)
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        if address:
            ray.init(address=address, **kwargs)
        else:  # one logical CPU per actor plus one for Ray Data's own read/split tasks (no deadlock on 2 cores)
            ray.init(num_cpus=workers + 1, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    _reclaim_signals()
    return ray


def _reclaim_signals() -> None:
    """Ray's core worker installs its own SIGTERM handler in the driver (a native stack dump, exit 134): put back
    the Python handlers in force (``stopping.stop_after_current_row``'s: stop after the current row)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:
            signal.signal(sig, handler)


def _pool(items: list[dict], actor, kwargs: dict, *, workers: int, gpus_per_worker: float, address: str | None):
    """The actor pool's outputs for ``items`` (one Ray block each, so work spreads and a lost one is retried
    alone), in input order."""
    ray = _start(address, workers)
    ds = ray.data.from_items(items).repartition(len(items))
    out = ds.map_batches(actor, fn_constructor_kwargs=kwargs, batch_size=1,
                         compute=ray.data.ActorPoolStrategy(size=workers), num_gpus=gpus_per_worker or None,
                         num_cpus=1)  # Ray Data restarts a dead actor and retries its rows by default
    return iter(out.iter_rows())


def run_ray(rows, write_line: Callable[[str], None], *, load: dict, defaults: dict, workers: int = 1,
            gpus_per_worker: float = 0.0, address: str | None = None, on_row_done=None,
            fail_once: str | None = None, should_stop=lambda: False) -> int:
    """Answer ``rows`` (validated ``BatchRow``s; rows already carrying an error are written by the driver) on a
    Ray cluster (``address``: "auto", "ray://...", or None for a local one started here) with ``workers`` actors of
    ``gpus_per_worker`` GPUs each; returns the number of lines written."""
    from seats_cli import batch as runner

    rows = list(rows)
    todo = [r for r in rows if r.error is None]
    it = iter(())
    if todo:
        it = _pool([{"row": json.dumps(dataclasses.asdict(r))} for r in todo], RowAnswerer,
                   dict(load=load, defaults=defaults, fail_once=fail_once), workers=workers,
                   gpus_per_worker=gpus_per_worker, address=address)
    written = 0
    broken = None  # the pool's failure (a cluster that went away): every row left gets it as its error
    load_error = None
    for row in rows:  # input order: error rows from the driver, answers from the pool (in order)
        if should_stop():  # Ctrl-C / SIGTERM: the rows written so far stay, --resume runs the rest
            break
        if row.error is not None:
            line = runner.to_json_line(runner.error_record(row, row.error))
        elif broken is not None:
            line = runner.to_json_line(runner.error_record(row, f"not run: {broken}"))
        else:
            try:
                line = next(it)["line"]
            except Exception as e:  # noqa: BLE001 - no row is lost: this one and the rest get the pool's error
                broken = _plain(str(e))[:300] or type(e).__name__
                line = runner.to_json_line(runner.error_record(row, f"not run: {broken}"))
        record = json.loads(line)
        if LOAD_ERROR in record:
            load_error = record.pop(LOAD_ERROR)
            line = runner.to_json_line(record)
        write_line(line)
        written += 1
        if on_row_done is not None:
            on_row_done(record)
    if load_error is not None:  # as --backend local: every row has its line, then the load error
        from seats_cli.models import ModelLoadError

        raise ModelLoadError(load_error)
    return written


class VideoAnswerer:
    """One Ray actor for `seats eval`: loads the model once; each work item is one video's questions, asked under
    every run as `--backend local` does (``evaluate.run_benchmark``: the video decoded and encoded once)."""

    def __init__(self, load: dict, runs, settings, root, skip):
        self.seats, self.load_error = _load(load)
        self.runs, self.settings, self.root, self.skip = runs, settings, root, skip

    def __call__(self, batch: dict) -> dict:
        import pickle

        from seats_cli.evaluate import run_benchmark

        out = []
        for blob in batch["questions"]:
            if self.load_error is not None:
                out.append(json.dumps({LOAD_ERROR: self.load_error}))
                continue
            rows: list[dict] = []
            run_benchmark(self.seats, pickle.loads(blob), self.runs, self.settings, root=self.root, skip=self.skip,
                          write=rows.append)
            out.append(json.dumps(rows))
        return {"rows": out}


def run_eval_ray(questions, runs, settings, *, root, skip, write, load: dict, workers: int = 1,
                 gpus_per_worker: float = 0.0, address: str | None = None, on_row=None,
                 should_stop=lambda: False) -> int:
    """`seats eval --backend ray`: one work item per video (its questions x runs), rows written in the order
    `--backend local` writes them."""
    import pickle

    from seats_cli.evaluate import by_video

    groups: dict = {}
    for q in by_video(questions):
        groups.setdefault(q.video, []).append(q)
    items = [{"questions": pickle.dumps(qs)} for qs in groups.values()]
    written = 0
    if not items:
        return written
    for result in _pool(items, VideoAnswerer, dict(load=load, runs=runs, settings=settings, root=root, skip=skip),
                        workers=workers, gpus_per_worker=gpus_per_worker, address=address):
        rows = json.loads(result["rows"])
        if isinstance(rows, dict) and LOAD_ERROR in rows:  # as --backend local: the load error, no rows
            from seats_cli.models import ModelLoadError

            raise ModelLoadError(rows[LOAD_ERROR])
        for row in rows:
            write(row)
            written += 1
            if on_row is not None:
                on_row(row)
        if should_stop():  # Ctrl-C / SIGTERM: after this video's rows; --resume runs the rest
            break
    return written
