"""Stop a foreground command cleanly on SIGTERM and SIGHUP, as on Ctrl-C.

``kill PID``, ``timeout``, systemd and a closed terminal send SIGTERM or SIGHUP, whose
default action ends the process at once: no ``finally``, no ``atexit``, so nothing it
started is stopped. :func:`stop_on_signals` turns them into :class:`StopRequested`
(raised in the main thread, like KeyboardInterrupt), so the command's cleanup runs.
A second signal during that cleanup is ignored rather than cutting it short. (If the
process is killed outright, its children still go: see producer/devstack_process.py.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["STOP_SIGNALS", "StopRequested", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """A stop signal arrived; a BaseException so that ``except Exception`` lets it pass."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`StopRequested` (once)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    raised = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if raised:
            return
        raised = True
        raise StopRequested(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
