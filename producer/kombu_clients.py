"""One Redis client per kombu channel, instead of one per command (a patch of kombu 5.7).

kombu's Redis ``Channel.conn_or_acquire`` builds a new ``redis.Redis`` object for every
message it publishes, delivers or acknowledges and every event it sends (the connection
comes from the channel's pool; only the client object is new). Building one costs about
30 µs of response-callback tables: under the threads pool at 1000 turns in flight it was
16% of the agents worker's CPU, and in a producer it was a quarter of each submit's
(a task message and its ``task-sent`` event each built one). A ``redis.Redis`` over a
connection pool is thread-safe, so each channel keeps one per pool and reuses it.

Installed by the workers and by every producer app (``make_producer_app``); it changes
how a channel gets its client, not what it sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


@contextmanager
def _conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
    if client:
        yield client
        return
    pool = self.pool  # a new pool (after a reconnect) gets a new client
    cached = self.__dict__.get("_celery_agents_client")
    if cached is None or cached[0] is not pool:
        cached = (pool, self._create_client())
        self.__dict__["_celery_agents_client"] = cached
    yield cached[1]


def install() -> None:
    """Patch kombu's Redis channel once (idempotent)."""
    setattr(kombu_redis.Channel, "conn_or_acquire", _conn_or_acquire)  # noqa: B010
