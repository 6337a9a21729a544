"""Bad input is refused clearly and loses nothing: producer, worker and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from producer.client import AgentClient, UnknownTools
from producer.contracts import TASK_START_TURN, JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def queue_lengths(client: AgentClient) -> tuple[int, int]:
    return (int(client.jobs.redis.llen("agents")), int(client.jobs.redis.llen("tools")))


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"message": "   "}, "message"),
        ({"system_prompt": "a", "prefix_messages": [{"role": "system", "content": "b"}]},
         "system_prompt or prefix_messages"),
        ({"max_function_calls": -1}, "max_function_calls"),
        ({"message": "x" * 40_000}, "message"),
        ({"session_id": "bad session!"}, "session_id"),
    ],
    ids=["empty", "both-prefixes", "negative-budget", "too-long", "bad-session"],
)
def test_producer_rejects_invalid_requests_before_enqueue(
    client: AgentClient, request_fields: dict[str, object], field: str
) -> None:
    request = {"session_id": "s-valid", "message": "hello", **request_fields}
    keys_before = set(client.jobs.redis.scan_iter("ca:job:*"))
    with pytest.raises(ValidationError) as raised:
        client.submit(request)
    assert field in str(raised.value)
    assert set(client.jobs.redis.scan_iter("ca:job:*")) == keys_before


def test_malformed_task_message_fails_its_job_and_worker_serves_on(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    job_id = str(uuid.uuid4())
    client.celery.send_task(
        TASK_START_TURN,
        kwargs={"message": {"job_id": job_id, "request": {"session_id": session,
                                                         "mesage": "typo field"}}},
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        failed = client.status(job_id)
        if failed is not None and failed.status == JobStatus.FAILED:
            break
        time.sleep(0.1)
    assert failed is not None and failed.status == JobStatus.FAILED
    assert "request.message: Field required" in (failed.error or "")
    assert "request.mesage: Extra inputs are not permitted" in (failed.error or "")
    # garbage without a job id: nothing to fail, but the worker must survive it
    client.celery.send_task(TASK_START_TURN, args=["not even a dict"])
    sim.script(model, {"content": "still alive"})
    result = client.run({"session_id": session, "message": "ping", "model": model}, timeout=20)
    assert result.response == "still alive"


def test_unknown_requested_tool_is_refused_before_enqueue_listing_known_tools(
    client: AgentClient, session: str
) -> None:
    # The client reads the live tool registry (the worker's own check at start is
    # tested in test_tool_registry.py).
    with pytest.raises(UnknownTools) as refused:
        client.run({"session_id": session, "message": "x", "tools": ["calculator", "nope"]})
    assert "unknown tools: nope" in str(refused.value)
    assert "calculator" in str(refused.value) and "get_weather" in str(refused.value)


def run_cli(stack: DevStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": stack.redis_url or "", "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)  # the producer never needs the key
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )


def test_cli_submit_wait_json_and_exit_codes(
    stack: DevStack, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "hi"}, "c1")]},
               {"content": "answer"})
    done = run_cli(stack, "submit", "hello", "--session", session, "--model", model,
                   "--wait", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "succeeded" and out["response"] == "answer"
    assert out["session_id"] == session and out["job_id"]
    assert out["sources"][0]["tool_call_id"] == "c1" and out["usage"]["total_tokens"] > 0
    assert out["error"] is None

    sim.script(model, {"error": {"status": 401, "message": "bad key", "type": "auth"}})
    failed = run_cli(stack, "submit", "hello", "--session", session, "--model", model,
                     "--wait", "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["status"] == "failed"

    bad = run_cli(stack, "submit", "", "--session", session)
    assert bad.returncode == 2 and "message" in bad.stderr

    sim.script(model, {"content": "slow", "delay_ms": 3000})
    slow = run_cli(stack, "submit", "x", "--session", session, "--model", model,
                   "--wait", "--json", "--timeout", "0.5")
    assert slow.returncode == 3

    status = run_cli(stack, "status", out["job_id"], "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["response"] == "answer"


def test_cli_human_output_history_and_reset(
    stack: DevStack, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "hi"}, "c1")]},
               {"content": "answer"})
    done = run_cli(stack, "submit", "hello", "--session", session, "--model", model, "--wait")
    assert done.returncode == 0, done.stderr
    assert "model asks for 1 tool call(s): echo" in done.stdout
    assert "response: answer" in done.stdout
    history = run_cli(stack, "history", session, "--json")
    messages = json.loads(history.stdout)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["name"] == "echo"
    assert messages[2]["tool_call_id"] == "c1"
    assert run_cli(stack, "reset", session).returncode == 0
    assert json.loads(run_cli(stack, "history", session, "--json").stdout) == []
    assert run_cli(stack, "history", "bad session!").returncode == 2


def test_infrastructure_failure_of_a_tool_task_fails_the_job_through_the_errback(
    client: AgentClient,
) -> None:
    """A tool task that cannot even start (here: a malformed call) is not a tool error:
    the fan-out's errback ends the job with a readable reason instead of leaving it hanging."""
    job_id = str(uuid.uuid4())
    abort = client.celery.signature("agents.turn.abort", kwargs={"job_id": job_id})
    broken = client.celery.signature(
        "agents.tool.run", kwargs={"job_id": job_id, "call": {"id": "c1"}, "allowed": []}
    )
    broken.on_error(abort)
    broken.apply_async()
    deadline = time.time() + 20
    failed = None
    while time.time() < deadline:
        failed = client.status(job_id)
        if failed is not None:
            break
        time.sleep(0.1)
    assert failed is not None and failed.status == JobStatus.FAILED
    assert (failed.error or "").startswith("tool fan-out failed: ValidationError")
