"""Benchmark: what the live tool registry and MCP tools cost per turn.

Starts its own redis-server, simulator, an agents worker and a tools worker serving the
test tools and the SDK-built MCP fixture server over stdio, then prints one JSON object:
- ``registry``: one registry snapshot (the Lua call an agents worker makes at most once
  per ``AGENT_TOOL_REGISTRY_CACHE`` seconds) and a turn's registry work with a warm
  cache (the start check, two steps' schemas and one call's queue), in ms;
- ``turn_ms``: one-tool turns (2 model calls + 1 tool call) awaited one at a time, with a
  Python tool (``echo``) and with an MCP tool (``fx__add``, stdio);
- ``tool_task_ms``: the tool task's own duration from the tools worker's log, same tools.

Run: ``.venv/bin/python bench/tool_registry.py [--turns 40]``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from producer.jobstore import connect
from producer.tool_registry import ToolRegistryStore
from tests.mcp_fixtures import SERVER_SCRIPT
from worker.tool_catalog import LiveCatalog


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def script(sim_url: str, model: str, replies: list[dict[str, Any]]) -> None:
    body = json.dumps({"model": model, "replies": replies}).encode()
    request = urllib.request.Request(sim_url.removesuffix("/v1") + "/_sim/script", data=body,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def registry_costs(redis_url: str, n: int = 500) -> dict[str, float]:
    store = ToolRegistryStore(connect(redis_url))
    snapshot = []
    for _ in range(n):
        started = time.perf_counter()
        store.live()
        snapshot.append((time.perf_counter() - started) * 1000)
    catalog = LiveCatalog(store, max_age=60)
    catalog.served()
    warm = []
    for _ in range(n):
        started = time.perf_counter()
        names = catalog.for_request(None, None)
        catalog.schemas(names)
        catalog.schemas(names)
        catalog.queue_for("echo")
        warm.append((time.perf_counter() - started) * 1000)
    return {"tools": len(store.live()), "snapshot_p50_ms": p50(snapshot),
            "warm_turn_p50_ms": p50(warm)}


def turns(client: AgentClient, sim_url: str, tool: str, args: dict[str, Any],
          n: int) -> list[float]:
    model = f"bench-{tool}-{time.time_ns()}"
    replies: list[dict[str, Any]] = []
    for i in range(n):
        call = {"id": f"c{i}", "name": tool, "arguments": args}
        replies += [{"tool_calls": [call]}, {"content": "ok"}]
    script(sim_url, model, replies)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        result = client.run({"session_id": f"bench-{tool}-{i}", "message": "go",
                             "model": model, "tools": [tool]}, timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        assert result.status == JobStatus.SUCCEEDED and not result.sources[0].is_error, result
    return samples


def tool_durations(log: str, tool: str) -> list[float]:
    return [float(m) for m in re.findall(rf"step=tool:{tool} .*?duration_ms=([\d.]+)", log)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    with DevStack() as stack:
        config = stack.run_dir / "mcp.json"
        config.write_text(json.dumps({"mcpServers": {"fx": {
            "command": sys.executable, "args": [str(SERVER_SCRIPT), "stdio"]}}}))
        stack.extra_env.update({"AGENT_TASK_EVENTS": "0"})
        stack.start_redis()
        sim_url = stack.start_simulator()
        stack.start_worker(["agents"], 8, "agents", env={"AGENT_TOOL_MODULES": ""})
        tools = stack.start_worker(["tools"], 2, "tools", env={
            "AGENT_TOOL_MODULES": "tests.tool_fixtures", "AGENT_MCP_CONFIG": str(config)})
        assert stack.redis_url
        with AgentClient(stack.redis_url) as client:
            turns(client, sim_url, "echo", {"text": "warm"}, 3)  # warm-up: connections
            turns(client, sim_url, "fx__add", {"a": 1, "b": 2}, 3)
            python = turns(client, sim_url, "echo", {"text": "hi"}, args.turns)
            mcp = turns(client, sim_url, "fx__add", {"a": 1, "b": 2}, args.turns)
            registry = registry_costs(stack.redis_url)
        log = tools.log_text()
        print(json.dumps({
            "registry": registry,
            "turn_ms": {"python_tool_p50": p50(python), "mcp_stdio_tool_p50": p50(mcp),
                        "n": args.turns},
            "tool_task_ms": {"python_tool_p50": p50(tool_durations(log, "echo")),
                             "mcp_stdio_tool_p50": p50(tool_durations(log, "fx__add"))},
        }, indent=2))


if __name__ == "__main__":
    main()
