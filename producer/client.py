"""The Python client other services use to submit chat requests and follow them.

It enqueues by task name and never imports worker code; it needs only celery, redis
and pydantic.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from celery import Celery

from producer.contracts import (
    SESSION_ID_PATTERN,
    TASK_START_TURN,
    ChatMessage,
    ChatRequest,
    JobEvent,
    JobResult,
    JobStatus,
    StartTurn,
)
from producer.jobstore import JobStore, connect


class JobTimeout(TimeoutError):
    """The job did not end within the time the caller was willing to wait."""


class InvalidSessionId(ValueError):
    """A session id that no request could have used; refused before touching Redis."""


def checked_session_id(session_id: str) -> str:
    if not re.match(SESSION_ID_PATTERN, session_id):
        raise InvalidSessionId(f"session_id: malformed session id {session_id!r}")
    return session_id


def make_producer_app(redis_url: str | None = None) -> Celery:
    """A Celery app with the shared configuration, used only to send tasks."""
    app = Celery("celery-agents-producer")
    app.config_from_object("celeryconfig")
    if redis_url:
        app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


class AgentClient:
    """Submit chat requests, read their status and events, manage session memory."""

    def __init__(self, redis_url: str | None = None, *, celery_app: Celery | None = None) -> None:
        self.celery = celery_app or make_producer_app(redis_url)
        self.jobs = JobStore(connect(redis_url or str(self.celery.conf.broker_url)))

    def close(self) -> None:
        self.jobs.redis.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, request: ChatRequest | Mapping[str, Any]) -> str:
        """Validate and enqueue a request; returns the job id.

        Raises pydantic.ValidationError (naming the field) before anything is enqueued.
        """
        if not isinstance(request, ChatRequest):
            request = ChatRequest.model_validate(request)
        job_id = str(uuid.uuid4())
        message = StartTurn(job_id=job_id, request=request)
        now = time.time()
        self.jobs.put_job(
            JobResult(
                job_id=job_id,
                session_id=request.session_id,
                status=JobStatus.QUEUED,
                model=request.model,
                created_at=now,
                updated_at=now,
            )
        )
        self.jobs.emit(job_id, "queued", create=True, session_id=request.session_id)
        try:
            self.celery.send_task(
                TASK_START_TURN,
                kwargs={"message": message.model_dump(mode="json")},
                task_id=f"{job_id}-start",
                kwargsrepr=f"job={job_id} session={request.session_id}",
                ignore_result=True,  # progress is read from the job's events, not Celery results
            )
        except Exception as exc:  # the broker is down: do not leave a job queued forever
            self.jobs.fail(job_id, f"could not enqueue the job: {type(exc).__name__}: {exc}")
            raise
        return job_id

    def status(self, job_id: str) -> JobResult | None:
        """The job record, or None for an unknown (or expired) job."""
        return self.jobs.get_job(job_id)

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[JobEvent]:
        """The job's events as they happen, ending with its terminal event."""
        deadline = time.time() + (timeout if timeout is not None else 365 * 86400)
        yield from self.jobs.follow_events(job_id, deadline)

    def wait(self, job_id: str, timeout: float = 300.0) -> JobResult:
        """Block until the job ended; raises JobTimeout after ``timeout`` seconds."""
        deadline = time.time() + timeout
        for event in self.jobs.follow_events(job_id, deadline):
            if event.terminal:
                break
        result = self.jobs.get_job(job_id)
        if result is None:
            raise KeyError(f"unknown job {job_id}")
        if not result.status.terminal:
            raise JobTimeout(f"job {job_id} still {result.status} after {timeout} s")
        return result

    def run(self, request: ChatRequest | Mapping[str, Any], timeout: float = 300.0) -> JobResult:
        """Submit and wait."""
        return self.wait(self.submit(request), timeout)

    def history(self, session_id: str) -> list[ChatMessage]:
        """The session's stored messages, oldest first."""
        return self.jobs.history(checked_session_id(session_id))

    def reset(self, session_id: str) -> bool:
        """Delete the session's memory; True when there was any."""
        return self.jobs.reset(checked_session_id(session_id))
