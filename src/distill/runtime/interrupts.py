"""Ctrl-C and SIGTERM during training: finish the step, checkpoint, then stop with a message.

A signal only sets a flag the loop reads between steps, so a checkpoint is never written from
inside a half-done step. A second Ctrl-C stops at once (the last checkpoint stays).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from distill.errors import DistillError


class Interrupted(DistillError):
    """Training stopped on a signal after writing a checkpoint; the run can be resumed."""


@contextmanager
def deferred_interrupts() -> Iterator[Callable[[], str | None]]:
    """Yields `received()`: the name of a signal received since entry, or None."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # signal handlers can only be installed from the main thread
        return

    def handler(number: int, frame: FrameType | None) -> None:
        if received:  # the second one: stop now
            raise KeyboardInterrupt
        received.append(signal.Signals(number).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
