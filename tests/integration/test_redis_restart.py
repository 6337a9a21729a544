"""Redis goes away for a few seconds mid-batch (AOF on); everything reconnects and completes."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from kombu.exceptions import OperationalError

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.stacks import (
    VISIBILITY_TIMEOUT,
    shared_env_stack,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.integration

BATCH = 12


@pytest.fixture(scope="module")
def rstack() -> Iterator[DevStack]:
    # A message that Redis went away with between kombu taking it and recording it as
    # unacknowledged is only found by the stall sweep (README: "Lost tasks are sent
    # again"); a short AGENT_STALL_SECONDS, on the producer side too, keeps that in the
    # test's time.
    env = {"AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "AGENT_STALL_SECONDS": "8"}
    with shared_env_stack("stack-restart", env) as s:
        s.start_redis(appendonly=True)
        s.start_simulator(latency_ms=150)  # keeps jobs in flight while Redis is away
        s.start_worker(["agents"], 2, "agents")
        s.start_worker(["tools"], 2, "tools")
        yield s


def bounce_redis(stack: DevStack, downtime: float) -> None:
    """Stop the stack's Redis, keep it down for ``downtime`` seconds, start it again."""
    assert stack.redis is not None
    stack.redis.stop()
    time.sleep(downtime)
    stack.restart_redis()


def submit_batch(client: AgentClient, tag: str) -> dict[str, str]:
    """job id -> session id; each job is two model calls and one tool call (demo policy)."""
    jobs = {}
    for i in range(BATCH):
        session = f"rs-{tag}-{i}"
        request = {"session_id": session, "message": f"What is {i} * 7?", "model": "gpt-4o-mini"}
        jobs[client.submit(request)] = session
    return jobs


def check_batch(client: AgentClient, jobs: dict[str, str], timeout: float) -> None:
    for job_id, session in jobs.items():
        result = wait_job(client, job_id, timeout)
        assert result.status == JobStatus.SUCCEEDED, (job_id, result.error)
        i = int(session.rsplit("-", 1)[1])
        assert str(i * 7) in (result.response or ""), result.response
        roles = [m.role for m in client.history(session)]
        assert roles == ["user", "assistant", "tool", "assistant"], (session, roles)
    assert not Counter(jobs.values()) - Counter(set(jobs.values())), "one job per session"


@pytest.mark.parametrize("downtime", [0.3, 3.0], ids=["blip", "outage"])
def test_redis_restart_mid_batch_loses_no_job(rstack: DevStack, downtime: float) -> None:
    """A blip is bridged by the clients' own retries; in a longer outage tasks fail to
    reach Redis, their acknowledgements fail too, and they come back after the
    visibility timeout."""
    tag = uuid.uuid4().hex[:6]
    with AgentClient(rstack.redis_url) as client:  # one client, used across the restart
        first = submit_batch(client, f"{tag}a")
        time.sleep(0.4)  # some jobs mid-turn, some still queued
        bounce_redis(rstack, downtime)
        check_batch(client, first, timeout=VISIBILITY_TIMEOUT + 60)
        # the same producer and the same workers carry on without being restarted
        second = submit_batch(client, f"{tag}b")
        check_batch(client, second, timeout=30)
    assert all(w.alive for w in rstack.workers)


