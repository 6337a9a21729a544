"""A self-hosted model's context window (issue 12): AGENT_CONTEXT_WINDOWS keeps the
earlier conversation that the 3000-token default pushed out, and the worker logs the
window it assumed, once per model."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator
from tests.integration.stacks import new_stack

pytestmark = pytest.mark.integration

EARLIER = "My name is Ada. " + "banana " * 1600  # ~1600 tokens
LONG = "cherry " * 1500  # the 1500-word message


@pytest.fixture(scope="module")
def ctx_stack() -> Iterator[DevStack]:
    with new_stack("context-window", {"AGENT_CONTEXT_WINDOWS": "selfhosted=32768"}) as stack:
        stack.start_redis()
        stack.start_simulator()
        stack.start_worker(["agents", "tools"], concurrency=2, name="worker")
        yield stack


def two_turns(client: AgentClient, sim: Simulator, model: str, session: str) -> list[str]:
    """The user messages the model was sent on the second turn."""
    sim.script(model, {"content": "Hello Ada."}, {"content": "Noted."})
    for message in (EARLIER, LONG):
        result = client.run({"session_id": session, "message": message, "model": model,
                             "tools": []}, timeout=60)
        assert result.status == JobStatus.SUCCEEDED, result.error
    second = sim.requests(model, kind="chat.completions")[-1]
    return [m["content"] for m in second["messages"] if m["role"] == "user"]


def test_per_model_window_keeps_the_earlier_conversation(ctx_stack: DevStack) -> None:
    assert ctx_stack.simulator_url and ctx_stack.redis_url
    sim = Simulator(ctx_stack.simulator_url)
    with AgentClient(ctx_stack.redis_url) as client:
        # Unknown and not configured: the 4000-token default (3000 sent) drops turn one.
        assert two_turns(client, sim, "other-llm", "ctx-default") == [LONG]
        # Configured by prefix (selfhosted=32768): the whole conversation goes along.
        assert two_turns(client, sim, "selfhosted-llm-8b", "ctx-set") == [EARLIER, LONG]
    log = ctx_stack.workers[0].log_text()
    configured = ("context window of model 'selfhosted-llm-8b': 32768 tokens "
                  "(AGENT_CONTEXT_WINDOWS)")
    # Two turns each, logged once per pool process (the two turns may land on either).
    assert logged_once_per_process(log, configured), log[-3000:]
    assumed = "context window of model 'other-llm': 4000 tokens assumed (AGENT_CONTEXT_WINDOW"
    assert logged_once_per_process(log, assumed), log[-3000:]
    assert "AGENT_CONTEXT_WINDOWS=other-llm=<tokens>" in log


def logged_once_per_process(log: str, message: str) -> bool:
    """``message`` is logged, and by no pool process twice (``[time: LEVEL/Process]``)."""
    writers = [re.search(r"/(\w+-\d+)\]", line) for line in log.splitlines() if message in line]
    names = [w.group(1) if w else "?" for w in writers]
    return 1 <= len(names) == len(set(names))
