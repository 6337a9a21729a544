"""A tool past its time limit yields an error output; the turn goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import OUTPUT_DIR, Simulator, tool_call


@pytest.fixture(scope="module")
def short_limit_stack() -> Iterator[DevStack]:
    with DevStack(OUTPUT_DIR / "stack-tool-time-limit", keep_run_dir=True) as dev:
        dev.extra_env.update({
            "AGENT_TOOL_MODULES": "tests.tool_fixtures",
            "AGENT_TOOL_TIME_LIMIT": "1",
        })
        dev.start_redis()
        dev.start_simulator(latency_ms=0)
        dev.start_worker(["agents", "tools"], concurrency=2, name="both")
        yield dev


def test_tool_past_its_time_limit_becomes_an_error_output(
    short_limit_stack: DevStack, model: str, session: str
) -> None:
    assert short_limit_stack.simulator_url
    sim = Simulator(short_limit_stack.simulator_url)
    sim.script(
        model,
        {"tool_calls": [tool_call("sleep_for", {"seconds": 5}, "slow"),
                        tool_call("echo", {"text": "quick"}, "fast")]},
        {"content": "recovered"},
    )
    with AgentClient(short_limit_stack.redis_url) as client:
        result = client.run({"session_id": session, "message": "go", "model": model}, 30)
    assert result.status == JobStatus.SUCCEEDED and result.response == "recovered"
    slow, fast = result.sources
    assert slow.is_error
    assert slow.content == "Error: tool sleep_for did not finish within its time limit of 1 s"
    assert not fast.is_error and fast.content == "quick"
    tool_messages = [m for m in sim.requests(model)[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [slow.content, "quick"]
