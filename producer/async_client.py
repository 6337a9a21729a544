"""The asyncio client: :class:`AgentClient`'s methods on ``redis.asyncio``.

For FastAPI or aiohttp services (the gateway uses it)::

    from producer.client import AsyncAgentClient, StreamReset

    client = AsyncAgentClient("redis://127.0.0.1:6379/0")
    job_id = await client.submit({"session_id": "s1", "message": "hi", "stream": True})
    async for piece in client.stream(job_id, timeout=60):
        print(piece if isinstance(piece, str) else f"[step {piece.step} starts over]")
    result = await client.wait(job_id)
    await client.aclose()

Every Redis read (status, events, stream, wait, history) awaits ``redis.asyncio``, so
thousands of followers share one event loop and hold no thread. The request is
validated and admitted exactly as the sync client does (``prepare_submit`` and the
admit script); only publishing Celery task messages runs in a thread (kombu is
synchronous), as do ``cancel`` and an Assistants session's ``history``/``reset``, which
reuse the sync client's logic (a cancel may start the session's next job; a thread is
read by a worker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from producer import keys
from producer.client import (
    AgentClient,
    JobNotFound,
    JobTimeout,
    checked_session_id,
    make_producer_app,
    prepare_submit,
)
from producer.contracts import Approval, ChatMessage, ChatRequest, JobEvent, JobResult
from producer.jobstore import EVENTS_MAX_LEN, FOLLOW_SLICE_MS, MAX_CONNECTIONS
from producer.redis_retry import RETRIED
from producer.script_pipeline import execute_async, queue_script
from producer.session_listing import before_admit
from producer.session_order import ADMIT_SCRIPT, admit_call, after_admit
from producer.streaming import StreamFollower, StreamItem
from producer.tool_registry import check_submission_async

_FOREVER = 365 * 86400.0


# A follower holds one connection while its read blocks (redis-py's default cap is 100).


def connect_async(url: str, max_connections: int = MAX_CONNECTIONS) -> aioredis.Redis:
    """An asyncio Redis client returning text that retries broken connections."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True,
        max_connections=max_connections,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=20),
        retry_on_error=list(RETRIED),
    )


