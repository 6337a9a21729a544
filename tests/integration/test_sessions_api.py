"""Seeding a session, listing its jobs and paging its history: client, CLI and gateway
(a real uvicorn process) in front of the session's real workers and the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from producer.client import AgentClient
from producer.devstack import DevStack
from producer.devstack_services import start_gateway
from producer.history_import import InvalidHistory, SessionBusy
from tests.integration.conftest import WEBHOOK_HOSTS, Simulator

pytestmark = pytest.mark.integration

CALL = {"id": "call_1", "name": "calculator", "arguments": '{"expression": "2+2"}'}
SEED: list[dict[str, Any]] = [
    {"role": "user", "content": "My name is Ada. What is 2+2?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "4"},
    {"role": "assistant", "content": "2+2 is 4, Ada."},
]


def cli(stack: DevStack, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "--redis-url", str(stack.redis_url), *argv],
        capture_output=True, text=True, timeout=60, env=stack.python_env({}), input=stdin,
    )


@pytest.fixture(scope="module")
def gateway(stack: DevStack) -> Iterator[str]:
    url = start_gateway(stack, env={"AGENT_WEBHOOK_ALLOWED_HOSTS": WEBHOOK_HOSTS})
    yield url
    proc = next(p for p in reversed(stack.processes) if p.name.startswith("gateway") and p.alive)
    proc.stop()


def test_an_imported_history_is_the_memory_of_the_next_turn(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    assert client.import_history(session, SEED) == 4
    sim.script(model, {"content": "Your name is Ada."})
    result = client.run({"session_id": session, "message": "What is my name?", "model": model,
                         "system_prompt": "be brief"}, 30)
    assert result.response == "Your name is Ada."
    [body] = sim.requests(model)  # the simulator checks the tool pairing like OpenAI
    assert [m["role"] for m in body["messages"]] == [
        "system", "user", "assistant", "tool", "assistant", "user"]
    assert body["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert len(client.history(session)) == 6


def test_an_invalid_history_is_refused_and_nothing_is_stored(
    client: AgentClient, session: str
) -> None:
    with pytest.raises(InvalidHistory, match=r"messages\.1: a tool message must answer"):
        client.import_history(session, [SEED[0], SEED[2]])
    assert client.history(session) == []


def test_import_is_refused_while_a_job_of_the_session_runs(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "slow", "delay_ms": 1500})
    job_id = client.submit({"session_id": session, "message": "hi", "model": model})
    with pytest.raises(SessionBusy, match="has a job queued or running"):
        client.import_history(session, SEED)
    client.wait(job_id, 30)
    assert client.import_history(session, SEED) == 6  # idle again: accepted, appended


def test_cli_imports_lists_jobs_and_pages_history(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str,
    tmp_path: Path,
) -> None:
    seed = tmp_path / "history.json"
    seed.write_text(json.dumps({"messages": SEED}))
    done = cli(stack, "history", session, "--import", str(seed))
    assert done.returncode == 0, done.stderr
    assert f"session {session}: imported 4 messages (4 stored)" in done.stdout
    bad = cli(stack, "history", session, "--import", "-", stdin=json.dumps([SEED[2]]))
    assert bad.returncode == 2 and "messages.0: a tool message must answer" in bad.stderr

    sim.script(model, {"content": "one"}, {"content": "two"})
    first = client.run({"session_id": session, "message": "a", "model": model}, 30)
    second = client.run({"session_id": session, "message": "b", "model": model}, 30)
    listed = cli(stack, "jobs", "--session", session, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [second.job_id, first.job_id]
    text = cli(stack, "jobs", "--session", session, "--limit", "1")
    assert text.stdout.startswith(second.job_id) and "succeeded" in text.stdout
    assert "two" in text.stdout and first.job_id not in text.stdout

    page = cli(stack, "history", session, "--limit", "2", "--json")
    assert [m["content"] for m in json.loads(page.stdout)] == ["b", "two"]
    older = cli(stack, "history", session, "--limit", "2", "--before", "6", "--json")
    assert [m["content"] for m in json.loads(older.stdout)] == ["a", "one"]  # 4 and 5

    sim.script(model, {"content": "slow", "delay_ms": 1500})
    running = client.submit({"session_id": session, "message": "c", "model": model})
    busy = cli(stack, "history", session, "--import", str(seed))
    assert busy.returncode == 8 and "has a job queued or running" in busy.stderr
    client.wait(running, 30)


def test_gateway_seeds_lists_and_pages(
    gateway: str, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    http = requests.Session()
    rsp = http.post(f"{gateway}/v1/sessions/{session}/messages", json={"messages": SEED},
                    timeout=30)
    assert rsp.status_code == 201, rsp.text
    assert rsp.json() == {"session_id": session, "imported": 4, "total": 4}
    bad = http.post(f"{gateway}/v1/sessions/{session}/messages",
                    json={"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]},
                    timeout=30)
    assert bad.status_code == 422
    assert "a tool message must answer a call" in bad.text

    sim.script(model, {"content": "first"}, {"content": "slow", "delay_ms": 1500})
    done = client.run({"session_id": session, "message": "q1", "model": model}, 30)
    running = client.submit({"session_id": session, "message": "q2", "model": model})
    busy = http.post(f"{gateway}/v1/sessions/{session}/messages", json={"messages": SEED},
                     timeout=30)
    assert busy.status_code == 409 and "queued or running" in busy.json()["detail"]
    jobs = http.get(f"{gateway}/v1/sessions/{session}/jobs", timeout=30).json()
    assert [j["job_id"] for j in jobs] == [running, done.job_id]
    assert jobs[1]["status"] == "succeeded" and jobs[1]["response"] == "first"
    assert len(http.get(f"{gateway}/v1/sessions/{session}/jobs?limit=1", timeout=30).json()) == 1
    assert http.get(f"{gateway}/v1/sessions/{session}/jobs?limit=0", timeout=30).status_code \
        == 422
    client.wait(running, 30)

    page = http.get(f"{gateway}/v1/sessions/{session}/messages?limit=2", timeout=30)
    assert [m["content"] for m in page.json()] == ["q2", "slow"]
    assert page.headers["X-History-Start"] == "6" and page.headers["X-History-Total"] == "8"
    older = http.get(f"{gateway}/v1/sessions/{session}/messages",
                     params={"limit": 2, "before": page.headers["X-History-Start"]}, timeout=30)
    assert [m["content"] for m in older.json()] == ["q1", "first"]
    whole = http.get(f"{gateway}/v1/sessions/{session}/messages", timeout=30).json()
    assert len(whole) == 8


def test_gateway_refuses_a_webhook_host_that_is_not_allowed(gateway: str, session: str) -> None:
    rsp = requests.post(f"{gateway}/v1/jobs", timeout=30, json={
        "session_id": session, "message": "hi", "webhook_url": "http://10.0.0.1/hook"})
    assert rsp.status_code == 422
    detail = rsp.json()["detail"][0]
    assert detail["loc"] == ["body", "webhook_url"]
    assert "10.0.0.1:80 is not in AGENT_WEBHOOK_ALLOWED_HOSTS" in detail["msg"]
    ok = requests.post(f"{gateway}/v1/jobs", timeout=30, json={
        "session_id": f"gw-{uuid.uuid4().hex[:8]}", "message": "hi", "temperature": 5})
    assert ok.status_code == 422 and ok.json()["detail"][0]["loc"] == ["body", "temperature"]
