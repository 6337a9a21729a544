"""The main process's MCP sessions: list each server's tools for the registry.

Started at worker_ready by worker/tool_announce.py for the servers on queues the worker
consumes. Their specs are a source of the announcer. A thread of its own pings and lists
every server each heartbeat interval (a server that stopped answering is closed and its
tools leave the registry; one that is down is connected again, a stdio server restarted)
and re-announces when the tools changed. ``notifications/tools/list_changed`` lists that
server again and re-announces at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from functools import partial

from mcp import types as mcp_types

from producer import keys
from producer.contracts import ToolSpec
from worker.mcp import config as mcp_config
from worker.mcp.connection import ServerConnection
from worker.mcp.loop import process_loop

logger = logging.getLogger("celery_agents")


class McpSource:
    """A spec source (see worker/tool_announce.py) for the configured servers."""

    def __init__(
        self, servers: Collection[mcp_config.ServerConfig], on_change: Callable[[], None]
    ) -> None:
        self.on_change = on_change
        loop = process_loop()
        self.connections = {
            s.name: ServerConnection(s, loop, on_tools_changed=partial(self._changed, s.name))
            for s in servers
        }
        self._tools: dict[str, list[ToolSpec]] = {}
        self._down_logged: set[str] = set()
        self._changing: set[str] = set()
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _changed(self, server: str) -> None:
        # A burst of notifications costs one listing at a time, plus one for those
        # that arrived during it.
        if server in self._changing:
            self._dirty.add(server)
            return
        self._changing.add(server)
        try:
            logger.info("MCP server %s: tool list changed", server)
            self._refresh(server)
            while server in self._dirty:
                self._dirty.discard(server)
                self._refresh(server)
        finally:
            self._changing.discard(server)
        self.on_change()

    def _refresh(self, server: str) -> None:
        conn = self.connections[server]
        try:
            if conn.connected:
                conn.ping()
            conn.ensure_connected()
            specs = [s for s in (to_spec(conn.config, t) for t in conn.list_tools()) if s]
        except Exception as exc:  # down: its tools leave the registry
            with self._lock:
                had = self._tools.pop(server, None)
            if had is not None or server not in self._down_logged:
                logger.warning("MCP server %s is down (%s); its tools are withdrawn until "
                               "it is back", server, exc)
                self._down_logged.add(server)
            conn.close()
            return
        with self._lock:
            self._tools[server] = specs
        if server in self._down_logged:
            logger.info("MCP server %s is back", server)
            self._down_logged.discard(server)

    def specs(self) -> list[ToolSpec]:
        """The tools of the servers that are up (no I/O: called by every announcement)."""
        with self._lock:
            return [spec for specs in self._tools.values() for spec in specs]

    def refresh_all(self) -> bool:
        """Check and list every server; True when the set of specs changed."""
        before = self.specs()
        for server in self.connections:
            self._refresh(server)
        return self.specs() != before

    def start(self, interval: float) -> None:
        """Connect and list once now (so the first announcement has the tools), then keep
        checking in a thread of its own: a hung server must never hold up the worker's
        beat thread (its leases) or its announcements."""
        self.refresh_all()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    if self.refresh_all():
                        self.on_change()
                except Exception as exc:  # never fatal; tried again next interval
                    logger.warning("MCP servers check failed: %s: %s", type(exc).__name__, exc)

        self._thread = threading.Thread(target=loop, name="celery-agents-mcp-check",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        for conn in self.connections.values():
            conn.close()


def to_spec(server: mcp_config.ServerConfig, tool: mcp_types.Tool) -> ToolSpec | None:
    name = mcp_config.tool_name(server.name, tool.name)
    if name is None:
        logger.warning("MCP server %s: tool %r cannot be named %s__%s (letters, digits, _ "
                       "and -, 64 at most); skipped", server.name, tool.name, server.name,
                       tool.name)
        return None
    hints = tool.annotations
    idempotent = bool(hints and (hints.idempotent_hint or hints.read_only_hint))
    schema = dict(tool.input_schema)
    schema.pop("title", None)  # only adds tokens
    return ToolSpec(
        name=name, description=tool.description or "", parameters=schema,
        idempotent=idempotent, time_limit=server.timeout, queue=server.queue,
        source=f"mcp:{server.name}",
    )


_source: McpSource | None = None


def start_main_process_servers(
    queues: Collection[str], on_change: Callable[[], None]
) -> McpSource | None:
    """Connect to the configured servers whose queue this worker consumes."""
    global _source
    wanted = [s for s in mcp_config.load().values() if s.queue in queues]
    if not wanted:
        return None
    _source = McpSource(wanted, on_change)
    _source.start(keys.tool_heartbeat_seconds())
    return _source


def stop_main_process_servers() -> None:
    global _source
    source, _source = _source, None
    if source is not None:
        source.close()
    from worker.mcp.calls import close_all

    close_all()
