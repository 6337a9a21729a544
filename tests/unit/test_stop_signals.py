"""producer/stop_signals.py: SIGTERM and SIGHUP become StopRequested in the main thread,
once, even when the signal lands inside a finalizer, where Python drops exceptions."""

from __future__ import annotations

import signal
import time

import pytest

from producer.stop_signals import StopRequested, stop_on_signals


def test_a_stop_signal_raises_stop_requested_in_the_block() -> None:
    with pytest.raises(StopRequested) as stop, stop_on_signals():
        signal.raise_signal(signal.SIGTERM)
        time.sleep(2)
    assert stop.value.name == "SIGTERM"


def test_a_second_signal_during_the_cleanup_is_ignored() -> None:
    cleaned = False
    with stop_on_signals():
        try:
            signal.raise_signal(signal.SIGHUP)
            time.sleep(2)
        except StopRequested:
            signal.raise_signal(signal.SIGHUP)
            time.sleep(0.05)  # the second one is handled here, and does nothing
            cleaned = True
    assert cleaned


class _SignalsInItsFinalizer:
    """Sends a stop signal from ``__del__``: its handler then runs inside the finalizer
    (at the next Python call), as when a signal arrives while the garbage collector runs
    redis-py's ``Pipeline.__del__`` (seen in CI: the demo ignored its SIGHUP)."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig

    def __del__(self) -> None:
        signal.raise_signal(self.sig)
        (lambda: None)()  # the handler runs here, and Python drops what it raises


def test_a_stop_signal_that_lands_in_a_finalizer_still_stops_the_block() -> None:
    began = time.monotonic()
    with pytest.raises(StopRequested) as stop, stop_on_signals():
        _SignalsInItsFinalizer(signal.SIGHUP)  # collected at once, in this thread
        time.sleep(5)  # without the stop, the block would run on
    assert stop.value.name == "SIGHUP"
    assert time.monotonic() - began < 2


def test_the_previous_handlers_and_hook_come_back_after_the_block() -> None:
    import sys

    hook = sys.unraisablehook
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    with stop_on_signals():
        pass
    assert {sig: signal.getsignal(sig) for sig in before} == before
    assert sys.unraisablehook is hook
