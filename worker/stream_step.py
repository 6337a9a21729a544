"""A streamed model step: the model call with its text published as ``delta`` events.

The task's hook (worker/tasks/turn_tasks.py) calls :func:`stream_reply` instead of the
plain call when the request asked for ``stream``. What is published:

- ``delta_reset`` (detail ``{"step"}``) first, when this step was attempted before (a
  redelivery after a crash, or a retry after a broken stream), so consumers drop what
  they showed of it;
- ``delta`` events (detail ``{"text", "step"}``), coalesced (worker/stream_assembly.py);
- after the reply is kept, if an earlier attempt's reply was kept instead of ours (two
  copies raced), a ``delta_reset`` and that reply's whole text: after the last reset a
  consumer always holds exactly the step's final text.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from producer import keys
from producer.contracts import EventKind, JobEvent
from producer.jobstore import EVENTS_MAX_LEN
from worker.model_client import complete_stream
from worker.stream_assembly import Coalescer
from worker.turn import ModelCall, ModelReply


def publish(
    client: redis.Redis, job_id: str, kind: EventKind, step: int, detail: dict[str, Any]
) -> None:
    """One event on the job's stream (one XADD)."""
    event = JobEvent(job_id=job_id, kind=kind, at=time.time(), step=step, detail=detail)
    client.xadd(keys.job_events(job_id), {"event": event.model_dump_json()},
                maxlen=EVENTS_MAX_LEN, approximate=True)


def begin_attempt(client: redis.Redis, job_id: str, step: int) -> int:
    """Count an attempt of the step's stream; from the second on, publish a reset first."""
    key = keys.stream_attempts(job_id, step)
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, keys.job_ttl_seconds())
    attempt = int(pipe.execute()[0])
    if attempt > 1:
        publish(client, job_id, "delta_reset", step, {"step": step})
    return attempt


def stream_reply(
    client: redis.Redis, model: Any, job_id: str, step: int, call: ModelCall
) -> ModelReply:
    """Call the model with streaming on, publishing its text as it arrives."""
    begin_attempt(client, job_id, step)
    coalescer = Coalescer()

    def on_text(text: str) -> None:
        ready = coalescer.add(text)
        if ready:
            publish(client, job_id, "delta", step, {"text": ready, "step": step})

    reply = complete_stream(model, call, on_text)
    rest = coalescer.flush()
    if rest:
        publish(client, job_id, "delta", step, {"text": rest, "step": step})
    return reply


def settle(
    client: redis.Redis, job_id: str, step: int, ours: ModelReply, kept: ModelReply
) -> None:
    """Another copy's reply was kept for this step: show its text instead of ours."""
    if kept.content == ours.content:
        return
    publish(client, job_id, "delta_reset", step, {"step": step})
    if kept.content:
        publish(client, job_id, "delta", step, {"text": kept.content, "step": step})
