"""Approvals through the HTTP gateway (a real uvicorn process on the shared stack)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from producer.devstack_services import start_gateway
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import wait_for, wait_job
from tests.integration.test_gateway import Gateway
from tests.integration.test_secrets import stored_values

pytestmark = pytest.mark.integration

TOKEN = "gw-approval-" + uuid.uuid4().hex
APPROVER_TOKEN = "alice-" + uuid.uuid4().hex  # a secret: never in Redis or a log


@pytest.fixture(scope="module")
def gw(stack: DevStack) -> Iterator[Gateway]:
    url = start_gateway(stack, token=TOKEN, env={
        "AGENT_GATEWAY_TOKEN_NAME": "ops",
        "AGENT_GATEWAY_APPROVER_TOKENS": f"alice={APPROVER_TOKEN}",
    })
    yield Gateway(url, token=TOKEN)
    proc = next(p for p in reversed(stack.processes) if p.name.startswith("gateway") and p.alive)
    proc.stop()


def test_decisions_over_http_record_the_tokens_name(
    gw: Gateway, client: AgentClient, sim: Simulator, model: str, session: str, stack: DevStack
) -> None:
    sim.script(model, {"tool_calls": [
        tool_call("send_payment", {"to": "gw", "amount": 1}, "p1"),
        tool_call("send_payment", {"to": "gw", "amount": 2}, "p2"),
    ]}, {"content": "done"})
    job = gw.call("POST", "/v1/jobs", json={"session_id": session, "message": "pay",
                                            "model": model}).json()
    job_id = job["job_id"]
    path = f"/v1/jobs/{job_id}/approvals"

    def listed() -> list[dict[str, object]] | None:
        items = gw.call("GET", path).json()
        return items if len(items) == 2 else None

    assert [a["call_id"] for a in wait_for(listed, 20, "two pending approvals")] == ["p1", "p2"]
    assert gw.call("GET", f"/v1/jobs/{job_id}").json()["status"] == "waiting_approval"

    alice = Gateway(gw.url, token=APPROVER_TOKEN)
    for nobody in (Gateway(gw.url, token=None), Gateway(gw.url, token="wrong")):
        assert nobody.call("POST", path, json={"call_id": "p1"}).status_code == 401
    assert alice.call("GET", f"/v1/jobs/{job_id}").status_code == 401  # approvals only
    assert alice.call("POST", path, json={"call_id": "nope"}).status_code == 404
    assert alice.call("POST", f"/v1/jobs/{uuid.uuid4()}/approvals",
                      json={"call_id": "p1"}).status_code == 404
    assert alice.call("POST", path, json={"call_id": "p1", "approved": "maybe"}).status_code == 422
    # the body cannot say who decided: the token does
    assert alice.call("POST", path, json={"call_id": "p1", "decided_by": "x"}).status_code == 422

    ok = alice.call("POST", path, json={"call_id": "p1", "approved": True})
    assert ok.status_code == 200, ok.text
    assert ok.json()["decided_by"] == "alice" and ok.json()["approved"] is True
    again = gw.call("POST", path, json={"call_id": "p1", "approved": False})
    assert again.status_code == 409 and "already approved by alice" in again.json()["detail"]
    denied = gw.call("POST", path, json={"call_id": "p2", "approved": False, "reason": "twice"})
    assert denied.status_code == 200 and denied.json()["decided_by"] == "ops"

    result = wait_job(client, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.is_error for s in result.sources] == [False, True]
    assert gw.call("POST", path, json={"call_id": "p2"}).status_code == 409  # job ended
    deciders = [e.detail["decided_by"] for _, e in client.jobs.read_events(job_id)
                if e.kind == "approval_decided"]
    assert deciders == ["alice", "ops"]

    # the tokens themselves are nowhere in Redis or in the gateway's log
    assert stack.redis_url
    r = redis.Redis.from_url(stack.redis_url)
    for secret in (APPROVER_TOKEN.encode(), TOKEN.encode()):
        for key in r.scan_iter("*"):
            assert not any(secret in value for value in stored_values(r, key)), key
    for proc in stack.processes:
        assert APPROVER_TOKEN not in proc.log_text(), proc.name
