"""The Python client other services use to submit chat requests and follow them.

It enqueues by task name and never imports worker code; it needs only celery, redis
and pydantic.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery

from producer import keys, kombu_clients
from producer.approvals import ApprovalStore, approve
from producer.contracts import (
    SESSION_ID_PATTERN,
    TASK_SESSION_HISTORY,
    TASK_SESSION_RESET,
    Approval,
    ChatMessage,
    ChatRequest,
    JobEvent,
    JobResult,
    JobStatus,
    StartTurn,
    ToolEntry,
    default_deadline_seconds,
)
from producer.history_import import import_history
from producer.jobstore import EVENTS_MAX_LEN, JobStore, connect
from producer.session_listing import (
    HistoryPage,
    before_admit,
    history_page,
    recent_jobs,
    slice_page,
)
from producer.session_order import SessionOrder
from producer.streaming import StreamFollower, StreamItem
from producer.streaming import StreamReset as StreamReset  # re-exported for callers
from producer.tool_registry import SubmissionCheck, ToolRegistryStore
from producer.tool_registry import UnknownTools as UnknownTools  # re-exported for callers
from producer.webhook_policy import check_webhook


class JobTimeout(TimeoutError):
    """The job did not end within the time the caller was willing to wait."""


class JobNotFound(KeyError):
    """No job has this id: it was never submitted, or its record expired
    (``AGENT_RESULT_TTL``). Raised by :meth:`AgentClient.events` and
    :meth:`AgentClient.wait`; a ``KeyError``, as ``wait`` raised before."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"unknown job {self.job_id} (never submitted, or expired)"


class InvalidSessionId(ValueError):
    """A session id that no request could have used; refused before touching Redis."""


def checked_session_id(session_id: str) -> str:
    if not re.match(SESSION_ID_PATTERN, session_id):
        raise InvalidSessionId(f"session_id: malformed session id {session_id!r}")
    return session_id


def expected_model(request: ChatRequest) -> str:
    """The model the workers will use for ``request``, as they choose it (the request's,
    else its assistant definition's, else ``AGENT_MODEL``): the queued record shows it.
    Right as long as producer and workers share ``AGENT_MODEL``, as compose sets it."""
    spec_model = request.assistant.model if request.assistant is not None else None
    return request.model or spec_model or os.environ.get("AGENT_MODEL", "gpt-4o-mini")


def make_producer_app(redis_url: str | None = None) -> Celery:
    """A Celery app with the shared configuration, used only to send tasks."""
    kombu_clients.install()  # one Redis client per channel, not one per message sent
    app = Celery("celery-agents-producer")
    app.config_from_object("celeryconfig")
    if redis_url:
        app.conf.update(broker_url=redis_url, result_backend=redis_url)
    return app


@dataclass(frozen=True)
class Submission:
    """A validated request, ready for the admit script (producer/session_order.py)."""

    job_id: str
    session_id: str
    record_json: str
    event_json: str
    message: dict[str, Any]
    deadline_at: float | None
    created_at: float = 0.0
    webhook_url: str | None = None


def prepare_submit(request: ChatRequest | Mapping[str, Any]) -> Submission:
    """Validate (pydantic.ValidationError naming the field) and build what a submit
    stores; shared by AgentClient and AsyncAgentClient."""
    if not isinstance(request, ChatRequest):
        request = ChatRequest.model_validate(request)
    check_webhook(request.webhook_url)  # WebhookRefused: host not in the allowed list
    job_id = str(uuid.uuid4())
    now = time.time()
    deadline = request.deadline_seconds or default_deadline_seconds()
    deadline_at = now + deadline if deadline > 0 else None
    message = StartTurn(job_id=job_id, request=request, deadline_at=deadline_at)
    record = JobResult(
        job_id=job_id,
        session_id=request.session_id,
        mode=request.mode,
        protocol=request.protocol if request.mode == "assistant" else None,
        status=JobStatus.QUEUED,
        model=expected_model(request),
        created_at=now,
        updated_at=now,
        deadline_at=deadline_at,
        metadata=request.metadata,
    )
    event = JobEvent(
        job_id=job_id, kind="queued", at=now, detail={"session_id": request.session_id}
    )
    return Submission(
        job_id=job_id, session_id=request.session_id, record_json=record.model_dump_json(),
        event_json=event.model_dump_json(), message=message.model_dump(mode="json"),
        deadline_at=deadline_at, created_at=now, webhook_url=request.webhook_url,
    )


