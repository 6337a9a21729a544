"""Pieces of the HTTP gateway that are not routes: response models, idempotency, SSE.

Kept apart from :mod:`producer.gateway` so each stays small. Imports no FastAPI.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Literal, cast

import redis
from pydantic import BaseModel, Field

from producer import keys
from producer.contracts import ChatRequest, JobEvent, JobResult

# Printable, no spaces: UUIDs, ULIDs, base64 and the like.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:+/=-]{1,255}$"


class ErrorBody(BaseModel):
    """What every error but 422 returns (FastAPI's ``{"detail": ...}``)."""

    detail: str


class SessionReset(BaseModel):
    session_id: str
    deleted: bool = Field(description="True when the session had stored messages")


class Health(BaseModel):
    """``/healthz``: Redis reachable and a worker consuming each queue."""

    status: Literal["ok", "unavailable"]
    redis: bool
    redis_error: str | None = None
    workers: list[str] = Field(default_factory=list, description="workers that answered")
    queues: dict[str, list[str]] = Field(
        default_factory=dict, description="queue name -> workers consuming it"
    )
    missing_queues: list[str] = Field(default_factory=list)


# -- idempotency ---------------------------------------------------------------------------


class IdempotencyConflict(Exception):
    """The key was used before with a different request body (HTTP 409)."""


class IdempotencyPending(Exception):
    """Another request with the same key is still being submitted (HTTP 409)."""


def fingerprint(request: ChatRequest) -> str:
    """A stable digest of the request, so a key reused for another body is refused."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def submit_once(
    client: redis.Redis,
    key: str,
    request: ChatRequest,
    submit: Callable[[ChatRequest], str],
    wait_seconds: float = 10.0,
) -> tuple[str, bool]:
    """Submit ``request`` once per ``key``; returns (job id, whether this call created it).

    The key is claimed with SET NX before submitting, so two concurrent requests with one
    key make one job; the loser waits for the winner's job id. The key lives as long as
    the job record (its TTL is set before the job is created and kept after).
    """
    rkey = keys.idempotency(key)
    mine = fingerprint(request)
    deadline = time.monotonic() + wait_seconds
    while True:
        if client.set(rkey, f"{mine} ", nx=True, ex=keys.job_ttl_seconds()):
            try:
                job_id = submit(request)
            except BaseException:
                client.delete(rkey)  # let a retry with the same key try again
                raise
            client.set(rkey, f"{mine} {job_id}", keepttl=True)
            return job_id, True
        raw = cast(str | None, client.get(rkey))
        if raw is not None:
            theirs, _, job_id = raw.partition(" ")
            if theirs != mine:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request"
                )
            if job_id:
                return job_id, False
        if time.monotonic() >= deadline:
            raise IdempotencyPending("a request with this Idempotency-Key is still in progress")
        time.sleep(0.05)  # the other request is enqueuing, or gave up: look again


# -- server-sent events ------------------------------------------------------------------


def sse(data: str, event: str | None = None, event_id: str | None = None) -> str:
    """One server-sent event; ``data`` is one line of JSON."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


def sse_job_event(entry_id: str, event: JobEvent) -> str:
    """A job event: SSE ``id`` is its stream entry id (for ``Last-Event-ID``)."""
    return sse(event.model_dump_json(), event=event.kind, event_id=entry_id)


def sse_result(job: JobResult) -> str:
    """The last message of a stream: the job record."""
    return sse(job.model_dump_json(), event="result")


SSE_KEEP_ALIVE = ": keep-alive\n\n"
