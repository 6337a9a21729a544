"""The tool task: run one tool call, once per tool_call_id, and return its output as data.

A redelivered call reuses the stored output. Without one, an idempotent tool simply runs
again; a tool registered with ``idempotent=False`` runs at most once: it is claimed in
Redis before it starts (worker/tool_claims.py). A copy that finds the claim without an
output comes back later while the claiming run is alive, and answers that the outcome is
unknown once it is not, instead of running it a second time.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from producer.contracts import TASK_TOOL_RUN, JobEvent, ToolCall, ToolOutput
from worker.app import app
from worker.context import WorkerContext, get_context
from worker.settings import WorkerSettings
from worker.tasks.base import REDIS_DOWN, log_step
from worker.tool_claims import Claim
from worker.tool_outputs import error_output
from worker.tools.dispatch import is_idempotent, not_served, run_call, serves

_TOOL_TIME_LIMIT = WorkerSettings.from_env().tool_time_limit
logger = get_task_logger("celery_agents")


def unknown_outcome(call: ToolCall) -> ToolOutput:
    """The output of a non-idempotent call whose earlier run never reported back."""
    return error_output(
        call,
        f"Error: the outcome of tool {call.name} is unknown: the worker running it "
        "stopped before it finished, and it was not run again because it is not safe "
        "to repeat.",
    )


def timed_out(call: ToolCall) -> ToolOutput:
    """The output of a call stopped by the tool time limit (``AGENT_TOOL_TIME_LIMIT``)."""
    return error_output(
        call,
        f"Error: tool {call.name} did not finish within its time limit of "
        f"{_TOOL_TIME_LIMIT:g} s",
    )


@app.task(
    name=TASK_TOOL_RUN,
    bind=True,
    soft_time_limit=_TOOL_TIME_LIMIT,
    time_limit=_TOOL_TIME_LIMIT + 10,
    max_retries=None,  # its only retries wait for a copy of the call that is still alive
)
def run_tool(
    self: Task, job_id: str, call: dict[str, Any], allowed: list[str], unserved: bool = False
) -> dict[str, Any]:
    """Never raises for a tool's own failure: errors are outputs the model gets to see.

    A raised exception here means infrastructure trouble; the chord's errback then
    fails the job. Except when Redis is unreachable: the message is then requeued (or,
    while Redis is down, comes back after the visibility timeout), so a Redis restart
    fails no fan-out. ``unserved``: no live worker served the tool when the call was
    routed (worker/tool_routing.py); the call answers so at once.
    """
    try:
        return _run_tool(self, job_id, call, allowed, unserved)
    except REDIS_DOWN as exc:
        logger.warning("job %s: Redis unreachable during a tool call (%s); requeued", job_id, exc)
        raise Reject(f"Redis unreachable: {exc}", requeue=True) from None


def _run_tool(
    task: Task, job_id: str, call: dict[str, Any], allowed: list[str], unserved: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    ctx = get_context()
    tool_call = ToolCall.model_validate(call)
    served = not unserved and serves(ctx.registry, tool_call.name)
    once = served and _runs_at_most_once(ctx, tool_call, allowed)
    # The common call (served here, safe to repeat) checks for a stored output and says
    # it started in one round trip; the others check first, then claim or refuse.
    if served and not once:
        cached = ctx.turns.begin_tool_call(job_id, tool_call.id, _started(job_id, tool_call))
    else:
        cached = ctx.turns.cached_tool_output(job_id, tool_call.id)
    if cached is not None:  # a redelivered call: reuse the result, do not run again
        return cached.model_dump()
    if not served:
        # Never an internal error: the model reads which worker lacked the tool.
        worker = None if unserved else str(task.request.hostname)
        output = ctx.turns.tool_output_once(job_id, not_served(tool_call, worker, allowed))
    elif once:
        claim = ctx.claims.claim(job_id, tool_call.id)
        # A copy still running has the output: come back for it, while the job lasts
        # (a tool stuck on a pool without time limits would otherwise keep it coming).
        if claim is Claim.RUNNING and not ctx.jobs.is_final(job_id):
            raise task.retry(countdown=_copy_backoff(task))
        if claim is Claim.CLAIMED:
            ctx.jobs.emit(job_id, "tool_started", tool=tool_call.name,
                          tool_call_id=tool_call.id)
            with ctx.claims.held(job_id, tool_call.id):
                return _run_and_keep(task, ctx, job_id, tool_call, allowed, started)
        # Claimed by a copy that died mid-call without an output (or the job is over):
        # never a second run.
        output = ctx.turns.tool_output_once(job_id, unknown_outcome(tool_call))
    else:
        return _run_and_keep(task, ctx, job_id, tool_call, allowed, started)
    ctx.jobs.emit(
        job_id, "tool_finished", tool=tool_call.name, tool_call_id=tool_call.id,
        is_error=output.is_error,
    )
    log_step(job_id, "-", f"tool:{tool_call.name}", task.name, started)
    return output.model_dump()


def _run_and_keep(
    task: Task, ctx: WorkerContext, job_id: str, call: ToolCall, allowed: list[str],
    started: float,
) -> dict[str, Any]:
    try:
        output = run_call(ctx, call, allowed, (SoftTimeLimitExceeded,))
    except SoftTimeLimitExceeded:
        output = timed_out(call)
    # kept once, and its tool_finished event, in one round trip
    output = ctx.turns.tool_output_once(job_id, output, _finished(job_id, output))
    log_step(job_id, "-", f"tool:{call.name}", task.name, started)
    return output.model_dump()


def _copy_backoff(task: Task) -> float:
    """0.5 s, doubling to 8 s: a copy's checks on a call still running elsewhere."""
    return float(min(0.5 * 2 ** int(task.request.retries or 0), 8.0))


def _started(job_id: str, call: ToolCall) -> JobEvent:
    return JobEvent(job_id=job_id, kind="tool_started", at=time.time(),
                    detail={"tool": call.name, "tool_call_id": call.id})


def _finished(job_id: str, output: ToolOutput) -> JobEvent:
    return JobEvent(
        job_id=job_id, kind="tool_finished", at=time.time(),
        detail={"tool": output.tool_name, "tool_call_id": output.tool_call_id,
                "is_error": output.is_error},
    )


def _runs_at_most_once(ctx: WorkerContext, call: ToolCall, allowed: list[str]) -> bool:
    return not is_idempotent(ctx, call.name) and call.name in allowed
