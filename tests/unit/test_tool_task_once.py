"""The tool task on redelivery: stored outputs are reused, non-idempotent tools never rerun."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from celery.exceptions import Retry

from producer import keys
from producer.jobstore import JobStore
from worker.context import WorkerContext
from worker.settings import WorkerSettings
from worker.tasks import tool_tasks
from worker.tool_claims import Claim
from worker.tools import ToolRegistry, tool

CALLS: list[str] = []


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerContext]:
    registry = ToolRegistry()

    @tool(registry=registry, idempotent=False)
    def charge_card(amount: int) -> str:
        """Charge the card (not safe to repeat)."""
        CALLS.append(f"charge {amount}")
        return f"charged {amount}"

    @tool(registry=registry)
    def lookup(text: str) -> str:
        """Look something up (safe to repeat)."""
        CALLS.append(f"lookup {text}")
        return text

    context = WorkerContext(WorkerSettings.from_env(), registry=registry)
    context.__dict__["jobs"] = JobStore(fakeredis.FakeRedis(decode_responses=True))
    monkeypatch.setattr(tool_tasks, "get_context", lambda: context)
    CALLS.clear()
    yield context


def run(name: str, arguments: str, call_id: str = "c1") -> dict[str, Any]:
    call = {"id": call_id, "name": name, "arguments": arguments}
    result: dict[str, Any] = tool_tasks.run_tool.run("job-0001", call, [name])
    return result


def test_non_idempotent_tool_runs_once_and_a_redelivery_reuses_its_output(
    ctx: WorkerContext,
) -> None:
    first = run("charge_card", '{"amount": 5}')
    again = run("charge_card", '{"amount": 5}')
    assert first == again and first["content"] == "charged 5"
    assert CALLS == ["charge 5"]


def test_claimed_call_without_an_output_is_an_unknown_outcome_not_a_second_run(
    ctx: WorkerContext,
) -> None:
    # what a worker killed mid-call leaves behind: the claim, no output
    ctx.claims.claim("job-0001", "c1")
    ctx.jobs.redis.delete(keys.tool_running("job-0001", "c1"))  # its lease lapsed
    output = run("charge_card", '{"amount": 5}')
    assert CALLS == []
    assert output["is_error"] is True
    assert output["content"].startswith("Error: the outcome of tool charge_card is unknown")
    assert "not safe to repeat" in output["content"]
    # the answer is stored: later copies give the same one
    assert run("charge_card", '{"amount": 5}') == output


def test_idempotent_tool_without_an_output_runs_again(ctx: WorkerContext) -> None:
    ctx.jobs.redis.set(keys.tool_started("job-0001", "c1"), "1")  # ignored for safe tools
    assert run("lookup", '{"text": "x"}')["content"] == "x"
    assert CALLS == ["lookup x"]
    assert not ctx.jobs.redis.exists(keys.tool_started("job-0001", "c2"))
    run("lookup", '{"text": "y"}', "c2")
    assert not ctx.jobs.redis.exists(keys.tool_started("job-0001", "c2")), "no claim needed"


def test_claim_expires_with_the_job(ctx: WorkerContext) -> None:
    run("charge_card", '{"amount": 1}')
    assert 0 < ctx.jobs.redis.ttl(keys.tool_started("job-0001", "c1")) <= keys.job_ttl_seconds()


def test_a_copy_of_a_call_still_running_elsewhere_comes_back_later(ctx: WorkerContext) -> None:
    # what a live worker running the call holds: the claim and its lease, no output yet
    assert ctx.claims.claim("job-0001", "c1") is Claim.CLAIMED
    with pytest.raises(Retry):
        run("charge_card", '{"amount": 5}')
    assert CALLS == []
    assert not ctx.jobs.redis.exists(keys.tool_result("job-0001", "c1")), "nothing answered"


def test_the_lease_of_a_claimed_call_ends_with_its_run(ctx: WorkerContext) -> None:
    run("charge_card", '{"amount": 5}')
    assert not ctx.jobs.redis.exists(keys.tool_running("job-0001", "c1"))
    assert ctx.claims.claim("job-0001", "c1") is Claim.LAPSED


def test_a_copy_stops_coming_back_once_the_job_has_ended(ctx: WorkerContext) -> None:
    assert ctx.claims.claim("job-0001", "c1") is Claim.CLAIMED  # still running elsewhere
    ctx.jobs.redis.set(keys.job_final("job-0001"), "1")
    output = run("charge_card", '{"amount": 5}')  # no Retry raised
    assert CALLS == [] and output["is_error"] is True
