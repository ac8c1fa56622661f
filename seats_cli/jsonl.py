"""JSONL lines of a decoded text as every reader here splits them: at "\n" only (results files, checkpoints and
benchmark annotations through ``lines``; the byte-level readers — batch input rows, a resumed output's repair —
split their bytes at b"\n" the same way)."""

from __future__ import annotations


def lines(text: str) -> list[str]:
    """The lines of JSONL ``text``: split at "\\n" only (a "\\r" before it dropped, a UTF-8 BOM at the start too).

    ``str.splitlines()`` also splits at U+2028, U+2029, U+0085 and other characters that a JSON string may hold
    raw — and our own outputs write them raw (``ensure_ascii=False``) — so a row holding one came back as two
    broken halves: re-run on every --resume, missing from --merge, "not JSON" in eval report."""
    out = text.removeprefix("\ufeff").split("\n")
    if out and out[-1] == "":
        out.pop()
    return [line[:-1] if line.endswith("\r") else line for line in out]
