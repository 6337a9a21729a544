"""One beat thread in the worker's main process: small periodic jobs that keep things alive.

Modules register a beat with :func:`add_beat`; ``worker/app.py`` starts the thread when the
worker is ready (Celery's ``worker_ready`` signal, sent in the main process with the
consumer as sender) and stops it at shutdown. The thread lives in the main process on
every pool (prefork, threads, gevent), because that process holds the broker connection
and the unacknowledged messages. A beat that raises is logged and tried again at its next
interval; it never stops the thread or the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("celery_agents")

BeatFn = Callable[[Any], object]  # called with the worker's consumer; its result is unused


@dataclass
class Beat:
    name: str
    interval: float
    fn: BeatFn
    next_due: float = 0.0
    failures: int = field(default=0)


_beats: dict[str, Beat] = {}
_lock = threading.Lock()
_stop = threading.Event()
_thread: threading.Thread | None = None


def add_beat(name: str, interval_seconds: float, fn: BeatFn) -> None:
    """Run ``fn(consumer)`` every ``interval_seconds`` in the worker's main process.

    Registering the same name again replaces the earlier beat (module reloads in tests).
    """
    if interval_seconds <= 0:
        raise ValueError(f"beat {name!r}: interval must be > 0, got {interval_seconds}")
    with _lock:
        _beats[name] = Beat(name, interval_seconds, fn)


def registered() -> list[str]:
    with _lock:
        return sorted(_beats)


def run_due(consumer: Any, now: float | None = None) -> float:
    """Run every beat that is due; returns the seconds until the next one is due."""
    now = time.monotonic() if now is None else now
    with _lock:
        beats = list(_beats.values())
    for beat in beats:
        if beat.next_due > now:
            continue
        try:
            beat.fn(consumer)
            beat.failures = 0
        except Exception as exc:  # a beat must never take the worker down
            beat.failures += 1
            # The first failure of a streak is worth a warning; a Redis outage would
            # otherwise log once per beat per second.
            log = logger.warning if beat.failures == 1 else logger.debug
            log("beat %s failed (%d in a row): %s: %s", beat.name, beat.failures,
                type(exc).__name__, exc)
        beat.next_due = now + beat.interval
    if not beats:
        return 1.0
    return max(0.01, min(b.next_due for b in beats) - time.monotonic())


def start(consumer: Any) -> None:
    """Start the beat thread (once per process)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()

    def loop() -> None:
        while not _stop.is_set():
            _stop.wait(run_due(consumer))

    _thread = threading.Thread(target=loop, name="celery-agents-beat", daemon=True)
    _thread.start()


def stop(timeout: float = 2.0) -> None:
    """Stop the beat thread; beats that hold state may still run their own cleanup."""
    global _thread
    _stop.set()
    if _thread is not None:
        _thread.join(timeout)
    _thread = None
