"""A wait for approval survives its workers and Redis (a stack of its own: it kills them).

- The agents workers SIGKILLed right after a decision: the decision is in Redis, the
  resume comes back (from the queue, or redelivered after the visibility timeout), and
  the approved tool runs exactly once.
- Redis restarted (AOF on) while a turn waits: the wait, its entries and the decision
  afterwards all work.
- A decision whose resume never got sent (the deciding process died right after the
  script): the stall sweep (``AGENT_STALL_SECONDS``, short here) resumes the job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from producer.approvals import ApprovalStore
from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import (
    VISIBILITY_TIMEOUT,
    shared_env_stack,
    wait_for,
    wait_job,
)
from tests.tool_fixtures import record_call_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def astack() -> Iterator[DevStack]:
    env = {"AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "AGENT_STALL_SECONDS": "3"}
    # The producers (this test process) read AGENT_STALL_SECONDS too: the first sweep of a
    # deadline is sent by the submit, on the producer's grid. With the default (360 s) it
    # lay up to a minute out, and a stall that needs the sweep waited for it.
    with shared_env_stack("stack-approval", env) as s:
        s.start_redis(appendonly=True)
        s.start_simulator(latency_ms=0)
        s.start_worker(["agents"], 2, "agents-a")
        s.start_worker(["agents"], 2, "agents-b")
        s.start_worker(["tools"], 2, "tools")
        yield s


def waiting_job(client: AgentClient, sim: Simulator, who: str) -> tuple[str, str]:
    model = f"script-{uuid.uuid4().hex[:12]}"
    # A second "Paid." for a model call cut by a kill and made again (at least once).
    sim.script(model, {"tool_calls": [
        tool_call("send_payment", {"to": who, "amount": 3}, "p1")]}, {"content": "Paid."},
        {"content": "Paid."})
    job_id = client.submit({"session_id": f"ar-{who}", "message": "pay", "model": model})

    def asked() -> bool:
        return any(e.kind == "approval_required" for _, e in client.jobs.read_events(job_id))

    wait_for(asked, 20, "approval_required")
    return job_id, model


def test_agents_workers_killed_right_after_the_decision(astack: DevStack) -> None:
    assert astack.redis_url and astack.simulator_url
    sim = Simulator(astack.simulator_url)
    who = uuid.uuid4().hex[:8]
    with AgentClient(astack.redis_url) as client:
        job_id, model = waiting_job(client, sim, who)
        client.approve(job_id, "p1")
        for proc in list(astack.processes):
            if proc.name.startswith("agents") and proc.alive:
                proc.kill()  # the whole worker, whatever it had received
        astack.start_worker(["agents"], 2, "agents-c")
        result = wait_job(client, job_id, 4 * VISIBILITY_TIMEOUT + 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.sources[0].content == f"paid 3 to {who}"
        assert int(client.jobs.redis.get(record_call_key(f"pay:{who}")) or 0) == 1
        kinds = [e.kind for _, e in client.jobs.read_events(job_id)]
        assert kinds.count("approval_decided") == 1 and kinds.count("succeeded") == 1
        # The kill may cut the step after the decision mid-call: then it is made again.
        assert len(sim.requests(model)) in (2, 3)


def test_redis_restart_while_waiting(astack: DevStack) -> None:
    assert astack.redis_url and astack.simulator_url
    sim = Simulator(astack.simulator_url)
    who = uuid.uuid4().hex[:8]
    with AgentClient(astack.redis_url) as client:
        job_id, _ = waiting_job(client, sim, who)
        astack.restart_redis()
        status = client.status(job_id)
        assert status is not None and status.status == JobStatus.WAITING_APPROVAL
        assert [a.call_id for a in client.approvals(job_id, pending_only=True)] == ["p1"]
        client.approve(job_id, "p1", approved=False, reason="after the restart")
        result = wait_job(client, job_id, 4 * VISIBILITY_TIMEOUT + 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.sources[0].content.endswith("declined by the approver: after the restart")
        assert int(client.jobs.redis.get(record_call_key(f"pay:{who}")) or 0) == 0


def test_a_decision_whose_resume_was_lost_is_resumed_by_the_stall_sweep(
    astack: DevStack,
) -> None:
    assert astack.redis_url and astack.simulator_url
    sim = Simulator(astack.simulator_url)
    who = uuid.uuid4().hex[:8]
    with AgentClient(astack.redis_url) as client:
        job_id, _ = waiting_job(client, sim, who)
        # the decision script alone, as if its process died before sending the resume
        decided = ApprovalStore(client.jobs.redis).decide(job_id, "p1", True, None, "python")
        assert decided.undecided == 0
        result = wait_job(client, job_id, 30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert int(client.jobs.redis.get(record_call_key(f"pay:{who}")) or 0) == 1
