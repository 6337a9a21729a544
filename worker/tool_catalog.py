"""The tool registry as the agents side sees it: schemas, flags and queues from Redis.

Agents workers import no tool module: every schema the model is shown, every flag
(return_direct, idempotent) and every queue a call is routed to comes from what the tools
workers announced. One snapshot per process is kept for ``AGENT_TOOL_REGISTRY_CACHE``
seconds (one Lua call refreshes it); a name missing from a cached snapshot refreshes it
once before it counts as unknown, so a tool announced a moment ago is found at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from producer.contracts import ToolEntry, ToolSpec
from producer.tool_registry import ToolRegistryStore, UnknownTools, check_tools
from worker.tools.registry import UnknownToolError

logger = logging.getLogger("celery_agents")


def cache_seconds() -> float:
    return float(os.environ.get("AGENT_TOOL_REGISTRY_CACHE", "1"))


class LiveCatalog:
    """Thread-safe (the agents worker runs on the threads pool)."""

    def __init__(
        self, store: ToolRegistryStore, max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_age = cache_seconds() if max_age is None else max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._served: dict[str, ToolEntry] = {}
        self._stored: dict[str, ToolSpec] = {}  # specs of tools not served right now
        self._at = float("-inf")

    def served(self, refresh: bool = False) -> dict[str, ToolEntry]:
        """Every tool a live worker serves, by name (a snapshot, at most max_age old)."""
        with self._lock:
            if refresh or self.clock() - self._at > self.max_age:
                self._served = self.store.live()
                self._stored = {}
                self._at = self.clock()
            return self._served

    def _served_with(self, names: Iterable[str]) -> dict[str, ToolEntry]:
        served = self.served()
        if any(name not in served for name in names):
            served = self.served(refresh=True)  # maybe announced since the snapshot
        return served

    def for_request(self, allowed: list[str] | None, forced: str | None) -> list[str]:
        """The tools a request may use (None: every served tool), each served now.

        Raises UnknownToolError naming the unknown ones and listing the served ones.
        """
        wanted = [*(allowed or []), *([forced] if forced else [])]
        try:
            return check_tools(self._served_with(wanted), allowed, forced)
        except UnknownTools as exc:
            raise UnknownToolError(str(exc)) from None

    def spec(self, name: str) -> ToolSpec | None:
        """The tool's spec: as served, else as last announced (its servers are gone)."""
        served = self.served()
        if name in served:
            return served[name]
        with self._lock:
            if name not in self._stored:
                found = self.store.stored_specs([name])
                if name in found:
                    self._stored[name] = found[name]
            return self._stored.get(name)

    def schemas(self, names: Iterable[str]) -> list[dict[str, object]]:
        """OpenAI tool schemas for ``names``, in order. A tool whose servers stopped
        keeps its last schema (its calls become "not served" error outputs); one with
        no stored spec at all is left out with a warning, never an internal error."""
        result: list[dict[str, object]] = []
        for name in dict.fromkeys(names):
            spec = self.spec(name)
            if spec is None:
                logger.warning("tool %s is unknown to the registry; not shown to the model",
                               name)
                continue
            result.append(spec.openai_schema())
        return result

    def queue_for(self, name: str) -> str | None:
        """The queue of the tool's servers; None when no live worker serves it."""
        entry = self._served_with([name]).get(name)
        return entry.queue if entry is not None else None

    def return_direct(self) -> frozenset[str]:
        return frozenset(name for name, entry in self.served().items() if entry.return_direct)

    def idempotent(self, name: str) -> bool:
        spec = self.spec(name)
        return spec.idempotent if spec is not None else True
