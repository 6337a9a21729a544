"""Per-operation counters for tests and benchmarks (``GET /_sim/stats``)."""

from __future__ import annotations

import threading
from collections import Counter

#: Counters that ``GET /_sim/stats`` always shows (0 until something happens).
KNOWN_COUNTERS: tuple[str, ...] = (
    "assistant_created",
    "assistant_retrieved",
    "assistant_deleted",
    "assistant_listed",
    "thread_created",
    "thread_retrieved",
    "thread_deleted",
    "message_created",
    "message_retrieved",
    "message_listed",
    "run_created",
    "run_retrieved",
    "run_listed",
    "run_cancelled",
    "tool_outputs_submitted",
    "response_created",
    "response_retrieved",
    "response_cancelled",
    "response_deleted",
    "response_input_items_listed",
    "file_uploaded",
    "file_retrieved",
    "file_deleted",
    "file_listed",
)


class Stats:
    """Thread-safe named counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every known counter plus any other that was counted, sorted by name."""
        with self._lock:
            counts = dict.fromkeys(KNOWN_COUNTERS, 0)
            counts.update(self._counts)
        return dict(sorted(counts.items()))

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
