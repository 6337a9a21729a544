"""Tools of MCP servers on real workers: the SDK-built fixture server (tests/mcp_fixtures)
over stdio and over streamable HTTP, announced as SERVER__TOOL, called from turns.

A stack of its own: an agents worker with no tool module, a tools worker whose only
tools (besides the built-in ones) come from ``AGENT_MCP_CONFIG``; its secrets arrive as
``${MCP_TEST_SECRET}`` and must never leave its environment.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from producer.client import AgentClient
from producer.contracts import JobResult, JobStatus, ToolEntry
from producer.devstack import DevStack, ManagedProcess, ProcessExitedError, free_port
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import new_stack, wait_for
from tests.integration.test_secrets import stored_values
from tests.mcp_fixtures import MCP_TEST_SECRET, SERVER_SCRIPT

pytestmark = pytest.mark.integration

HEARTBEAT = 0.5
MAX_CHARS = 1000


class Mcp:
    def __init__(self, stack: DevStack, port: int, marker: Path) -> None:
        self.stack, self.port, self.marker = stack, port, marker
        self.http: ManagedProcess | None = None

    def start_http(self) -> None:
        self.http = self.stack.start_process(
            "mcp-http", [sys.executable, str(SERVER_SCRIPT), "http", str(self.port)],
            env={"PATH": "/usr/bin:/bin", "MCP_FIXTURE_BEARER": MCP_TEST_SECRET},
            ready_log=r"mcp fixture listening", timeout=30,
        )


@pytest.fixture(scope="module")
def mcp() -> Iterator[Mcp]:
    stack = new_stack("mcp", {"AGENT_TOOL_HEARTBEAT": str(HEARTBEAT)})
    with stack:
        port = free_port()
        marker = stack.run_dir / "extra-tool"
        config = {"mcpServers": {
            "fx": {"command": sys.executable, "args": [str(SERVER_SCRIPT), "stdio"],
                   "env": {"FIXTURE_TOKEN": "${MCP_TEST_SECRET}",
                           "MCP_FIXTURE_EXTRA": str(marker)},
                   "timeout": 3},
            "web": {"url": f"http://127.0.0.1:{port}/mcp",
                    "headers": {"Authorization": "Bearer ${MCP_TEST_SECRET}"}, "timeout": 3},
        }}
        config_path = stack.run_dir / "mcp.json"
        config_path.write_text(json.dumps(config))
        stack.start_redis()
        stack.start_simulator()
        m = Mcp(stack, port, marker)
        m.start_http()
        stack.start_worker(["agents"], 8, "agents", env={"AGENT_TOOL_MODULES": ""})
        stack.start_worker(["tools"], 2, "mcp-tools", env={
            "AGENT_TOOL_MODULES": "", "AGENT_MCP_CONFIG": str(config_path),
            "MCP_TEST_SECRET": MCP_TEST_SECRET, "AGENT_MCP_MAX_CONTENT_CHARS": str(MAX_CHARS),
        })
        yield m


@pytest.fixture
def mclient(mcp: Mcp) -> Iterator[AgentClient]:
    with AgentClient(mcp.stack.redis_url) as c:
        yield c


@pytest.fixture(scope="module")
def msim(mcp: Mcp) -> Simulator:
    assert mcp.stack.simulator_url
    return Simulator(mcp.stack.simulator_url)


def served(client: AgentClient) -> dict[str, ToolEntry]:
    return {entry.name: entry for entry in client.tools()}


def turn(client: AgentClient, sim: Simulator, model: str, session: str,
         *rounds: list[tuple[str, dict[str, object]]], tools: list[str] | None = None
         ) -> JobResult:
    """A job whose model calls each round's tools in parallel, then answers "done"."""
    replies = [{"tool_calls": [tool_call(name, args, f"r{i}c{j}")
                               for j, (name, args) in enumerate(calls)]}
               for i, calls in enumerate(rounds)]
    sim.script(model, *replies, {"content": "done"})
    result = client.run({"session_id": session, "message": "go", "model": model,
                         "tools": tools}, timeout=60)
    assert result.status == JobStatus.SUCCEEDED, result.error
    return result


def outputs(result: JobResult) -> dict[str, tuple[bool, str]]:
    return {s.tool_call_id: (s.is_error, s.content) for s in result.sources}


def test_mcp_tools_are_announced_as_server__tool_with_their_schemas(
    mclient: AgentClient
) -> None:
    tools = served(mclient)
    add = tools["fx__add"]
    assert add.source == "mcp:fx" and add.queue == "tools" and add.time_limit == 3
    assert add.idempotent  # readOnlyHint
    assert not tools["fx__shout"].idempotent  # no hint: never repeated on redelivery
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert "title" not in add.parameters
    assert tools["web__add"].source == "mcp:web"  # the bearer header got through
    assert [s.split("@")[0] for s in add.servers] == ["mcp-tools"]


def test_one_turn_calls_tools_over_stdio_and_http(
    mclient: AgentClient, msim: Simulator, model: str, session: str
) -> None:
    result = turn(mclient, msim, model, session,
                  [("fx__add", {"a": 1, "b": 2}), ("web__add", {"a": 2, "b": 3}),
                   ("fx__token_hash", {})])
    out = outputs(result)
    assert out["r0c0"] == (False, "3") and out["r0c1"] == (False, "5")
    # ${MCP_TEST_SECRET} reached the stdio server's environment (only its hash came back).
    assert out["r0c2"] == (False, hashlib.sha256(MCP_TEST_SECRET.encode()).hexdigest())
    shown = {t["function"]["name"] for t in msim.requests(model)[0]["tools"]}
    assert {"fx__add", "web__add", "fx__token_hash"} <= shown