class AgentClient:
    """Submit chat requests, read their status and events, manage session memory."""

    def __init__(self, redis_url: str | None = None, *, celery_app: Celery | None = None) -> None:
        self.celery = celery_app or make_producer_app(redis_url)
        self.jobs = JobStore(connect(redis_url or str(self.celery.conf.broker_url)))
        self._check_tools = SubmissionCheck(self.jobs.redis)  # UnknownTools before enqueue
        self.order = SessionOrder(self.jobs.redis, self.celery)
        self.jobs.celery = self.celery  # a cancel here enqueues the job's webhook
        self.approval_store = ApprovalStore(self.jobs.redis)

    def tools(self) -> list[ToolEntry]:
        """The live tool registry: every tool a worker serves now, its schema, queue and
        servers (producer/tool_registry.py)."""
        return list(ToolRegistryStore(self.jobs.redis).live().values())

    def close(self) -> None:
        self.jobs.redis.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, request: ChatRequest | Mapping[str, Any]) -> str:
        """Validate and enqueue a request; returns the job id.

        Raises pydantic.ValidationError (naming the field) before anything is enqueued.
        The job starts at once if its session is idle, else after the session's earlier
        jobs have ended.
        """
        sub = prepare_submit(request)
        # UnknownTools (producer/tool_registry.py): a named tool no live worker serves.
        self._check_tools(sub.message["request"])
        job_id, session_id = sub.job_id, sub.session_id
        try:
            self.order.admit(
                job_id, session_id, sub.record_json, sub.event_json,
                sub.message, EVENTS_MAX_LEN, sub.deadline_at,
                before=lambda pipe: before_admit(pipe, sub),  # session listing, webhook url
            )
        except Exception as exc:  # Redis or the broker is down: do not leave a job queued
            self._give_up(job_id, session_id, f"could not enqueue the job: "
                          f"{type(exc).__name__}: {exc}")
            raise
        return job_id

    def _give_up(self, job_id: str, session_id: str, error: str) -> None:
        try:
            self.jobs.fail(job_id, error)
            self.order.release(job_id, session_id)
        except Exception:  # the original error is what the caller needs
            pass

    def cancel(self, job_id: str) -> JobResult | None:
        """Cancel a job: a queued job never starts; a running one stops at its next step
        (and its server-side run is cancelled). Returns the job record, None if unknown.

        A job that had ended already is left as it was.
        """
        job = self.jobs.get_job(job_id)
        if job is None or job.status.terminal:
            return job
        self.jobs.cancel(job_id)
        if job.status in (JobStatus.QUEUED, JobStatus.WAITING_APPROVAL):
            # Nothing of it runs (yet, or while it waits for people), so its session is
            # free at once. A running job releases its session itself, once its
            # in-flight step has stopped.
            self.order.release(job_id, job.session_id)
        return self.jobs.get_job(job_id)

    def approve(
        self, job_id: str, call_id: str, approved: bool = True, reason: str | None = None,
        *, decided_by: str = "python",
    ) -> Approval:
        """Approve (or, with ``approved=False``, decline) a tool call waiting for approval.

        Exactly one decision per call wins; raises producer.approvals.ApprovalError
        (UnknownJob, UnknownCall, AlreadyDecided, JobEnded) and changes nothing otherwise.
        The decision that leaves none pending resumes the job.
        """
        return approve(self.approval_store, self.celery, job_id, call_id, approved=approved,
                       reason=reason, decided_by=decided_by)

    def approvals(self, job_id: str, pending_only: bool = False) -> list[Approval]:
        """The job's tool calls that need approval (all rounds), in call order."""
        if pending_only:
            return self.approval_store.pending(job_id)
        return self.approval_store.all(job_id)

    def status(self, job_id: str) -> JobResult | None:
        """The job record, or None for an unknown (or expired) job."""
        return self.jobs.get_job(job_id)

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[JobEvent]:
        """The job's events as they happen, ending with its terminal event.

        Raises :class:`JobNotFound` at once (not at the first ``next``) for an unknown
        job id, which would otherwise be followed, silently, until ``timeout``.
        """
        if self.jobs.get_job(job_id) is None:
            raise JobNotFound(job_id)
        deadline = time.time() + (timeout if timeout is not None else 365 * 86400)
        return self.jobs.follow_events(job_id, deadline)

    def stream(self, job_id: str, timeout: float | None = None) -> Iterator[StreamItem]:
        """The answer's text as the model writes it (requests with ``stream=True``).

        Yields ``str`` pieces, and a :class:`~producer.streaming.StreamReset` when a step
        starts over (drop the text shown for ``reset.step``). Returns once the job ended,
        when :meth:`wait` has the result; raises :class:`JobTimeout` if it had not ended
        within ``timeout``. A job that streamed nothing yields its whole response once.
        """
        follower = StreamFollower()
        for event in self.events(job_id, timeout):
            item = follower.feed(event)
            if item is not None:
                yield item
            if event.terminal:
                if follower.needs_response(event):
                    result = self.jobs.get_job(job_id)
                    if result is not None and result.response:
                        yield result.response
                return
        raise JobTimeout(f"job {job_id} had not ended after {timeout} s")

    def wait(self, job_id: str, timeout: float = 300.0) -> JobResult:
        """Block until the job ended; raises JobTimeout after ``timeout`` seconds and
        :class:`JobNotFound` for an unknown (or expired) job id."""
        result = self.jobs.get_job(job_id)
        if result is None:
            raise JobNotFound(job_id)
        if not result.status.terminal and self.jobs.wait_ended(job_id, time.time() + timeout):
            result = self.jobs.get_job(job_id)
        if result is None:
            raise JobNotFound(job_id)
        if not result.status.terminal:
            raise JobTimeout(f"job {job_id} still {result.status} after {timeout} s")
        return result

    def run(self, request: ChatRequest | Mapping[str, Any], timeout: float = 300.0) -> JobResult:
        """Submit and wait."""
        return self.wait(self.submit(request), timeout)

    def history(
        self, session_id: str, timeout: float = 30.0, *, limit: int | None = None,
        before: int | None = None,
    ) -> list[ChatMessage]:
        """The session's messages, oldest first; the newest ``limit`` of those before
        position ``before`` when given (see :meth:`history_page`).

        An Assistants-API session's history is its thread, read by a worker
        (``agents.session.history``); any other session's is the memory in Redis.
        """
        if limit is None and before is None:
            session_id = checked_session_id(session_id)
            if self._uses_thread(session_id):
                found = self._ask_worker(TASK_SESSION_HISTORY, session_id, timeout)
                return [ChatMessage.model_validate(item) for item in found]
            return self.jobs.history(session_id)
        return self.history_page(session_id, limit, before, timeout).messages

    def history_page(
        self, session_id: str, limit: int | None = None, before: int | None = None,
        timeout: float = 30.0,
    ) -> HistoryPage:
        """One page of the session's messages: the newest ``limit`` before position
        ``before`` (0 is the oldest message), with the page's start position and the
        total; the next older page is ``before=page.start``."""
        session_id = checked_session_id(session_id)
        if (limit is not None and limit < 1) or (before is not None and before < 0):
            raise ValueError("limit must be at least 1 and before at least 0")
        if self._uses_thread(session_id):
            found = self._ask_worker(TASK_SESSION_HISTORY, session_id, timeout)
            return slice_page([ChatMessage.model_validate(i) for i in found], limit, before)
        return history_page(self.jobs.redis, session_id, limit, before)

    def jobs_of(self, session_id: str, limit: int = 20) -> list[JobResult]:
        """The session's most recent jobs, newest first (queued, running and ended)."""
        session_id = checked_session_id(session_id)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return recent_jobs(self.jobs.redis, session_id, limit)

    def import_history(
        self, session_id: str, messages: Sequence[ChatMessage | Mapping[str, Any]]
    ) -> int:
        """Seed the session's memory with an existing conversation (appended after what
        it holds); returns how many messages it now holds.

        Raises :class:`~producer.history_import.InvalidHistory` (nothing stored) for
        messages the model API would refuse, and
        :class:`~producer.history_import.SessionBusy` while a job of the session is
        queued or running, or for an assistant-mode session.
        """
        return import_history(self.jobs.redis, checked_session_id(session_id), messages)

    def reset(self, session_id: str, timeout: float = 30.0) -> bool:
        """Forget the session; True when there was anything to forget.

        An Assistants-API session's thread is deleted server-side by a worker
        (``agents.session.reset``); a Responses-API session also forgets its last
        response id, so the next turn starts a new conversation.
        """
        session_id = checked_session_id(session_id)
        if self._uses_thread(session_id):
            return bool(self._ask_worker(TASK_SESSION_RESET, session_id, timeout))
        forgot = bool(self.jobs.redis.delete(
            keys.session_response(session_id), keys.session_mode(session_id)
        ))
        return self.jobs.reset(session_id) or forgot

    def _uses_thread(self, session_id: str) -> bool:
        return self.jobs.redis.get(keys.session_mode(session_id)) == "assistants"

    def _ask_worker(self, task: str, session_id: str, timeout: float) -> Any:
        """Send a session task by name and wait for its stored result."""
        result = self.celery.send_task(
            task, kwargs={"session_id": session_id}, kwargsrepr=f"session={session_id}"
        )
        try:
            return result.get(timeout=timeout)
        finally:
            result.forget()


def __getattr__(name: str) -> Any:
    """``from producer.client import AsyncAgentClient``: imported on first use, since
    producer/async_client.py imports this module."""
    if name == "AsyncAgentClient":
        from producer.async_client import AsyncAgentClient

        return AsyncAgentClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from producer.async_client import AsyncAgentClient as AsyncAgentClient
