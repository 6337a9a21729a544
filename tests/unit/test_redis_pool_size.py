"""The shared Redis client must hold as many connections as the agents pool has threads.

redis-py 8 caps a pool at 100 connections by default; a threads-pool worker running
hundreds of steps at once (each streaming step publishes while it reads the model) got
``MaxConnectionsError: Too many connections`` on the 101st concurrent call, which reads
as "Redis unreachable" and requeued the step, calling the model a second time.
"""

from __future__ import annotations

from producer.async_client import connect_async
from producer.deployment import AGENTS_WORKER
from producer.jobstore import connect


def test_pools_hold_a_connection_per_agents_thread() -> None:
    client = connect("redis://127.0.0.1:1/0")  # no connection is made here
    assert client.connection_pool.max_connections >= AGENTS_WORKER.concurrency
    aclient = connect_async("redis://127.0.0.1:1/0")
    assert aclient.connection_pool.max_connections >= AGENTS_WORKER.concurrency
