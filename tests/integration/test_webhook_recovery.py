"""A webhook waiting for its retry survives a SIGKILL of its worker and a Redis restart.

The retry is a countdown task, never a sleeping worker; these tests run a stack of their
own so the kill and the restart disturb no other test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from producer import keys
from producer.client import AgentClient
from producer.devstack import DevStack
from tests.integration.conftest import WEBHOOK_HOSTS, WEBHOOK_SECRET
from tests.integration.stacks import VISIBILITY_TIMEOUT, new_stack, wait_for
from tests.integration.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.integration

BACKOFF = 3.0  # the first retry waits this long: time enough to kill or restart


@pytest.fixture(scope="module")
def wstack() -> Iterator[DevStack]:
    env = {"AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
           "AGENT_WEBHOOK_SECRET": WEBHOOK_SECRET, "AGENT_WEBHOOK_ALLOWED_HOSTS": WEBHOOK_HOSTS,
           "AGENT_WEBHOOK_BACKOFF": str(BACKOFF), "AGENT_WEBHOOK_MAX_ATTEMPTS": "4"}
    with new_stack("stack-webhook", env) as stack:
        stack.start_redis(appendonly=True)
        stack.start_simulator(latency_ms=0)
        stack.start_worker(["agents"], 4, "agents1")
        stack.start_worker(["tools"], 1, "tools")
        yield stack


@pytest.fixture
def wclient(wstack: DevStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentClient]:
    monkeypatch.setenv("AGENT_WEBHOOK_ALLOWED_HOSTS", WEBHOOK_HOSTS)
    with AgentClient(wstack.redis_url) as client:
        yield client


def delivered(client: AgentClient, job_id: str) -> dict[str, object]:
    raw = wait_for(lambda: client.jobs.redis.get(keys.webhook_delivered(job_id)),
                   VISIBILITY_TIMEOUT + 30, "the webhook outcome")
    return dict(json.loads(raw))


def first_attempt_failed(client: AgentClient, receiver: Receiver, session: str) -> str:
    result = client.run({"session_id": session, "message": "hi",
                         "webhook_url": receiver.url + "/h"}, 30)
    receiver.wait_for(1)  # answered 503: the retry now waits as a countdown task
    return result.job_id


def test_the_retry_survives_a_sigkill_of_its_worker(
    wstack: DevStack, wclient: AgentClient, session: str
) -> None:
    with Receiver(statuses=(503, 200)) as receiver:
        job_id = first_attempt_failed(wclient, receiver, session)
        worker = next(p for p in wstack.processes if p.name.startswith("agents") and p.alive)
        worker.kill()  # the countdown task it held, unacknowledged, is not lost
        wstack.start_worker(["agents"], 4, "agents2")
        hooks = receiver.wait_for(2, timeout=VISIBILITY_TIMEOUT + 30)
        outcome = delivered(wclient, job_id)
    assert outcome["delivered"] is True
    assert {h.headers["webhook-id"] for h in hooks} == {job_id}
    assert all(verify(WEBHOOK_SECRET, h) for h in hooks)


def test_the_retry_survives_a_redis_restart(
    wstack: DevStack, wclient: AgentClient, session: str
) -> None:
    with Receiver(statuses=(503, 200)) as receiver:
        job_id = first_attempt_failed(wclient, receiver, session)
        wstack.restart_redis()
        receiver.wait_for(2, timeout=VISIBILITY_TIMEOUT + 30)
        outcome = delivered(wclient, job_id)
    assert outcome["delivered"] is True and outcome["attempts"] == 2

