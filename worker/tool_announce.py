"""A tools worker announces the tools it serves in the registry (producer/tool_registry.py).

Runs in the worker's main process: once, synchronously, when the worker is ready (so
"ready." in the log means its tools are listed), then on every beat of worker/heartbeat.py,
and a withdrawal at shutdown. A worker serves the tools whose queue it consumes: the
agents worker, consuming only ``agents``, announces nothing and needs no tool module.

Imported by worker/app.py for its signal handlers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

from celery.signals import (
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from producer import keys
from producer.contracts import ToolSpec
from producer.jobstore import connect
from producer.tool_registry import ToolRegistryStore
from worker import heartbeat
from worker.mcp import config as mcp_config
from worker.settings import WorkerSettings
from worker.tool_rescue import rescue
from worker.tools import ToolRegistry, default_registry

logger = logging.getLogger("celery_agents")

SpecSource = Callable[[], list[ToolSpec]]


def python_specs(registry: ToolRegistry, time_limit: float) -> list[ToolSpec]:
    """The specs of the registry's Python tools."""
    return [
        ToolSpec(
            name=tool.name,
            description=tool.description,
            parameters=tool.parameters,
            return_direct=tool.return_direct,
            idempotent=tool.idempotent,
            time_limit=time_limit,
            # Added by the approval work to Tool; absent means no approval needed.
            requires_approval=bool(getattr(tool, "requires_approval", False)),
            queue=tool.queue,
        )
        for tool in registry
    ]


class Announcer:
    """Keeps one worker's announcements current; thread-safe (beat and MCP threads)."""

    def __init__(
        self, store: ToolRegistryStore, worker: str, queues: Collection[str],
        sources: Iterable[SpecSource],
    ) -> None:
        self.store = store
        self.worker = worker
        self.queues = frozenset(queues)
        self.sources = list(sources)
        self.announced: set[str] = set()
        self._refused: set[str] = set()
        self._skipped_logged = False
        self.stopping = False
        self._lock = threading.Lock()

    def served_specs(self) -> list[ToolSpec]:
        """The specs of the tools on the queues this worker consumes."""
        specs: dict[str, ToolSpec] = {}
        skipped: list[str] = []
        for source in self.sources:
            for spec in source():
                if spec.queue in self.queues:
                    specs[spec.name] = spec
                else:
                    skipped.append(f"{spec.name} (queue {spec.queue})")
        # Only a tools worker says so; every agents worker skips the built-in tools.
        if skipped and specs and not self._skipped_logged:
            logger.info("worker %s does not consume the queues of %s; not announced",
                        self.worker, ", ".join(skipped))
            self._skipped_logged = True
        return list(specs.values())

    def announce(self) -> list[str]:
        """Renew every served tool's lease, withdraw tools no longer served; returns the
        names refused for a conflicting spec (logged once per conflict)."""
        with self._lock:
            if self.stopping:  # withdrawn: a late beat must not announce again
                return []
            specs = self.served_specs()
            refused = self.store.announce(self.worker, specs)
            gone = self.announced - {s.name for s in specs}
            if gone:
                self.store.withdraw(self.worker, gone)
                logger.info("worker %s no longer serves %s", self.worker, ", ".join(sorted(gone)))
            new_conflicts = set(refused) - self._refused
            if new_conflicts:
                self._log_conflicts(sorted(new_conflicts), specs)
            self._refused = set(refused)
            self.announced = {s.name for s in specs} - set(refused)
            return refused

    def _log_conflicts(self, names: list[str], specs: list[ToolSpec]) -> None:
        mine = {s.name: s for s in specs}
        theirs = self.store.stored_specs(names)
        live = self.store.live()
        for name in names:
            other = theirs.get(name)
            fields = sorted(
                field for field in ToolSpec.model_fields
                if other is not None and getattr(other, field) != getattr(mine[name], field)
            )
            servers = live[name].servers if name in live else []
            logger.error(
                "tool %s: NOT announced by %s: another definition is served by %s "
                "(differs in: %s); this worker will not run its calls until that one's "
                "servers stop. Give every worker the same version of the tool.",
                name, self.worker, ", ".join(servers) or "another worker",
                ", ".join(fields) or "digest",
            )

    def report_differences(self) -> None:
        """Log, once at start-up, where this worker's tool set differs from the tools
        others serve on the same queues (issue 12: differing workers must say so)."""
        live = self.store.live()
        others = {
            name for name, entry in live.items()
            if entry.queue in self.queues and set(entry.servers) - {self.worker}
        }
        missing = sorted(others - self.announced - self._refused)
        if missing:
            logger.warning(
                "worker %s does not serve %s, which other workers serve on its queues "
                "(%s): calls of those tools that reach this worker get an error output "
                "naming it; give workers of one queue the same AGENT_TOOL_MODULES",
                self.worker, ", ".join(missing), ", ".join(sorted(self.queues)),
            )

    def withdraw(self) -> None:
        with self._lock:
            self.stopping = True
            if self.announced:
                self.store.withdraw(self.worker, self.announced)
                logger.info("worker %s withdrew its tools: %s", self.worker,
                            ", ".join(sorted(self.announced)))
            self.announced = set()


