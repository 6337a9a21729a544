"""What the tasks do with a saved RunState: schedule polls, fan out tools, end the job.

Each saved phase has exactly one follow-up, and each follow-up is idempotent:
- ``polling``: the job is in the due set (written with the state); a poll task is
  enqueued for the time slot of its next poll unless one is already (``ensure_tick``);
- ``tools``: one ``agents.tool.run`` task per runnable call, in parallel, whose callback
  submits all outputs (enqueued once per tool round, marked in Redis);
- ``done``: the job ends through JobStore.finish, which writes once.
"""

from __future__ import annotations

import math
import time

from celery.utils.log import get_task_logger

from producer.contracts import (
    TASK_ABORT_RUN,
    TASK_POLL_RUN,
    TASK_SUBMIT_TOOL_OUTPUTS,
    ChatMessage,
    JobEvent,
    JobResult,
    JobStatus,
)
from worker.app import app
from worker.assistant.api import is_not_found
from worker.assistant.assistants_api import AssistantsAdapter
from worker.assistant.config import RunSettings
from worker.assistant.logic import ACTIVE
from worker.assistant.protocol import RunAdapter
from worker.assistant.responses_api import ResponsesAdapter
from worker.assistant.state import RunState
from worker.context import WorkerContext
from worker.model_client import ModelError
from worker.orchestrate import fan_out

logger = get_task_logger("celery_agents")

# How often a tool round broken by a Redis outage is sent again before the job fails.
MAX_ROUND_RESENDS = 5


def adapter_for(ctx: WorkerContext, state: RunState) -> RunAdapter:
    def schemas() -> list[dict[str, object]]:
        return ctx.catalog.schemas(state.tool_names)  # live registry

    if state.protocol == "assistants":
        return AssistantsAdapter(ctx.model, ctx.runs, schemas)
    return ResponsesAdapter(ctx.model, schemas)


def assistants_adapter(ctx: WorkerContext) -> AssistantsAdapter:
    return AssistantsAdapter(ctx.model, ctx.runs, list)


# Polls
def ensure_tick(ctx: WorkerContext, settings: RunSettings, at: float | None) -> None:
    """Make sure a poll task runs at (or just after) ``at``.

    Time is cut into slots of ``settings.tick`` seconds; the first caller for a slot
    enqueues its poll task with a countdown to the slot's end, everyone else relies on it.
    A poll task polls every run that is due, so runs due in the same slot share one.
    """
    if at is None:
        return
    now = time.time()
    slot = math.ceil(max(at, now) / settings.tick)
    countdown = max(slot * settings.tick - now, 0.0)
    if ctx.runs.take_tick(slot, countdown + 2 * settings.tick + 5.0):
        enqueue_tick(slot, countdown)


def enqueue_tick(slot: int | None, countdown: float) -> None:
    app.signature(TASK_POLL_RUN, kwargs={"slot": slot}).apply_async(
        countdown=countdown, kwargsrepr=f"slot={slot}", ignore_result=True
    )


# Follow-ups of a saved state
def follow_up(ctx: WorkerContext, settings: RunSettings, state: RunState) -> None:
    """Do what the saved ``state``'s phase calls for (safe to repeat)."""
    if state.phase == "polling":
        ensure_tick(ctx, settings, state.next_poll_at)
        return
    if state.phase == "tools":
        dispatch_tools(ctx, state)
    elif state.phase == "approval":  # waits for people: not polled, no task held
        from worker.approval_flow import open_run_approvals  # it imports this module

        open_run_approvals(ctx, state)
    elif state.phase == "done":
        end_job(ctx, state)
    ctx.runs.unschedule_at(state)  # unless a submit already rescheduled a newer state


def dispatch_tools(ctx: WorkerContext, state: RunState) -> None:
    """One tool task per runnable call, in parallel; the callback submits all outputs.

    Enqueued before it is marked as dispatched: a task killed in between enqueues it
    again, which the receiving tasks tolerate (outputs are kept per tool_call_id and the
    submit is marked per round).
    """
    transition = f"round:{state.tool_rounds}"
    if ctx.turns.was_dispatched(state.job_id, transition):
        return
    send_tool_round(ctx, state)
    ctx.turns.mark_dispatched(state.job_id, transition)


def redispatch_tools(ctx: WorkerContext, job_id: str, tool_round: int | None) -> bool:
    """Send a tool round again whose chord or link a Redis outage broke; False when the
    resends are spent (the caller then fails the job).

    Only while the run still waits for that round; tool outputs are stored per
    tool_call_id, so no tool runs twice.
    """
    state = ctx.runs.load(job_id)
    if state is None or ctx.jobs.is_final(job_id):
        return True  # nothing left to do
    if state.phase != "tools" or (tool_round is not None and state.tool_rounds != tool_round):
        return True  # the round was submitted after all, or this is an older round's errback
    if ctx.turns.count_resend(job_id, f"round:{state.tool_rounds}") > MAX_ROUND_RESENDS:
        return False
    send_tool_round(ctx, state)
    return True


