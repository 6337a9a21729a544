"""A guard of kombu 5.7's Redis transport for a lost broker connection, and the
producer's one-client-per-channel patch (producer/kombu_clients.py), which workers need
too.

On a lost connection Celery closes the broker connection; afterwards, closing a channel
(which restores the worker's unacknowledged messages) and acknowledging a task that was
still running both go through that closed connection, and kombu raises
``AttributeError`` in ``Channel._connparams`` instead of a connection error. Celery treats
that as unrecoverable and the worker stops, on any Redis restart that finds it holding
a task. Here the closed connection raises ``redis.ConnectionError``, which kombu and
Celery already handle (log, reconnect); messages not restored or acknowledged stay in
Redis's unacked hash and are delivered again after the visibility timeout.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from producer import kombu_clients

_original_connparams = kombu_redis.Channel._connparams


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    transport = getattr(self, "connection", None)
    if transport is None or getattr(transport, "client", None) is None:
        raise redis.ConnectionError("the broker connection is closed")
    return _original_connparams(self, asynchronous)  # type: ignore[no-untyped-call]


def install() -> None:
    """Patch kombu's Redis channel once (idempotent)."""
    setattr(kombu_redis.Channel, "_connparams", _connparams)  # noqa: B010
    kombu_clients.install()