_announcer: Announcer | None = None
# A bad AGENT_MCP_CONFIG stops the worker at start-up, like a bad AGENT_TOOL_MODULES.
mcp_config.load()


def consumed_queues(consumer: Any) -> list[str]:
    try:
        return sorted(consumer.app.amqp.queues.consume_from)
    except AttributeError:  # no -Q given: every configured queue
        return sorted(q.name for q in consumer.app.conf.task_queues or ())


def announce_now() -> None:
    """Re-announce at once (an MCP server's tool list changed, or it went down)."""
    if _announcer is not None:
        _announcer.announce()


def _announce_at_ready(sender: Any = None, **_: Any) -> None:
    global _announcer
    settings = WorkerSettings.from_env()
    queues = consumed_queues(sender)
    sources: list[SpecSource] = [lambda: python_specs(default_registry, settings.tool_time_limit)]
    mcp = _start_mcp_servers(queues)
    if mcp is not None:
        sources.append(mcp.specs)
    _announcer = Announcer(
        ToolRegistryStore(connect(settings.redis_url)),
        str(getattr(sender, "hostname", "worker")), queues, sources,
    )
    try:
        _announcer.announce()
        _announcer.report_differences()
        if _announcer.announced:
            logger.info("worker %s serves tools: %s", _announcer.worker,
                        ", ".join(sorted(_announcer.announced)))
    except Exception as exc:  # Redis down at start: the beat announces once it is back
        logger.warning("could not announce tools yet: %s: %s", type(exc).__name__, exc)
    heartbeat.add_beat("tools.announce", keys.tool_heartbeat_seconds(),
                       lambda _consumer: announce_now())
    if str(sender.app.conf.task_default_queue) in queues:  # an agents worker
        store = _announcer.store
        heartbeat.add_beat("tools.rescue", keys.tool_heartbeat_seconds(),
                           lambda consumer: _rescue(consumer, store))


def _start_mcp_servers(queues: list[str]) -> Any:
    if not mcp_config.configured():  # the MCP SDK is imported only where it is used
        return None
    from worker.mcp.manager import start_main_process_servers

    return start_main_process_servers(queues, announce_now)


def _rescue(consumer: Any, store: ToolRegistryStore) -> None:
    rescue(consumer.app, store)


def _withdraw_when_shutdown_starts(**_: Any) -> None:
    # A worker in warm shutdown consumes nothing more: calls routed to it now would wait
    # in its queue. Withdraw at the start (a thread: this runs in the signal handler);
    # _withdraw_at_shutdown below repeats it at the end, in case this one failed.
    if _announcer is not None:
        threading.Thread(target=_withdraw_quietly, name="tools-withdraw", daemon=True).start()


def _withdraw_quietly() -> None:
    try:
        if _announcer is not None:
            _announcer.withdraw()
    except Exception as exc:  # the worker_shutdown handler tries again
        logger.warning("could not withdraw tools: %s: %s", type(exc).__name__, exc)


def _withdraw_at_shutdown(**_: Any) -> None:
    if _announcer is not None:
        try:
            _announcer.withdraw()
        except Exception as exc:  # the leases lapse on their own
            logger.warning("could not withdraw tools: %s: %s", type(exc).__name__, exc)
    if mcp_config.configured():
        from worker.mcp.manager import stop_main_process_servers

        stop_main_process_servers()


def _close_mcp_sessions(**_: Any) -> None:
    if mcp_config.configured():  # a pool process's own sessions (stdio, HTTP clients)
        from worker.mcp import calls as mcp_calls

        mcp_calls.close_all()


# Not as decorators: Celery's signal decorators are untyped.
worker_ready.connect(_announce_at_ready)
worker_shutting_down.connect(_withdraw_when_shutdown_starts)
worker_shutdown.connect(_withdraw_at_shutdown)
worker_process_shutdown.connect(_close_mcp_sessions)