class AsyncAgentClient:
    """Submit chat requests and follow them from asyncio code; ``await aclose()`` at the end
    (or ``async with``)."""

    def __init__(self, redis_url: str | None = None, *, celery_app: Celery | None = None) -> None:
        self.celery = celery_app or make_producer_app(redis_url)
        self.redis_url = redis_url or str(self.celery.conf.broker_url)
        self.redis = connect_async(self.redis_url)
        self._admit = self.redis.register_script(ADMIT_SCRIPT)
        self._sync: AgentClient | None = None

    def _sync_client(self) -> AgentClient:
        """The sync client for the calls that publish tasks or reuse its logic."""
        if self._sync is None:
            self._sync = AgentClient(self.redis_url, celery_app=self.celery)
        return self._sync

    async def aclose(self) -> None:
        await self.redis.aclose()
        if self._sync is not None:
            self._sync.close()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def submit(self, request: ChatRequest | Mapping[str, Any]) -> str:
        """Validate and enqueue a request; returns the job id (as ``AgentClient.submit``)."""
        sub = prepare_submit(request)
        await check_submission_async(self.redis, sub.message["request"])  # UnknownTools
        script_keys, args, slot = admit_call(
            sub.job_id, sub.session_id, sub.record_json, sub.event_json, sub.message,
            EVENTS_MAX_LEN, sub.deadline_at,
        )
        try:
            pipe = self.redis.pipeline(transaction=False)  # one round trip for both
            before_admit(pipe, sub)  # session listing, webhook url
            admit = queue_script(pipe, self._admit, script_keys, args)
            position, sweep = (await execute_async(pipe, [admit]))[admit.index]
            await asyncio.to_thread(
                after_admit, self.celery, sub.job_id, sub.session_id, sub.message,
                position, sweep, slot,
            )
        except Exception as exc:  # do not leave a job queued that nobody will start
            error = f"could not enqueue the job: {type(exc).__name__}: {exc}"
            await asyncio.to_thread(self._sync_client()._give_up, sub.job_id,
                                    sub.session_id, error)
            raise
        return sub.job_id

    async def status(self, job_id: str) -> JobResult | None:
        """The job record, or None for an unknown (or expired) job."""
        raw = cast(str | None, await self.redis.get(keys.job(job_id)))
        return JobResult.model_validate_json(raw) if raw else None

    async def read_events(
        self, job_id: str, after: str = "0-0", block_ms: int | None = None
    ) -> list[tuple[str, JobEvent]]:
        """Events after stream id ``after``; waits up to ``block_ms`` when there are none."""
        reply = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]],
            await self.redis.xread({keys.job_events(job_id): after}, block=block_ms, count=100),
        )
        found: list[tuple[str, JobEvent]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                found.append((entry_id, JobEvent.model_validate_json(fields["event"])))
        return found

    async def has_event(self, job_id: str, entry_id: str) -> bool:
        """Whether ``entry_id`` is an event of the job (a valid ``Last-Event-ID``)."""
        try:
            found = await self.redis.xrange(keys.job_events(job_id), entry_id, entry_id, count=1)
        except aioredis.ResponseError:  # not a stream id at all
            return False
        return bool(found)

    async def follow(
        self, job_id: str, after: str = "0-0", timeout: float | None = None
    ) -> AsyncIterator[tuple[str, JobEvent]]:
        """(stream id, event) from ``after`` on, up to the terminal event or the timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else _FOREVER)
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return
            block_ms = min(remaining_ms, FOLLOW_SLICE_MS)
            for entry_id, event in await self.read_events(job_id, after, block_ms=block_ms):
                after = entry_id
                yield entry_id, event
                if event.terminal:
                    return

    async def events(self, job_id: str, timeout: float | None = None) -> AsyncIterator[JobEvent]:
        """The job's events as they happen, ending with its terminal event.

        Raises :class:`JobNotFound` (at the first iteration) for an unknown job id.
        """
        if await self.status(job_id) is None:
            raise JobNotFound(job_id)
        async for _entry_id, event in self.follow(job_id, timeout=timeout):
            yield event

    async def stream(self, job_id: str, timeout: float | None = None) -> AsyncIterator[StreamItem]:
        """The answer's text as it is written: ``str`` pieces and ``StreamReset`` markers,
        as :meth:`AgentClient.stream`; raises :class:`JobTimeout` past ``timeout``."""
        follower = StreamFollower()
        async for event in self.events(job_id, timeout):
            item = follower.feed(event)
            if item is not None:
                yield item
            if event.terminal:
                if follower.needs_response(event):
                    result = await self.status(job_id)
                    if result is not None and result.response:
                        yield result.response
                return
        raise JobTimeout(f"job {job_id} had not ended after {timeout} s")

    async def wait(self, job_id: str, timeout: float = 300.0) -> JobResult:
        """The result once the job ended; :class:`JobTimeout` after ``timeout`` seconds
        (one read that wakes at the end, as :meth:`AgentClient.wait`)."""
        result = await self.status(job_id)
        if result is None:
            raise JobNotFound(job_id)
        if not result.status.terminal and await self._wait_ended(job_id, timeout):
            result = await self.status(job_id)
        if result is None:
            raise JobNotFound(job_id)
        if not result.status.terminal:
            raise JobTimeout(f"job {job_id} still {result.status} after {timeout} s")
        return result

    async def _wait_ended(self, job_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                return False
            block_ms = min(remaining_ms, FOLLOW_SLICE_MS)
            if await self.redis.xread({keys.job_end(job_id): "0-0"}, block=block_ms, count=1):
                return True
            if await self.redis.exists(keys.job_final(job_id)):  # ended by an older worker
                return True

    async def run(self, request: ChatRequest | Mapping[str, Any],
                  timeout: float = 300.0) -> JobResult:
        """Submit and wait."""
        return await self.wait(await self.submit(request), timeout)

    async def cancel(self, job_id: str) -> JobResult | None:
        """Cancel a job, as :meth:`AgentClient.cancel` (run in a thread: it may publish
        the start of the session's next job)."""
        return await asyncio.to_thread(self._sync_client().cancel, job_id)

    async def approve(
        self, job_id: str, call_id: str, approved: bool = True, reason: str | None = None,
        *, decided_by: str = "python",
    ) -> Approval:
        """Decide a tool call waiting for approval, as :meth:`AgentClient.approve` (run in
        a thread: the last decision publishes the job's resume)."""
        return await asyncio.to_thread(
            partial(self._sync_client().approve, job_id, call_id, approved, reason,
                    decided_by=decided_by)
        )

    async def approvals(self, job_id: str, pending_only: bool = False) -> list[Approval]:
        """The job's tool calls that need approval, in call order."""
        raw = cast(dict[str, str], await self.redis.hgetall(keys.approvals(job_id)))
        found = sorted((Approval.model_validate_json(v) for v in raw.values()),
                       key=lambda a: (a.requested_at, a.position))
        return [a for a in found if not (pending_only and a.decided)]

    async def _uses_thread(self, session_id: str) -> bool:
        return await self.redis.get(keys.session_mode(session_id)) == "assistants"

    async def history(self, session_id: str, timeout: float = 30.0) -> list[ChatMessage]:
        """The session's messages, oldest first (an Assistants thread is read by a worker)."""
        session_id = checked_session_id(session_id)
        if await self._uses_thread(session_id):
            return await asyncio.to_thread(self._sync_client().history, session_id, timeout)
        raw = cast(list[str], await self.redis.lrange(keys.session_messages(session_id), 0, -1))
        return [ChatMessage.model_validate_json(item) for item in raw]

    async def reset(self, session_id: str, timeout: float = 30.0) -> bool:
        """Forget the session; True when there was anything to forget."""
        session_id = checked_session_id(session_id)
        if await self._uses_thread(session_id):
            return await asyncio.to_thread(self._sync_client().reset, session_id, timeout)
        deleted = await self.redis.delete(
            keys.session_messages(session_id), keys.session_response(session_id),
            keys.session_mode(session_id),
        )
        return bool(deleted)
