"""The deadline sweep (``agents.job.expire``): ends jobs whose deadline passed.

See producer/deadlines.py. Each sweep fails every due job that has not ended (with a
timeout error), cancels its server-side run, releases its session, and then makes sure
a sweep is enqueued for the next deadline due. A job that ended is only released
(idempotent), so a sweep delivered twice changes nothing.
"""

from __future__ import annotations

import time
from typing import Any, cast

from celery import Task

from producer import keys
from producer.contracts import TASK_EXPIRE_JOB
from producer.deadlines import SweepSlot, parse_member, send_sweep
from worker.app import app
from worker.assistant import cancel_server_side
from worker.context import WorkerContext, get_context
from worker.tasks.base import deadline_error, log_step

# Most due jobs one sweep ends; a fuller backlog is handed to another sweep at once.
SWEEP_BATCH = 200


@app.task(name=TASK_EXPIRE_JOB, bind=True, ignore_result=True)
def sweep_deadlines(self: Task, *_: Any, **__: Any) -> str:
    started = time.perf_counter()
    ctx = get_context()
    due = cast(
        list[tuple[str, float]],
        ctx.jobs.redis.zrangebyscore(
            keys.deadlines(), "-inf", time.time(), start=0, num=SWEEP_BATCH, withscores=True
        ),
    )
    expired = 0
    for entry, deadline_at in due:
        job_id, session_id = parse_member(entry)
        expired += expire_job(ctx, job_id, session_id, deadline_at)
        ctx.jobs.redis.zrem(keys.deadlines(), entry)
    if len(due) >= SWEEP_BATCH:
        send_sweep(app, SweepSlot.for_deadline(time.time()))
    else:
        ensure_next_sweep(ctx)
    if due:
        log_step("-", "-", f"expire:{expired}/{len(due)}", self.name, started)
    return f"expired {expired} of {len(due)}"


def expire_job(ctx: WorkerContext, job_id: str, session_id: str, deadline_at: float) -> bool:
    """Fail the job with a timeout unless it ended; release its session either way."""
    if ctx.jobs.is_final(job_id):
        ctx.jobs.released(job_id, session_id)
        return False
    job = ctx.jobs.get_job(job_id)
    created_at = job.created_at if job else deadline_at
    ended = ctx.jobs.fail(job_id, deadline_error(created_at, deadline_at))
    cancel_server_side(ctx, job_id)
    ctx.jobs.released(job_id, session_id)  # the record may be gone (expired) with its session
    return ended


def ensure_next_sweep(ctx: WorkerContext) -> None:
    """Enqueue the sweep for the earliest deadline left, unless its slot has one."""
    earliest = cast(
        list[tuple[str, float]],
        ctx.jobs.redis.zrange(keys.deadlines(), 0, 0, withscores=True),
    )
    if not earliest:
        return
    slot = SweepSlot.for_deadline(earliest[0][1])
    if ctx.jobs.redis.set(slot.marker, "1", nx=True, ex=slot.marker_ttl):
        send_sweep(app, slot)
