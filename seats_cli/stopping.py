"""Stopping a long run between rows: the first Ctrl-C or SIGTERM asks it to stop after the row in progress (batch,
eval, analyze)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator


class StopRequest:
    """``should_stop()``: true once a stop was asked for; ``signum``: the signal that asked (SIGINT or SIGTERM)."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def stop_after_current_row(notify: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """Yield ``should_stop``: the first Ctrl-C (SIGINT) or SIGTERM (a scheduler's stop, `kill`) asks the run to
    stop after the row in progress; a second one raises ``KeyboardInterrupt`` at once. Outside the main thread
    the signals keep their usual meaning."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signum is not None:
            raise KeyboardInterrupt
        stop.signum = signum
        if notify is not None:
            try:
                again = "press Ctrl-C again" if signum == signal.SIGINT else "signal again"
                notify(f"stopping after the current row ({again} to stop now)")
            except Exception:  # noqa: BLE001 - never fail inside a signal handler
                pass

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
