"""Tasks of human approval: resume a job whose calls are decided; time out waits.

Both are thin: the logic is in worker/approval_flow.py (and worker/approval.py).
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from producer.contracts import TASK_APPROVAL_RESUME, TASK_APPROVAL_SWEEP
from worker.app import app
from worker.approval_flow import resume_run, resume_turn, sweep_timeouts
from worker.assistant.config import RunSettings
from worker.context import get_context
from worker.tasks.base import JobTask, log_step

SETTINGS = RunSettings.from_env()


@app.task(name=TASK_APPROVAL_RESUME, base=JobTask, bind=True, ignore_result=True)
def resume_after_approval(
    self: Task, tool_outputs: list[Any] | dict[str, Any] | None = None, *, job_id: str
) -> str:
    """Sent by the last decision, and the callback of the calls that needed none (their
    outputs are read from Redis, where each tool task stored its own)."""
    started = time.perf_counter()
    ctx = get_context()
    job = ctx.jobs.get_job(job_id)
    if job is None:
        return "unknown job"
    if job.mode == "assistant":
        outcome = resume_run(ctx, SETTINGS, job_id)
    else:
        outcome = resume_turn(ctx, job_id)
    log_step(job_id, job.session_id, f"approval:{outcome}", self.name, started)
    return outcome


@app.task(name=TASK_APPROVAL_SWEEP, bind=True, ignore_result=True)
def sweep_approval_timeouts(self: Task, *_: Any, **__: Any) -> str:
    started = time.perf_counter()
    declined = sweep_timeouts(get_context())
    if declined:
        log_step("-", "-", f"approval-timeouts:{declined}", self.name, started)
    return f"declined {declined}"
