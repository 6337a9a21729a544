"""The tool task: run one tool call, once per tool_call_id, and return its output as data."""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from producer.contracts import TASK_TOOL_RUN, ToolCall
from worker.app import app
from worker.context import get_context
from worker.settings import WorkerSettings
from worker.tasks.base import log_step
from worker.tools import execute_tool_call

_TOOL_TIME_LIMIT = WorkerSettings.from_env().tool_time_limit


@app.task(
    name=TASK_TOOL_RUN,
    bind=True,
    soft_time_limit=_TOOL_TIME_LIMIT,
    time_limit=_TOOL_TIME_LIMIT + 10,
)
def run_tool(self: Task, job_id: str, call: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    """Never raises for a tool's own failure: errors are outputs the model gets to see.

    A raised exception here means infrastructure trouble; the chord's errback then
    fails the job.
    """
    started = time.perf_counter()
    ctx = get_context()
    tool_call = ToolCall.model_validate(call)
    cached = ctx.turns.cached_tool_output(job_id, tool_call.id)
    if cached is not None:  # a redelivered call: reuse the result, do not run again
        return cached.model_dump()
    ctx.jobs.emit(job_id, "tool_started", tool=tool_call.name, tool_call_id=tool_call.id)
    output = execute_tool_call(ctx.registry, tool_call, allowed)
    output = ctx.turns.tool_output_once(job_id, output)
    ctx.jobs.emit(
        job_id, "tool_finished", tool=tool_call.name, tool_call_id=tool_call.id,
        is_error=output.is_error,
    )
    log_step(job_id, "-", f"tool:{tool_call.name}", self.name, started)
    return output.model_dump()
