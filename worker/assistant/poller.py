"""One poll task's work: retrieve every due run once and save what each one does next.

A poll task claims the runs that are due (up to ``settings.batch``) by moving their
score in the due set forward by a lease, retrieves each run once, and saves all new
states (with their next due time and their ``run_polled`` event) in one round trip.
A poll task that dies loses nothing: its runs come due again when the lease ends.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

from celery.utils.log import get_task_logger

from worker.assistant.config import RunSettings
from worker.assistant.flow import adapter_for, cancel_server_side, ensure_tick, follow_up
from worker.assistant.logic import apply_snapshot, failed, retry_later, timed_out
from worker.assistant.state import RunState
from worker.assistant.store import Transition
from worker.context import WorkerContext
from worker.model_client import ModelError, backoff_seconds
from worker.tasks.base import deadline_error, redis_down

logger = get_task_logger("celery_agents")


@dataclass
class PollReport:
    claimed: int = 0
    polled: int = 0
    saved: int = 0
    full: bool = False  # the batch was full: more runs may be due


def poll_due_runs(ctx: WorkerContext, settings: RunSettings) -> PollReport:
    """Poll the runs due now; returns what was done (for logs and the bench)."""
    now = time.time()
    # Runs due within half a slot are taken now rather than by a poll task of their own.
    claimed = ctx.runs.claim_due(now + settings.tick / 2, settings.batch, settings.lease)
    report = PollReport(claimed=len(claimed), full=len(claimed) >= settings.batch)
    loaded = ctx.runs.load_many(claimed)

    def poll(job_id: str, state: RunState | None, final: bool) -> Transition | None:
        try:
            return _poll_one(ctx, settings, job_id, state, final)
        except Exception as exc:  # one broken run must not stop the others' polls
            if redis_down(exc):  # not the run's fault: it comes due again when its lease ends
                logger.warning("job %s: poll skipped, Redis unreachable: %s", job_id, exc)
                return None
            logger.exception("job %s: poll failed", job_id)
            ctx.runs.unschedule(job_id)
            ctx.jobs.fail(job_id, f"internal error while polling: {type(exc).__name__}: {exc}")
            return None

    # The retrieves are HTTP round trips: a few threads overlap their waits.
    found = _threads(settings.threads).map(
        poll, claimed, [s for s, _ in loaded], [f for _, f in loaded]
    )
    transitions = [t for t in found if t is not None]
    report.polled = len(transitions)
    for transition, saved in zip(transitions, ctx.runs.save_many(transitions), strict=True):
        if saved:
            report.saved += 1
            if transition.new.phase != "polling":
                follow_up(ctx, settings, transition.new)
    return report


@cache
def _threads(count: int) -> ThreadPoolExecutor:
    """One pool per worker process, made on first use (after the fork)."""
    return ThreadPoolExecutor(max_workers=count, thread_name_prefix="poll")


def _poll_one(
    ctx: WorkerContext, settings: RunSettings, job_id: str, state: RunState | None, final: bool
) -> Transition | None:
    """The transition one poll of this run makes, or None when there is nothing to save."""
    if state is None:  # expired or never created: nothing to poll
        ctx.runs.unschedule(job_id)
        return None
    if final:  # cancelled, timed out or failed elsewhere: stop the run and let it go
        cancel_server_side(ctx, job_id)
        ctx.jobs.released(job_id, state.session_id)
        return None
    if state.phase != "polling":  # a follow-up that did not finish: do it now
        follow_up(ctx, settings, state)
        return None
    now = time.time()
    if state.next_poll_at > now + settings.tick:  # claimed by a late duplicate poll task
        ctx.runs.schedule(job_id, state.next_poll_at)
        return None
    if timed_out(state, now):
        cancel_server_side(ctx, job_id)
        error = deadline_error(state.created_at, state.deadline_at or now)
        return Transition.of(state, failed(state, error))
    try:
        snap = adapter_for(ctx, state).retrieve(state)
    except ModelError as exc:
        if exc.transient and state.api_errors < ctx.settings.model_max_retries:
            countdown = backoff_seconds(state.api_errors, exc.retry_after or 0.0)
            logger.warning("job %s: %s; poll again in %.1fs", job_id, exc, countdown)
            return Transition.of(state, retry_later(state, now, countdown))
        return Transition.of(state, failed(state, str(exc)))
    new = apply_snapshot(state, snap, time.time(), settings.max_poll_interval)
    return Transition.of(state, new, "run_polled", status=snap.status, poll=new.polls)


def run_poll_task(ctx: WorkerContext, settings: RunSettings) -> PollReport:
    """The body of ``agents.run.poll``: poll, then re-enqueue for whatever is due next."""
    from worker.assistant.flow import enqueue_tick

    report = poll_due_runs(ctx, settings)
    if report.full:  # a backlog: another poll task now, so a second worker slot helps
        enqueue_tick(None, 0.0)
    ensure_tick(ctx, settings, ctx.runs.next_due())
    return report
