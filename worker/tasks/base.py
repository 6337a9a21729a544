"""What every task of a job shares: a job id to fail when something unexpected breaks."""

from __future__ import annotations

import re
import time
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from producer.contracts import JOB_ID_PATTERN
from worker.context import get_context

logger = get_task_logger("celery_agents")

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)


class InvalidTaskMessage(Exception):
    """A task message that does not match the contract (another version, or garbage)."""


def job_id_of(kwargs: dict[str, Any]) -> str | None:
    """The job id a message belongs to, if it carries a plausible one."""
    candidates = [kwargs.get("job_id")]
    message = kwargs.get("message")
    if isinstance(message, dict):
        candidates.append(message.get("job_id"))
    for candidate in candidates:
        if isinstance(candidate, str) and _JOB_ID_RE.match(candidate):
            return candidate
    return None


class JobTask(Task):  # type: ignore[misc]
    """Fails the job with a readable error when a task of it fails unexpectedly.

    The worker itself lives on: Celery records the task failure and acknowledges it.
    """

    def on_failure(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        job_id = job_id_of(kwargs if isinstance(kwargs, dict) else {})
        if job_id is None:
            return
        if isinstance(exc, InvalidTaskMessage):
            error = str(exc)
        else:
            error = f"internal error in {self.name}: {type(exc).__name__}: {exc}"
        logger.error("job %s failed in %s: %s", job_id, self.name, error)
        get_context().jobs.fail(job_id, error)


def log_step(job_id: str, session_id: str, step: str, task: str, started: float) -> None:
    """The one log line per step: job, session, step, task name and duration."""
    logger.info(
        "job=%s session=%s step=%s task=%s duration_ms=%.1f",
        job_id, session_id, step, task, (time.perf_counter() - started) * 1000,
    )
