"""The simulator's Responses API (background mode and not) through the real ``openai``
client: tool rounds, parallel calls, scripted faults, cancel, validation, observability."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from simulator import SimulatorServer, start_server
from tests.unit.sim_runs_helpers import (
    API_KEY,
    CALC_PARAMS,
    RUN_MS,
    WEATHER_PARAMS,
    control,
    model_name,
    script,
    stats,
    wait_until,
)

WEATHER: dict[str, Any] = {"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}
CALCULATOR: dict[str, Any] = {"type": "function", "name": "calculator", "parameters": CALC_PARAMS}
TOOLS = [WEATHER, CALCULATOR, {"type": "web_search"}]
SETTLED = {"completed", "failed", "cancelled", "incomplete"}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server(api_key=API_KEY)
    sim.state.run_settings.configure_startup(RUN_MS, 600)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def client(server: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=20)


def create(client: openai.OpenAI, model: str = "gpt-4o-mini", **kwargs: Any) -> Response:
    kwargs.setdefault("tools", TOOLS)
    return client.responses.create(model=model, background=True, store=True, **kwargs)


def settle(client: openai.OpenAI, response: Response) -> Response:
    return wait_until(lambda: client.responses.retrieve(response.id), lambda r: r.status in SETTLED)


def outputs_for(response: Response, results: list[str]) -> list[dict[str, str]]:
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == len(results)
    return [
        {"type": "function_call_output", "call_id": c.call_id, "output": r}
        for c, r in zip(calls, results, strict=True)
    ]


def test_one_tool_round(server: SimulatorServer, client: openai.OpenAI) -> None:
    before = stats(server)
    first = create(client, input="What is 6 * 7?", instructions="Be brief.")
    assert first.id.startswith("resp_")
    assert (first.status, first.background, first.output, first.usage) == (
        "queued",
        True,
        [],
        None,
    )
    assert first.instructions == "Be brief."
    first = settle(client, first)
    assert first.status == "completed"
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.status) == (
        "calculator",
        '{"expression": "6 * 7"}',
        "completed",
    )
    assert call.call_id.startswith("call_") and call.id is not None
    assert first.output_text == ""
    second = create(client, previous_response_id=first.id, input=outputs_for(first, ["42"]))
    assert second.previous_response_id == first.id
    second = settle(client, second)
    assert second.status == "completed"
    assert "42" in second.output_text
    assert second.output[0].type == "message"
    assert second.usage is not None and second.usage.total_tokens > 0
    after = stats(server)
    assert after["response_created"] - before["response_created"] == 2
    assert after["response_retrieved"] - before["response_retrieved"] >= 2


def test_parallel_tool_calls(client: openai.OpenAI) -> None:
    text = "What's the weather in Paris, Tokyo and Lima?"
    first = settle(client, create(client, input=text))
    cities = [item.arguments for item in first.output if item.type == "function_call"]
    assert cities == ['{"city": "Paris"}', '{"city": "Tokyo"}', '{"city": "Lima"}']
    follow = create(
        client,
        previous_response_id=first.id,
        input=outputs_for(first, ["sunny", "rainy", "foggy"]),
    )
    answer = settle(client, follow).output_text
    assert "Paris): sunny" in answer and "Lima): foggy" in answer
    single = settle(client, create(client, input=text, parallel_tool_calls=False))
    assert [item.type for item in single.output] == ["function_call"]


def test_manual_history_without_previous_response(client: openai.OpenAI) -> None:
    response = settle(
        client,
        create(
            client,
            input=[
                {"role": "user", "content": "What is 1+1?"},
                {
                    "type": "function_call",
                    "call_id": "call_manual",
                    "name": "calculator",
                    "arguments": '{"expression": "1+1"}',
                },
                {"type": "function_call_output", "call_id": "call_manual", "output": "2"},
            ],
        ),
    )
    assert "calculator: 2" in response.output_text


def test_missing_or_unknown_tool_outputs(client: openai.OpenAI) -> None:
    first = settle(client, create(client, input="What's the weather in Paris and Tokyo?"))
    calls = [item for item in first.output if item.type == "function_call"]
    with pytest.raises(openai.BadRequestError) as raised:
        create(client, previous_response_id=first.id, input=outputs_for(first, ["a", "b"])[:1])
    assert raised.value.message.endswith(
        f"No tool output found for function call {calls[1].call_id}."
    )
    with pytest.raises(openai.BadRequestError, match="No tool output found"):
        create(client, previous_response_id=first.id, input="never mind")
    stray = [{"type": "function_call_output", "call_id": "call_stray", "output": "x"}]
    with pytest.raises(openai.BadRequestError, match="call_stray"):
        create(client, previous_response_id=first.id, input=outputs_for(first, ["a", "b"]) + stray)
    with pytest.raises(openai.BadRequestError, match="call_stray"):
        create(client, input=stray)


def test_final_answer_and_sync_mode(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="My name is Grace.")
    assert response.status == "completed" and response.background is False
    assert response.output_text == "Nice to meet you, Grace."
    follow = client.responses.create(
        model="gpt-4o-mini", input="What is my name?", previous_response_id=response.id
    )
    assert follow.output_text == "Your name is Grace."
    unstored = client.responses.create(model="gpt-4o-mini", input="hi", store=False)
    assert unstored.status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_background_needs_store(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="store"):
        client.responses.create(model="gpt-4o-mini", input="x", background=True, store=False)


@pytest.mark.parametrize(
    ("reply", "status", "error", "reason"),
    [
        (
            {"error": {"status": 500, "message": "boom"}},
            "failed",
            {"code": "server_error", "message": "boom"},
            None,
        ),
        (
            {
                "run_status": "failed",
                "last_error": {"code": "rate_limit_exceeded", "message": "later"},
            },
            "failed",
            {"code": "rate_limit_exceeded", "message": "later"},
            None,
        ),
        ({"run_status": "incomplete"}, "incomplete", None, "max_output_tokens"),
        (
            {"run_status": "incomplete", "incomplete_reason": "content_filter"},
            "incomplete",
            None,
            "content_filter",
        ),
        ({"run_status": "cancelled"}, "cancelled", None, None),
        (
            {"run_status": "expired"},
            "failed",
            {"code": "server_error", "message": "The response expired before it completed."},
            None,
        ),
    ],
)
def test_fault_forms(
    server: SimulatorServer,
    client: openai.OpenAI,
    reply: dict[str, Any],
    status: str,
    error: dict[str, str] | None,
    reason: str | None,
) -> None:
    model = model_name()
    script(server, model, [reply])
    response = settle(client, create(client, model=model, input="x"))
    assert response.status == status
    assert (
        response.error.model_dump(include={"code", "message"}) if response.error else None
    ) == error
    assert (response.incomplete_details.reason if response.incomplete_details else None) == reason
    assert response.output == []


def test_scripted_tool_calls_delay_and_recording(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    model = model_name()
    script(
        server,
        model,
        [
            {
                "tool_calls": [
                    {"name": "get_weather", "arguments": {"city": "Rome"}, "id": "call_r"}
                ],
                "delay_ms": 150,
            },
            {"content": "Rome is warm."},
        ],
    )
    first = create(client, model=model, input="weather?", instructions="Use tools.")
    time.sleep(0.06)
    assert client.responses.retrieve(first.id).status == "in_progress"
    first = settle(client, first)
    assert [(i.type, getattr(i, "call_id", None)) for i in first.output] == [
        ("function_call", "call_r")
    ]
    second = settle(
        client,
        create(
            client, model=model, previous_response_id=first.id, input=outputs_for(first, ["warm"])
        ),
    )
    assert second.output_text == "Rome is warm."
    status, body = control(server, "GET", f"/_sim/requests?model={model}&kind=responses.create")
    assert status == 200
    assert [b.get("previous_response_id") for b in body["requests"]] == [None, first.id]
    assert body["requests"][0]["instructions"] == "Use tools."
    assert control(server, "GET", f"/_sim/requests?model={model}&kind=runs.create")[1] == {
        "requests": []
    }


def test_never_finish_and_cancel(server: SimulatorServer, client: openai.OpenAI) -> None:
    model = model_name()
    script(server, model, [{"never_finish": True}])
    response = create(client, model=model, input="x")
    time.sleep(0.08)
    assert client.responses.retrieve(response.id).status == "in_progress"
    before = stats(server)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    assert client.responses.cancel(response.id).status == "cancelled"  # idempotent
    status, body = control(server, "GET", f"/_sim/responses/{response.id}")
    assert (status, body["status"]) == (200, "cancelled")
    after = stats(server)
    assert after["response_cancelled"] - before["response_cancelled"] == 2
    assert after["response_retrieved"] == before["response_retrieved"]


def test_cancel_rules(client: openai.OpenAI) -> None:
    done = settle(client, create(client, input="hello"))
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        client.responses.cancel(done.id)
    sync = client.responses.create(model="gpt-4o-mini", input="hello")
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(sync.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_nope")


def test_input_items_delete_and_unknown_ids(client: openai.OpenAI) -> None:
    response = create(
        client,
        input=[
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
        ],
    )
    items = client.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message", "message"]
    assert [getattr(i, "role", None) for i in items.data] == ["user", "developer"]  # newest first
    ascending = client.responses.input_items.list(response.id, order="asc")
    assert [i.id for i in ascending.data] == [i.id for i in items.data][::-1]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError, match=response.id):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        create(client, input="x", previous_response_id="resp_nope")


def test_validation(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="name"):
        create(client, input="x", tools=[{"type": "function", "parameters": {}}])
    with pytest.raises(openai.BadRequestError, match="not found"):
        create(client, input="x", tool_choice={"type": "function", "name": "nope"})
    with pytest.raises(openai.BadRequestError, match="input"):
        client.responses.create(model="gpt-4o-mini", background=True, store=True)
    with pytest.raises(openai.BadRequestError, match="role"):
        create(client, input=[{"role": "robot", "content": "x"}])
    forced = settle(
        client,
        create(client, input="hello", tool_choice={"type": "function", "name": "calculator"}),
    )
    assert [i.type for i in forced.output] == ["function_call"]
    pending = create(client, input="What is 2+2?")
    with pytest.raises(openai.BadRequestError, match="only completed"):
        create(client, previous_response_id=pending.id, input="x")
    anonymous = openai.OpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.responses.retrieve(pending.id)
