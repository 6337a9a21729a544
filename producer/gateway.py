"""HTTP gateway: the producer API for services that are not written in Python.

A FastAPI (ASGI) app over :class:`producer.client.AgentClient`; start it with
``celery-agents gateway [--host 127.0.0.1 --port 8000]``. Sync endpoints run in FastAPI's
thread pool; event streams and the OpenAI-compatible ``/v1/chat/completions``
(producer/gateway_openai.py) use :class:`producer.async_client.AsyncAgentClient`, so no
Redis read of a stream holds a thread and the event loop never waits on Redis.

Environment: ``REDIS_URL``; ``AGENT_GATEWAY_TOKEN`` (when set, every endpoint but
``/healthz`` requires ``Authorization: Bearer <token>``); ``AGENT_GATEWAY_ALLOW_FILES=1``
to accept ``files`` (paths on the workers' disks, so refused by default);
``AGENT_GATEWAY_MAX_STREAMS`` (blocking stream reads in flight at once, default 1000);
``AGENT_GATEWAY_HEALTH_TIMEOUT`` (seconds /healthz waits for workers, default 1).
"""

import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.async_client import AsyncAgentClient
from producer.client import AgentClient
from producer.contracts import (
    JOB_ID_PATTERN,
    SESSION_ID_PATTERN,
    ChatMessage,
    ChatRequest,
    JobResult,
)
from producer.gateway_approvals import approvals_router
from producer.gateway_limits import install_limits
from producer.gateway_openai import openai_router
from producer.gateway_sessions import session_router
from producer.gateway_support import (
    IDEMPOTENCY_KEY_PATTERN,
    SSE_KEEP_ALIVE,
    ErrorBody,
    Health,
    IdempotencyConflict,
    IdempotencyPending,
    SessionReset,
    sse,
    sse_job_event,
    sse_result,
    submit_once,
)
from producer.gateway_tools import tools_router, unknown_tools_refusal
from producer.reachability import ping_now
from producer.webhook_policy import webhook_refusal

EXPECTED_QUEUES = ("agents", "tools")
# One blocking read of the event stream: well under redis-py's default 5 s socket timeout.
STREAM_BLOCK_MS = 2000
KEEP_ALIVE_SECONDS = 15.0  # an SSE comment after this long without events

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a job id from POST /v1/jobs")]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]

