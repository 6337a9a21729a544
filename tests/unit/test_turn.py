"""The pure turn logic, driven by a scripted model (no Celery, no Redis, no HTTP)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from producer.contracts import ChatMessage, ChatRequest, ToolCall, ToolOutput, Usage
from worker.turn import (
    ModelCall,
    ModelReply,
    TurnState,
    apply_model_reply,
    apply_tool_outputs,
    build_model_call,
    new_turn,
)

SCHEMAS = [{"type": "function", "function": {"name": "calculator", "parameters": {}}}]


def words(message: ChatMessage) -> int:
    """A tiny stand-in token counter: one token per word plus one per message."""
    text = (message.content or "") + " ".join(c.arguments for c in message.tool_calls or [])
    return 1 + len(text.split())


def start(**request: object) -> TurnState:
    fields: dict[str, object] = {"session_id": "s1", "message": "hello there"}
    fields.update(request)
    return new_turn("job-0001", ChatRequest.model_validate(fields), "m", 1000, ["calculator"], 0)


def call(call_id: str, name: str = "calculator", arguments: str = "{}") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


def output(c: ToolCall, content: str = "4", is_error: bool = False) -> ToolOutput:
    return ToolOutput(
        tool_name=c.name, tool_call_id=c.id, arguments=c.arguments, content=content,
        is_error=is_error,
    )


def model_call(state: TurnState, history: Sequence[ChatMessage] = ()) -> ModelCall:
    return build_model_call(state, history, SCHEMAS, words)


def test_plain_answer_ends_the_turn() -> None:
    state = apply_model_reply(start(), ModelReply(content="hi", usage=Usage(total_tokens=3)))
    assert state.phase == "done"
    assert state.response == "hi"
    assert [m.role for m in state.messages] == ["user", "assistant"]
    assert state.usage.total_tokens == 3


def test_no_tools_sends_neither_tools_nor_tool_choice() -> None:
    state = start()
    sent = build_model_call(state, [], [], words)
    assert sent.tools is None and sent.tool_choice is None


def test_forced_tool_choice_applies_to_first_call_only() -> None:
    state = start(tool_choice="calculator")
    assert model_call(state).tool_choice == {
        "type": "function", "function": {"name": "calculator"},
    }
    c = call("c1")
    state = apply_model_reply(state, ModelReply(tool_calls=[c]))
    state = apply_tool_outputs(state, [output(c)], set())
    assert state.phase == "model"
    assert model_call(state).tool_choice == "auto"


def test_tool_outputs_are_kept_in_call_order_whatever_order_they_arrive() -> None:
    calls = [call("a"), call("b"), call("c")]
    state = apply_model_reply(start(), ModelReply(tool_calls=calls))
    arrived = [output(calls[2], "3"), output(calls[0], "1"), output(calls[1], "2")]
    state = apply_tool_outputs(state, arrived, set())
    assert [m.tool_call_id for m in state.messages if m.role == "tool"] == ["a", "b", "c"]
    assert [s.content for s in state.sources] == ["1", "2", "3"]
    assert state.function_calls == 3


def test_missing_output_is_an_error_not_a_silent_gap() -> None:
    calls = [call("a"), call("b")]
    state = apply_model_reply(start(), ModelReply(tool_calls=calls))
    with pytest.raises(ValueError, match="missing"):
        apply_tool_outputs(state, [output(calls[0])], set())


def test_budget_spent_forces_tool_choice_none() -> None:
    state = start(max_function_calls=1)
    c = call("a")
    state = apply_model_reply(state, ModelReply(tool_calls=[c]))
    state = apply_tool_outputs(state, [output(c)], set())
    assert model_call(state).tool_choice == "none"


def test_calls_beyond_the_budget_get_error_outputs_and_are_not_run() -> None:
    state = start(max_function_calls=2)
    calls = [call("a"), call("b"), call("c")]
    state = apply_model_reply(state, ModelReply(tool_calls=calls))
    assert [c.id for c in state.runnable_calls()] == ["a", "b"]
    state = apply_tool_outputs(state, [output(calls[0]), output(calls[1])], set())
    refused = state.sources[2]
    assert refused.is_error and "budget of 2" in refused.content
    assert state.function_calls == 2
    # every call of the assistant message has its result: memory stays valid
    assert [m.tool_call_id for m in state.messages if m.role == "tool"] == ["a", "b", "c"]


def test_zero_budget_first_call_is_tool_choice_none() -> None:
    assert model_call(start(max_function_calls=0, tool_choice="required")).tool_choice == "none"


def test_return_direct_single_call_ends_turn_with_its_output() -> None:
    c = call("a", name="lookup")
    state = apply_model_reply(start(), ModelReply(tool_calls=[c]))
    state = apply_tool_outputs(state, [output(c, "Order 7: shipped")], {"lookup"})
    assert state.phase == "done"
    assert state.response == "Order 7: shipped"
    assert state.messages[-1] == ChatMessage(role="assistant", content="Order 7: shipped")


def test_return_direct_error_goes_back_to_the_model() -> None:
    c = call("a", name="lookup")
    state = apply_model_reply(start(), ModelReply(tool_calls=[c]))
    state = apply_tool_outputs(state, [output(c, "Error: x", is_error=True)], {"lookup"})
    assert state.phase == "model"


def test_return_direct_among_several_calls_does_not_end_the_turn() -> None:
    calls = [call("a", name="lookup"), call("b")]
    state = apply_model_reply(start(), ModelReply(tool_calls=calls))
    state = apply_tool_outputs(state, [output(calls[0]), output(calls[1])], {"lookup"})
    assert state.phase == "model"


def test_system_prompt_leads_every_call_but_is_not_a_turn_message() -> None:
    state = start(system_prompt="be brief")
    sent = model_call(state)
    assert sent.messages[0] == ChatMessage(role="system", content="be brief")
    assert all(m.role != "system" for m in state.messages)


def test_history_window_is_placed_between_prefix_and_turn() -> None:
    history = [ChatMessage(role="user", content="earlier"),
               ChatMessage(role="assistant", content="reply")]
    sent = model_call(start(system_prompt="sys"), history)
    assert [m.content for m in sent.messages] == ["sys", "earlier", "reply", "hello there"]


def test_token_limit_drops_oldest_history_first() -> None:
    history = [
        ChatMessage(role="user", content="one two three four five"),
        ChatMessage(role="assistant", content="six seven"),
        ChatMessage(role="user", content="eight"),
        ChatMessage(role="assistant", content="nine"),
    ]
    state = start()
    state.token_limit = 3 + 2 + 2  # turn message (3) + the last two history messages
    sent = model_call(state, history)
    assert [m.content for m in sent.messages] == ["eight", "nine", "hello there"]


def test_each_transition_bumps_the_version() -> None:
    state = start()
    c = call("a")
    after_reply = apply_model_reply(state, ModelReply(tool_calls=[c]))
    after_tools = apply_tool_outputs(after_reply, [output(c)], set())
    assert (state.version, after_reply.version, after_tools.version) == (0, 1, 2)
    assert state.messages == [ChatMessage(role="user", content="hello there")]  # not mutated


def test_a_transition_never_changes_the_state_it_started_from() -> None:
    request = ChatRequest(session_id="s1", message="hi")
    first = new_turn(job_id="job-00000001", request=request, model="m", token_limit=1000,
                     tool_names=["calculator"], memory_length=0)
    before = first.model_dump_json()
    call = ToolCall(id="c1", name="calculator", arguments="{}")
    asked = apply_model_reply(first, ModelReply(tool_calls=[call]))
    assert first.model_dump_json() == before
    asked_before = asked.model_dump_json()
    output = ToolOutput(tool_name="calculator", tool_call_id="c1", arguments="{}",
                        content="2", is_error=False)
    answered = apply_tool_outputs(asked, [output], frozenset())
    assert asked.model_dump_json() == asked_before
    assert [m.role for m in answered.messages] == ["user", "assistant", "tool"]
    assert [m.role for m in asked.messages] == ["user", "assistant"]
    assert answered.sources == [output] and asked.sources == []
