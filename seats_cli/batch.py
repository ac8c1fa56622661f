"""Batch runner: JSONL rows in, one JSONL line out per row, in input order (no Typer in here).

A row is one JSON object on one line: ``{"id", "video", "question"}`` plus optional per-row overrides of the
request knobs (``ROW_OPTIONS``: ``trr``, ``method``, ``max_new_tokens``, ``video_trr``, ``audio_trr``,
``fps``, ``max_frames``, ``seed``, ``kv_policy``, ``score_layer``, ``ratio_mode``, ``saliency_span``,
``frame_sizing``, ``processor_fps``, ``allow_long_context``; ``null`` means "use the default").
Other keys are ignored, so rows may carry their own metadata (ground truth, tags ...).

- Blank (whitespace-only) lines are skipped; line numbers in error lines count them.
- ``id`` is a non-empty string or an integer and must be unique (checked before any work).
- Relative ``video`` paths resolve against the JSONL file's folder (the current folder for stdin).
- Each row gives ``{"id": ..., **AskResult.to_dict()}`` or ``{"id": ..., "line": n, "error": "..."}``;
  a bad line whose id cannot be read gives ``"id": null``.

>>> from seats_cli import Seats
>>> from seats_cli.batch import read_jsonl, check_unique_ids, run_batch
>>> rows = check_unique_ids(read_jsonl("rows.jsonl"))
>>> s = Seats("tiny")
>>> summary = run_batch(rows, s.ask, print, defaults={"max_new_tokens": 16})
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from seats_cli import jsonl

_NUMBERS = ("trr", "video_trr", "audio_trr", "fps")
_INTEGERS = ("max_frames", "max_new_tokens", "seed")
_TEXTS = ("method", "kv_policy", "score_layer", "ratio_mode", "saliency_span", "frame_sizing", "processor_fps")
_BOOLS = ("allow_long_context",)
ROW_OPTIONS = _NUMBERS + _INTEGERS + _TEXTS + _BOOLS
# keys that look like per-row knobs but are fixed for the whole run (one model is loaded once)
_RUN_ONLY = ("model", "config", "device", "dtype", "attn_implementation", "revision", "decode_mode")


class BatchInputError(ValueError):
    """The batch input as a whole is unusable (unreadable file, duplicate ids): nothing is run."""


@dataclass(frozen=True)
class BatchRow:
    """One non-blank input line. ``error`` is set when the line itself is bad (it is reported, not run)."""

    line: int
    id: str | int | None
    video: str | None = None
    question: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ignored: tuple[str, ...] = ()  # keys of the line that are not fields or options (metadata, or a typo)

    @property
    def key(self) -> str | None:
        """The id as a comparable key (1 and "1" differ), or None when the row has no usable id."""
        return None if self.id is None else json.dumps(self.id, ensure_ascii=False)


@dataclass
class BatchSummary:
    total: int  # rows given to the runner
    written: int = 0  # output lines written (successes and errors)
    failed: int = 0
    interrupted: bool = False


# ----------------------------------------------------------------------------- reading rows

def read_jsonl(source: str | os.PathLike, stdin=None) -> list[BatchRow]:
    """Rows of a JSONL file, or of stdin for ``"-"`` (relative videos then resolve against the cwd)."""
    if str(source) == "-":
        stream = stdin if stdin is not None else sys.stdin
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        return parse_rows(data, base_dir=None)
    path = Path(os.fspath(source))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BatchInputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise BatchInputError(f"{path} is a directory, not a JSONL file") from None
    except OSError as e:
        raise BatchInputError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_rows(data, base_dir=path.parent)


def parse_rows(data: bytes | str | Iterable[str], base_dir: str | os.PathLike | None = None) -> list[BatchRow]:
    """Parse JSONL text; every non-blank line becomes a row (bad lines become rows with ``error`` set)."""
    if isinstance(data, (bytes, str)):
        lines = data.split(b"\n" if isinstance(data, bytes) else "\n")
    else:
        lines = list(data)
    rows = []
    for n, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                rows.append(BatchRow(n, None, error=f"line {n} is not valid UTF-8 (byte {e.start})"))
                continue
        if n == 1:
            raw = raw.lstrip("\ufeff")
        if raw.strip():
            rows.append(parse_row(raw, n, base_dir))
    return rows


def parse_row(text: str, line: int, base_dir: str | os.PathLike | None = None) -> BatchRow:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return BatchRow(line, None, error=f"line {line} is not valid JSON ({e.msg} at column {e.colno})")
    if not isinstance(obj, dict):
        return BatchRow(line, None, error=f"line {line} must be a JSON object, got {_json_type(obj)}")
    if "id" not in obj:
        return BatchRow(line, None, error=f"line {line} has no 'id' field")
    rid = obj["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or (isinstance(rid, str) and not rid.strip()):
        return BatchRow(line, None, error=f"line {line}: 'id' must be a non-empty string or an integer, "
                                          f"got {_short(rid)}")
    problems = []
    for name in ("video", "question"):
        if name not in obj or obj[name] is None:
            problems.append(f"missing field '{name}'")
        elif not isinstance(obj[name], str):
            problems.append(f"'{name}' must be a string, got {_json_type(obj[name])}")
    options = {}
    for name in ROW_OPTIONS:
        value = obj.get(name)
        if value is None:
            continue
        checked, problem = _check_option(name, value)
        if problem:
            problems.append(problem)
        else:
            options[name] = checked
    for name in _RUN_ONLY:
        if name in obj:
            problems.append(f"'{name}' cannot change per row (pass --{name.replace('_', '-')} to the run)")
    if problems:
        return BatchRow(line, rid, error="; ".join(problems))
    ignored = tuple(k for k in obj if k not in ("id", "video", "question", *ROW_OPTIONS, *_RUN_ONLY))
    return BatchRow(line, rid, resolve_video(obj["video"], base_dir), obj["question"], options, ignored=ignored)


def resolve_video(video: str, base_dir: str | os.PathLike | None) -> str:
    """A relative path is taken relative to ``base_dir`` (the JSONL file's folder); ``~`` is expanded."""
    p = Path(video).expanduser()
    if base_dir is None or p.is_absolute() or not video:
        return str(p) if video else video
    return str(Path(base_dir) / p)


def _check_option(name: str, value) -> tuple[Any, str | None]:
    if name in _BOOLS:
        ok = isinstance(value, bool)
        return (value, None) if ok else (None, f"'{name}' must be true or false, got {_short(value)}")
    if name in _TEXTS:
        return (value, None) if isinstance(value, str) else (None, f"'{name}' must be a string, got {_short(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a number" if name in _NUMBERS else "a whole number"
        return None, f"'{name}' must be {kind}, got {_short(value)}"
    if name in _INTEGERS:
        if isinstance(value, float) and not value.is_integer():
            return None, f"'{name}' must be a whole number, got {_short(value)}"
        return int(value), None
    return value, None


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_unique_ids(rows: list[BatchRow]) -> list[BatchRow]:
    """The rows unchanged, or BatchInputError naming every duplicated id and its lines."""
    lines: dict[str, list[int]] = {}
    for row in rows:
        if row.key is not None:
            lines.setdefault(row.key, []).append(row.line)
    dups = [(key, ns) for key, ns in lines.items() if len(ns) > 1]
    if not dups:
        return rows
    if len(dups) == 1:
        key, ns = dups[0]
        raise BatchInputError(f"duplicate id {key} on lines {_join(ns)}")
    raise BatchInputError("duplicate ids: " + ", ".join(f"{key} (lines {_join(ns)})" for key, ns in dups))


def _join(ns: list[int]) -> str:
    return ", ".join(map(str, ns[:-1])) + f" and {ns[-1]}"


# ----------------------------------------------------------------------------- shards

def shard_rows(rows: list[BatchRow], shard: tuple[int, int]) -> list[BatchRow]:
    """Rows ``i`` (0-based, input order) with i % N == I: a deterministic split for Slurm arrays, Kubernetes jobs or
    several machines; ``merge_outputs`` puts the shards' lines back in input order."""
    i, n = shard
    return [row for k, row in enumerate(rows) if k % n == i]


def merge_outputs(rows: list[BatchRow], outputs: list[str | os.PathLike]) -> list[dict]:
    """One record per input row, in input order: the last line for its id in the shards' output files (a resumed
    shard appends retries); a row with no line gets an error record."""
    last: dict[str, dict] = {}
    for path in outputs:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise BatchInputError(f"cannot read {path}: {e.strerror or e}") from None
        for line in jsonl.lines(text):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: that row has no result
            if isinstance(obj, dict) and obj.get("id") is not None:
                last[json.dumps(obj["id"], ensure_ascii=False)] = obj
    return [last.get(row.key) or error_record(row, "no result for this row in the merged outputs") for row in rows]


# ----------------------------------------------------------------------------- running

def prevalidate(rows: Iterable[BatchRow], config) -> list[BatchRow]:
    """Rows with their question and options checked against ``config`` and their video probed, before any model
    is loaded: a row that would fail for any of these carries its error (and is reported, not run)."""
    from seats_cli.media import MediaError, probe_video
    from seats_cli.request import RequestOptions, check_text

    out = []
    for row in rows:
        if row.error is None:
            try:
                check_text(row.question)
                RequestOptions(**row.options).check(config)
                probe_video(row.video)
            except (MediaError, ValueError) as e:
                row = dataclasses.replace(row, error=str(e))
        out.append(row)
    return out


def run_batch(rows: Iterable[BatchRow], answer_fn: Callable[..., Any], write_line: Callable[[str], None], *,
              defaults: dict[str, Any] | None = None, should_stop: Callable[[], bool] | None = None,
              on_row_done: Callable[[dict], None] | None = None,
              prefetch: Callable[..., Any] | None = None) -> BatchSummary:
    """Answer each row with ``answer_fn(video, question, **options)`` (``Seats.ask``-like) and hand one JSON line
    per row, in order, to ``write_line`` as soon as the row is done.

    A row's failure (any ``Exception`` from ``answer_fn``) becomes an error line and the run goes on; errors
    raised by ``write_line`` (a closed pipe, a full disk) propagate. ``should_stop()`` is checked before each
    row; a ``KeyboardInterrupt`` stops the run too (the row in progress is lost). Either way the summary
    says ``interrupted``. ``prefetch(video, **options)`` (``Seats.prefetch``-like), when given, is told the next
    row's file before each row is answered, so that its decoding overlaps this row's work; it must not raise
    (what it raises is ignored: the row's own answer reports any problem)."""
    rows = list(rows)
    summary = BatchSummary(total=len(rows))
    defaults = dict(defaults or {})
    try:
        for i, row in enumerate(rows):
            if should_stop is not None and should_stop():
                summary.interrupted = True
                break
            if prefetch is not None and row.error is None:  # an error row takes no time to overlap
                _prefetch_next(rows, i, prefetch, defaults)
            record = answer_row(row, answer_fn, defaults)
            write_line(to_json_line(record))
            summary.written += 1
            summary.failed += "error" in record
            if on_row_done is not None:
                on_row_done(record)
    except KeyboardInterrupt:
        summary.interrupted = True
    return summary


_MEDIA_OPTIONS = ("fps", "max_frames", "frame_sizing", "processor_fps")  # what decides how a file is decoded


def _prefetch_next(rows: list[BatchRow], i: int, prefetch: Callable[..., Any], defaults: dict[str, Any]) -> None:
    """Hand the next answerable row's file to ``prefetch`` unless row ``i`` decodes it the same way (then the next
    row reuses row ``i``'s media without decoding)."""
    nxt = next((r for r in rows[i + 1:] if r.error is None), None)
    if nxt is None:
        return
    options = {**defaults, **nxt.options}
    current = {**defaults, **rows[i].options}
    if nxt.video == rows[i].video and all(options.get(k) == current.get(k) for k in _MEDIA_OPTIONS):
        return
    try:
        prefetch(nxt.video, **options)
    except Exception:  # noqa: BLE001 - a prefetch is only a head start
        pass


def answer_row(row: BatchRow, answer_fn: Callable[..., Any], defaults: dict[str, Any]) -> dict:
    if row.error is not None:
        return error_record(row, row.error)
    try:
        result = answer_fn(row.video, row.question, **{**defaults, **row.options})
    except Exception as e:  # noqa: BLE001 - one bad row never stops the run
        return error_record(row, str(e) or type(e).__name__)
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return {"id": row.id, **data}


def error_record(row: BatchRow, message: str) -> dict:
    return {"id": row.id, "line": row.line, "error": " ".join(str(message).split()) or "failed"}


def to_json_line(record: dict) -> str:
    """One line of JSON (UTF-8 text, no raw newlines); non-finite floats become null."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(record), ensure_ascii=False, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
