"""Mutable simulator state shared by all handler threads (each part thread-safe)."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any

from simulator.faults import Faults
from simulator.files import FileStore
from simulator.lifecycle import RunSettings
from simulator.script import ScriptStore
from simulator.stats import Stats
from simulator.streaming import StreamSettings

DEFAULT_MAX_REQUESTS_PER_MODEL = 500
DEFAULT_MAX_MODELS = 1000


class RequestRecorder:
    """The last ``max_per_model`` request bodies per model, oldest first, each tagged with
    a ``kind``: ``chat.completions``, ``runs.create``, ``runs.submit_tool_outputs`` or
    ``responses.create``.

    At most ``max_models`` models are remembered; the least recently used is dropped.
    """

    def __init__(
        self,
        max_per_model: int = DEFAULT_MAX_REQUESTS_PER_MODEL,
        max_models: int = DEFAULT_MAX_MODELS,
    ) -> None:
        self._lock = threading.Lock()
        self._max_per_model = max_per_model
        self._max_models = max_models
        self._by_model: OrderedDict[str, deque[tuple[str, Any]]] = OrderedDict()

    def record(self, model: str, body: Any, kind: str = "chat.completions") -> None:
        with self._lock:
            bodies = self._by_model.get(model)
            if bodies is None:
                bodies = deque(maxlen=self._max_per_model)
                self._by_model[model] = bodies
                while len(self._by_model) > self._max_models:
                    self._by_model.popitem(last=False)
            else:
                self._by_model.move_to_end(model)
            bodies.append((kind, body))

    def get(self, model: str, kind: str | None = None) -> list[Any]:
        """``model``'s recorded bodies, oldest first; only those of ``kind`` if given."""
        with self._lock:
            entries = list(self._by_model.get(model, ()))
        return [body for entry_kind, body in entries if kind is None or entry_kind == kind]

    def clear(self, model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._by_model.clear()
            else:
                self._by_model.pop(model, None)


class SimState:
    """Configuration and stores of one simulator instance."""

    def __init__(self, latency_ms: float = 0.0, api_key: str | None = None) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        self.api_key = api_key
        self.scripts = ScriptStore()
        self.recorder = RequestRecorder()
        self.faults = Faults()  # injected errors, 429s, slow replies, dropped connections
        self.stats = Stats()  # per-operation counters (GET /_sim/stats)
        self.files = FileStore()  # uploads of /v1/files
        self.run_settings = RunSettings()  # run_duration_ms and expires_after_s of runs
        self.streaming = StreamSettings()  # chunking and faults of stream=true (POST /_sim/stream)
        self._initial_latency_ms = float(latency_ms)
        self._latency_ms = float(latency_ms)
        self._lock = threading.Lock()

    @property
    def latency_ms(self) -> float:
        """Delay added to every chat completion, in milliseconds."""
        with self._lock:
            return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError("latency_ms must be >= 0")
        with self._lock:
            self._latency_ms = float(value)

    def reset(self) -> None:
        """Drop scripts, recorded requests, faults and counters; restore the start-up latency
        and run settings. Stored files, assistants, threads, runs and responses are kept."""
        self.scripts.clear()
        self.recorder.clear()
        self.faults.clear()
        self.stats.clear()
        self.run_settings.reset()
        self.streaming.clear()
        self.latency_ms = self._initial_latency_ms
