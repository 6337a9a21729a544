"""Webhooks against the session's real workers: a receiver on 127.0.0.2 started by the test."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from producer import keys
from producer.async_client import AsyncAgentClient
from producer.client import AgentClient
from producer.devstack import DevStack
from producer.webhook_policy import WebhookRefused
from tests.integration.conftest import WEBHOOK_HOSTS, WEBHOOK_SECRET, Simulator
from tests.integration.stacks import wait_for
from tests.integration.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def producer_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer side (this process) allows the same hosts as the workers."""
    monkeypatch.setenv("AGENT_WEBHOOK_ALLOWED_HOSTS", WEBHOOK_HOSTS)


def outcome(stack: DevStack, client: AgentClient, job_id: str) -> dict[str, Any]:
    raw = wait_for(lambda: client.jobs.redis.get(keys.webhook_delivered(job_id)), 20,
                   f"the webhook outcome of {job_id}")
    return dict(json.loads(raw))


def test_a_finished_job_is_posted_signed_once_with_its_record(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "done"})
    with Receiver() as receiver:
        result = client.run({"session_id": session, "message": "hi", "model": model,
                             "metadata": {"ticket": "T-7"},
                             "webhook_url": receiver.url + "/hooks/agents?src=ci"}, 30)
        [hook] = receiver.wait_for(1)
        assert outcome(stack, client, result.job_id)["delivered"] is True
        time.sleep(0.3)
        assert len(receiver.received) == 1  # delivered once: no further attempt
    assert hook.path == "/hooks/agents?src=ci"
    assert hook.headers["webhook-id"] == result.job_id
    assert abs(int(hook.headers["webhook-timestamp"]) - time.time()) < 30
    assert verify(WEBHOOK_SECRET, hook)
    body = hook.json
    assert body["type"] == "job.succeeded"
    assert body["data"]["job_id"] == result.job_id
    assert body["data"]["response"] == "done"
    assert body["data"]["metadata"] == {"ticket": "T-7"}
    assert result.metadata == {"ticket": "T-7"}
    assert WEBHOOK_SECRET not in hook.body.decode()


def test_a_failed_attempt_is_retried_with_the_same_webhook_id(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"error": {"status": 400, "message": "bad request", "type": "invalid"}})
    with Receiver(statuses=(503, 200)) as receiver:
        result = client.run({"session_id": session, "message": "hi", "model": model,
                             "webhook_url": receiver.url + "/h"}, 30)
        first, second = receiver.wait_for(2)
    assert result.status == "failed"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == result.job_id
    assert verify(WEBHOOK_SECRET, first) and verify(WEBHOOK_SECRET, second)
    assert second.json["type"] == "job.failed"
    assert outcome(stack, client, result.job_id) | {"at": 0} == {
        "delivered": True, "attempts": 2, "status": 200, "error": None, "at": 0}


def test_a_job_cancelled_by_the_client_is_posted_too(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "slow", "delay_ms": 1500})
    with Receiver() as receiver:
        first = client.submit({"session_id": session, "message": "one", "model": model})
        queued = client.submit({"session_id": session, "message": "two", "model": model,
                                "webhook_url": receiver.url + "/c"})
        cancelled = client.cancel(queued)  # queued behind the first: ended by this process
        assert cancelled is not None and cancelled.status == "cancelled"
        [hook] = receiver.wait_for(1)
        client.wait(first, 30)
    assert hook.json["type"] == "job.cancelled"
    assert hook.headers["webhook-id"] == queued


def test_hosts_not_allowed_are_refused_at_submit_by_client_and_cli(
    stack: DevStack, client: AgentClient, session: str
) -> None:
    with pytest.raises(WebhookRefused, match=r"webhook_url: host 127\.0\.0\.3:80 is not in"):
        client.submit({"session_id": session, "message": "hi",
                       "webhook_url": "http://127.0.0.3/h"})
    cli = subprocess.run(
        [sys.executable, "-m", "producer.cli", "--redis-url", str(stack.redis_url), "submit",
         "hi", "--session", session, "--webhook-url", "http://169.254.169.254/latest"],
        capture_output=True, text=True, timeout=60,
        env={**stack.python_env({}), "AGENT_WEBHOOK_ALLOWED_HOSTS": WEBHOOK_HOSTS},
    )
    assert cli.returncode == 2, cli.stderr
    assert "webhook_url: host 169.254.169.254:80 is not in AGENT_WEBHOOK_ALLOWED_HOSTS" in \
        cli.stderr
    assert client.jobs_of(session) == []  # nothing was submitted


def test_the_worker_refuses_a_listed_name_that_resolves_to_an_internal_address(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "done"})
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        # "localhost" passes the producer's host check; it resolves to 127.0.0.1 (or ::1),
        # which is neither public nor listed, so delivery refuses it and never connects.
        result = client.run({"session_id": session, "message": "hi", "model": model,
                             "webhook_url": f"http://localhost:{port}/h"}, 30)
        found = outcome(stack, client, result.job_id)
        assert receiver.received == []
    assert found["delivered"] is False and found["attempts"] == 1
    assert "resolves to" in found["error"] and "not a public address" in found["error"]


def test_redirects_are_not_followed(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "done"})
    with Receiver(statuses=(307,)) as receiver:
        receiver.location = receiver.url + "/elsewhere"
        result = client.run({"session_id": session, "message": "hi", "model": model,
                             "webhook_url": receiver.url + "/h"}, 30)
        found = outcome(stack, client, result.job_id)  # 3 attempts in the test stack
        paths = [r.path for r in receiver.received]
    assert paths == ["/h", "/h", "/h"]
    assert found["delivered"] is False and found["error"] == "HTTP 307"



def test_a_job_submitted_by_the_async_client_is_listed_and_posted(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "async done"})

    async def submit_and_wait(url: str) -> str:
        async with AsyncAgentClient(stack.redis_url) as aclient:
            job_id = await aclient.submit({"session_id": session, "message": "hi",
                                           "model": model, "webhook_url": url})
            await aclient.wait(job_id, 30)
            return job_id

    with Receiver() as receiver:
        job_id = asyncio.run(submit_and_wait(receiver.url + "/a"))
        [hook] = receiver.wait_for(1)
    assert hook.json["data"]["response"] == "async done"
    assert [job.job_id for job in client.jobs_of(session)] == [job_id]
