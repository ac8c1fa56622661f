"""Decoding video files ahead of the requests about them, in one background thread.

``Seats.prefetch`` starts one (``seats batch``: the next row's file while the model answers the current row;
``seats eval``: the next video while the current one's questions run), and ``seats ask`` starts its file's decode
before the model loads onto a GPU, so that loading and decoding overlap (on a CPU they would share the cores, and
measured slower together: benchmarks/RESULTS.md). A request about a prefetched file then waits only for
what is left of its decode. Keys are (path, frame policy, (mtime_ns, size)): a file changed since is decoded again.
PyAV releases the GIL while it decodes. decode_video sets (and restores) torch's thread count for its resize in
the worker; torch keeps part of that setting process-wide, so a decode under way may change how many threads the
main thread's first CPU operations get (nothing changes on the GPU). A stopped decode ends at its next decoded
frame; a long clip's packet listing (the sparse path) runs to its end first.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from seats_cli.frames import FramePolicy
from seats_cli.media import decode_video

Key = tuple  # (path, FramePolicy, (mtime_ns, size))


class Stopped(Exception):
    """Raised inside a decode that was stopped (decode_video reports it as a MediaError; nobody reads it)."""

    def __str__(self) -> str:
        return "the prefetched decode was stopped"


@dataclass
class Pending:
    """One decode under way: its future, and the flag that stops it at its next frame."""

    future: object
    flag: threading.Event

    @classmethod
    def start(cls, pool, path: str, policy: FramePolicy) -> "Pending":
        flag = threading.Event()

        def progress(done: int, total: int) -> None:
            if flag.is_set():
                raise Stopped()

        return cls(pool.submit(decode_video, path, policy, progress), flag)

    def stop(self) -> None:
        self.flag.set()
        self.future.cancel()  # not started: never runs


def file_key(path: str | os.PathLike, policy: FramePolicy) -> Key | None:
    """The key of ``path`` decoded with ``policy``; None when the file cannot be read (its decode will say why)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, policy, (st.st_mtime_ns, st.st_size))


class Prefetcher:
    """Decodes started and not yet taken, at most ``AHEAD`` (each holds one decoded request; the oldest is stopped
    and dropped), run one at a time by a thread started on the first use."""

    AHEAD = 2

    def __init__(self):
        self._pending: dict[Key, Pending] = {}
        self._pool = None

    def start(self, path: str | os.PathLike, policy: FramePolicy) -> bool:
        """Start decoding ``path`` with ``policy``; False when the file cannot be read or is already under way."""
        key = file_key(path, policy)
        if key is None or key in self._pending:
            return False
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seats-prefetch")
        self._pending[key] = Pending.start(self._pool, key[0], policy)
        while len(self._pending) > self.AHEAD:
            self._pending.pop(next(iter(self._pending))).stop()
        return True

    def take(self, key: Key | None) -> Pending | None:
        """The decode started for ``key``, handed over (no longer counted as waiting), or None."""
        return None if key is None else self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Stop every decode (a running one at its next frame) and let the thread end; a later start makes a new
        one."""
        for pending in self._pending.values():
            pending.stop()
        self._pending = {}
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