# One server-sent event (OpenAPI 3.2's `itemSchema` of an event stream).
_SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string",
                  "description": "the JobEvent kind; `result` last; `error` if reading failed"},
        "id": {"type": "string", "description": "Redis stream id; absent on `result`"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "JobEvent JSON, or JobResult JSON for `result`"},
    },
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown or expired job"},
}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def create_app(
    redis_url: str | None = None,
    *,
    token: str | None = None,
    allow_files: bool | None = None,
    max_streams: int | None = None,
    health_timeout: float | None = None,
) -> FastAPI:
    """The gateway app; arguments left None come from the environment."""
    token = token if token is not None else os.environ.get("AGENT_GATEWAY_TOKEN") or None
    allow_files = allow_files if allow_files is not None else _flag("AGENT_GATEWAY_ALLOW_FILES")
    max_streams = max_streams or int(os.environ.get("AGENT_GATEWAY_MAX_STREAMS", "1000"))
    health_timeout = health_timeout or float(os.environ.get("AGENT_GATEWAY_HEALTH_TIMEOUT", "1"))
    client = AgentClient(redis_url or os.environ.get("REDIS_URL"))
    # Event streams read Redis with the asyncio client: a follower holds a connection,
    # never a thread. Made in the event loop, at startup.
    aclient: list[AsyncAgentClient] = []
    limiter: list[anyio.CapacityLimiter] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limiter.append(anyio.CapacityLimiter(max_streams))
        aclient.append(AsyncAgentClient(redis_url or os.environ.get("REDIS_URL"),
                                        celery_app=client.celery))
        app.state.aclient = aclient[0]
        yield
        await aclient[0].aclose()
        client.close()

    app = FastAPI(
        title="celery-agents gateway",
        version="1",
        description="Submit chat requests to celery-agents workers and follow them.",
        lifespan=lifespan,
    )
    app.state.client = client
    install_limits(app)  # AGENT_GATEWAY_MAX_BODY_BYTES (413); 422s never echo large input

    bearer = HTTPBearer(auto_error=False, description="AGENT_GATEWAY_TOKEN")

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        assert token is not None
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    router = APIRouter(
        prefix="/v1",
        dependencies=[Depends(require_token)] if token else [],
        responses=_ERRORS if token else {},
    )

    @router.post(
        "/jobs",
        status_code=202,
        response_model=JobResult,
        responses={
            200: {"model": JobResult, "description": "repeated Idempotency-Key: that job"},
            202: {"description": "accepted: the new job's record"},
            400: {"model": ErrorBody, "description": "the body is not parseable JSON"},
            409: {"model": ErrorBody, "description": "Idempotency-Key reused for another body"},
            413: {"model": ErrorBody, "description": "body over AGENT_GATEWAY_MAX_BODY_BYTES"},
            503: {"model": ErrorBody, "description": "the broker is unreachable"},
        },
        summary="Submit a chat request",
    )
    def submit_job(
        request: ChatRequest,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(pattern=IDEMPOTENCY_KEY_PATTERN,
                   description="the same key returns the same job (for retries)"),
        ] = None,
    ) -> JobResult:
        if request.files and not allow_files:
            raise RequestValidationError([{
                "type": "value_error", "loc": ("body", "files"), "input": request.files,
                "msg": "files (paths on the workers) are refused by this gateway; "
                       "upload them and pass file_ids",
            }])
        if (refusal := webhook_refusal(request.webhook_url)) is not None:
            raise RequestValidationError([{
                "type": "value_error", "loc": ("body", "webhook_url"), "msg": refusal,
                "input": request.webhook_url,
            }])
        if (unknown := unknown_tools_refusal(client, request)) is not None:  # registry
            raise RequestValidationError([{
                "type": "value_error", "loc": ("body", "tools"), "msg": unknown,
                "input": request.tools,
            }])
        try:
            if idempotency_key is None:
                job_id, created = client.submit(request), True
            else:
                job_id, created = submit_once(
                    client.jobs.redis, idempotency_key, request, client.submit
                )
        except (IdempotencyConflict, IdempotencyPending) as exc:
            raise HTTPException(409, str(exc)) from None
        except Exception as exc:
            raise HTTPException(503, f"could not enqueue: {type(exc).__name__}: {exc}") from None
        job = client.status(job_id)
        if job is None:
            raise HTTPException(409, f"job {job_id} of this Idempotency-Key has expired")
        response.status_code = 202 if created else 200
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return job

    @router.get("/jobs/{job_id}", response_model=JobResult, responses=_NOT_FOUND,
                summary="A job's status and result")
    def get_job(job_id: JobId) -> JobResult:
        job = client.status(job_id)
        if job is None:
            raise HTTPException(404, f"unknown job {job_id}")
        return job

    @router.delete("/jobs/{job_id}", response_model=JobResult, responses=_NOT_FOUND,
                   summary="Cancel a queued or running job (a finished one is unchanged)")
    def cancel_job(job_id: JobId) -> JobResult:
        job = client.cancel(job_id)
        if job is None:
            raise HTTPException(404, f"unknown job {job_id}")
        return job

    @router.get(
        "/jobs/{job_id}/events",
        response_class=StreamingResponse,
        responses={
            **_NOT_FOUND,
            400: {"model": ErrorBody, "description": "Last-Event-ID is not an event of this job"},
            200: {
                "description": "Server-sent events: one per job event (`event:` its kind, "
                "`id:` its stream id, `data:` the JobEvent JSON), then `event: result` with "
                "the JobResult. Send `Last-Event-ID` to resume.",
                "content": {"text/event-stream": {"itemSchema": _SSE_EVENT_SCHEMA}},
            },
        },
        summary="Follow a job live",
    )
    async def job_events(
        job_id: JobId,
        last_event_id: Annotated[
            str | None,
            Header(max_length=64, description="resume after this event id (`id:` of an event)"),
        ] = None,
    ) -> StreamingResponse:
        reader = aclient[0]
        if await reader.status(job_id) is None:
            raise HTTPException(404, f"unknown job {job_id}")
        if last_event_id and last_event_id != "0-0" and not await reader.has_event(
            job_id, last_event_id
        ):
            raise HTTPException(
                400, f"unknown Last-Event-ID {last_event_id!r}: not an event id of job {job_id}"
            )
        stream = _guarded(_follow(reader, job_id, last_event_id or "0-0", limiter[0]))
        return StreamingResponse(
            stream, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/sessions/{session_id}/messages", response_model=list[ChatMessage],
                summary="A session's stored messages, oldest first (X-History-Start: the "
                "first one's position, for ?before= of the next older page)")
    def session_messages(
        session_id: SessionId, response: Response,
        limit: Annotated[int | None, Query(ge=1, le=10_000,
                                           description="only the newest this many")] = None,
        before: Annotated[int | None, Query(ge=0,
                                            description="only those before this position")] = None,
    ) -> list[ChatMessage]:
        if limit is None and before is None:
            return client.history(session_id)
        page = client.history_page(session_id, limit, before)
        response.headers["X-History-Start"] = str(page.start)
        response.headers["X-History-Total"] = str(page.total)
        return page.messages

    @router.delete("/sessions/{session_id}", response_model=SessionReset,
                   summary="Forget a session's memory")
    def reset_session(session_id: SessionId) -> SessionReset:
        return SessionReset(session_id=session_id, deleted=client.reset(session_id))

    router.include_router(session_router(client))  # session jobs, history import
    router.include_router(tools_router(client))  # GET /v1/tools (producer/gateway_tools.py)
    app.include_router(router)
    app.include_router(openai_router([Depends(require_token)] if token else []))
    app.include_router(approvals_router(client, token))  # its own auth: it names the decider

    @app.get("/healthz", response_model=Health,
             responses={503: {"model": Health, "description": "Redis or a queue's workers down"}},
             summary="Redis reachable, and a worker answering for each queue")
    def healthz() -> JSONResponse:
        health = check_health(client, health_timeout)
        return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)

    return app


