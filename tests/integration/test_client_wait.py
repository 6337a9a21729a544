"""Waiting on a job: it outlasts quiet spells longer than the Redis client's socket
timeout, and wakes once, at the end."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from producer import keys
from producer.client import AgentClient, AsyncAgentClient
from producer.contracts import JobResult, JobStatus
from producer.devstack import DevStack
from producer.jobstore import FOLLOW_SLICE_MS
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration


def test_wait_survives_a_model_call_longer_than_the_socket_timeout(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    # redis-py 8 closes a read after 5 s by default (socket_timeout); the job's events
    # stream is silent while the model thinks, so a 6.5 s call must not break wait().
    sim.script(model, {"content": "slow but fine", "delay_ms": 6500})
    result = client.run({"session_id": session, "message": "x", "model": model}, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "slow but fine"


def test_wait_wakes_once_at_the_end_not_at_every_event(
    client: AgentClient, sim: Simulator, model: str, session: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = client.submit(napping_turn(sim, model, session))
    reads = counting(monkeypatch, client.jobs.redis, "xread")
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    # The job wrote its events while wait() blocked; it woke once, at the end.
    assert len(reads) == 1, reads
    assert len(client.jobs.read_events(job_id)) >= 7


def test_the_async_wait_wakes_once_too(
    stack: DevStack, sim: Simulator, model: str, session: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = napping_turn(sim, model, session)

    async def main() -> tuple[JobResult, list[float]]:
        async with AsyncAgentClient(stack.redis_url) as aclient:
            job_id = await aclient.submit(request)
            reads = counting(monkeypatch, aclient.redis, "xread")
            return await aclient.wait(job_id, timeout=30), reads

    result, reads = asyncio.run(main())
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert len(reads) == 1, reads


def test_wait_ends_for_a_job_ended_without_an_end_stream(client: AgentClient) -> None:
    # As a worker of an earlier release ends a job: record and final marker, no end
    # stream. The waiter finds the marker at the end of its read's slice.
    now = time.time()
    job = JobResult(job_id=str(uuid.uuid4()), session_id="old-worker", status=JobStatus.RUNNING,
                    created_at=now, updated_at=now)
    client.jobs.put_job(job)
    ended = job.model_copy(update={"status": JobStatus.SUCCEEDED, "response": "done"})

    def end_as_an_older_worker() -> None:
        time.sleep(0.5)
        client.jobs.redis.set(keys.job(job.job_id), ended.model_dump_json(), ex=60)
        client.jobs.redis.set(keys.job_final(job.job_id), "1", ex=60)

    threading.Thread(target=end_as_an_older_worker).start()
    started = time.monotonic()
    assert client.wait(job.job_id, timeout=10).response == "done"
    assert time.monotonic() - started < FOLLOW_SLICE_MS / 1000 + 1.5


def napping_turn(sim: Simulator, model: str, session: str) -> dict[str, str]:
    """A turn that writes its events over about a second (a 1 s tool between two model
    calls), scripted for ``model``: the request to submit."""
    sim.script(model, {"tool_calls": [tool_call("sleep_for", {"seconds": 1}, "c1")]},
               {"content": "rested"})
    return {"session_id": session, "message": "nap", "model": model}


def counting(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[float]:
    """Record each call of ``target.name`` (its time) while still making it."""
    calls: list[float] = []
    original = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return calls
