"""Chat turns end to end: producer -> Redis -> real workers -> simulator over HTTP."""

from __future__ import annotations

import json

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration


def test_plain_answer(client: AgentClient, sim: Simulator, model: str, session: str) -> None:
    sim.script(model, {"content": "Hello from the model."})
    result = client.run({"session_id": session, "message": "hi", "model": model}, timeout=30)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "Hello from the model."
    assert result.sources == []
    assert result.usage.total_tokens > 0
    assert result.model_calls == 1


def test_single_tool_call(client: AgentClient, sim: Simulator, model: str, session: str) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("calculator", {"expression": "6 * 7"}, "call_1")]},
        {"content": "It is 42."},
    )
    result = client.run({"session_id": session, "message": "6 times 7?", "model": model})
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "It is 42."
    [source] = result.sources
    assert (source.tool_name, source.tool_call_id, source.content, source.is_error) == (
        "calculator", "call_1", "42", False,
    )
    assert json.loads(source.arguments) == {"expression": "6 * 7"}
    # the second model call saw the tool result, answering the call by id
    second = sim.requests(model)[1]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    assert result.usage.total_tokens > 0 and result.model_calls == 2


def test_parallel_calls_run_concurrently_and_return_in_call_order(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [
            tool_call("sleep_for", {"seconds": 0.5}, "slow"),
            tool_call("sleep_for", {"seconds": 0.5}, "slow2"),
            tool_call("echo", {"text": "fast"}, "fast"),
        ]},
        {"content": "done"},
    )
    job_id = client.submit({"session_id": session, "message": "go", "model": model})
    events = list(client.events(job_id, timeout=30))
    result = client.wait(job_id, timeout=5)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert [s.tool_call_id for s in result.sources] == ["slow", "slow2", "fast"]
    assert [s.content for s in result.sources] == ["slept 0.5", "slept 0.5", "fast"]
    sleeps = [e for e in events if e.detail.get("tool") == "sleep_for"]
    first_start = min(e.at for e in sleeps if e.kind == "tool_started")
    last_end = max(e.at for e in sleeps if e.kind == "tool_finished")
    assert last_end - first_start < 0.9, "two 0.5 s tools must overlap"
    tool_messages = [m for m in sim.requests(model)[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["slow", "slow2", "fast"]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (tool_call("calculator", '{"expression": "1+', "c"),
         "Error in calling tool calculator: the input json block is malformed: "),
        (tool_call("no_such_tool", {}, "c"), "Tool with name no_such_tool not found"),
        (tool_call("fail_always", {"reason": "disk on fire"}, "c"),
         "Error: RuntimeError: disk on fire"),
        (tool_call("calculator", {"expr": "1"}, "c"), "expression"),
    ],
    ids=["bad-json", "unknown-tool", "tool-raises", "schema-violation"],
)
def test_tool_errors_go_back_to_the_model_and_the_turn_continues(
    client: AgentClient, sim: Simulator, model: str, session: str,
    call: dict[str, object], expected: str,
) -> None:
    sim.script(model, {"tool_calls": [call]}, {"content": "Sorry, that failed."})
    result = client.run({"session_id": session, "message": "try it", "model": model})
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "Sorry, that failed."
    [source] = result.sources
    assert source.is_error
    assert expected in source.content
    sent_back = sim.requests(model)[1]["messages"][-1]
    assert sent_back["role"] == "tool" and expected in sent_back["content"]


def test_tool_not_allowed_for_the_request_is_not_found(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "x"}, "c")]}, {"content": "ok"})
    result = client.run(
        {"session_id": session, "message": "x", "model": model, "tools": ["calculator"]}
    )
    assert result.sources[0].content == "Tool with name echo not found"
    assert [t["function"]["name"] for t in sim.requests(model)[0]["tools"]] == ["calculator"]


def echo(text: str, call_id: str) -> dict[str, object]:
    return tool_call("echo", {"text": text}, call_id)


def test_budget_of_function_calls_forces_a_final_answer(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [echo("1", "a"), echo("2", "b")]},
        {"tool_calls": [echo("3", "c"), echo("4", "d")]},
        {"content": "final"},
    )
    result = client.run(
        {"session_id": session, "message": "loop", "model": model, "max_function_calls": 3}
    )
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "final"
    assert [(s.content, s.is_error) for s in result.sources][:3] == [
        ("1", False), ("2", False), ("3", False),
    ]
    assert result.sources[3].is_error and "budget of 3" in result.sources[3].content
    choices = [r.get("tool_choice") for r in sim.requests(model)]
    assert choices == ["auto", "auto", "none"]
    # memory holds every call with its result
    stored = client.history(session)
    call_ids = [c.id for m in stored for c in m.tool_calls or []]
    result_ids = [m.tool_call_id for m in stored if m.role == "tool"]
    assert call_ids == result_ids == ["a", "b", "c", "d"]


