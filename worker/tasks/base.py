"""What every task of a job shares: a job id to fail when something unexpected breaks."""

from __future__ import annotations

import re
import time
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import BackendError, ChordError, Reject
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError
from redis.exceptions import NoScriptError

from producer.contracts import JOB_ID_PATTERN
from worker.context import get_context

logger = get_task_logger("celery_agents")

_JOB_ID_RE = re.compile(JOB_ID_PATTERN)


# Redis (store, broker or result backend) unreachable, after the clients' own retries;
# or restarted between a Lua script's load and its EVALSHA (scripts are not persisted:
# redis-py loads a missing script once, and a restart in that window raises NOSCRIPT).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, NoScriptError, OperationalError,
              BackendError)
# How those errors read inside a ChordError, which carries only their repr.
_REDIS_DOWN_NAMES = ("ConnectionError", "TimeoutError", "NoScriptError", "OperationalError",
                     "BackendStoreError")


def redis_down(exc: object) -> bool:
    """Is ``exc`` Redis being unreachable (a restart), rather than a fault of the job?"""
    if isinstance(exc, REDIS_DOWN):
        return True
    if isinstance(exc, Reject):  # Task.retry's "could not publish the retry"
        return redis_down(exc.reason)
    if isinstance(exc, ChordError):  # "Dependency ID raised ConnectionError(...)" etc.
        return any(f"{name}(" in str(exc) for name in _REDIS_DOWN_NAMES)
    return False


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

    Redis being unreachable is no failure of the job: the task goes back to the queue
    (redelivered at once, or after the visibility timeout while Redis is still away).
    Every task is idempotent, so running it again is safe.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Reject as exc:
            # Task.retry raises Reject(requeue=False) when it cannot publish the retry:
            # acknowledged, the message and with it the job would be lost.
            if not exc.requeue and redis_down(exc.reason):
                logger.warning("%s: could not publish a retry (%s); requeued", self.name,
                               exc.reason)
                raise Reject(exc.reason, requeue=True) from None
            raise
        except REDIS_DOWN as exc:
            logger.warning("%s: Redis unreachable (%s); requeued", self.name, exc)
            raise Reject(f"Redis unreachable: {exc}", requeue=True) from None

    def on_failure(
        self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        job_id = job_id_of(kwargs if isinstance(kwargs, dict) else {})
        if job_id is None:
            return
        if redis_down(exc):  # raised outside the task body; it is redelivered, not failed
            logger.warning("job %s: %s hit Redis unreachable: %s", job_id, self.name, exc)
            return
        if isinstance(exc, InvalidTaskMessage):
            error = str(exc)
        else:
            error = f"internal error in {self.name}: {type(exc).__name__}: {exc}"
        logger.error("job %s failed in %s: %s", job_id, self.name, error)
        get_context().jobs.fail(job_id, error)


def reschedule(task: Task, countdown: float) -> NoReturn:
    """Run ``task`` again after ``countdown`` seconds (a retry, not a sleeping worker).

    The caller bounds the attempts itself (``AGENT_MODEL_MAX_RETRIES``). Celery reads
    ``max_retries=None`` as "the task's default (3)", so exactly this retry is allowed.
    """
    raise task.retry(countdown=countdown, max_retries=task.request.retries + 1)


def log_step(job_id: str, session_id: str, step: str, task: str, started: float) -> None:
    """The one log line per step: job, session, step, task name and duration."""
    logger.info(
        "job=%s session=%s step=%s task=%s duration_ms=%.1f",
        job_id, session_id, step, task, (time.perf_counter() - started) * 1000,
    )


def deadline_error(created_at: float, deadline_at: float) -> str:
    """The readable reason of a job that ran out of time."""
    return f"timeout: the job's deadline of {deadline_at - created_at:.0f} s passed"