async def _follow(
    reader: AsyncAgentClient, job_id: str, after: str, limiter: anyio.CapacityLimiter
) -> AsyncIterator[str]:
    """The job's events from stream id ``after`` on, then its record; ends at a terminal one.

    Reads await redis.asyncio (no thread is held); ``limiter`` bounds the blocking reads
    in flight at once (each holds a Redis connection).
    """
    last_sent = time.monotonic()
    while True:
        async with limiter:
            entries = await reader.read_events(job_id, after, block_ms=STREAM_BLOCK_MS)
        for entry_id, event in entries:
            after = entry_id
            yield sse_job_event(entry_id, event)
            if event.terminal:
                job = await reader.status(job_id)
                if job is not None:
                    yield sse_result(job)
                return
        if entries:
            last_sent = time.monotonic()
            continue
        job = await reader.status(job_id)
        if job is None:  # expired while we followed it
            return
        if job.status.terminal:  # ended without a terminal event after `after`
            for entry_id, event in await reader.read_events(job_id, after):
                yield sse_job_event(entry_id, event)
            yield sse_result(job)
            return
        if time.monotonic() - last_sent >= KEEP_ALIVE_SECONDS:
            last_sent = time.monotonic()
            yield SSE_KEEP_ALIVE


async def _guarded(stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """End a stream whose Redis reads fail with an ``error`` event instead of a broken chunk."""
    try:
        async for chunk in stream:
            yield chunk
    except Exception as exc:
        detail = json.dumps({"detail": f"event stream failed: {type(exc).__name__}: {exc}"})
        yield sse(detail, event="error")


def check_health(client: AgentClient, timeout: float) -> Health:
    """Ping Redis, then ask the workers (a Celery control broadcast) which queues they serve."""
    try:
        ping_now(client.jobs.redis, timeout)
    except Exception as exc:
        return Health(status="unavailable", redis=False,
                      redis_error=f"{type(exc).__name__}: {exc}",
                      missing_queues=list(EXPECTED_QUEUES))
    try:
        replies = client.celery.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:
        replies = {}
    queues: dict[str, list[str]] = {name: [] for name in EXPECTED_QUEUES}
    for worker, consumed in sorted(replies.items()):
        for queue in consumed or []:
            queues.setdefault(str(queue.get("name")), []).append(worker)
    missing = [name for name in EXPECTED_QUEUES if not queues[name]]
    return Health(status="unavailable" if missing else "ok", redis=True,
                  workers=sorted(replies), queues=queues, missing_queues=missing)


def serve(host: str = "127.0.0.1", port: int = 8000, redis_url: str | None = None) -> None:
    """Run the gateway with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(redis_url), host=host, port=port, log_level="info",
                proxy_headers=False, server_header=False)
