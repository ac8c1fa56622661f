"""A results file of `seats batch` / `seats eval` (JSONL, one line per row) as a later run reads and tidies it:
which rows it already answers, which error lines a resumed run's retries replaced, and a torn last line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from seats_cli import jsonl


def completed_ids(path: str | os.PathLike) -> set[str]:
    """Keys (see ``BatchRow.key``) of the ids with a successful line (an answer, no "error" key) in an output
    file; a line that is not a result (an input row, say) answers nothing."""
    done = set()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return done
    for line in jsonl.lines(text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (isinstance(obj, dict) and obj.get("id") is not None and "answer" in obj and "error" not in obj):
            done.add(json.dumps(obj["id"], ensure_ascii=False))
    return done


def line_key(obj: dict):
    """Which input row an output line answers: its id (as ``BatchRow.key``), or — for a row without a usable id —
    its line number."""
    rid = obj.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool) or isinstance(rid, str) and rid.strip():
        return json.dumps(rid, ensure_ascii=False)
    return ("line", obj.get("line"))


def drop_superseded_errors(path: str | os.PathLike, key_of: Callable[[dict], Any] = line_key) -> int:
    """After a resumed run has appended its retries: remove each error line (an "error" key) whose row
    has a later line in the file, so that each row keeps one line. Only what the run superseded goes (an
    interrupted or failed run leaves the rest as it was); other lines stay, in order. Returns how many went."""
    p = Path(path)
    if not p.is_file():
        return 0
    with open(p, "rb") as f:
        data = f.read()
        raws = data.split(b"\n")
        objs = []
        for raw in raws:
            try:
                obj = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                obj = None
            objs.append(obj if isinstance(obj, dict) else None)
        last = {}
        for n, obj in enumerate(objs):
            if obj is not None:
                last[_hashable(key_of(obj))] = n
        keep = [raw for n, (raw, obj) in enumerate(zip(raws, objs))
                if obj is None or "error" not in obj or last[_hashable(key_of(obj))] == n]
    dropped = len(raws) - len(keep)
    if dropped:  # a new file renamed over the old one: a stop midway leaves one or the other, never a mix
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(b"\n".join(keep))
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
    return dropped


def _hashable(key):
    try:
        hash(key)
        return key
    except TypeError:
        return repr(key)


def repair_tail(path: str | os.PathLike) -> str | None:
    """Before appending: drop a torn last line (a crash mid-write), or end a complete one with a newline.

    Returns a note for the user when something was changed."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    with open(p, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return None
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            f.truncate(start)
            lineno = data.count(b"\n") + 1
            return f"{p}: dropped an incomplete last line (line {lineno})"
        f.write(b"\n")
    return None
