"""Liveness leases on the messages a worker holds, so a dead worker's steps come back in seconds.

kombu's Redis transport keeps every delivered, unacknowledged message in the ``unacked``
hash, scored in the ``unacked_index`` sorted set by when it was delivered, and puts a
message back on its queue once that score is older than the visibility timeout. Here
the visibility timeout is a short lease (``AGENT_VISIBILITY_TIMEOUT``, default 12 s) and
the live worker renews it: every ``renew_interval`` its main process sets the score of each
message it still holds (running, prefetched or waiting for its countdown) to now. A
message of a live worker is therefore never restored, however long its model call takes;
a message of a dead worker (SIGKILL, OOM kill, lost host) stops being renewed and is
restored by any other worker's beat within the lease plus one restore interval.

Restoring goes through kombu's own ``QoS.restore_visible`` (a WATCHed transaction per
message, so two workers restoring at once restore each message once). Every step is
idempotent, so the rare false restore (a worker stalled longer than its lease) costs a
duplicate run of an idempotent step, never a wrong result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery

logger = logging.getLogger("celery_agents")

_CHUNK = 500  # members per ZADD, so one renewal never builds a huge command


def held_tags(consumer: Any) -> list[str]:
    """Delivery tags of the messages this worker's consumer holds and has not acked.

    ``QoS._delivered`` also keeps acknowledged tags until kombu flushes them; renewing
    those is harmless because the renewal only updates members that still exist.
    """
    task_consumer = getattr(consumer, "task_consumer", None)
    channel = getattr(task_consumer, "channel", None)
    qos = getattr(channel, "qos", None)
    delivered = getattr(qos, "_delivered", None)
    if not delivered:
        return []
    # A C-level copy: atomic with respect to the consumer thread that mutates it.
    return [str(tag) for tag in tuple(delivered.keys())]


def renew_command_args(tags: Iterable[str], now: float) -> list[dict[str, float]]:
    """``ZADD XX`` mappings of at most ``_CHUNK`` members each."""
    chunks: list[dict[str, float]] = []
    current: dict[str, float] = {}
    for tag in tags:
        current[tag] = now
        if len(current) >= _CHUNK:
            chunks.append(current)
            current = {}
    if current:
        chunks.append(current)
    return chunks


class LeaseKeeper:
    """Renews this worker's leases and restores the expired leases of dead workers.

    Runs in the beat thread only, on a broker connection of its own (kombu channels are
    not thread-safe, and the consumer's connection is busy in BRPOP).
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._connection: Any = None
        self._renewed_since_outage = True

    def _channel(self) -> Any:
        if self._connection is None:
            self._connection = self.app.connection_for_write()
        return self._connection.default_channel

    def _reset(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # already broken: nothing to release cleanly
                logger.debug("lease connection release failed", exc_info=True)

    def renew(self, consumer: Any) -> int:
        """Set the lease of every held message to now; returns how many were renewed."""
        tags = held_tags(consumer)
        try:
            channel = self._channel()
            if tags:
                pipe = channel.client.pipeline(transaction=False)
                for mapping in renew_command_args(tags, time.time()):
                    pipe.zadd(channel.unacked_index_key, mapping, xx=True)
                pipe.execute()
        except Exception:
            self._reset()
            self._renewed_since_outage = False
            raise
        self._renewed_since_outage = True
        return len(tags)

    def restore_expired(self, consumer: Any) -> None:
        """Put messages whose lease ran out back on their queues (a dead worker's)."""
        if not self._renewed_since_outage:
            # Right after Redis came back every lease looks stale: renew ours before
            # restoring anyone's, so a live worker's messages are not sent twice.
            return
        try:
            qos = self._channel().qos
            qos.restore_visible(num=None, interval=1)
        except Exception:
            self._reset()
            raise

    def close(self) -> None:
        self._reset()