def test_calls_from_a_model_ignoring_tool_choice_none_are_refused_not_run(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [echo("1", "a")]}, {"content": "answer anyway"})
    result = client.run(
        {"session_id": session, "message": "x", "model": model, "max_function_calls": 0}
    )
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "answer anyway"
    [refused] = result.sources
    assert refused.is_error and "budget of 0" in refused.content
    assert [r["tool_choice"] for r in sim.requests(model)] == ["none", "none"]


def test_return_direct_ends_the_turn_without_another_model_call(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("lookup_order", {"order_id": 7}, "c")]})
    result = client.run({"session_id": session, "message": "where is order 7?", "model": model})
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "Order 7: shipped"
    assert len(sim.requests(model)) == 1
    assert client.history(session)[-1].content == "Order 7: shipped"


def test_forced_tool_choice_on_first_call_only(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model, {"tool_calls": [tool_call("echo", {"text": "x"}, "c")]}, {"content": "ok"}
    )
    result = client.run(
        {"session_id": session, "message": "x", "model": model, "tool_choice": "echo"}
    )
    assert result.status == JobStatus.SUCCEEDED, result.error
    first, second = sim.requests(model)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "echo"}}
    assert second["tool_choice"] == "auto"


def test_no_tools_sends_neither_tools_nor_tool_choice(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "plain"})
    client.run({"session_id": session, "message": "x", "model": model, "tools": []})
    [sent] = sim.requests(model)
    assert "tools" not in sent and "tool_choice" not in sent


def test_system_prompt_is_sent_but_not_stored(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "one"}, {"content": "two"})
    for text in ("first", "second"):
        client.run({"session_id": session, "message": text, "model": model,
                    "system_prompt": "You are terse."})
    for sent in sim.requests(model):
        assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert [m.role for m in client.history(session)] == ["user", "assistant"] * 2


def test_two_turn_session_remembers_the_first(
    client: AgentClient, sim: Simulator, session: str
) -> None:
    # the demo policy (no script) recalls a name from memory
    first = client.run({"session_id": session, "message": "My name is Ada.", "model": "gpt-4o"})
    second = client.run({"session_id": session, "message": "What is my name?",
                         "model": "gpt-4o"})
    assert first.status == second.status == JobStatus.SUCCEEDED
    assert "Ada" in (second.response or "")
    assert client.history(session)[0].content == "My name is Ada."


def test_memory_window_drops_oldest_messages_to_fit_the_token_limit(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, *({"content": f"answer {i}"} for i in range(4)))
    for i in range(3):
        client.run({"session_id": session, "message": f"question {i} " + "word " * 40,
                    "model": model})
    client.run({"session_id": session, "message": "last", "model": model, "token_limit": 120})
    sent = sim.requests(model)[-1]["messages"]
    assert sent[0]["role"] == "user"
    assert sent[-1]["content"] == "last"
    assert 1 < len(sent) < 7, "some but not all history fits"
    assert not any(m["content"].startswith("question 0") for m in sent)
    assert len(client.history(session)) == 8, "storage is never truncated"


def test_failed_model_call_leaves_memory_unchanged(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "first answer"})
    client.run({"session_id": session, "message": "first", "model": model})
    before = client.history(session)
    sim.script(
        model,
        {"tool_calls": [tool_call("echo", {"text": "x"}, "c")]},
        {"error": {"status": 400, "message": "context too long", "type": "invalid_request_error"}},
    )
    result = client.run({"session_id": session, "message": "second", "model": model})
    assert result.status == JobStatus.FAILED
    assert "400" in (result.error or "") and "context too long" in (result.error or "")
    assert client.history(session) == before


def test_server_error_is_retried_by_a_rescheduled_task(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"error": {"status": 503, "message": "overloaded", "type": "server_error"}},
        {"content": "recovered"},
    )
    result = client.run({"session_id": session, "message": "x", "model": model})
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert result.response == "recovered"
    assert len(sim.requests(model)) == 2


def test_retries_are_bounded_then_the_job_fails_with_the_last_error(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    overloaded = {"error": {"status": 503, "message": "overloaded", "type": "server_error"}}
    sim.script(model, *[overloaded] * 4)  # first try + AGENT_MODEL_MAX_RETRIES (3)
    result = client.run({"session_id": session, "message": "x", "model": model}, timeout=30)
    assert result.status == JobStatus.FAILED
    assert result.error == "model API error 503: overloaded"
    assert len(sim.requests(model)) == 4
    assert client.history(session) == []
