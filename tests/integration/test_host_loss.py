"""A whole worker process lost (SIGKILL, an OOM kill, a host gone) costs seconds, not an hour.

Runs the deployment's own pools (threads for agents, prefork for tools) and its own lease
(``AGENT_VISIBILITY_TIMEOUT`` default, renewed by every live worker's beat thread): the
dead worker's messages are restored by a live worker once their lease runs out, every
job completes, memory holds each message once, a non-idempotent tool runs at most once,
and a model call that outlasts the lease on a live worker is never sent again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from producer.client import AgentClient
from producer.contracts import JobResult, JobStatus
from producer.delivery import DEFAULT_VISIBILITY_TIMEOUT
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import shared_env_stack, wait_for, wait_job
from tests.tool_fixtures import record_call_key

pytestmark = pytest.mark.integration

LEASE = DEFAULT_VISIBILITY_TIMEOUT
MODEL_LATENCY_MS = 2000
# What a resume may take: the lease, one restore sweep, and the model calls left to make.
RESUME_BOUND = LEASE + 1 + 2 * MODEL_LATENCY_MS / 1000 + 6


@pytest.fixture(scope="module")
def lstack() -> Iterator[DevStack]:
    # The lease is the deployment's own. A message the killed worker had taken but not yet
    # recorded as unacknowledged (kombu's take-then-record window) is only found by the
    # stall sweep: 20 s here (producer side too), above the longest quiet step of these
    # tests (a 17 s model call), so it can only resend what was really lost.
    env = {"AGENT_STALL_SECONDS": "20"}
    with shared_env_stack("stack-host-loss", env) as stack:
        stack.start_redis()
        stack.start_simulator(latency_ms=MODEL_LATENCY_MS)
        yield stack


@pytest.fixture
def lclient(lstack: DevStack) -> Iterator[AgentClient]:
    with AgentClient(lstack.redis_url) as agent_client:
        yield agent_client


@pytest.fixture
def lsim(lstack: DevStack) -> Simulator:
    assert lstack.simulator_url
    return Simulator(lstack.simulator_url)


def wait_all(client: AgentClient, job_ids: list[str], timeout: float) -> list[JobResult]:
    return [wait_job(client, job_id, timeout) for job_id in job_ids]


def memory_lengths(client: AgentClient, sessions: list[str]) -> set[int]:
    return {len(client.history(session)) for session in sessions}


def test_sigkill_of_a_whole_agents_worker_with_turns_in_flight(
    lstack: DevStack, lclient: AgentClient,
) -> None:
    doomed = lstack.start_worker(["agents"], None, "agents-doomed")
    survivor = lstack.start_worker(["agents"], None, "agents-survivor")
    tools = lstack.start_worker(["tools"], None, "tools")
    try:
        sessions = [f"loss-{i}-{time.time_ns()}" for i in range(120)]
        job_ids = [lclient.submit({"session_id": s, "message": "What is 17 * 3?",
                                   "tools": ["calculator"]}) for s in sessions]
        # Both workers hold turns in their first model call (2 s each) when one dies.
        time.sleep(1.0)
        doomed.kill()
        killed_at = time.time()
        results = wait_all(lclient, job_ids, timeout=RESUME_BOUND + 60)
        assert {r.status for r in results} == {JobStatus.SUCCEEDED}, {r.error for r in results}
        assert {r.response for r in results} == {"Here is what I found:\n- calculator: 51"}
        # user, the call, its result, the answer: each exactly once
        assert memory_lengths(lclient, sessions) == {4}
        resumed_within = max(r.updated_at for r in results) - killed_at
        print(f"\nhost loss: all 120 turns done {resumed_within:.1f} s after the kill")
        assert resumed_within <= RESUME_BOUND
    finally:
        for proc in (survivor, tools):
            proc.stop()


def test_sigkill_of_the_whole_tools_worker_runs_no_tool_twice(
    lstack: DevStack, lclient: AgentClient, lsim: Simulator, model: str,
) -> None:
    agents = lstack.start_worker(["agents"], None, "agents")
    doomed = lstack.start_worker(["tools"], None, "tools-doomed")
    counter = redis.Redis.from_url(lstack.redis_url or "")
    keys = [f"{model}-{i}" for i in range(12)]
    lsim.script(model, *[{"tool_calls": [tool_call("record_call", {"key": k, "seconds": 3})]}
                         for k in keys], *[{"content": "done"} for _ in keys])
    sessions = [f"tools-loss-{k}" for k in keys]
    try:
        job_ids = [lclient.submit({"session_id": s, "message": "pay", "model": model})
                   for s in sessions]
        wait_for(lambda: sum(counter.exists(record_call_key(k)) for k in keys) >= 4, 30,
                 "side effects under way")
        doomed.kill()
        killed_at = time.time()
        survivor = lstack.start_worker(["tools"], None, "tools-survivor")
        results = wait_all(lclient, job_ids, timeout=RESUME_BOUND + 60)
        assert {r.status for r in results} == {JobStatus.SUCCEEDED}, {r.error for r in results}
        runs = {k: int(counter.get(record_call_key(k)) or 0) for k in keys}
        assert max(runs.values()) == 1, f"a non-idempotent tool ran twice: {runs}"
        # A call cut by the kill reports its unknown outcome; every other call ran once.
        # (Scripted replies go to whichever job asks first: read each job's key back.)
        for result in results:
            [source] = result.sources
            ran = runs[json.loads(source.arguments)["key"]]
            if source.is_error:
                assert source.content.startswith("Error: the outcome of tool record_call")
            else:
                assert ran == 1 and source.content.startswith("recorded ")
        assert memory_lengths(lclient, sessions) == {4}
        print(f"\ntools worker loss: all jobs done {time.time() - killed_at:.1f} s after")
        survivor.stop()
    finally:
        agents.stop()


def test_a_model_call_longer_than_the_lease_is_not_sent_again(
    lstack: DevStack, lclient: AgentClient, lsim: Simulator, model: str, session: str,
) -> None:
    agents = lstack.start_worker(["agents"], None, "agents-slow")
    other = lstack.start_worker(["agents"], None, "agents-idle")
    try:
        lsim.script(model, {"content": "slow but sure", "delay_ms": (LEASE + 5) * 1000})
        job_id = lclient.submit({"session_id": session, "message": "hi", "model": model,
                                 "tools": []})
        result = wait_job(lclient, job_id, timeout=LEASE + 40)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.response == "slow but sure"
        assert len(lsim.requests(model)) == 1  # the lease was renewed: no second delivery
    finally:
        agents.stop()
        other.stop()
