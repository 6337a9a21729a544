"""One MCP server's session, held open across calls and opened again after a crash.

The session lives in a task on the process's loop thread (worker/mcp/loop.py) that
enters the SDK's transport and session contexts and holds them until closed: anyio
wants a context left by the task that entered it. A call that finds the connection
closed (the server died), or a line on the wire that is not JSON-RPC, closes it; the
next use connects again (a stdio server is started anew).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp import types as mcp_types

from worker.mcp.config import ServerConfig, resolve
from worker.mcp.loop import LoopThread

logger = logging.getLogger("celery_agents")

CONNECT_TIMEOUT = 20.0


class ServerDown(ConnectionError):
    """The server cannot be reached, or died during the call."""


class ProtocolError(ConnectionError):
    """The server sent something that is not a valid JSON-RPC message."""


class ServerConnection:
    def __init__(
        self, config: ServerConfig, loop: LoopThread,
        on_tools_changed: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.on_tools_changed = on_tools_changed
        self.session: ClientSession | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._protocol_error: str | None = None
        self._lock = threading.Lock()  # one connect at a time (threads pool)

    @property
    def connected(self) -> bool:
        return self.session is not None and self._task is not None and not self._task.done()

    # -- on the loop ---------------------------------------------------------------------

    async def _open_transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        config = self.config
        if config.command:
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=resolve(config.env),
                cwd=config.cwd,
            )
            # The server's stderr goes to the worker's real stderr (its log): the SDK's
            # default is sys.stderr as it was when the SDK was imported, which inside a
            # running worker is Celery's logging proxy, with no file descriptor.
            errlog = sys.__stderr__ or sys.stderr
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errlog))
            return read, write
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=resolve(config.headers), timeout=config.timeout + 5)
        )
        assert config.url is not None
        streams = await stack.enter_async_context(
            streamable_http_client(config.url, http_client=http)
        )
        return streams[0], streams[1]

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        assert self._stop is not None
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._open_transport(stack)
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message)
                )
                await session.initialize()
                self.session = session
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:  # reported to the caller or logged
            if not ready.done():
                ready.set_exception(ServerDown(f"{type(exc).__name__}: {_first_line(exc)}"))
            elif not self._stop.is_set():
                logger.warning("MCP server %s: connection ended: %s", self.config.name,
                               _first_line(exc))
        finally:
            self.session = None

    async def _connect(self) -> None:
        self._stop = asyncio.Event()
        self._protocol_error = None
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._hold(ready))
        await asyncio.wait_for(ready, CONNECT_TIMEOUT)

    async def _close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(task, 5)
            except BaseException:  # a broken transport may not close cleanly
                task.cancel()
        self.session = None

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            # Not JSON-RPC on the wire: fail what waits on this session, start afresh.
            self._protocol_error = f"{type(message).__name__}: {_first_line(message)}"
            for task in list(self._pending):
                task.cancel()
            return
        root = getattr(message, "root", message)
        if isinstance(root, mcp_types.ToolListChangedNotification) and self.on_tools_changed:
            asyncio.get_running_loop().run_in_executor(None, self.on_tools_changed)

    async def _tracked(self, make: Callable[[ClientSession], Any]) -> Any:
        session = self.session
        if session is None:
            raise ServerDown("not connected")
        task = asyncio.ensure_future(make(session))
        self._pending.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            if self._protocol_error is not None:
                raise ProtocolError(self._protocol_error) from None
            raise
        finally:
            self._pending.discard(task)

    # -- from any thread -----------------------------------------------------------------

    def ensure_connected(self) -> None:
        with self._lock:
            if not self.connected:
                if self._task is not None:
                    self.close()
                self.loop.run(self._connect(), CONNECT_TIMEOUT + 5)
                logger.info("MCP server %s connected (%s, %s)", self.config.name,
                            self.config.transport, self.config.describe())

    def close(self) -> None:
        if self.loop.loop.is_closed():
            return
        try:
            self.loop.run(self._close(), 10)
        except Exception as exc:  # closing a dead connection
            logger.debug("MCP server %s: close: %s", self.config.name, exc)

    def request(self, make: Callable[[ClientSession], Any], timeout: float) -> Any:
        """Run one request on the session; a dead or garbled connection is closed and
        raised as ServerDown/ProtocolError, a slow one as TimeoutError."""
        self.ensure_connected()
        try:
            return self.loop.run(self._tracked(make), timeout)
        except ProtocolError:
            self.close()
            raise
        except TimeoutError:
            raise
        except Exception as exc:
            if "closed" in str(exc).lower() or not self.connected:
                self.close()
                raise ServerDown(_first_line(exc)) from None
            raise

    def list_tools(self) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None

            def page_of(session: ClientSession, p: Any = params) -> Any:
                return session.list_tools(params=p)

            page = self.request(page_of, self.config.timeout)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    def ping(self) -> None:
        self.request(lambda s: s.send_ping(), min(self.config.timeout, 10))


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _first_line(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