def test_a_tool_finishing_while_redis_is_down_is_retried_not_failed(rstack: DevStack) -> None:
    """The tools end while Redis is away, so they cannot store their outputs. That is no
    tool error and no fan-out failure: the calls are requeued and run again."""
    from tests.integration.conftest import Simulator, tool_call

    sim = Simulator(rstack.simulator_url or "")
    model, session = f"rs-tool-{uuid.uuid4().hex[:6]}", f"rs-tool-{uuid.uuid4().hex[:6]}"
    sim.script(model, {"tool_calls": [tool_call("sleep_for", {"seconds": 1.5}, "c1"),
                                      tool_call("sleep_for", {"seconds": 1.5}, "c2")]},
               {"content": "done"})
    with AgentClient(rstack.redis_url) as client:
        job_id = client.submit({"session_id": session, "message": "x", "model": model})

        def tools_started() -> bool:
            kinds = [e.kind for _, e in client.jobs.read_events(job_id)]
            return kinds.count("tool_started") == 2

        wait_for(tools_started, 15, "both tools to start")
        bounce_redis(rstack, 3.0)
        result = wait_job(client, job_id, VISIBILITY_TIMEOUT + 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert [s.content for s in result.sources] == ["slept 1.5", "slept 1.5"]
        assert [m.role for m in client.history(session)] == ["user", "assistant", "tool",
                                                             "tool", "assistant"]


def test_a_submit_while_redis_is_down_waits_for_it_and_succeeds(rstack: DevStack) -> None:
    """The producer's Redis client and its publishing wait out a short outage."""
    import threading

    session = f"rs-submit-{uuid.uuid4().hex[:6]}"
    with AgentClient(rstack.redis_url) as client:
        client.jobs.redis.ping()  # connected before the outage, as a long-lived client is
        assert rstack.redis is not None
        rstack.redis.stop()
        restarted = threading.Timer(2.0, rstack.restart_redis)
        restarted.start()
        try:
            began = time.monotonic()
            job_id = client.submit({"session_id": session, "message": "What is 6 * 7?"})
            assert time.monotonic() - began >= 1.5  # it did wait for Redis
        finally:
            restarted.join()
        result = wait_job(client, job_id, VISIBILITY_TIMEOUT + 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert "42" in (result.response or "")


def test_a_submit_that_cannot_be_sent_fails_cleanly_and_frees_its_session(
    rstack: DevStack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job is stored, but its start cannot be sent (the broker is unreachable for
    longer than the client waits): submit raises, and the job is not left queued at the
    head of its session, where it would hold every later job of the session."""
    from producer.client import make_producer_app
    from producer.devstack import free_port

    monkeypatch.setenv("AGENT_REDIS_RETRY_SECONDS", "1")
    dead_broker = make_producer_app(f"redis://127.0.0.1:{free_port()}/0")
    dead_broker.conf.task_publish_retry_policy = {
        "max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
    }
    session = f"rs-dead-{uuid.uuid4().hex[:6]}"
    with AgentClient(rstack.redis_url, celery_app=dead_broker) as broken:
        with pytest.raises(OperationalError):  # kombu's "could not publish"
            broken.submit({"session_id": session, "message": "What is 2 * 7?"})
        assert broken.jobs.redis.llen(f"ca:session:{session}:jobs") == 0
    with AgentClient(rstack.redis_url) as client:
        job_id = client.submit({"session_id": session, "message": "What is 3 * 7?"})
        result = wait_job(client, job_id, 30)
        assert result.status == JobStatus.SUCCEEDED, result.error


def test_a_non_idempotent_call_running_across_a_redis_restart_keeps_its_output(
    rstack: DevStack,
) -> None:
    """The call's claim and its lease (worker/tool_claims.py) outlive the restart: the
    call is not run again, and its real output, stored once Redis is back, is the one
    the model gets (not "outcome unknown")."""
    from tests.integration.conftest import Simulator, tool_call
    from tests.tool_fixtures import record_call_key

    sim = Simulator(rstack.simulator_url or "")
    key = f"rs-once-{uuid.uuid4().hex[:6]}"
    sim.script(key, {"tool_calls": [tool_call("record_call", {"key": key, "seconds": 4},
                                              "c1")]},
               {"content": "done"})
    with AgentClient(rstack.redis_url) as client:
        job_id = client.submit({"session_id": key, "message": "x", "model": key})
        wait_for(lambda: client.jobs.redis.get(record_call_key(key)) is not None, 15,
                 "the side effect")
        bounce_redis(rstack, 1.0)
        result = wait_job(client, job_id, VISIBILITY_TIMEOUT + 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert [(s.content, s.is_error) for s in result.sources] == [(f"recorded {key}", False)]
        assert int(client.jobs.redis.get(record_call_key(key)) or 0) == 1
