"""Model clients: a thread keeps its client (by default one client per thread; a few
threads each when asked), and every client shares one TLS context."""

from __future__ import annotations

import threading
from typing import Any

from worker.model_client import make_client, tls_context
from worker.model_clients import ModelClients


def test_each_client_serves_a_few_threads_and_a_thread_keeps_its_client() -> None:
    made: list[int] = []

    def factory(keepalive: int) -> Any:
        made.append(keepalive)
        return object()

    clients = ModelClients(factory, threads_per_client=4)
    seen: dict[int, list[Any]] = {}
    barrier = threading.Barrier(10)

    def work(i: int) -> None:
        barrier.wait()
        seen[i] = [clients.get(), clients.get()]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(first is second for first, second in seen.values())
    per_client: dict[int, int] = {}
    for first, _ in seen.values():
        per_client[id(first)] = per_client.get(id(first), 0) + 1
    assert sorted(per_client.values()) == [2, 4, 4]  # 10 threads, 4 per client
    assert made == [4, 4, 4] and len(clients) == 3


def test_a_client_keeps_alive_as_many_connections_as_threads_it_serves() -> None:
    client = make_client(5.0, keepalive=16)
    pool = client._client._transport._pool
    assert pool._max_keepalive_connections == 16
    assert client.max_retries == 0 and client.timeout == 5.0


def test_by_default_each_thread_has_a_client_of_its_own() -> None:
    clients = ModelClients(lambda keepalive: object())
    mine = [clients.get(), clients.get()]
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(clients.get()))
    thread.start()
    thread.join()
    assert mine[0] is mine[1] and theirs[0] is not mine[0] and len(clients) == 2


def test_clients_share_one_tls_context() -> None:
    # httpx builds a TLS context (0.8 MB, the CA bundle loaded) per client by default
    first, second = make_client(5.0, keepalive=1), make_client(5.0, keepalive=1)
    contexts = {id(c._client._transport._pool._ssl_context) for c in (first, second)}
    assert contexts == {id(tls_context())}
