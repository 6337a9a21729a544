"""What the tasks do around a wait for approvals: open it, resume after it, time it out.

A turn (or run) saved in phase ``approval`` is opened once (producer/approvals.py: the
entries, the ``waiting_approval`` record, the events, the timeout), the calls that need
no decision are fanned out at once, and then nothing runs: no task waits, no slot is held.
``agents.approval.resume`` comes when the last decision is written (sent by whoever wrote
it) and as the callback of the early calls; it goes on only when both are complete, and
its compare-and-set on the state makes a duplicate resume change nothing.
Timeouts are a sorted set swept by a self-rescheduling task, like the deadlines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache
from typing import cast

import redis
from celery import Signature

from producer import keys
from producer.approvals import ApprovalError, ApprovalStore, send_resume
from producer.contracts import (
    TASK_ABORT_RUN,
    TASK_ABORT_TURN,
    TASK_APPROVAL_RESUME,
    TASK_APPROVAL_SWEEP,
    Approval,
    ChatRequest,
    JobStatus,
    ToolCall,
    ToolOutput,
)
from producer.deadlines import longest_countdown
from worker import approval as logic
from worker.app import app
from worker.assistant import logic as run_logic
from worker.assistant.config import RunSettings
from worker.assistant.flow import adapter_for, cancel_server_side, follow_up
from worker.assistant.state import RunState
from worker.assistant.store import Transition
from worker.context import WorkerContext
from worker.model_client import ModelError
from worker.orchestrate import ensure_dispatched, fan_out
from worker.tools import UnknownToolError
from worker.turn import TurnState, apply_decisions

SWEEP_SLOT_SECONDS = 0.5
SWEEP_BATCH = 200


@cache
def _store(client: redis.Redis) -> ApprovalStore:
    return ApprovalStore(client)


def store(ctx: WorkerContext) -> ApprovalStore:
    return _store(ctx.jobs.redis)


def tools_needing_approval(
    ctx: WorkerContext, request: ChatRequest, names: Sequence[str]
) -> list[str]:
    """The request's tools whose calls wait for a decision; raises UnknownToolError for a
    ``require_approval`` name the request cannot call."""
    unknown = [name for name in request.require_approval if name not in names]
    if unknown:
        raise UnknownToolError(
            f"require_approval: unknown tools: {', '.join(unknown)}; "
            f"known tools: {', '.join(names) or 'none'}"
        )
    flagged = [name for name in names if _flagged(ctx, name)]
    return logic.tools_needing_approval(flagged, request.require_approval, names)


def _flagged(ctx: WorkerContext, name: str) -> bool:
    """``@tool(requires_approval=True)``, as announced in the registry or held locally."""
    spec = ctx.catalog.spec(name)
    local = ctx.registry.get(name)
    return bool((spec is not None and spec.requires_approval)
                or (local is not None and local.requires_approval))


# Opening a wait
def _open(ctx: WorkerContext, job_id: str, approvals: list[Approval]) -> int:
    """Open the round (once); -1 when the job ended. Schedules the timeout sweep."""
    job = ctx.jobs.get_job(job_id)
    if job is None:
        return -1
    waiting = job.model_copy(
        update={"status": JobStatus.WAITING_APPROVAL, "updated_at": time.time()}
    )
    due_at = approvals[0].timeout_at if approvals else None
    undecided = store(ctx).open(waiting, approvals, due_at)
    if due_at is not None and undecided > 0:
        ensure_sweep(ctx, due_at)
    return undecided


def _resume_signature(job_id: str) -> Signature:
    return app.signature(
        TASK_APPROVAL_RESUME, kwargs={"job_id": job_id}, kwargsrepr=f"job={job_id}",
        argsrepr="(tool outputs)",
    )


def _start_waiting(
    ctx: WorkerContext, job_id: str, early: list[ToolCall], allowed: list[str],
    undecided: int, errback: Signature,
) -> None:
    """Run the calls that need no decision now (their callback is the resume). Opened
    again (a redelivery, the stall sweep), only calls without a stored output run."""
    missing = [c for c in early if ctx.turns.cached_tool_output(job_id, c.id) is None]
    if missing:
        fan_out(job_id, missing, allowed, _resume_signature(job_id), errback)
    elif undecided == 0:  # decided already: go on
        _resume_signature(job_id).apply_async()


def open_turn_approvals(ctx: WorkerContext, state: TurnState) -> None:
    approvals = logic.new_approvals(
        state.job_id, state.pending_calls, state.awaiting, time.time(),
        state.request.approval_timeout_seconds,
    )
    undecided = _open(ctx, state.job_id, approvals)
    if undecided < 0:  # cancelled or timed out meanwhile: this step was the last one
        ctx.jobs.released(state.job_id, state.session_id)
        return
    abort = app.signature(TASK_ABORT_TURN, kwargs={"job_id": state.job_id,
                                                   "version": state.version})
    early = logic.early_calls(state.runnable_calls(), state.awaiting)
    _start_waiting(ctx, state.job_id, early, state.tool_names, undecided, abort)


def open_run_approvals(ctx: WorkerContext, state: RunState) -> None:
    approvals = logic.new_approvals(
        state.job_id, state.pending_calls, state.awaiting, time.time(),
        state.request.approval_timeout_seconds,
    )
    undecided = _open(ctx, state.job_id, approvals)
    if undecided < 0:
        cancel_server_side(ctx, state.job_id)
        ctx.jobs.released(state.job_id, state.session_id)
        return
    abort = app.signature(TASK_ABORT_RUN, kwargs={"job_id": state.job_id,
                                                  "tool_round": state.tool_rounds})
    early = logic.early_calls(state.runnable_calls(), state.awaiting)
    _start_waiting(ctx, state.job_id, early, state.tool_names, undecided, abort)


# Resuming
def _ready(
    ctx: WorkerContext, job_id: str, runnable: list[ToolCall], awaiting: list[str]
) -> tuple[dict[str, Approval], dict[str, ToolOutput]] | None:
    """Decisions and early outputs, once all are in; None while something is missing."""
    decisions = {a.call_id: a for a in store(ctx).all(job_id)}
    if any(not (d := decisions.get(cid)) or not d.decided for cid in awaiting):
        return None
    early: dict[str, ToolOutput] = {}
    for call in logic.early_calls(runnable, awaiting):
        output = ctx.turns.cached_tool_output(job_id, call.id)
        if output is None:
            return None  # its tool task's callback resumes again
        early[call.id] = output
    return decisions, early


def _mark_running(ctx: WorkerContext, job_id: str) -> None:
    job = ctx.jobs.get_job(job_id)
    if job is not None and job.status == JobStatus.WAITING_APPROVAL:
        store(ctx).set_record(
            job.model_copy(update={"status": JobStatus.RUNNING, "updated_at": time.time()})
        )


def resume_turn(ctx: WorkerContext, job_id: str) -> str:
    state = ctx.turns.load(job_id)
    if state is None:
        return "nothing to do"
    if ctx.jobs.is_final(job_id):  # cancelled or timed out while waiting
        ctx.jobs.released(job_id, state.session_id)
        return "already ended"
    if state.phase != "approval":  # a duplicate: the wait is over already
        _mark_running(ctx, job_id)
        ensure_dispatched(ctx, state)
        return "moved on"
    ready = _ready(ctx, job_id, state.runnable_calls(), state.awaiting)
    if ready is None:
        return "waiting"
    new = apply_decisions(state, *ready)
    if not ctx.turns.advance(state, new):
        current = ctx.turns.load(job_id)
        if current is not None and current.phase != "approval":
            ensure_dispatched(ctx, current)
        return "duplicate"
    _mark_running(ctx, job_id)
    ensure_dispatched(ctx, new, fresh=True)
    return "resumed"


def resume_run(ctx: WorkerContext, settings: RunSettings, job_id: str) -> str:
    state = ctx.runs.load(job_id)
    if state is None:
        return "nothing to do"
    if ctx.jobs.is_final(job_id):
        cancel_server_side(ctx, job_id)
        ctx.jobs.released(job_id, state.session_id)
        return "already ended"
    if state.phase != "approval":
        _mark_running(ctx, job_id)
        follow_up(ctx, settings, state)
        return "moved on"
    ready = _ready(ctx, job_id, state.runnable_calls(), state.awaiting)
    if ready is None:
        return "waiting"
    expired = _server_gave_up(ctx, state)
    new = run_logic.failed(state, expired) if expired else run_logic.apply_decisions(
        state, *ready
    )
    if not ctx.runs.save(Transition.of(state, new)):
        current = ctx.runs.load(job_id)
        if current is not None and current.phase != "approval":
            follow_up(ctx, settings, current)
        return "duplicate"
    _mark_running(ctx, job_id)
    follow_up(ctx, settings, new)
    return "failed" if expired else "resumed"


def _server_gave_up(ctx: WorkerContext, state: RunState) -> str | None:
    """Why the server-side run can no longer take the outputs (it expired while the
    person decided), or None. An API error here is left to the submit to report."""
    try:
        snap = adapter_for(ctx, state).retrieve(state)
    except ModelError:
        return None
    if snap.status == "requires_action":
        return None
    waited = time.time() - min((a.requested_at for a in store(ctx).all(state.job_id)
                                if a.call_id in state.awaiting), default=time.time())
    return (f"the server-side run is {snap.status} after waiting {waited:.0f} s for "
            "approval of its tool calls: the server stopped waiting for the outputs "
            "(decide sooner, or give the run a longer expiry)")


# Timeouts
def ensure_sweep(ctx: WorkerContext, at: float) -> None:
    """Make sure an approval sweep runs at (or just after) ``at``; one task per slot, and
    never a countdown longer than half the visibility timeout."""
    now = time.time()
    run_at = min(max(at, now), now + longest_countdown())
    slot = math.ceil(run_at / SWEEP_SLOT_SECONDS)
    countdown = max(slot * SWEEP_SLOT_SECONDS - now, 0.0)
    if ctx.jobs.redis.set(keys.approval_sweep(slot), "1", nx=True, ex=int(countdown) + 30):
        app.send_task(TASK_APPROVAL_SWEEP, countdown=countdown, ignore_result=True,
                      kwargsrepr=f"slot={slot}")


def sweep_timeouts(ctx: WorkerContext, now: float | None = None) -> int:
    """Decline every call whose approval timeout passed; returns how many. Then make sure
    the sweep for the next timeout is enqueued."""
    now = time.time() if now is None else now
    redis_client = ctx.jobs.redis
    due = cast(list[tuple[str, float]], redis_client.zrangebyscore(
        keys.approvals_due(), "-inf", now, start=0, num=SWEEP_BATCH, withscores=True,
    ))
    declined = 0
    for job_id, score in due:
        later: float | None = None
        for item in store(ctx).pending(job_id):
            if item.timeout_at is None:
                continue
            if item.timeout_at > now:
                later = min(later or item.timeout_at, item.timeout_at)
                continue
            try:
                decided = store(ctx).decide(job_id, item.call_id, False,
                                            logic.timeout_reason(item), "timeout", now)
            except ApprovalError:  # decided meanwhile, or the job ended
                continue
            declined += 1
            if decided.undecided == 0:
                send_resume(app, job_id)
        store(ctx).reschedule_due(job_id, score, later)
    earliest = cast(list[tuple[str, float]],
                    redis_client.zrange(keys.approvals_due(), 0, 0, withscores=True))
    if len(due) >= SWEEP_BATCH:
        ensure_sweep(ctx, now)
    elif earliest:
        ensure_sweep(ctx, earliest[0][1])
    return declined