def test_server_errors_become_error_outputs_and_the_worker_serves_on(
    mclient: AgentClient, msim: Simulator, model: str, session: str
) -> None:
    result = turn(mclient, msim, model, session,
                  [("fx__fail", {"reason": "boom"}), ("web__huge", {"chars": 5000}),
                   ("fx__slow", {"seconds": 30}), ("fx__garbage", {})],
                  [("fx__add", {"a": 2, "b": 2})])
    out = outputs(result)
    assert out["r0c0"] == (True, "Error executing tool fail")  # isError from the server
    huge_error, huge = out["r0c1"]
    assert not huge_error and huge.endswith("[truncated: 4000 more characters]")
    assert len(huge) < MAX_CHARS + 50
    assert out["r0c2"] == (True, "Error: MCP tool fx__slow did not answer within its time "
                                 "limit of 3 s")
    assert out["r0c3"][0] and "MCP server fx sent a malformed message" in out["r0c3"][1]
    assert out["r1c0"] == (False, "4")


def test_a_server_crash_in_the_middle_of_a_job_is_an_error_output_then_it_restarts(
    mclient: AgentClient, msim: Simulator, model: str, session: str
) -> None:
    result = turn(mclient, msim, model, session,
                  [("fx__crash", {})], [("fx__add", {"a": 1, "b": 1})])
    out = outputs(result)
    assert out["r0c0"][0] and "MCP server fx is not reachable or stopped during the call" \
        in out["r0c0"][1]
    assert out["r1c0"] == (False, "2")


def test_list_changed_refreshes_the_registry(
    mcp: Mcp, mclient: AgentClient, msim: Simulator, model: str, session: str
) -> None:
    assert "fx__extra" not in served(mclient)
    mcp.marker.touch()
    wait_for(lambda: "fx__extra" in served(mclient), 10, "fx__extra to be announced")
    # Announced on the notification, not only by the next beat's listing.
    tools_worker = next(w for w in mcp.stack.workers if w.name == "mcp-tools")
    wait_for(lambda: "MCP server fx: tool list changed" in tools_worker.log_text(), 5,
             "the worker to log the notification")  # its log line may trail the announce
    # Named, so the agents worker's registry snapshot (cached 1 s) is refreshed for it.
    result = turn(mclient, msim, model, session, [("fx__extra", {"text": "hi"})],
                  tools=["fx__extra"])
    assert outputs(result)["r0c0"] == (False, "extra hi")


def test_a_dead_http_server_leaves_the_registry_and_comes_back(
    mcp: Mcp, mclient: AgentClient, msim: Simulator, model: str, session: str
) -> None:
    assert mcp.http is not None
    mcp.http.stop()
    wait_for(lambda: "web__add" not in served(mclient), 10, "web tools to leave")
    assert "fx__add" in served(mclient)
    mcp.start_http()
    wait_for(lambda: "web__add" in served(mclient), 15, "web tools to come back")
    # The pool processes' sessions to the old server are stale: reconnected, and the
    # idempotent call sent again.
    result = turn(mclient, msim, model, session, [("web__add", {"a": 20, "b": 22})],
                  tools=["web__add"])
    assert outputs(result)["r0c0"] == (False, "42")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Assistants API namespace
@pytest.mark.parametrize("protocol", ["responses", "assistants"])
def test_assistant_mode_takes_its_function_tools_from_the_registry(
    mclient: AgentClient, msim: Simulator, model: str, session: str, protocol: str
) -> None:
    msim.script(model, {"tool_calls": [tool_call("fx__add", {"a": 5, "b": 6}, "a1")],
                        "delay_ms": 50}, {"content": "eleven", "delay_ms": 50})
    result = mclient.run({"session_id": session, "message": "5+6?", "model": model,
                          "mode": "assistant", "protocol": protocol, "poll_interval": 0.1,
                          "tools": ["fx__add"]}, timeout=60)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [(s.tool_name, s.content) for s in result.sources] == [("fx__add", "11")]
    if protocol == "responses":  # (the simulator records no assistant definitions)
        body = msim.requests(model, "responses.create")[0]
        # The schema came from the registry: the agents worker imports no tool module.
        assert [t["name"] for t in body["tools"]] == ["fx__add"]
        assert body["tools"][0]["parameters"]["properties"]["a"]["type"] == "integer"


def test_the_mcp_secret_never_reaches_redis_or_logs(mcp: Mcp) -> None:
    assert mcp.stack.redis_url
    r = redis.Redis.from_url(mcp.stack.redis_url)
    needle = MCP_TEST_SECRET.encode()
    keys = list(r.scan_iter("*"))
    assert any(k.startswith(b"ca:tools:spec:") for k in keys)
    for key in keys:
        assert not any(needle in value for value in stored_values(r, key)), key
    for proc in mcp.stack.processes:
        assert MCP_TEST_SECRET not in proc.log_text(), f"secret in the {proc.name} log"


def test_a_bad_mcp_config_stops_the_worker_with_a_clear_error(mcp: Mcp) -> None:
    bad = mcp.stack.run_dir / "bad-mcp.json"
    bad.write_text(json.dumps({"mcpServers": {"x": {"command": "a", "url": "http://b"}}}))
    with pytest.raises(ProcessExitedError) as raised:
        mcp.stack.start_worker(["tools"], 1, "broken", env={"AGENT_MCP_CONFIG": str(bad)},
                               timeout=60)
    assert "mcpServers.x: give either command (stdio) or url (HTTP)" in str(raised.value)
