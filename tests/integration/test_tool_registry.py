"""The live tool registry on real workers: announcing, routing to the queue of a tool's
servers, refusals before enqueue and at start, schema conflicts, workers leaving.

A stack of its own: an agents worker with no tool module at all, a tools worker on
``tools`` and a guarded worker on ``tools.billing`` (only it holds the billing secret).
Tests that stop workers come last.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from producer.client import AgentClient, AsyncAgentClient, UnknownTools, prepare_submit
from producer.contracts import TASK_TOOL_RUN, JobStatus, ToolEntry
from producer.devstack import DevStack, ManagedProcess
from producer.devstack_services import start_gateway
from producer.jobstore import EVENTS_MAX_LEN
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import new_stack, wait_for, wait_job

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BILLING_SECRET = "billing-secret-held-by-one-worker"
HEARTBEAT = 0.5  # leases of 1.5 s, so a killed worker's tools leave within seconds


class Reg:
    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.workers: dict[str, ManagedProcess] = {}

    def start(self, name: str, queues: list[str], modules: str, **env: str) -> ManagedProcess:
        proc = self.stack.start_worker(
            queues, 2 if queues != ["agents"] else 8, name,
            env={"AGENT_TOOL_MODULES": modules, **env},
        )
        self.workers[name] = proc
        return proc


@pytest.fixture(scope="module")
def reg() -> Iterator[Reg]:
    stack = new_stack("tool-registry", {"AGENT_TOOL_HEARTBEAT": str(HEARTBEAT)})
    with stack:
        stack.start_redis()
        stack.start_simulator()
        r = Reg(stack)
        r.start("agents", ["agents"], "")  # no tool module: schemas come from the registry
        r.start("tools", ["tools"], "tests.tool_fixtures")
        r.start("billing", ["tools.billing"], "tests.billing_tools=tools.billing",
                BILLING_TEST_SECRET=BILLING_SECRET)
        yield r


@pytest.fixture
def rclient(reg: Reg) -> Iterator[AgentClient]:
    with AgentClient(reg.stack.redis_url) as c:
        yield c


@pytest.fixture(scope="module")
def rsim(reg: Reg) -> Simulator:
    assert reg.stack.simulator_url
    return Simulator(reg.stack.simulator_url)


def served(client: AgentClient) -> dict[str, ToolEntry]:
    return {entry.name: entry for entry in client.tools()}


def run_cli(reg: Reg, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": reg.stack.redis_url or "", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "producer.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)


def tool_tasks_received(proc: ManagedProcess, since: int = 0) -> int:
    text = proc.log_path.read_bytes()[since:].decode("utf-8", "replace")
    return sum(1 for line in text.splitlines()
               if f"Task {TASK_TOOL_RUN}[" in line and line.rstrip().endswith("received"))


def test_registry_lists_each_tool_with_its_schema_queue_and_servers(
    reg: Reg, rclient: AgentClient
) -> None:
    tools = served(rclient)
    billing = tools["lookup_customer"]
    assert billing.queue == "tools.billing"
    assert [s.split("@")[0] for s in billing.servers] == ["billing"]
    assert billing.parameters["properties"]["customer_id"]["type"] == "integer"
    # Built-in tools are served by the tools worker like any other; not by billing (it
    # does not consume their queue), not by the agents worker (it serves no tool queue).
    for name in ("calculator", "echo", "lookup_order"):
        assert [s.split("@")[0] for s in tools[name].servers] == ["tools"], name
    assert tools["lookup_order"].return_direct and not tools["record_call"].idempotent
    listing = run_cli(reg, "tools", "--json")
    assert listing.returncode == 0, listing.stderr
    assert {e["name"] for e in json.loads(listing.stdout)} == set(tools)
    text = run_cli(reg, "tools")
    assert "lookup_customer(customer_id)  queue=tools.billing  servers=billing@" in text.stdout
    assert "record_call(key, seconds)" in text.stdout and "not-idempotent" in text.stdout


def test_calls_run_only_on_the_workers_serving_their_queue(
    reg: Reg, rclient: AgentClient, rsim: Simulator, model: str, session: str
) -> None:
    billing, tools = reg.workers["billing"], reg.workers["tools"]
    since = {p: p.log_path.stat().st_size for p in (billing, tools)}
    rsim.script(model, {"tool_calls": [tool_call("lookup_customer", {"customer_id": 7}, "b1"),
                                       tool_call("echo", {"text": "hi"}, "e1")]},
                {"content": "done"})
    result = rclient.run({"session_id": session, "message": "who is 7?", "model": model},
                         timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    outputs = {s.tool_name: s for s in result.sources}
    assert "customer 7: plan gold (secret held: yes" in outputs["lookup_customer"].content
    assert outputs["echo"].content == "hi" and not outputs["echo"].is_error
    assert tool_tasks_received(billing, since[billing]) == 1
    assert tool_tasks_received(tools, since[tools]) == 1
    # The agents worker imports no tool module, yet the model saw every schema.
    first = rsim.requests(model)[0]
    shown = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert shown["lookup_customer"]["parameters"]["properties"]["customer_id"] == {
        "type": "integer", "description": "The customer number."}
    assert "calculator" in shown and "echo" in shown


def test_unknown_tool_is_refused_before_enqueue_and_otherwise_at_start(
    reg: Reg, rclient: AgentClient, session: str
) -> None:
    request = {"session_id": session, "message": "x", "tools": ["calculator", "nope"]}
    with pytest.raises(UnknownTools) as refused:
        rclient.submit(request)
    assert "unknown tools: nope" in str(refused.value)
    assert "lookup_customer" in str(refused.value) and "calculator" in str(refused.value)
    async def async_submit() -> str:
        async with AsyncAgentClient(reg.stack.redis_url) as aclient:
            return await aclient.submit(request)

    with pytest.raises(UnknownTools, match="unknown tools: nope"):
        asyncio.run(async_submit())
    cli = run_cli(reg, "submit", "x", "--session", session, "--tool", "nope")
    assert cli.returncode == 2 and "unknown tools: nope" in cli.stderr, cli
    # A producer that cannot see the registry: the worker refuses at start, listing them.
    sub = prepare_submit(request)
    rclient.order.admit(sub.job_id, sub.session_id, sub.record_json, sub.event_json,
                        sub.message, EVENTS_MAX_LEN, sub.deadline_at)
    failed = wait_job(rclient, sub.job_id, 20)
    assert failed.status == JobStatus.FAILED
    assert "unknown tools: nope" in (failed.error or "")
    assert "lookup_customer" in (failed.error or "")


def test_gateway_lists_tools_and_refuses_unknown_ones_with_422(
    reg: Reg, session: str
) -> None:
    url = start_gateway(reg.stack)
    try:
        listing = requests.get(f"{url}/v1/tools", timeout=10)
        assert listing.status_code == 200
        by_name = {e["name"]: e for e in listing.json()}
        assert by_name["lookup_customer"]["queue"] == "tools.billing"
        assert by_name["lookup_customer"]["servers"][0].startswith("billing@")
        rsp = requests.post(f"{url}/v1/jobs", timeout=10, json={
            "session_id": session, "message": "x", "tools": ["echo", "nope"]})
        assert rsp.status_code == 422, rsp.text
        assert "unknown tools: nope" in rsp.text and "lookup_customer" in rsp.text
    finally:
        next(p for p in reg.stack.processes if p.name.startswith("gateway") and p.alive).stop()


def test_a_conflicting_schema_is_refused_and_the_entry_never_flips(
    reg: Reg, rclient: AgentClient
) -> None:
    before = served(rclient)["lookup_customer"]
    v2 = reg.start("billing-v2", ["tools.billing"], "tests.billing_tools_v2")
    try:
        assert "tool lookup_customer: NOT announced by billing-v2@" in v2.log_text()
        assert "differs in: description, parameters" in v2.log_text()
        time.sleep(4 * HEARTBEAT)  # several heartbeats of both workers
        after = served(rclient)["lookup_customer"]
        assert after.parameters == before.parameters
        assert [s.split("@")[0] for s in after.servers] == ["billing"]
        assert [s.split("@")[0] for s in after.refused] == ["billing-v2"]
        assert "CONFLICT: a different definition from billing-v2@" in run_cli(reg, "tools").stdout
    finally:
        v2.stop()


def test_a_worker_with_a_different_tool_set_says_so_and_answers_clearly(
    reg: Reg, rclient: AgentClient
) -> None:
    """Issue 12, defect 4: a call that reaches a worker without the tool is an error
    output naming the worker and the tool, never an internal error."""
    odd = reg.start("odd", ["tools", "tools.odd"], "")  # the built-in tools only
    try:
        log = odd.log_text()
        assert "worker odd@" in log and "does not serve echo, fail_always" in log
        call = {"id": "odd-1", "name": "echo", "arguments": json.dumps({"text": "x"})}
        output = rclient.celery.send_task(
            TASK_TOOL_RUN, kwargs={"job_id": "odd-job-1", "call": call, "allowed": ["echo"]},
            queue="tools.odd",
        ).get(timeout=20)
        assert output["is_error"] and "tool echo is not served by worker odd@" in output["content"]
    finally:
        odd.stop()


def test_a_call_of_a_tool_whose_only_server_stopped_is_an_error_output(
    reg: Reg, rclient: AgentClient, rsim: Simulator, model: str, session: str
) -> None:
    rsim.script(
        model,
        {"tool_calls": [tool_call("sleep_for", {"seconds": 2}, "s1")]},
        {"tool_calls": [tool_call("lookup_customer", {"customer_id": 1}, "b1")]},
        {"content": "carried on"},
    )
    job_id = rclient.submit({"session_id": session, "message": "go", "model": model})
    wait_for(lambda: rclient.status(job_id).status == JobStatus.RUNNING,  # type: ignore[union-attr]
             10, "the job to start")
    reg.workers["billing"].stop()  # a clean stop withdraws its tools at once
    assert "lookup_customer" not in served(rclient)
    result = wait_job(rclient, job_id, 30)
    assert result.status == JobStatus.SUCCEEDED and result.response == "carried on"
    lost = next(s for s in result.sources if s.tool_name == "lookup_customer")
    assert lost.is_error
    assert lost.content == "Error: tool lookup_customer is not served by any worker right now"


def test_a_killed_worker_leaves_the_registry_and_its_waiting_calls_are_answered(
    reg: Reg, rclient: AgentClient, rsim: Simulator, model: str, session: str
) -> None:
    if reg.workers["billing"].alive:  # (run alone, without the test before it)
        reg.workers["billing"].stop()
    billing = reg.start("billing", ["tools.billing"], "tests.billing_tools=tools.billing")
    assert "lookup_customer" in served(rclient)  # announced by the time it is ready
    agents = reg.workers["agents"]
    since = agents.log_path.stat().st_size
    billing.kill()
    killed = time.monotonic()
    # Still listed for the rest of its lease: this call goes to tools.billing, where
    # nobody reads it any more...
    # (with a second call in the round: the rescued call is part of a chord)
    rsim.script(model, {"tool_calls": [tool_call("lookup_customer", {"customer_id": 3}, "k1"),
                                       tool_call("echo", {"text": "fine"}, "k2")]},
                {"content": "went on"})
    job_id = rclient.submit({"session_id": session, "message": "go", "model": model,
                             "tools": ["lookup_customer", "echo"]})
    wait_for(lambda: "lookup_customer" not in served(rclient), 10, "the lease to lapse")
    gone_after = time.monotonic() - killed
    assert gone_after < 3 * HEARTBEAT + 1.5, gone_after
    assert "echo" in served(rclient)  # the other workers' tools stay
    # ...until an agents worker finds the queue orphaned and answers the call.
    result = wait_job(rclient, job_id, 20)
    assert result.status == JobStatus.SUCCEEDED and result.response == "went on"
    assert [s.content for s in result.sources] == [
        "Error: tool lookup_customer is not served by any worker right now", "fine"]
    moved = agents.log_path.read_bytes()[since:].decode()
    assert "tool queue tools.billing has no live worker" in moved


def test_the_registry_comes_back_after_a_redis_restart_that_lost_it(
    reg: Reg, rclient: AgentClient, rsim: Simulator, model: str, session: str
) -> None:
    reg.stack.restart_redis(kill=True)  # no persistence: every announcement is gone
    # The next heartbeats announce again (the workers reconnect by themselves).
    wait_for(lambda: _served_or_none(rclient), 20, "the tools to be announced again")
    rsim.script(model, {"tool_calls": [tool_call("echo", {"text": "back"}, "e1")]},
                {"content": "ok"})
    result = rclient.run({"session_id": session, "message": "x", "model": model,
                          "tools": ["echo"]}, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.sources[0].content == "back"


def _served_or_none(client: AgentClient) -> bool:
    try:
        return "echo" in served(client)
    except Exception:  # Redis still coming back
        return False
