"""The simulator over HTTP, driven by the real ``openai`` client."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from simulator import SimulatorServer, start_server
from simulator.routing import Request, Response, json_response
from tests.unit.sim_runs_helpers import call, model_name

API_KEY = "sk-test-key-123"
ROOT = Path(__file__).resolve().parents[2]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALCULATOR_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculator",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server(api_key=API_KEY)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def client(server: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=20)


def script(server: SimulatorServer, model: str, replies: list[dict[str, Any]]) -> None:
    status, body = call(server, "POST", "/_sim/script", {"model": model, "replies": replies})
    assert status == 200, body
    assert body["queued"] == len(replies)


def ask(client: openai.OpenAI, text: str, model: str = "gpt-4o-mini", **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


def test_url_and_port(server: SimulatorServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    assert call(server, "GET", "/_sim/health") == (200, {"status": "ok"})


def test_models_list(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "sim-small"} <= set(ids)
    assert client.models.retrieve("sim-small").id == "sim-small"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_plain_answer(client: openai.OpenAI) -> None:
    completion = ask(client, "Tell me more", model="sim-small")
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "sim-small"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == 'You said: "Tell me more"'
    assert not choice.message.tool_calls


def test_parallel_tool_calls_then_final_answer(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris, Tokyo and Atlantis?"}
    ]
    tools: Any = [CALCULATOR_TOOL, WEATHER_TOOL]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls: Any = choice.message.tool_calls
    assert calls is not None
    assert [c.function.name for c in calls] == ["get_weather"] * 3
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
        {"city": "Atlantis"},
    ]
    assert all(c.id.startswith("call_") for c in calls)
    assert len({c.id for c in calls}) == 3

    messages.append(choice.message.model_dump(exclude_none=True))
    results = {"Paris": "Sunny, 18 °C", "Tokyo": "Cloudy, 22 °C", "Atlantis": "Error: unknown"}
    for c in calls:
        city = json.loads(c.function.arguments)["city"]
        messages.append({"role": "tool", "tool_call_id": c.id, "content": results[city]})
    final = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    content = final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"
    assert content is not None
    assert "get_weather(Paris): Sunny, 18 °C" in content
    assert "get_weather(Tokyo): Cloudy, 22 °C" in content
    assert "I could not get the weather for Atlantis: Error: unknown" in content


def test_usage_present_and_deterministic(client: openai.OpenAI) -> None:
    short = ask(client, "hi")
    long = ask(client, "hi " * 400)
    assert short.usage is not None and long.usage is not None
    assert short.usage.prompt_tokens >= 1 and short.usage.completion_tokens >= 1
    assert short.usage.total_tokens == short.usage.prompt_tokens + short.usage.completion_tokens
    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 200
    assert ask(client, "hi").usage == short.usage


def test_scripted_queue_in_order(server: SimulatorServer, client: openai.OpenAI) -> None:
    model = model_name()
    script(
        server,
        model,
        [
            {"content": "first scripted"},
            {"tool_calls": [{"name": "calculator", "arguments": "{not json", "id": "call_fixed"}]},
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
            {"error": {"status": 500, "message": "boom", "type": "server_error"}},
            {"content": "after the error"},
        ],
    )
    # Scripted replies ignore the policy: arithmetic + tools would otherwise call a tool.
    first = ask(client, "What is 1 + 2?", model=model, tools=[CALCULATOR_TOOL])
    assert first.model == model
    assert first.choices[0].message.content == "first scripted"
    assert first.choices[0].finish_reason == "stop"

    second = ask(client, "anything", model=model, tools=[CALCULATOR_TOOL])
    calls = second.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id == "call_fixed"
    assert calls[0].function.name == "calculator"
    assert calls[0].function.arguments == "{not json"
    assert second.choices[0].finish_reason == "tool_calls"

    third = ask(client, "anything", model=model)
    third_calls = third.choices[0].message.tool_calls
    assert third_calls is not None
    assert json.loads(third_calls[0].function.arguments) == {"city": "Oslo"}
    assert third_calls[0].id.startswith("call_")

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client, "anything", model=model)
    assert raised.value.status_code == 500
    assert raised.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }

    assert ask(client, "x", model=model).choices[0].message.content == "after the error"
    assert call(server, "GET", f"/_sim/script?model={model}")[1]["remaining"] == 0


def test_exhausted_script_and_clear(server: SimulatorServer, client: openai.OpenAI) -> None:
    model = model_name()
    script(server, model, [{"content": "only one"}])
    assert ask(client, "a", model=model).choices[0].message.content == "only one"
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, "b", model=model)
    assert f"simulator script for model {model} is exhausted" in raised.value.message

    assert call(server, "DELETE", f"/_sim/script?model={model}")[0] == 200
    assert ask(client, "back to policy", model=model).choices[0].message.content == (
        'You said: "back to policy"'
    )


def test_scripted_validation_still_applies(server: SimulatorServer, client: openai.OpenAI) -> None:
    model = model_name()
    script(server, model, [{"content": "kept"}])
    with pytest.raises(openai.BadRequestError):
        ask(client, "x", model=model, tool_choice="auto")
    # The rejected request did not consume the reply.
    assert ask(client, "x", model=model).choices[0].message.content == "kept"


def test_bad_script_rejected(server: SimulatorServer) -> None:
    status, body = call(
        server, "POST", "/_sim/script", {"model": "m", "replies": [{"contnet": "typo"}]}
    )
    assert status == 400
    assert "unknown keys" in body["error"]["message"]


UNANSWERED = [
    {"role": "user", "content": "weather?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    {"role": "user", "content": "and?"},
]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"},
            "'tool_choice' is only allowed when 'tools' are specified",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_x", "content": "42"},
                ]
            },
            "must be a response to a preceding message with 'tool_calls'",
        ),
        ({"messages": []}, "'messages'"),
        ({"messages": UNANSWERED, "tools": [WEATHER_TOOL]}, "did not have response messages: c2"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "no function named 'nope'",
        ),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ],
)
def test_validation_errors(client: openai.OpenAI, kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", **kwargs)
    assert fragment in raised.value.message
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(  # stream=true itself streams (tests/unit/test_streaming_pieces.py)
    "fields", [{"stream": "yes"}, {"stream_options": {"include_usage": True}}]
)
def test_bad_stream_fields_rejected(server: SimulatorServer, fields: dict[str, Any]) -> None:
    status, body = call(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields},
        {"Authorization": f"Bearer {API_KEY}"},
    )
    assert status == 400
    assert "stream" in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_auth_required(server: SimulatorServer) -> None:
    status, body = call(server, "GET", "/v1/models")
    assert status == 401
    assert set(body["error"]) == {"message", "type", "param", "code"}
    status, _ = call(server, "GET", "/v1/models", headers={"Authorization": "Bearer "})
    assert status == 401
    wrong = openai.OpenAI(base_url=server.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert "sk-wrong" not in raised.value.message


def test_any_key_accepted_without_api_key_option() -> None:
    with start_server() as sim:
        anyone = openai.OpenAI(base_url=sim.url, api_key="whatever", max_retries=0)
        assert anyone.models.list().data
        assert call(sim, "GET", "/v1/models")[0] == 401


def test_unknown_route_is_openai_404(server: SimulatorServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    status, body = call(server, "GET", "/v1/nope", headers=headers)
    assert status == 404
    assert body["error"]["message"] == "Invalid URL (GET /v1/nope)"
    assert call(server, "DELETE", "/v1/models", headers=headers)[0] == 404


def test_router_accepts_new_routes(server: SimulatorServer) -> None:
    def get_widget(request: Request) -> Response:
        return json_response({"id": request.params["widget_id"], "object": "widget"})

    server.router.add("GET", "/v1/widgets/{widget_id}", get_widget)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert call(server, "GET", "/v1/widgets/w_1", headers=headers) == (
        200,
        {"id": "w_1", "object": "widget"},
    )
    assert call(server, "GET", "/v1/widgets/w_1")[0] == 401


def test_latency_honoured() -> None:
    with start_server(latency_ms=400) as sim:
        client = openai.OpenAI(base_url=sim.url, api_key="k", max_retries=0)
        started = time.perf_counter()
        ask(client, "slow")
        assert time.perf_counter() - started >= 0.4

        # The delay is slept concurrently, not behind a lock.
        started = time.perf_counter()
        threads = [threading.Thread(target=ask, args=(client, f"q{i}")) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.perf_counter() - started < 2.0  # one after another would take 4 s

        model = model_name()
        script(sim, model, [{"content": "late", "delay_ms": 200}])
        started = time.perf_counter()
        ask(client, "x", model=model)
        assert time.perf_counter() - started >= 0.6

        status, config = call(sim, "POST", "/_sim/config", {"latency_ms": 0})
        assert (status, config["latency_ms"]) == (200, 0.0)
        started = time.perf_counter()
        ask(client, "fast")
        assert time.perf_counter() - started < 0.4
        assert call(sim, "POST", "/_sim/config", {"latency_ms": -1})[0] == 400


def test_recorded_requests(server: SimulatorServer, client: openai.OpenAI) -> None:
    model = model_name()
    ask(client, "one", model=model)
    ask(client, "two", model=model, tools=[WEATHER_TOOL], tool_choice="none")
    status, body = call(server, "GET", f"/_sim/requests?model={model}")
    assert status == 200
    bodies = body["requests"]
    assert [b["messages"][0]["content"] for b in bodies] == ["one", "two"]
    assert bodies[1]["tool_choice"] == "none"
    assert API_KEY not in json.dumps(body)
    assert call(server, "GET", "/_sim/requests?model=never-used") == (200, {"requests": []})


def test_concurrent_requests(client: openai.OpenAI) -> None:
    answers: dict[int, str | None] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            answers[i] = ask(client, f"request number {i}").choices[0].message.content
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert answers == {i: f'You said: "request number {i}"' for i in range(50)}


def test_keep_alive_and_content_length(server: SimulatorServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    sockets = []
    try:
        for _ in range(3):
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
            sockets.append(conn.sock)
            response = conn.getresponse()
            raw = response.read()
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(raw)
            assert response.headers.get("Connection") != "close"
        assert sockets[0] is not None
        assert all(sock is sockets[0] for sock in sockets)  # one connection served all three
    finally:
        conn.close()


def test_verbose_log_has_no_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    with start_server(api_key="sk-very-secret", verbose=True) as sim:
        client = openai.OpenAI(base_url=sim.url, api_key="sk-very-secret", max_retries=0)
        ask(client, "body-secret-text")
    err = capsys.readouterr().err
    assert "POST /v1/chat/completions 200" in err
    assert "sk-very-secret" not in err
    assert "body-secret-text" not in err


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[1]
        client = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
        assert ask(client, "via cli").choices[0].message.content == 'You said: "via cli"'
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
