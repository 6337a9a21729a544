"""One asyncio event loop per process, in a daemon thread, for the asyncio MCP SDK.

Celery tasks are synchronous; the SDK is asyncio (anyio). A session must live on one
loop for as long as it is reused, so each process (each prefork pool child, the main
process) starts its own loop thread on first use and keeps it until shutdown. A child
forked from a process that had one starts without it (the thread does not survive a
fork; its copy of the loop must not be touched).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="celery-agents-mcp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it; on timeout (or any exception in the
        waiting thread, such as a task's soft time limit) the coroutine is cancelled."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        except BaseException:
            future.cancel()
            raise

    def close(self, timeout: float = 2.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


_loop: LoopThread | None = None
_lock = threading.Lock()


def process_loop() -> LoopThread:
    """This process's loop thread, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.pid != os.getpid():
            _loop = LoopThread()
        return _loop


def close_process_loop() -> None:
    global _loop
    with _lock:
        loop, _loop = _loop, None
    if loop is not None and loop.pid == os.getpid():
        loop.close()


def _forget_after_fork() -> None:
    global _loop, _lock
    _loop = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
