"""The deadline sweep (``agents.job.expire``): ends jobs whose deadline passed and
resumes jobs whose next task was lost.

See producer/deadlines.py. Each sweep fails every due job that has not ended (with a
timeout error), cancels its server-side run and releases its session. Now and then
(every quarter of ``AGENT_STALL_SECONDS``) it also looks for running jobs without an
event for ``AGENT_STALL_SECONDS`` and sends their next step again: every step is
idempotent, so a duplicate costs work, never a wrong result. Then it makes sure a sweep
is enqueued for what comes next. A sweep delivered twice changes nothing.
"""

from __future__ import annotations

import time
from typing import Any, cast

from celery import Task
from celery.utils.log import get_task_logger

from producer import keys
from producer.contracts import TASK_EXPIRE_JOB, JobStatus
from producer.deadlines import SweepSlot, parse_member, send_sweep, stall_seconds
from worker.app import app
from worker.assistant import cancel_server_side
from worker.assistant.config import RunSettings
from worker.assistant.flow import resume as resume_run
from worker.context import WorkerContext, get_context
from worker.orchestrate import ensure_dispatched
from worker.tasks.base import deadline_error, log_step

logger = get_task_logger("celery_agents")

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
    resumed = resume_stalled_jobs(ctx)
    if len(due) >= SWEEP_BATCH:
        send_sweep(app, SweepSlot.for_deadline(time.time()))
    else:
        ensure_next_sweep(ctx)
    if due or resumed:
        log_step("-", "-", f"expire:{expired}/{len(due)} resumed:{resumed}", self.name, started)
    return f"expired {expired} of {len(due)}, resumed {resumed}"


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


def resume_stalled_jobs(ctx: WorkerContext) -> int:
    """Send the next step of every unfinished job silent for ``stall_seconds``; at most
    one sweep looks per quarter of that time. Returns how many were resumed."""
    stall = stall_seconds()
    if not ctx.jobs.redis.set(keys.stall_scan(), "1", nx=True, ex=max(int(stall / 4), 1)):
        return 0
    entries = cast(list[str], ctx.jobs.redis.zrange(keys.deadlines(), 0, -1))
    pipe = ctx.jobs.redis.pipeline(transaction=False)
    for entry in entries:
        pipe.xrevrange(keys.job_events(parse_member(entry)[0]), count=1)
    now_ms = time.time() * 1000
    resumed = 0
    for entry, last in zip(entries, pipe.execute(), strict=True):
        # A stream id starts with the event's time in milliseconds.
        last_ms = int(str(last[0][0]).split("-")[0]) if last else 0
        if now_ms - last_ms >= stall * 1000:
            job_id, session_id = parse_member(entry)
            resumed += resume_job(ctx, job_id, session_id)
    return resumed


def resume_job(ctx: WorkerContext, job_id: str, session_id: str) -> bool:
    """Send again what a stalled job waits for; True if something was sent."""
    job = ctx.jobs.get_job(job_id)
    if job is None or job.status.terminal:
        return False
    logger.warning("job %s: no progress for %.0f s; sending its next step again",
                   job_id, stall_seconds())
    if job.status == JobStatus.QUEUED:  # only the head of its session waits for a start
        return ctx.order.restart_head(job_id, session_id)
    if job.mode == "assistant":
        return resume_run(ctx, RunSettings.from_env(), job_id)
    state = ctx.turns.load(job_id)
    if state is None:
        return ctx.order.restart_head(job_id, session_id)
    ensure_dispatched(ctx, state, fresh=True)  # "fresh": send even if marked as sent
    return True


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
