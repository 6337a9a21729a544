"""The simulator's Assistants API (assistants, threads, messages, runs) through the real
``openai`` client: lifecycle, both policies, every scripted fault, conflicts, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.beta.threads import Run

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

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_PARAMS},
}
CALCULATOR: dict[str, Any] = {
    "type": "function",
    "function": {"name": "calculator", "parameters": CALC_PARAMS},
}
SETTLED = {"requires_action", "completed", "failed", "cancelled", "expired", "incomplete"}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server(api_key=API_KEY)
    sim.state.run_settings.configure_startup(RUN_MS, 600)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def client(server: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=20)


@pytest.fixture(scope="module")
def assistant_id(client: openai.OpenAI) -> str:
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        name="helper",
        instructions="You help.",
        tools=[WEATHER, CALCULATOR, {"type": "code_interpreter"}, {"type": "file_search"}],
        metadata={"team": "tests"},
    )
    return assistant.id


def start(client: openai.OpenAI, assistant_id: str, text: str, **kwargs: Any) -> tuple[str, Run]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id, **kwargs)
    return thread.id, run


def settle(client: openai.OpenAI, run: Run, statuses: set[str] = SETTLED) -> Run:
    return wait_until(
        lambda: client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
        lambda r: r.status in statuses,
    )


def answer(client: openai.OpenAI, thread_id: str) -> str:
    newest = client.beta.threads.messages.list(thread_id=thread_id, limit=1).data[0]
    assert newest.role == "assistant"
    block = newest.content[0]
    assert block.type == "text"
    return block.text.value


def submit(client: openai.OpenAI, run: Run, outputs: list[str]) -> Run:
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    return client.beta.threads.runs.submit_tool_outputs(
        run.id,
        thread_id=run.thread_id,
        tool_outputs=[
            {"tool_call_id": c.id, "output": o} for c, o in zip(calls, outputs, strict=True)
        ],
    )


def test_assistant_crud(client: openai.OpenAI, assistant_id: str) -> None:
    assistant = client.beta.assistants.retrieve(assistant_id)
    assert (assistant.model, assistant.name, assistant.instructions) == (
        "gpt-4o-mini",
        "helper",
        "You help.",
    )
    assert [t.type for t in assistant.tools] == [
        "function",
        "function",
        "code_interpreter",
        "file_search",
    ]
    assert assistant.metadata == {"team": "tests"}
    other = client.beta.assistants.create(model="sim-small")
    assert other.id in [a.id for a in client.beta.assistants.list(limit=100)]
    assert client.beta.assistants.delete(other.id).deleted
    with pytest.raises(openai.NotFoundError) as raised:
        client.beta.assistants.retrieve(other.id)
    assert raised.value.body == {
        "message": f"No assistant found with id '{other.id}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.BadRequestError, match="model"):
        client.beta.assistants.create(model="")
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(model="x", tools=[{"type": "browser"}])  # type: ignore[list-item]


def test_one_tool_round(server: SimulatorServer, client: openai.OpenAI, assistant_id: str) -> None:
    before = stats(server)
    thread_id, run = start(client, assistant_id, "What is 12 * (3 + 4)?")
    assert run.status == "queued"
    assert run.instructions == "You help."
    assert run.model == "gpt-4o-mini"
    assert run.expires_at is not None and run.usage is None
    run = settle(client, run)
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.id.startswith("call_")
    assert (call.function.name, call.function.arguments) == (
        "calculator",
        '{"expression": "12 * (3 + 4)"}',
    )
    run = submit(client, run, ["84"])
    assert run.status in ("queued", "in_progress")
    assert run.required_action is None
    run = settle(client, run)
    assert run.status == "completed"
    assert run.completed_at is not None and run.started_at is not None
    assert run.usage is not None and run.usage.total_tokens > 0
    assert "84" in answer(client, thread_id)
    after = stats(server)
    for counter in ("run_created", "tool_outputs_submitted", "thread_created"):
        assert after[counter] - before[counter] == 1
    assert after["run_retrieved"] - before["run_retrieved"] >= 2


def test_parallel_tool_calls(client: openai.OpenAI, assistant_id: str) -> None:
    text = "What's the weather in Paris and Tokyo?"
    thread_id, run = start(client, assistant_id, text)
    run = settle(client, run)
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.arguments for c in calls] == ['{"city": "Paris"}', '{"city": "Tokyo"}']
    run = settle(client, submit(client, run, ["sunny", "rainy"]), {"completed"})
    final = answer(client, thread_id)
    assert "Paris): sunny" in final and "Tokyo): rainy" in final

    _, run = start(client, assistant_id, text, parallel_tool_calls=False)
    run = settle(client, run)
    assert run.required_action is not None
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1
    assert run.parallel_tool_calls is False


def test_final_answer_and_message_order(client: openai.OpenAI, assistant_id: str) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada."},
        ]
    )
    client.beta.threads.messages.create(
        thread.id, role="user", content=[{"type": "text", "text": "What is my name?"}]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    assert settle(client, run).status == "completed"
    newest_first = client.beta.threads.messages.list(thread.id)
    texts = [m.content[0].text.value for m in newest_first if m.content[0].type == "text"]
    assert texts == [
        "Your name is Ada.",
        "What is my name?",
        "Nice to meet you, Ada.",
        "My name is Ada.",
    ]
    oldest_first = client.beta.threads.messages.list(thread.id, order="asc", limit=2)
    assert [m.id for m in oldest_first.data] == [m.id for m in newest_first.data][::-1][:2]
    assert oldest_first.has_more is True
    assert len(list(oldest_first)) == 4  # the client follows the cursor (after=last_id)
    assert newest_first.data[0].run_id == run.id
    assert newest_first.data[0].assistant_id == assistant_id
    by_run = client.beta.threads.messages.list(thread.id, run_id=run.id)
    assert [m.id for m in by_run] == [newest_first.data[0].id]
    before = client.beta.threads.messages.list(thread.id, order="asc", before=by_run.data[0].id)
    assert [m.id for m in before.data] == [m.id for m in oldest_first][:3]


def test_instructions_model_and_tools_overrides(
    server: SimulatorServer, client: openai.OpenAI, assistant_id: str
) -> None:
    model = model_name()
    script(server, model, [{"content": "scripted answer"}])
    thread_id, run = start(
        client,
        assistant_id,
        "hi",
        model=model,
        instructions="Only this.",
        additional_instructions="And this.",
        tools=[WEATHER],
        tool_choice="auto",
        metadata={"k": "v"},
    )
    assert run.instructions == "Only this.\nAnd this."
    assert run.model == model and [t.type for t in run.tools] == ["function"]
    assert run.metadata == {"k": "v"}
    assert settle(client, run).status == "completed"
    assert answer(client, thread_id) == "scripted answer"
    status, body = control(server, "GET", f"/_sim/requests?model={model}&kind=runs.create")
    assert status == 200
    (recorded,) = body["requests"]
    assert recorded["assistant_id"] == assistant_id
    assert recorded["instructions"] == "Only this."


def test_scripted_tool_calls_and_delay(
    server: SimulatorServer, client: openai.OpenAI, assistant_id: str
) -> None:
    model = model_name()
    script(
        server,
        model,
        [
            {
                "tool_calls": [
                    {"name": "lookup", "arguments": {"q": 1}, "id": "call_a"},
                    {"name": "lookup", "arguments": "{bad json", "id": "call_b"},
                ],
                "delay_ms": 150,
            },
            {"content": "done", "delay_ms": 0},
        ],
    )
    thread_id, run = start(client, assistant_id, "go", model=model)
    time.sleep(0.06)
    run = client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
    assert run.status == "in_progress"  # delay_ms (150) replaced the 20 ms run duration
    run = settle(client, run)
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.function.arguments) for c in calls] == [
        ("call_a", '{"q": 1}'),
        ("call_b", "{bad json"),
    ]
    run = submit(client, run, ["one", "two"])
    assert settle(client, run).status == "completed"
    assert answer(client, thread_id) == "done"
    _, body = control(server, "GET", f"/_sim/requests?model={model}&kind=runs.submit_tool_outputs")
    assert [o["tool_call_id"] for o in body["requests"][0]["tool_outputs"]] == [
        "call_a",
        "call_b",
    ]
    assert len(control(server, "GET", f"/_sim/requests?model={model}")[1]["requests"]) == 2


@pytest.mark.parametrize(
    ("reply", "status", "last_error", "reason"),
    [
        (
            {"run_status": "failed", "last_error": {"code": "invalid_prompt", "message": "no"}},
            "failed",
            {"code": "invalid_prompt", "message": "no"},
            None,
        ),
        (
            {"run_status": "failed"},
            "failed",
            {"code": "server_error", "message": "simulated failure"},
            None,
        ),
        (
            {"error": {"status": 429, "message": "slow down"}},
            "rate_limit_exceeded",
            {"code": "rate_limit_exceeded", "message": "slow down"},
            None,
        ),
        ({"run_status": "incomplete"}, "incomplete", None, "max_completion_tokens"),
        (
            {"run_status": "incomplete", "incomplete_reason": "max_prompt_tokens"},
            "incomplete",
            None,
            "max_prompt_tokens",
        ),
        ({"run_status": "expired"}, "expired", None, None),
        ({"run_status": "cancelled"}, "cancelled", None, None),
    ],
)
def test_fault_forms(
    server: SimulatorServer,
    client: openai.OpenAI,
    assistant_id: str,
    reply: dict[str, Any],
    status: str,
    last_error: dict[str, str] | None,
    reason: str | None,
) -> None:
    model = model_name()
    script(server, model, [reply])
    thread_id, run = start(client, assistant_id, "x", model=model)
    run = settle(client, run)
    assert run.status == ("failed" if status == "rate_limit_exceeded" else status)
    assert (run.last_error.model_dump() if run.last_error else None) == last_error
    assert (run.incomplete_details.reason if run.incomplete_details else None) == reason
    assert run.usage is not None  # terminal runs report usage
    assert [m.role for m in client.beta.threads.messages.list(thread_id)] == ["user"]
    # The thread is free again.
    client.beta.threads.messages.create(thread_id, role="user", content="again")


def test_exhausted_script_fails_the_run(
    server: SimulatorServer, client: openai.OpenAI, assistant_id: str
) -> None:
    model = model_name()
    script(server, model, [])
    _, run = start(client, assistant_id, "x", model=model)
    run = settle(client, run)
    assert run.status == "failed"
    assert run.last_error is not None and "exhausted" in run.last_error.message


def test_never_finish_and_cancel(
    server: SimulatorServer, client: openai.OpenAI, assistant_id: str
) -> None:
    model = model_name()
    script(server, model, [{"never_finish": True}])
    thread_id, run = start(client, assistant_id, "x", model=model)
    time.sleep(0.1)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "in_progress"
    before = stats(server)
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert cancelled.status in ("cancelling", "cancelled")
    status, body = control(server, "GET", f"/_sim/runs/{run.id}")
    assert status == 200 and body["id"] == run.id
    body = wait_until(
        lambda: control(server, "GET", f"/_sim/runs/{run.id}")[1],
        lambda b: b["status"] == "cancelled",
    )
    assert body["status"] == "cancelled" and body["cancelled_at"] is not None
    after = stats(server)
    assert after["run_cancelled"] - before["run_cancelled"] == 1
    assert after["run_retrieved"] == before["run_retrieved"]  # /_sim reads are not counted
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status"):
        client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    assert control(server, "GET", "/_sim/runs/run_nope")[0] == 404


def test_cancel_in_requires_action(client: openai.OpenAI, assistant_id: str) -> None:
    thread_id, run = start(client, assistant_id, "What is 2+2?")
    run = settle(client, run)
    assert run.status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    run = settle(client, run, {"cancelled"})
    assert run.status == "cancelled" and run.required_action is None
    with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "4"}]
        )


def test_active_run_conflicts(client: openai.OpenAI, assistant_id: str) -> None:
    thread_id, run = start(client, assistant_id, "What is 2+2?")
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    assert raised.value.body is not None
    assert raised.value.body["message"] == (  # type: ignore[index]
        f"Thread {thread_id} already has an active run {run.id}."
    )
    with pytest.raises(openai.BadRequestError, match="while a run"):
        client.beta.threads.messages.create(thread_id, role="user", content="more")
    run = settle(client, run)
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    run = settle(client, submit(client, run, ["4"]), {"completed"})
    second = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    assert second.id != run.id
    listed = client.beta.threads.runs.list(thread_id)
    assert [r.id for r in listed] == [second.id, run.id]


def test_bad_tool_outputs(client: openai.OpenAI, assistant_id: str) -> None:
    thread_id, run = start(client, assistant_id, "What's the weather in Paris and Tokyo?")
    with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_x", "output": "?"}]
        )
    run = settle(client, run)
    assert run.required_action is not None
    first, second = (c.id for c in run.required_action.submit_tool_outputs.tool_calls)
    bad: list[list[dict[str, str]]] = [
        [{"tool_call_id": first, "output": "a"}],  # one missing
        [
            {"tool_call_id": first, "output": "a"},
            {"tool_call_id": second, "output": "b"},
            {"tool_call_id": "call_extra", "output": "c"},
        ],
        [{"tool_call_id": first, "output": "a"}, {"tool_call_id": first, "output": "b"}],
        [],
    ]
    for outputs in bad:
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=thread_id,
                tool_outputs=outputs,  # type: ignore[arg-type]
            )
    status, body = control(
        server_of(client),
        "POST",
        f"/v1/threads/{thread_id}/runs/{run.id}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": first, "output": 1}]},
    )
    assert status == 400 and "output" in body["error"]["message"]
    # Still waiting for valid outputs, in any order.
    run = client.beta.threads.runs.submit_tool_outputs(
        run.id,
        thread_id=thread_id,
        tool_outputs=[
            {"tool_call_id": second, "output": "b"},
            {"tool_call_id": first, "output": "a"},
        ],
    )
    assert settle(client, run).status == "completed"


def server_of(client: openai.OpenAI) -> Any:
    class _Root:
        root_url = str(client.base_url).rstrip("/").removesuffix("/v1")

    return _Root()


def test_unknown_ids(client: openai.OpenAI, assistant_id: str) -> None:
    with pytest.raises(openai.NotFoundError, match="No thread found with id 'thread_nope'"):
        client.beta.threads.retrieve("thread_nope")
    with pytest.raises(openai.NotFoundError, match="No assistant found"):
        start(client, "asst_nope", "x")
    thread_id, run = start(client, assistant_id, "hello")
    with pytest.raises(openai.NotFoundError, match="No run found with id 'run_nope'"):
        client.beta.threads.runs.retrieve("run_nope", thread_id=thread_id)
    with pytest.raises(openai.NotFoundError, match="No thread found"):
        client.beta.threads.runs.retrieve(run.id, thread_id="thread_nope")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.cancel("run_nope", thread_id=thread_id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve("msg_nope", thread_id=thread_id)
    assert client.beta.threads.delete(thread_id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)


def test_attachments_and_content_blocks(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Sum the file"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
        ],
        attachments=[{"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}],
        metadata={"source": "test"},
    )
    assert [b.type for b in message.content] == ["text", "image_url"]
    assert message.attachments is not None
    assert message.attachments[0].file_id == uploaded.id
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message
    with pytest.raises(openai.NotFoundError, match="file-nope"):
        client.beta.threads.messages.create(
            thread.id, role="user", content="x", attachments=[{"file_id": "file-nope"}]
        )
    with pytest.raises(openai.BadRequestError, match="role"):
        client.beta.threads.messages.create(thread.id, role="system", content="x")  # type: ignore[arg-type]


def test_expiry_in_requires_action() -> None:
    with start_server(api_key=API_KEY) as sim:
        sim.state.run_settings.configure_startup(RUN_MS, 0.15)
        client = openai.OpenAI(base_url=sim.url, api_key=API_KEY, max_retries=0)
        assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[CALCULATOR])
        thread_id, run = start(client, assistant.id, "What is 1+1?")
        run = settle(client, run)
        assert run.status == "requires_action"
        assert run.expires_at is not None
        run = settle(client, run, {"expired"})
        assert run.status == "expired" and run.required_action is None
        with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
            client.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=thread_id,
                tool_outputs=[{"tool_call_id": "call_x", "output": "2"}],
            )
        client.beta.threads.messages.create(thread_id, role="user", content="still usable")


def test_run_config_and_auth(server: SimulatorServer) -> None:
    status, config = control(server, "POST", "/_sim/config", {"run_duration_ms": 5})
    assert (status, config["run_duration_ms"]) == (200, 5.0)
    assert control(server, "POST", "/_sim/config", {"run_duration_ms": -1})[0] == 400
    assert control(server, "POST", "/_sim/config", {"expires_after_s": 0})[0] == 400
    status, body = control(server, "POST", "/_sim/reset")
    assert status == 200 and body["run_duration_ms"] == RUN_MS
    assert all(value == 0 for value in stats(server).values())
    anonymous = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.beta.threads.create()


def test_cli_run_flags() -> None:
    from simulator.__main__ import _parser

    args = _parser().parse_args(["--run-duration-ms", "5", "--run-expires-after-s", "2"])
    assert (args.run_duration_ms, args.run_expires_after_s) == (5.0, 2.0)
    defaults = _parser().parse_args([])
    assert (defaults.run_duration_ms, defaults.run_expires_after_s) == (300.0, 600.0)
