"""Turning a saved TurnState into the next enqueued task, and ending a turn.

Each saved state has exactly one follow-up, chosen by its ``phase``. The follow-up is
enqueued before it is marked as dispatched: a task killed in between enqueues it again
on redelivery, which the receiving tasks tolerate (they are idempotent).
"""

from __future__ import annotations

import time

from celery import Signature, chord

from producer.contracts import (
    TASK_ABORT_TURN,
    TASK_MODEL_STEP,
    JobEvent,
    JobResult,
    JobStatus,
    ToolCall,
)
from worker.app import app
from worker.context import WorkerContext
from worker.model_params import UnparsableAnswer, parse_answer
from worker.tool_routing import tool_signature
from worker.turn import TurnState


def ensure_dispatched(ctx: WorkerContext, state: TurnState, fresh: bool = False) -> None:
    """Enqueue the follow-up of ``state`` unless that was done already.

    ``fresh``: this task itself just saved ``state``, so nobody can have dispatched it yet
    and the check is skipped (one round trip less on the normal path).
    """
    if state.phase == "done":
        finish_turn(ctx, state)  # idempotent by itself
        return
    transition = transition_of(state)
    if not fresh and ctx.turns.was_dispatched(state.job_id, transition):
        return
    if state.phase == "model":
        enqueue_model_step(state.job_id, state.step)
    elif state.phase == "approval":  # waits for people: no task but the early calls
        from worker.approval_flow import open_turn_approvals  # it imports this module

        open_turn_approvals(ctx, state)
    else:
        enqueue_tool_fanout(state)
    ctx.turns.mark_dispatched(state.job_id, transition)


def transition_of(state: TurnState) -> str:
    """The name a saved state's follow-up is marked dispatched under."""
    return f"v{state.version}"


def enqueue_model_step(job_id: str, step: int) -> None:
    app.signature(
        TASK_MODEL_STEP, kwargs={"job_id": job_id, "step": step}
    ).apply_async(kwargsrepr=f"job={job_id} step={step}")


def enqueue_tool_fanout(state: TurnState) -> None:
    """One tool task per runnable call, in parallel; the next model step is the callback.

    The chord hands the callback the outputs in call order.
    """
    next_step = app.signature(
        TASK_MODEL_STEP,
        kwargs={"job_id": state.job_id, "step": state.step},
        kwargsrepr=f"job={state.job_id} step={state.step}",
        argsrepr="(tool outputs)",  # Flower shows this, not the outputs themselves
    )
    # The version lets the errback tell this round from a later one (see redispatch_fanout).
    abort = app.signature(
        TASK_ABORT_TURN, kwargs={"job_id": state.job_id, "version": state.version}
    )
    fan_out(state.job_id, state.runnable_calls(), state.tool_names, next_step, abort)


def fan_out(
    job_id: str, calls: list[ToolCall], allowed: list[str], callback: Signature,
    errback: Signature,
) -> None:
    """One ``agents.tool.run`` task per call, in parallel; ``callback`` gets the outputs
    in call order. ``errback`` hears of infrastructure failures only (tool errors are
    outputs). Used by chat turns and assistant runs alike."""
    callback.on_error(errback)
    if not calls:  # every call was refused by the budget: nothing to run
        callback.apply_async(args=[[]])
        return
    # Each call goes to the queue of the tool's servers (worker/tool_routing.py).
    header = [tool_signature(app, job_id, call, allowed) for call in calls]
    if len(header) == 1:
        # One call needs no chord: a plain link hands its output to the callback and
        # skips the chord's counter and stored results (the common case). Sent with
        # link options, not as a chain: the same message, without the chain's copies.
        header[0].apply_async(link=callback, link_error=errback, ignore_result=True)
        return
    chord(header)(callback)


# How often one round's fan-out is sent again after Redis outages broke it.
MAX_FANOUT_RESENDS = 5


def redispatch_fanout(ctx: WorkerContext, job_id: str, version: int | None) -> bool:
    """Send a tool round again whose chord or link a Redis outage broke; False when the
    resends are spent (the caller then fails the job).

    Only the round the errback belongs to (``version``) and only while the turn still
    waits for it. The tool tasks find their stored outputs (keyed by tool_call_id), so
    this costs no second execution; a non-idempotent call whose first run never stored
    an output answers "outcome unknown" rather than running again.
    """
    state = ctx.turns.load(job_id)
    if state is None or ctx.jobs.is_final(job_id):
        return True  # nothing left to do
    if state.phase != "tools" or (version is not None and state.version != version):
        return True  # the round completed after all, or this is an older round's errback
    if ctx.turns.count_resend(job_id, transition_of(state)) > MAX_FANOUT_RESENDS:
        return False
    enqueue_tool_fanout(state)
    return True


def finish_turn(ctx: WorkerContext, state: TurnState) -> None:
    """Write the result, the final event and the turn's messages to memory, once."""
    now = time.time()
    try:
        parsed = parse_answer(state.request, state.response)
    except UnparsableAnswer as exc:
        ctx.jobs.fail(state.job_id, str(exc), step=state.step)
        return
    result = JobResult(
        job_id=state.job_id,
        session_id=state.session_id,
        status=JobStatus.SUCCEEDED,
        response=state.response,
        parsed=parsed,
        metadata=state.request.metadata,
        sources=state.sources,
        usage=state.usage,
        model=state.model,
        model_calls=state.step,
        created_at=state.created_at or now,
        updated_at=now,
        deadline_at=state.deadline_at,  # kept, as failed and cancelled records keep it
    )
    event = JobEvent(
        job_id=state.job_id,
        kind="succeeded",
        at=now,
        step=state.step,
        detail={"model_calls": state.step, "tool_calls": len(state.sources)},
    )
    ctx.jobs.finish(result, event, state.messages)
