"""Calls left on a queue that no live worker serves any more get answered.

A call is routed to its tool's queue while the registry lists a server. If that server
was killed outright, the registry lists it until its lease lapses (3 heartbeats), and
calls routed meanwhile wait on a queue nobody reads. Every agents worker (the consumer of
the default queue) checks on each heartbeat: a tool queue with messages and no live
server has its ``agents.tool.run`` messages moved to the default queue, flagged
``unserved``, with their headers (task id, group, chord) unchanged, so the tool task there
answers "not served by any worker right now" and the chord or link goes on as usual. A
queue whose server comes back is left alone: the server runs the calls.

At least once: a worker dying between the republish and the ack leaves the message to
come back and be moved again; the tool task's output is stored once per call id.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from celery import Celery

from producer import keys
from producer.contracts import TASK_TOOL_RUN
from producer.tool_registry import ToolRegistryStore

logger = logging.getLogger("celery_agents")

MAX_PER_BEAT = 500  # messages moved per queue per beat: a large backlog takes a few beats


def orphaned_queues(store: ToolRegistryStore, default_queue: str) -> list[str]:
    """Queues of recently announced tools that no live worker consumes and that hold
    messages."""
    raw: list[Any] = list(store.redis.zrange(keys.tools_index(), 0, -1))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    specs = store.stored_specs(names)
    live_queues = {entry.queue for entry in store.live().values()}
    candidates = sorted({s.queue for s in specs.values()} - live_queues - {default_queue})
    return [q for q in candidates if store.redis.llen(q) > 0]


def rescue(app: Celery, store: ToolRegistryStore) -> int:
    """Move the tool calls of orphaned queues to the default queue; returns how many."""
    default_queue = str(app.conf.task_default_queue)
    moved = 0
    for queue in orphaned_queues(store, default_queue):
        with app.connection_for_write() as conn:
            source = conn.SimpleQueue(queue, no_ack=False)
            producer = conn.Producer()
            try:
                for _ in range(MAX_PER_BEAT):
                    try:
                        message = source.get(block=False)
                    except Empty:
                        break
                    _move(producer, message, default_queue)
                    moved += 1
            finally:
                source.close()
        logger.warning("tool queue %s has no live worker: its calls were answered as not "
                       "served (%d so far this beat)", queue, moved)
    return moved


def _move(producer: Any, message: Any, default_queue: str) -> None:
    headers = dict(message.headers or {})
    if headers.get("task") != TASK_TOOL_RUN:
        # Not a tool call (nothing else is routed to tool queues): leave it where it was.
        message.requeue()
        return
    args, kwargs, embed = message.decode()
    kwargs = {**kwargs, "unserved": True}
    props = message.properties or {}
    producer.publish(
        [args, kwargs, embed], exchange="", routing_key=default_queue, serializer="json",
        headers=headers, correlation_id=props.get("correlation_id"),
        reply_to=props.get("reply_to"), priority=props.get("priority"),
        retry=True,
    )
    message.ack()
