"""A submit's round trips, on a Redis of its own (no worker, so its command counts are
the client's alone): the admit script goes by EVALSHA in the submit's pipeline, with no
SCRIPT EXISTS round trip before it, and a Redis that lost its scripts still admits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis

from producer import keys
from producer.client import AgentClient, AsyncAgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack


@pytest.fixture
def lone_redis() -> Iterator[str]:
    with DevStack() as stack:
        yield stack.start_redis()


def calls(raw: redis.Redis, command: str) -> int:
    stats = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def ask() -> dict[str, str]:
    return {"session_id": f"rt-{uuid.uuid4().hex[:8]}", "message": "hello"}


def test_a_submit_sends_no_script_exists(lone_redis: str) -> None:
    raw = redis.Redis.from_url(lone_redis, decode_responses=True)
    with AgentClient(lone_redis) as client:
        client.submit(ask())  # the first one loads the script
        before = calls(raw, "script|exists"), calls(raw, "evalsha")
        for _ in range(5):
            client.submit(ask())
        after = calls(raw, "script|exists"), calls(raw, "evalsha")
    assert after[0] == before[0]
    assert after[1] == before[1] + 5


def test_a_submit_after_the_scripts_were_flushed_is_admitted(lone_redis: str) -> None:
    raw = redis.Redis.from_url(lone_redis, decode_responses=True)
    with AgentClient(lone_redis) as client:
        client.submit(ask())
        raw.script_flush()  # as a restarted Redis without persistence would have it
        job_id = client.submit(ask())
        status = client.status(job_id)
    assert status is not None and status.status == JobStatus.QUEUED
    assert raw.llen(keys.session_jobs(status.session_id)) == 1


def test_the_async_client_sends_no_script_exists_and_survives_a_flush(lone_redis: str) -> None:
    raw = redis.Redis.from_url(lone_redis, decode_responses=True)

    async def scenario() -> tuple[int, int, JobStatus | None]:
        async with AsyncAgentClient(lone_redis) as client:
            await client.submit(ask())
            before = calls(raw, "script|exists")
            for _ in range(5):
                await client.submit(ask())
            after = calls(raw, "script|exists")
            raw.script_flush()
            status = await client.status(await client.submit(ask()))
            return before, after, status.status if status else None

    before, after, status = asyncio.run(scenario())
    assert after == before
    assert status == JobStatus.QUEUED
