"""The model clients of a worker process: one per pool thread, not one for all.

One ``openai.OpenAI`` for the whole threads pool put its 500 threads on one HTTP
connection pool. httpcore checks every idle connection of the pool (a ``poll`` of its
socket, which lets go of the GIL and takes it back) each time a request starts or ends, so
the cost of a request grew with the pool: at 1000 turns in flight that scan was a large
part of each model call's CPU, and the client's keep-alive limit (100) closed and reopened
hundreds of connections after every burst. A thread makes one call at a time, so a client
of its own with one connection kept alive is the cheapest: with 16 threads per client the
agents workers spent 9.3-10.1 ms of CPU a turn at 1000 turns in flight, with one 8.5-9.2
(bench/concurrency.py, alternating runs). The clients share one TLS context
(worker/model_client.py), so each costs about 6 KB. A thread keeps its client for life.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import openai

THREADS_PER_CLIENT = 1


class ModelClients:
    """Thread-safe; a thread's first call picks its client, later calls reuse it."""

    def __init__(self, factory: Callable[[int], openai.OpenAI],
                 threads_per_client: int = THREADS_PER_CLIENT) -> None:
        self._factory = factory  # called with the connections one client keeps alive
        self._threads_per_client = threads_per_client
        self._clients: list[openai.OpenAI] = []
        self._threads = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def get(self) -> openai.OpenAI:
        client: openai.OpenAI | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                index = self._threads // self._threads_per_client
                self._threads += 1
                if index == len(self._clients):
                    self._clients.append(self._factory(self._threads_per_client))
                client = self._clients[index]
            self._local.client = client
        return client

    def __len__(self) -> int:
        return len(self._clients)
