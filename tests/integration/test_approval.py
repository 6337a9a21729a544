"""Human approval of tool calls on the shared stack: real workers, the simulator, the CLI.

Every test scripts its own model; ``send_payment`` (tests/tool_fixtures.py) is registered
with ``requires_approval=True`` and counts its runs in Redis.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from producer.approvals import AlreadyDecided, JobEnded, UnknownCall, UnknownJob
from producer.client import AgentClient, AsyncAgentClient
from producer.contracts import JobEvent, JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import wait_for, wait_job
from tests.tool_fixtures import record_call_key

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the Assistants API's beta
]


def pay(to: str, call_id: str, amount: int = 5) -> dict[str, Any]:
    return tool_call("send_payment", {"to": to, "amount": amount}, call_id)


def ask(session: str, model: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "message": "pay them", "model": model, **fields}


def event_of(client: AgentClient, job_id: str, kind: str, timeout: float = 20) -> JobEvent:
    def find() -> JobEvent | None:
        return next((e for _, e in client.jobs.read_events(job_id) if e.kind == kind), None)

    return wait_for(find, timeout, f"a {kind} event of job {job_id}")


def kinds(client: AgentClient, job_id: str) -> list[str]:
    return [e.kind for _, e in client.jobs.read_events(job_id)]


def runs(client: AgentClient, who: str) -> int:
    return int(client.jobs.redis.get(record_call_key(f"pay:{who}")) or 0)


def cli(stack: DevStack, *argv: str) -> subprocess.CompletedProcess[str]:
    assert stack.redis_url
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "--redis-url", stack.redis_url, *argv],
        capture_output=True, text=True, timeout=60,
    )


def test_approved_call_runs_after_the_decision_and_others_run_at_once(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [pay(who, "pay1"), tool_call("echo", {"text": "hi"}, "e1")]},
               {"content": "Paid."})
    job_id = client.submit(ask(session, model))
    required = event_of(client, job_id, "approval_required")
    assert required.detail == {"call_id": "pay1", "tool_name": "send_payment",
                               "arguments": f'{{"to": "{who}", "amount": 5}}'}
    event_of(client, job_id, "tool_finished")  # the call needing no approval ran already
    status = client.status(job_id)
    assert status is not None and status.status == JobStatus.WAITING_APPROVAL
    assert [a.call_id for a in client.approvals(job_id, pending_only=True)] == ["pay1"]
    time.sleep(0.5)
    assert runs(client, who) == 0 and len(sim.requests(model)) == 1  # nothing moves on
    decision = client.approve(job_id, "pay1")
    assert decision.approved and decision.decided_by == "python"
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [(s.tool_call_id, s.content) for s in result.sources] == [
        ("pay1", f"paid 5 to {who}"), ("e1", "hi"),
    ]
    assert runs(client, who) == 1
    # the next model call saw both outputs, in call order
    tool_messages = [m for m in sim.requests(model)[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["pay1", "e1"]
    decided = event_of(client, job_id, "approval_decided")
    assert decided.detail["decided_by"] == "python" and decided.detail["approved"] is True


def test_a_declined_call_is_an_error_output_and_the_turn_goes_on(
    client: AgentClient, sim: Simulator, model: str, session: str, stack: DevStack
) -> None:
    sim.script(model, {"tool_calls": [tool_call("calculator", {"expression": "2+2"}, "c1")]},
               {"content": "I was not allowed."})
    submitted = cli(stack, "submit", "add them", "--session", session, "--model", model,
                    "--require-approval", "calculator", "--approval-timeout", "60")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert event_of(client, job_id, "approval_required").detail["tool_name"] == "calculator"
    assert cli(stack, "approve", job_id, "c1", "--deny",
               "--reason", "not today").returncode == 0
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    [source] = result.sources
    assert source.is_error
    assert source.content == "Tool call calculator declined by the approver: not today"
    assert sim.requests(model)[1]["messages"][-1]["content"] == source.content
    assert event_of(client, job_id, "approval_decided").detail["decided_by"] == "cli"


def test_bad_decisions_are_refused_and_change_nothing(
    client: AgentClient, sim: Simulator, model: str, session: str, stack: DevStack
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [pay(who, "p1"), pay(who, "p2")]}, {"content": "ok"})
    job_id = client.submit(ask(session, model))
    event_of(client, job_id, "approval_required")
    with pytest.raises(UnknownCall):
        client.approve(job_id, "nope")
    with pytest.raises(UnknownJob):
        client.approve(str(uuid.uuid4()), "p1")
    first = cli(stack, "approve", job_id, "p1")
    assert first.returncode == 0, first.stderr
    assert "approved" in first.stdout
    again = cli(stack, "approve", job_id, "p1", "--deny")
    assert again.returncode == 1 and "already approved by cli" in again.stderr
    unknown = cli(stack, "approve", job_id, "zzz")
    assert unknown.returncode == 1 and "no tool call zzz" in unknown.stderr
    shown = cli(stack, "status", job_id)
    assert "waiting_approval" in shown.stdout and "waiting for approval: p2" in shown.stdout
    assert shown.returncode == 3  # not ended
    with pytest.raises(AlreadyDecided):
        client.approve(job_id, "p1", approved=False)
    client.approve(job_id, "p2", approved=False, reason="one is enough")
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.is_error for s in result.sources] == [False, True]
    with pytest.raises(AlreadyDecided, match="declined by python"):  # and the job ended
        client.approve(job_id, "p2")
    assert cli(stack, "approve", job_id, "p2").returncode == 1
    assert runs(client, who) == 1
    assert kinds(client, job_id).count("approval_decided") == 2


def test_racing_decisions_one_wins_and_the_tool_runs_once(
    client: AgentClient, sim: Simulator, model: str, session: str, stack: DevStack
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [pay(who, "p1")]}, {"content": "done"})
    job_id = client.submit(ask(session, model))
    event_of(client, job_id, "approval_required")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def decide(approved: bool) -> None:
        with AgentClient(stack.redis_url) as own:
            barrier.wait()
            try:
                own.approve(job_id, "p1", approved=approved)
                outcomes.append("approved" if approved else "declined")
            except AlreadyDecided:
                outcomes.append("409")

    threads = [threading.Thread(target=decide, args=(i < 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("409") == 5
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert runs(client, who) == (1 if "approved" in outcomes else 0)
    assert kinds(client, job_id).count("approval_decided") == 1
    assert len(sim.requests(model)) == 2


def test_an_undecided_call_times_out_as_declined(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [pay(who, "p1")]}, {"content": "nobody answered"})
    started = time.monotonic()
    result = client.run(ask(session, model, approval_timeout_seconds=1), timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert time.monotonic() - started >= 1.0
    [source] = result.sources
    assert source.is_error and source.content == (
        "Tool call send_payment declined by the approver: "
        "no decision within the approval timeout of 1 s"
    )
    assert event_of(client, result.job_id, "approval_decided").detail["decided_by"] == "timeout"
    assert runs(client, who) == 0


def test_cancel_while_waiting_frees_the_session(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [pay("x", "p1")]}, {"content": "second turn"})
    waiting = client.submit(ask(session, model))
    event_of(client, waiting, "approval_required")
    behind = client.submit(ask(session, model))  # queued behind the waiting turn
    cancelled = client.cancel(waiting)
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert wait_job(client, behind, 30).response == "second turn"
    with pytest.raises(JobEnded):
        client.approve(waiting, "p1")


def test_the_deadline_applies_while_waiting(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [pay("x", "p1")]})
    result = client.run(ask(session, model, deadline_seconds=2), timeout=30)
    assert result.status == JobStatus.FAILED and "deadline" in (result.error or "")
    with pytest.raises(JobEnded):
        client.approve(result.job_id, "p1")


@pytest.mark.parametrize("protocol", ["responses", "assistants"])
def test_assistant_round_is_submitted_only_after_the_decisions(
    client: AgentClient, sim: Simulator, model: str, session: str, protocol: str
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "a"}, "e1"), pay(who, "p1")],
                       "delay_ms": 100},
               {"content": "Paid.", "delay_ms": 100})
    job_id = client.submit(ask(session, model, mode="assistant", protocol=protocol,
                               poll_interval=0.1))
    event_of(client, job_id, "approval_required")
    event_of(client, job_id, "tool_finished")
    time.sleep(0.5)
    kind = "runs.submit_tool_outputs" if protocol == "assistants" else "responses.create"
    before = len(sim.requests(model, kind))
    assert before == (0 if protocol == "assistants" else 1)  # only the first create
    client.approve(job_id, "p1", reason="fine")
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.content for s in result.sources] == ["a", f"paid 5 to {who}"]
    assert len(sim.requests(model, kind)) == before + 1
    assert runs(client, who) == 1


def test_an_assistants_run_that_expired_while_waiting_is_reported(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim._call("POST", "/_sim/config", {"expires_after_s": 1})
    try:
        sim.script(model, {"tool_calls": [pay("x", "p1")], "delay_ms": 50})
        job_id = client.submit(ask(session, model, mode="assistant", protocol="assistants",
                                   poll_interval=0.1))
        event_of(client, job_id, "approval_required")
        time.sleep(1.5)
        client.approve(job_id, "p1")
        result = wait_job(client, job_id, 30)
    finally:
        sim._call("POST", "/_sim/config", {"expires_after_s": 600})
    assert result.status == JobStatus.FAILED
    assert "expired after waiting" in (result.error or "")
    assert "approval" in (result.error or "")


def test_the_async_client_decides_too(
    client: AgentClient, sim: Simulator, model: str, session: str, stack: DevStack
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(model, {"tool_calls": [pay(who, "p1")]}, {"content": "done"})

    async def go() -> tuple[list[str], str, str]:
        async with AsyncAgentClient(stack.redis_url) as aclient:
            job_id = await aclient.submit(ask(session, model))
            while not await aclient.approvals(job_id, pending_only=True):
                await asyncio.sleep(0.05)
            pending = [a.call_id for a in await aclient.approvals(job_id, pending_only=True)]
            decision = await aclient.approve(job_id, "p1", reason="ok")
            result = await aclient.wait(job_id, timeout=30)
            return pending, decision.decided_by or "", str(result.status)

    pending, decided_by, status = asyncio.run(go())
    assert pending == ["p1"] and decided_by == "python" and status == "succeeded"
    assert runs(client, who) == 1


def test_an_unknown_tool_in_require_approval_fails_the_job(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    result = client.run(ask(session, model, require_approval=["no_such_tool"]), timeout=30)
    assert result.status == JobStatus.FAILED
    assert "require_approval: unknown tools: no_such_tool" in (result.error or "")
    assert sim.requests(model) == []  # refused before any model call


def test_two_rounds_of_approvals_in_one_turn_with_several_early_calls(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    who = uuid.uuid4().hex[:8]
    sim.script(
        model,
        {"tool_calls": [tool_call("echo", {"text": "a"}, "e1"), pay(who, "p1"),
                        tool_call("echo", {"text": "b"}, "e2")]},
        {"tool_calls": [pay(who, "p2", amount=7)]},
        {"content": "Both handled."},
    )
    job_id = client.submit(ask(session, model))
    event_of(client, job_id, "approval_required")
    client.approve(job_id, "p1")

    def second_round() -> bool:
        return [a.call_id for a in client.approvals(job_id, pending_only=True)] == ["p2"]

    wait_for(second_round, 20, "the second round's approval")
    status = client.status(job_id)
    assert status is not None and status.status == JobStatus.WAITING_APPROVAL
    client.approve(job_id, "p2", approved=False, reason="twice is too much")
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [(s.tool_call_id, s.is_error) for s in result.sources] == [
        ("e1", False), ("p1", False), ("e2", False), ("p2", True),
    ]
    assert runs(client, who) == 1
    assert kinds(client, job_id).count("approval_required") == 2


def test_a_declined_assistants_round_is_submitted_with_the_refusal(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [pay("x", "p1")], "delay_ms": 50},
               {"content": "Understood.", "delay_ms": 50})
    job_id = client.submit(ask(session, model, mode="assistant", protocol="assistants",
                               poll_interval=0.1))
    event_of(client, job_id, "approval_required")
    client.approve(job_id, "p1", approved=False, reason="no")
    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    [body] = sim.requests(model, "runs.submit_tool_outputs")
    assert body["tool_outputs"] == [
        {"tool_call_id": "p1", "output": "Tool call send_payment declined by the approver: no"},
    ]
