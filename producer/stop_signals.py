"""Stop a foreground command cleanly on SIGTERM and SIGHUP, as on Ctrl-C.

``kill PID``, ``timeout``, systemd and a closed terminal send SIGTERM or SIGHUP, whose
default action ends the process at once: no ``finally``, no ``atexit``, so nothing it
started is stopped. :func:`stop_on_signals` turns them into :class:`StopRequested`
(raised in the main thread, like KeyboardInterrupt), so the command's cleanup runs.
A second signal during that cleanup is ignored rather than cutting it short. (If the
process is killed outright, its children still go: see producer/devstack_process.py.)

A handler runs wherever the main thread is, a finalizer included (the garbage collector
running redis-py's ``Pipeline.__del__``, say), and Python prints and drops an exception
raised there: the demo then ran on after its SIGHUP. Such a dropped StopRequested is
caught by ``sys.unraisablehook`` and its signal delivered again, from another thread, so
that the handler runs once the finalizer is done.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

REDELIVERY_DELAY = 0.01  # seconds: the finalizer that dropped the stop has returned by then

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
    active = True
    redeliveries: list[threading.Timer] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if raised or not active:
            return
        raised = True
        raise StopRequested(signum)

    def redeliver(signum: int) -> None:
        if active:  # the block may have ended meanwhile: then the stop has no job left
            os.kill(os.getpid(), signum)

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        nonlocal raised
        if isinstance(info.exc_value, StopRequested) and active:
            raised = False  # nothing saw it: the next delivery raises again
            timer = threading.Timer(REDELIVERY_DELAY, redeliver, (info.exc_value.signum,))
            timer.daemon = True
            redeliveries.append(timer)
            timer.start()
            return
        previous_hook(info)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        active = False  # from here the handler ignores stop signals
        for timer in redeliveries:  # one in flight lands on that handler, not the default
            timer.cancel()
            timer.join()
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)