def send_tool_round(ctx: WorkerContext, state: RunState) -> None:
    """Enqueue the tool tasks of the state's round and their submit callback."""
    job_id, tool_round = state.job_id, state.tool_rounds
    submit = app.signature(
        TASK_SUBMIT_TOOL_OUTPUTS,
        kwargs={"job_id": job_id, "tool_round": tool_round},
        kwargsrepr=f"job={job_id} round={tool_round}",
        argsrepr="(tool outputs)",
    )
    abort = app.signature(TASK_ABORT_RUN, kwargs={"job_id": job_id, "tool_round": tool_round})
    fan_out(job_id, state.runnable_calls(), state.tool_names, submit, abort)


def resume(ctx: WorkerContext, settings: RunSettings, job_id: str) -> bool:
    """Send again what a stalled run waits for (its task was lost): the start, a poll,
    its tool round or its end. False when there is no run state to resume."""
    state = ctx.runs.load(job_id)
    if state is None:
        return False
    if state.phase == "starting":
        return ctx.order.restart_head(job_id, state.session_id)
    if state.phase == "polling":
        now = time.time()
        ctx.runs.schedule(job_id, now)
        ensure_tick(ctx, settings, now)
    elif state.phase == "tools":
        send_tool_round(ctx, state)
    else:
        follow_up(ctx, settings, state)
    return True


def end_job(ctx: WorkerContext, state: RunState) -> None:
    """Write the job's result and final event once; a Responses session also remembers
    the exchange in its memory and the last response id for the next turn."""
    if state.outcome != "succeeded" and state.last_status in ACTIVE:
        cancel_run(ctx, state)  # e.g. a run that kept calling tools past its budget
    now = time.time()
    current = ctx.jobs.get_job(state.job_id)
    succeeded = state.outcome == "succeeded"
    result = JobResult(
        job_id=state.job_id,
        session_id=state.session_id,
        mode="assistant",
        protocol=state.protocol,
        status=JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED,
        response=state.response if succeeded else None,
        sources=state.sources,
        usage=state.usage,
        error=None if succeeded else state.error,
        model=state.model,
        model_calls=state.tool_rounds + 1,
        created_at=current.created_at if current else state.created_at,
        updated_at=now,
        deadline_at=current.deadline_at if current else state.deadline_at,
        metadata=current.metadata if current else None,  # the request's, kept to the end
        assistant_id=state.assistant_id,
        thread_id=state.thread_id,
        run_id=state.run_id,
        response_id=state.response_id,
        files=state.files,
    )
    detail: dict[str, object] = {
        "model_calls": state.tool_rounds + 1, "polls": state.polls,
        "tool_calls": len(state.sources),
    }
    if not succeeded:
        detail["error"] = state.error
    event = JobEvent(
        job_id=state.job_id, kind="succeeded" if succeeded else "failed", at=now, detail=detail
    )
    memory: list[ChatMessage] = []
    if succeeded and state.protocol == "responses":
        memory = [
            ChatMessage(role="user", content=state.request.message),
            ChatMessage(role="assistant", content=state.response),
        ]
    ended = ctx.jobs.finish(result, event, memory)
    if ended and succeeded and state.protocol == "assistants":
        ctx.runs.touch_session(state.session_id)
    if succeeded and state.protocol == "responses" and state.response_id:
        record = current if ended else ctx.jobs.get_job(state.job_id)
        if ended or (record is not None and record.status == JobStatus.SUCCEEDED):
            ctx.runs.set_last_response(state.session_id, state.response_id)


# Cancelling
def cancel_run(ctx: WorkerContext, state: RunState) -> None:
    """Cancel the state's run or response server-side; an ended one is not an error."""
    if state.server_object is None:
        return
    try:
        adapter_for(ctx, state).cancel(state)
    except ModelError as exc:
        # 400/404/409: it ended (or vanished) already. Anything else: log, the run
        # will end by itself (servers expire runs) and the job is over anyway.
        if not is_not_found(exc):
            logger.info("job %s: cancelling %s: %s", state.job_id, state.server_object, exc)


def cancel_server_side(ctx: WorkerContext, job_id: str) -> None:
    """Cancel the job's active run or response, if it has one, and stop polling it."""
    state = ctx.runs.load(job_id)
    if state is None:
        return
    ctx.runs.unschedule(job_id)
    if state.phase == "done" and state.last_status not in ACTIVE:
        return
    if state.last_status in ("completed", "failed", "cancelled", "expired", "incomplete"):
        return
    cancel_run(ctx, state)
